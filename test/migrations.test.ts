import { join } from 'node:path';
import { Kysely } from 'kysely';
import { describe, expect, it } from 'vitest';
import { migrate } from '../src/storage/migrations.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { startServer, tempDir } from './harness.ts';

describe('migrations', () => {
  it('builds a fresh database, and a second run is a no-op', async () => {
    using dir = tempDir();
    const url = `file:${join(dir.path, 'm.db')}`;
    const db = new Kysely<any>({ dialect: betterSqliteDialect(url) });
    expect((await migrate(db)).applied).toEqual(['0001_init', '0002_partial_open_runs_index']);
    expect((await migrate(db)).applied).toEqual([]);
    const tables = (await db.introspection.getTables()).map((t) => t.name).sort();
    expect(tables).toEqual(expect.arrayContaining(['agents', 'events', 'runs', 'schedules']));
    const mode = await db.selectNoFrom((eb) => eb.val(1).as('x')).execute();
    expect(mode).toHaveLength(1);
    await db.destroy();
  });

  it('keeps agents and schedules across a restart', async () => {
    using dir = tempDir();
    const dbFile = join(dir.path, 'keep.db');
    {
      await using s = await startServer({ dbFile });
      expect((await s.call('POST', '/api/agents', { body: { id: 'kept', name: 'Kept', handler: 'demo' } })).status).toBe(201);
      expect((await s.call('POST', '/api/agents/kept/schedule', { body: { cronExpression: '0 9 * * 1-5', priority: 'HIGH' } })).status).toBe(201);
    }
    await using s2 = await startServer({ dbFile });
    const got = await s2.call('GET', '/api/agents/kept/schedule');
    expect(got.status).toBe(200);
    expect(got.body.data).toMatchObject({ id: 'kept', name: 'Kept', scheduleExpression: '0 9 * * 1-5', scheduleEnabled: true, taskDetails: { priority: 3 } });
  });

  it('opens SQLite in WAL mode with synchronous=NORMAL', async () => {
    using dir = tempDir();
    const Database = (await import('better-sqlite3')).default;
    const { SQLITE_PRAGMAS } = await import('../src/storage/dialects/sqlite-pragmas.ts');
    const db = new Database(join(dir.path, 'p.db'));
    for (const p of SQLITE_PRAGMAS) db.pragma(p);
    expect(db.pragma('journal_mode', { simple: true })).toBe('wal');
    expect(db.pragma('synchronous', { simple: true })).toBe(1);
    expect(db.pragma('busy_timeout', { simple: true })).toBe(5000);
    db.close();
  });
});
