import { statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { main, TOKEN_COMMAND } from '../../src/runtime/main.ts';
import { betterSqliteDialect } from '../../src/storage/dialects/better-sqlite3.ts';
import { deferred, tempDir } from '../harness.ts';

/**
 * Issue 12 item 9: the admin token was printed on every start, not only the first, and the database file —
 * which holds webhook header secrets — was created 0644.
 */
async function start(dir: string): Promise<string[]> {
  const lines: string[] = [];
  const exited = deferred<number>();
  let stop: ((signal: string) => void) | undefined;
  await main({
    env: { PORT: '0', HOST: '127.0.0.1', DATABASE_URL: `file:${join(dir, 'scheduler.db')}` },
    openDatabase: async (url) => betterSqliteDialect(url, { exclusive: true }),
    host: 'test',
    pid: process.pid,
    onShutdownSignal: (fn) => (stop = fn),
    exit: (code) => {
      exited.resolve(code);
      return undefined as never;
    },
    print: (line) => lines.push(line),
    printError: (line) => lines.push(line),
  });
  stop!('SIGTERM');
  expect(await exited.promise).toBe(0);
  return lines;
}

describe('the generated admin token and the database file', () => {
  it('prints the token on the first start only, then how to get one; the database files are 0600', async () => {
    using dir = tempDir();
    const first = (await start(dir.path)).join('\n');
    expect(first).toMatch(/export TOKEN=\S+\.\S+\.\S+/);
    // The listening line names this process's pid, for the walkthrough's `kill -9 <pid>`.
    expect(first).toContain(`"pid":${process.pid}`);
    const second = (await start(dir.path)).join('\n');
    expect(second).not.toMatch(/export TOKEN=|eyJ/);
    expect(second).toContain(TOKEN_COMMAND);
    expect(TOKEN_COMMAND).toContain('npm run -s token');
    const db = join(dir.path, 'scheduler.db');
    for (const file of [db, `${db}.lock`]) expect(statSync(file).mode & 0o777, file).toBe(0o600);
  });

  it('narrows a database file an older start left 0644', async () => {
    using dir = tempDir();
    const db = join(dir.path, 'old.db');
    const { writeFileSync, chmodSync } = await import('node:fs');
    writeFileSync(db, '');
    chmodSync(db, 0o644);
    const dialect = betterSqliteDialect(`file:${db}`);
    const { Kysely, sql } = await import('kysely');
    const k = new Kysely<never>({ dialect });
    await sql`CREATE TABLE t (x)`.execute(k);
    for (const file of [db, `${db}-wal`, `${db}-shm`]) expect(statSync(file).mode & 0o777, file).toBe(0o600);
    await k.destroy();
  });
});
