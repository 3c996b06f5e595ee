import { Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { AgentRecord, RunRecord } from '../src/core/store.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { postgresDialect } from '../src/storage/dialects/postgres.ts';
import { migrate } from '../src/storage/migrations.ts';
import { createRepository, type Repository } from '../src/storage/repository.ts';
import type { Database } from '../src/storage/schema.ts';

/**
 * One contract suite over every dialect (STYLE.md habit 7). SQLite always runs; PostgreSQL runs when
 * TEST_POSTGRES_URL is set, which .ci/run always does (and fails loudly when the server is missing).
 */
const pgUrl = process.env['TEST_POSTGRES_URL'];
const schemas: string[] = [];

async function pgRepo(): Promise<Repository> {
  const schema = `t_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client(pgUrl);
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  schemas.push(schema);
  const url = new URL(pgUrl!);
  url.searchParams.set('options', `-c search_path=${schema}`);
  const db = new Kysely<Database>({ dialect: postgresDialect(url.toString()) });
  await migrate(db, { schema });
  return createRepository(db);
}

async function sqliteRepo(): Promise<Repository> {
  const db = new Kysely<Database>({ dialect: betterSqliteDialect(':memory:') });
  await migrate(db);
  return createRepository(db);
}

afterAll(async () => {
  if (!pgUrl || schemas.length === 0) return;
  const admin = new pg.Client(pgUrl);
  await admin.connect();
  for (const s of schemas) await admin.query(`DROP SCHEMA ${s} CASCADE`);
  await admin.end();
});

const dialects: [string, () => Promise<Repository>][] = [['sqlite', sqliteRepo]];
if (pgUrl) dialects.push(['postgres', pgRepo]);
else {
  describe('storage contract on postgres', () => {
    it.skip('skipped: TEST_POSTGRES_URL is not set (.ci/run sets it)', () => {});
  });
  console.warn('storage contract on postgres skipped: TEST_POSTGRES_URL is not set');
}

const agent = (id: string, owner = 'alice'): AgentRecord => ({
  id, owner, name: id, handler: 'demo', config: { steps: 2 }, description: null, timeoutMs: null, maxRetries: null,
  status: 'IDLE', lastRunAt: null, lastError: null, retryCount: 0, backoffUntil: null, createdAt: 1, updatedAt: 1,
});
const run = (id: string, agentId: string, createdAt: number, extra: Partial<RunRecord> = {}): RunRecord => ({
  id, agentId, jobId: agentId, trigger: 'schedule', attempt: 1, status: 'queued', priority: 2, scheduledAt: createdAt,
  startedAt: null, finishedAt: null, durationMs: null, progress: null, error: null, dedupeKey: null, createdAt, ...extra,
});

describe.each(dialects)('storage contract on %s', (_name, open) => {
  it('inserts agents once and reads them back typed', async () => {
    await using repo = await open();
    expect(await repo.insertAgent(agent('a1'))).toBe(true);
    expect(await repo.insertAgent(agent('a1', 'bob'))).toBe(false);
    expect(await repo.getAgent('a1')).toEqual(agent('a1'));
    await repo.insertAgent(agent('b1', 'bob'));
    expect((await repo.listAgents('alice')).map((a) => a.id)).toEqual(['a1']);
    expect((await repo.listAgents(null)).map((a) => a.id)).toEqual(['a1', 'b1']);
  });

  it('applies a batch in order, folding updates into inserts', async () => {
    await using repo = await open();
    await repo.insertAgent(agent('a1'));
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 10) });
    repo.write({ op: 'run.update', id: 'r1', set: { status: 'running', startedAt: 11 } });
    repo.write({ op: 'run.update', id: 'r1', set: { status: 'completed', finishedAt: 15, durationMs: 4, progress: 100 } });
    repo.write({ op: 'agent.update', id: 'a1', set: { status: 'RUNNING' } });
    repo.write({ op: 'agent.update', id: 'a1', set: { status: 'COMPLETED', lastRunAt: 11 } });
    repo.write({ op: 'schedule.upsert', schedule: { agentId: 'a1', jobId: 'j1', expression: '* * * * *', timezone: 'UTC', priority: 3, enabled: true, paused: false, catchUp: true, nextRunAt: 60_000, createdAt: 1, updatedAt: 1 } });
    repo.write({ op: 'schedule.update', agentId: 'a1', set: { paused: true } });
    repo.write({ op: 'event.insert', event: { id: 1, type: 'agent:started', agentId: 'a1', data: { x: 1 }, createdAt: 11 } });
    repo.write({ op: 'event.insert', event: { id: 2, type: 'scheduler:status', agentId: null, data: { y: 2 }, createdAt: 12 } });
    await repo.flush();
    expect(await repo.getRun('r1')).toMatchObject({ status: 'completed', startedAt: 11, finishedAt: 15, durationMs: 4, progress: 100 });
    expect(await repo.getAgent('a1')).toMatchObject({ status: 'COMPLETED', lastRunAt: 11 });
    expect(await repo.getSchedule('a1')).toMatchObject({ jobId: 'j1', priority: 3, enabled: true, paused: true, catchUp: true, nextRunAt: 60_000 });
    expect(await repo.maxEventId()).toBe(2);
    expect(await repo.eventsAfter(0, 'a1', 10)).toEqual([{ id: 1, type: 'agent:started', agentId: 'a1', data: { x: 1 }, createdAt: 11 }]);
    expect((await repo.eventsAfter(0, null, 10)).map((e) => e.id)).toEqual([2]);
  });

  it('updates many rows in one batch, whatever columns each update sets', async () => {
    await using repo = await open();
    for (let i = 0; i < 30; i++) await repo.insertAgent(agent(`a${i}`));
    for (let i = 0; i < 30; i++) repo.write({ op: 'run.insert', run: run(`r${i}`, `a${i}`, i) });
    await repo.flush();
    for (let i = 0; i < 30; i++) {
      repo.write({ op: 'agent.update', id: `a${i}`, set: i % 2 ? { status: 'RUNNING', lastRunAt: 1_700_000_000_000 + i } : { lastError: `e${i}`, retryCount: i, backoffUntil: null } });
      repo.write({ op: 'run.update', id: `r${i}`, set: { status: 'completed', progress: i + 0.5, durationMs: i } });
    }
    await repo.flush();
    expect(await repo.getAgent('a3')).toMatchObject({ status: 'RUNNING', lastRunAt: 1_700_000_000_003, lastError: null, retryCount: 0 });
    expect(await repo.getAgent('a4')).toMatchObject({ status: 'IDLE', lastError: 'e4', retryCount: 4, backoffUntil: null });
    expect(await repo.getRun('r7')).toMatchObject({ status: 'completed', progress: 7.5, durationMs: 7 });
    expect((await repo.getAgents(['a1', 'a2', 'nope'])).map((a) => a.id).sort()).toEqual(['a1', 'a2']);
  });

  it('never stores two runs for one job slot', async () => {
    await using repo = await open();
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 10, { dedupeKey: 'a1@10' }) });
    await repo.flush();
    repo.write({ op: 'run.insert', run: run('r2', 'a1', 10, { dedupeKey: 'a1@10' }) });
    repo.write({ op: 'run.insert', run: run('r3', 'a1', 20) });
    repo.write({ op: 'run.insert', run: run('r4', 'a1', 20) });
    await repo.flush();
    expect((await repo.listRuns('a1', 10)).map((r) => r.id).sort()).toEqual(['r1', 'r3', 'r4']);
  });

  it('trims finished runs beyond the history limit, newest kept, open runs never', async () => {
    await using repo = await open();
    for (let i = 1; i <= 6; i++) repo.write({ op: 'run.insert', run: run(`r${i}`, 'a1', i, { status: i === 1 ? 'queued' : 'completed' }) });
    repo.write({ op: 'runs.trim', agentId: 'a1', keep: 3 });
    await repo.flush();
    expect((await repo.listRuns('a1', 10)).map((r) => r.id)).toEqual(['r6', 'r5', 'r4', 'r1']);
    expect((await repo.loadOpenRuns()).map((r) => r.id)).toEqual(['r1']);
  });

  it('deletes an agent with its schedule and runs', async () => {
    await using repo = await open();
    await repo.insertAgent(agent('a1'));
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 1) });
    repo.write({ op: 'schedule.upsert', schedule: { agentId: 'a1', jobId: 'a1', expression: '@daily', timezone: 'UTC', priority: 2, enabled: true, paused: false, catchUp: true, nextRunAt: null, createdAt: 1, updatedAt: 1 } });
    await repo.flush();
    await repo.deleteAgent('a1');
    expect(await repo.getAgent('a1')).toBeUndefined();
    expect(await repo.getSchedule('a1')).toBeUndefined();
    expect(await repo.listRuns('a1', 10)).toEqual([]);
  });

  it('expires old events', async () => {
    await using repo = await open();
    repo.write({ op: 'event.insert', event: { id: 1, type: 'agent:paused', agentId: 'a', data: {}, createdAt: 100 } });
    repo.write({ op: 'event.insert', event: { id: 2, type: 'agent:paused', agentId: 'a', data: {}, createdAt: 200 } });
    repo.write({ op: 'events.trim', before: 150 });
    await repo.flush();
    expect(await repo.oldestEventId()).toBe(2);
  });
});
