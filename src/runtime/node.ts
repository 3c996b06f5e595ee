import { realpathSync } from 'node:fs';
import { hostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { isPostgresUrl } from '../config.ts';
import { main } from './main.ts';
import { ensureFolder } from './secrets.ts';

/**
 * The server on Node, with better-sqlite3 (or pg for a postgres:// URL): what `npm start` runs, and
 * `agent-scheduler serve` too (src/cli), so the two can never start differently.
 */
export function startNodeServer(env: Record<string, string | undefined> = process.env): Promise<void> {
  return main({
    env,
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
    isTTY: process.stdout.isTTY === true,
    printError: (line) => process.stderr.write(`${line}\n`),
  });
}

// `npm start` (`tsx src/runtime/node.ts`) runs this file itself; the CLI imports it and calls startNodeServer.
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) await startNodeServer();
