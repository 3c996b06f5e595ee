import { hostname } from 'node:os';
import { isPostgresUrl } from '../config.ts';
import { main } from './main.ts';
import { ensureFolder } from './secrets.ts';

/** `npm start`: the server on Node, with better-sqlite3 (or pg for a postgres:// URL). */
await main({
  env: process.env,
  async openDatabase(url) {
    if (isPostgresUrl(url)) return (await import('../storage/dialects/postgres.ts')).postgresDialect(url);
    ensureFolder(url);
    return (await import('../storage/dialects/better-sqlite3.ts')).betterSqliteDialect(url, { exclusive: true });
  },
  host: hostname(),
  pid: process.pid,
  onShutdownSignal(fn) {
    process.on('SIGTERM', () => fn('SIGTERM'));
    process.on('SIGINT', () => fn('SIGINT'));
  },
  exit: (code) => process.exit(code),
  print: (line) => process.stdout.write(`${line}\n`),
  printError: (line) => process.stderr.write(`${line}\n`),
});
