import { join } from 'node:path';
import { Kysely } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { migrate, MIGRATION_LOCK_KEY } from '../src/storage/migrator.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { postgresDialect } from '../src/storage/dialects/postgres.ts';
import { startServer, tempDir } from './harness.ts';

describe('migrations', () => {
  it('builds a fresh database, and a second run is a no-op', async () => {
    using dir = tempDir();
    const url = `file:${join(dir.path, 'm.db')}`;
    const db = new Kysely<any>({ dialect: betterSqliteDialect(url) });
    expect((await migrate(db)).applied).toEqual(['0001_init', '0002_partial_open_runs_index', '0003_instances_and_event_ids', '0004_claims_leases_fences', '0005_cancel_requests_revisions_changes', '0006_outputs_usage_budgets', '0007_usage_days', '0008_idempotency_keys', '0009_pause_notes', '0010_schedule_jitter', '0011_pauses', '0012_schedule_owner', '0013_overlap_catch_up_backfill']);
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

const pgUrl = process.env['TEST_POSTGRES_URL'];

describe('migrations on PostgreSQL', () => {
  if (!pgUrl) {
    it.skip('skipped: TEST_POSTGRES_URL is not set (.ci/run sets it)', () => {});
    return;
  }

  it('three instances starting at once on a fresh schema all succeed, and the schema is migrated once', async () => {
    const schema = `t_mig_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
    const admin = new pg.Client(pgUrl);
    await admin.connect();
    await admin.query(`CREATE SCHEMA ${schema}`);
    const url = new URL(pgUrl);
    url.searchParams.set('options', `-c search_path=${schema}`);
    const dbs = [0, 1, 2].map(() => new Kysely<any>({ dialect: postgresDialect(url.toString()) }));
    try {
      const results = await Promise.all(dbs.map((db) => migrate(db, { schema })));
      const applied = results.map((r) => r.applied).sort((a, b) => b.length - a.length);
      expect(applied).toEqual([['0001_init', '0002_partial_open_runs_index', '0003_instances_and_event_ids', '0004_claims_leases_fences', '0005_cancel_requests_revisions_changes', '0006_outputs_usage_budgets', '0007_usage_days', '0008_idempotency_keys', '0009_pause_notes', '0010_schedule_jitter', '0011_pauses', '0012_schedule_owner', '0013_overlap_catch_up_backfill'], [], []]);
      const recorded = await admin.query(`SELECT name FROM ${schema}.kysely_migration ORDER BY name`);
      expect(recorded.rows.map((r) => r.name)).toEqual(['0001_init', '0002_partial_open_runs_index', '0003_instances_and_event_ids', '0004_claims_leases_fences', '0005_cancel_requests_revisions_changes', '0006_outputs_usage_budgets', '0007_usage_days', '0008_idempotency_keys', '0009_pause_notes', '0010_schedule_jitter', '0011_pauses', '0012_schedule_owner', '0013_overlap_catch_up_backfill']);
      const counters = await admin.query(`SELECT name, value FROM ${schema}.counters ORDER BY name`);
      expect(counters.rows).toEqual([{ name: 'event_id', value: 0 }, { name: 'schedule_revision', value: 0 }]);
      // The lock is given back: a later start finds nothing to do.
      expect((await migrate(dbs[0]!, { schema })).applied).toEqual([]);
    } finally {
      await Promise.all(dbs.map((db) => db.destroy()));
      await admin.query(`DROP SCHEMA ${schema} CASCADE`);
      await admin.end();
    }
  });

  it('holds the lock for the whole run, bookkeeping tables included, so a start waits for the one migrating', async () => {
    const schema = `t_mig_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
    const holder = new pg.Client(pgUrl);
    await holder.connect();
    await holder.query(`CREATE SCHEMA ${schema}`);
    const url = new URL(pgUrl);
    url.searchParams.set('options', `-c search_path=${schema}`);
    const db = new Kysely<any>({ dialect: postgresDialect(url.toString()) });
    try {
      // Another instance is migrating: it holds the lock.
      await holder.query('SELECT pg_advisory_lock($1)', [MIGRATION_LOCK_KEY.toString()]);
      const migrated = migrate(db, { schema });
      // Wait until this start is queued on the lock (a bigint key shows as classid = high half, objid = low half).
      const [classid, objid] = [Number(MIGRATION_LOCK_KEY >> 32n), Number(MIGRATION_LOCK_KEY & 0xffffffffn)];
      const deadline = Date.now() + 10_000;
      for (;;) {
        const waiting = await holder.query("SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND NOT granted", [classid, objid]);
        if (waiting.rowCount) break;
        if (Date.now() > deadline) throw new Error('migrate never waited on the lock');
        await new Promise((r) => setTimeout(r, 20));
      }
      const tables = await holder.query('SELECT table_name FROM information_schema.tables WHERE table_schema = $1', [schema]);
      expect(tables.rows).toEqual([]);
      await holder.query('SELECT pg_advisory_unlock($1)', [MIGRATION_LOCK_KEY.toString()]);
      expect((await migrated).applied).toHaveLength(13);
    } finally {
      await db.destroy();
      await holder.query(`DROP SCHEMA ${schema} CASCADE`);
      await holder.end();
    }
  });
});
