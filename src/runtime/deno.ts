import { isPostgresUrl } from '../config.ts';
import { main } from './main.ts';
import { ensureFolder } from './secrets.ts';

declare const Deno: {
  env: { toObject(): Record<string, string> };
  addSignalListener(signal: 'SIGTERM' | 'SIGINT', fn: () => void): void;
  exit(code: number): never;
  hostname(): string;
  pid: number;
  stdout: { isTerminal(): boolean };
};

/** `deno task start`: the same server under Deno 2, with node:sqlite (better-sqlite3 cannot load there). */
await main({
  env: Deno.env.toObject(),
  async openDatabase(url) {
    if (isPostgresUrl(url)) return (await import('../storage/dialects/postgres.ts')).postgresDialect(url);
    ensureFolder(url);
    return (await import('../storage/dialects/node-sqlite.ts')).nodeSqliteDialect(url, { exclusive: true });
  },
  host: Deno.hostname(),
  pid: Deno.pid,
  onShutdownSignal(fn) {
    Deno.addSignalListener('SIGTERM', () => fn('SIGTERM'));
    Deno.addSignalListener('SIGINT', () => fn('SIGINT'));
  },
  exit: (code) => Deno.exit(code),
  print: (line) => console.log(line),
  isTTY: Deno.stdout.isTerminal(),
  printError: (line) => console.error(line),
});
