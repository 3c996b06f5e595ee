import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { AgentRecord, ClaimOutcome, EventRecord, Fence, InstanceRecord, NewEvent, RunClaim, RunRecord, ScheduleRecord, Store, WriteOp } from '../src/core/store.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { postgresDialect } from '../src/storage/dialects/postgres.ts';
import { silentLogger } from '../src/core/logger.ts';
import { createEventFeed } from '../src/storage/event-feed.ts';
import { createMemoryStore } from '../src/storage/memory.ts';
import { migrate } from '../src/storage/migrator.ts';
import { createRepository, type Repository, type RepositoryOptions } from '../src/storage/repository.ts';
import type { Database } from '../src/storage/schema.ts';
import { TABLES, type SqlType } from '../src/storage/tables.ts';

/**
 * One contract suite over every store (STYLE.md habit 7): SQLite and the in-memory store always run;
 * PostgreSQL runs when TEST_POSTGRES_URL is set, which .ci/run always does (and fails loudly when the
 * server is missing).
 */
const pgUrl = process.env['TEST_POSTGRES_URL'];
const schemas: string[] = [];

/** A SQL store and the PostgreSQL schema it lives in (undefined on SQLite). */
interface SqlStore {
  repo: Repository;
  schema?: string;
}

async function pgStore(): Promise<SqlStore> {
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
  return { repo: createRepository(db), schema };
}

async function sqliteStore(): Promise<SqlStore> {
  const db = new Kysely<Database>({ dialect: betterSqliteDialect(':memory:') });
  await migrate(db);
  return { repo: createRepository(db) };
}

afterAll(async () => {
  if (!pgUrl || schemas.length === 0) return;
  const admin = new pg.Client(pgUrl);
  await admin.connect();
  for (const s of schemas) await admin.query(`DROP SCHEMA ${s} CASCADE`);
  await admin.end();
});

const sqlDialects: [string, () => Promise<SqlStore>][] = [['sqlite', sqliteStore]];
if (pgUrl) sqlDialects.push(['postgres', pgStore]);
else {
  describe('storage contract on postgres', () => {
    it.skip('skipped: TEST_POSTGRES_URL is not set (.ci/run sets it)', () => {});
  });
  console.warn('storage contract on postgres skipped: TEST_POSTGRES_URL is not set');
}
const stores: [string, () => Promise<Store>][] = [
  ...sqlDialects.map(([name, open]): [string, () => Promise<Store>] => [name, async () => (await open()).repo]),
  ['memory', async () => createMemoryStore()],
];

const agent = (id: string, owner = 'alice', extra: Partial<AgentRecord> = {}): AgentRecord => ({
  id, owner, name: id, handler: 'demo', config: { steps: 2 }, description: null, timeoutMs: null, maxRetries: null,
  status: 'IDLE', lastRunAt: null, lastError: null, retryCount: 0, backoffUntil: null, budget: null, createdAt: 1, updatedAt: 1, ...extra,
});
const run = (id: string, agentId: string, createdAt: number, extra: Partial<RunRecord> = {}): RunRecord => ({
  id, agentId, jobId: agentId, trigger: 'schedule', attempt: 1, status: 'queued', priority: 2, scheduledAt: createdAt,
  startedAt: null, finishedAt: null, durationMs: null, progress: null, error: null, dedupeKey: null, waiting: false, instanceId: null, epoch: 0, leaseUntil: null, cancelRequestedAt: null, output: null, outputTruncated: false, usageModel: null, inputTokens: null, outputTokens: null, costUsd: null, createdAt, ...extra,
});
const schedule = (agentId: string, extra: Partial<ScheduleRecord> = {}): ScheduleRecord => ({
  agentId, jobId: agentId, expression: '@daily', timezone: 'UTC', priority: 2, enabled: true, paused: false, catchUp: true, nextRunAt: null, pauseReason: null, resumeAt: null, pauseNote: null, jitterMs: 0, catchUpPolicy: 'latest', catchUpWindowMs: null, overlap: 'skip', owner: 'alice', revision: 0, changedAt: 1, createdAt: 1, updatedAt: 1, ...extra,
});

describe.each(stores)('storage contract on %s', (_name, open) => {
  it('inserts agents once and reads them back typed', async () => {
    await using repo = await open();
    expect(await repo.insertAgent(agent('a1'))).toBe(true);
    expect(await repo.insertAgent(agent('a1', 'bob'))).toBe(false);
    expect(await repo.getAgent('a1')).toEqual(agent('a1'));
    await repo.insertAgent(agent('b1', 'bob'));
    expect((await repo.listAgents('alice')).map((a) => a.id)).toEqual(['a1']);
    expect((await repo.listAgents(null)).map((a) => a.id)).toEqual(['a1', 'b1']);
  });

  it('lists agents oldest first, ties by id', async () => {
    await using repo = await open();
    await repo.insertAgent(agent('c', 'alice', { createdAt: 5 }));
    await repo.insertAgent(agent('b', 'alice', { createdAt: 9 }));
    await repo.insertAgent(agent('a', 'alice', { createdAt: 5 }));
    expect((await repo.listAgents(null)).map((a) => a.id)).toEqual(['a', 'c', 'b']);
  });

  it('applies a batch in order, folding updates into inserts', async () => {
    await using repo = await open();
    await repo.insertAgent(agent('a1'));
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 10) });
    repo.write({ op: 'run.update', id: 'r1', set: { status: 'running', startedAt: 11 } });
    repo.write({ op: 'run.update', id: 'r1', set: { status: 'completed', finishedAt: 15, durationMs: 4, progress: 100 } });
    repo.write({ op: 'agent.update', id: 'a1', set: { status: 'RUNNING' } });
    repo.write({ op: 'agent.update', id: 'a1', set: { status: 'COMPLETED', lastRunAt: 11 } });
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1', { jobId: 'j1', expression: '* * * * *', priority: 3, nextRunAt: 60_000 }) });
    repo.write({ op: 'schedule.update', agentId: 'a1', set: { paused: true } });
    repo.write({ op: 'event.insert', event: { type: 'agent:started', agentId: 'a1', data: { x: 1 }, createdAt: 11 } });
    repo.write({ op: 'event.insert', event: { type: 'scheduler:status', agentId: null, data: { y: 2 }, createdAt: 12 } });
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

  it('ignores an update of a row that does not exist', async () => {
    await using repo = await open();
    repo.write({ op: 'run.update', id: 'ghost', set: { status: 'completed' } });
    repo.write({ op: 'agent.update', id: 'ghost', set: { status: 'RUNNING' } });
    repo.write({ op: 'schedule.update', agentId: 'ghost', set: { paused: true } });
    await repo.flush();
    expect(await repo.getRun('ghost')).toBeUndefined();
    expect(await repo.getAgent('ghost')).toBeUndefined();
    expect(await repo.getSchedule('ghost')).toBeUndefined();
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

  it('applies a batch whole or not at all: a run id inserted twice fails its batch', async () => {
    await using repo = await open();
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 10) });
    await repo.flush();
    repo.write({ op: 'run.insert', run: run('r2', 'a1', 20) });
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 30) });
    await expect(repo.flush()).rejects.toThrow();
    expect((await repo.listRuns('a1', 10)).map((r) => r.id)).toEqual(['r1']);
    repo.write({ op: 'run.insert', run: run('r3', 'a1', 40) });
    await repo.flush();
    expect((await repo.listRuns('a1', 10)).map((r) => r.id)).toEqual(['r3', 'r1']);
  });

  it('replaces a schedule, keeping when it was first created', async () => {
    await using repo = await open();
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1', { createdAt: 5, updatedAt: 5 }) });
    await repo.flush();
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1', { expression: '@hourly', priority: 4, createdAt: 9, updatedAt: 9 }) });
    await repo.flush();
    expect(await repo.getSchedule('a1')).toEqual(schedule('a1', { expression: '@hourly', priority: 4, createdAt: 5, updatedAt: 9 }));
    repo.write({ op: 'schedule.delete', agentId: 'a1' });
    expect(await repo.loadSchedules()).toEqual([]);
  });

  it('trims finished runs beyond the history limit, newest kept, open runs never', async () => {
    await using repo = await open();
    for (let i = 1; i <= 6; i++) repo.write({ op: 'run.insert', run: run(`r${i}`, 'a1', i, { status: i === 1 ? 'queued' : 'completed' }) });
    repo.write({ op: 'runs.trim', agentId: 'a1', keep: 3 });
    await repo.flush();
    expect((await repo.listRuns('a1', 10)).map((r) => r.id)).toEqual(['r6', 'r5', 'r4', 'r1']);
    expect((await repo.loadOpenRuns()).map((r) => r.id)).toEqual(['r1']);
  });

  it('lists runs newest first, ties by id, up to the limit', async () => {
    await using repo = await open();
    for (const [id, at] of [['b', 2], ['a', 2], ['c', 1], ['d', 3]] as const) repo.write({ op: 'run.insert', run: run(id, 'a1', at, { status: 'running' }) });
    repo.write({ op: 'run.insert', run: run('other', 'a2', 2) });
    expect((await repo.listRuns('a1', 3)).map((r) => r.id)).toEqual(['d', 'b', 'a']);
    expect((await repo.loadOpenRuns()).map((r) => r.id)).toEqual(['c', 'a', 'b', 'other', 'd']);
  });

  it('deletes an agent with its schedule, runs and events (an id taken again replays nothing); ids are not reused', async () => {
    await using repo = await open();
    await repo.insertAgent(agent('a1'));
    await repo.insertAgent(agent('a2'));
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 1) });
    repo.write({ op: 'run.insert', run: run('r2', 'a2', 1) });
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1') });
    repo.write({ op: 'event.insert', event: { type: 'agent:paused', agentId: 'a1', data: {}, createdAt: 1 } });
    repo.write({ op: 'event.insert', event: { type: 'agent:paused', agentId: 'a2', data: {}, createdAt: 1 } });
    await repo.flush();
    await repo.deleteAgent('a1');
    expect(await repo.getAgent('a1')).toBeUndefined();
    expect(await repo.getSchedule('a1')).toBeUndefined();
    expect(await repo.listRuns('a1', 10)).toEqual([]);
    expect(await repo.eventsAfter(0, 'a1', 10)).toEqual([]);
    expect((await repo.eventsAfter(0, 'a2', 10)).map((e) => e.id)).toEqual([2]);
    expect(await repo.maxEventId()).toBe(2);
    expect((await repo.listRuns('a2', 10)).map((r) => r.id)).toEqual(['r2']);
    expect(await repo.getAgent('a2')).toBeDefined();
  });

  it('reads events in id order, per agent or scheduler-wide, up to the limit', async () => {
    await using repo = await open();
    for (const n of [1, 2, 3, 4, 5]) repo.write({ op: 'event.insert', event: { type: 'agent:progress', agentId: n === 4 ? null : 'a', data: { id: n }, createdAt: n } });
    expect((await repo.eventsAfter(1, 'a', 2)).map((e) => e.id)).toEqual([2, 3]);
    expect(await repo.eventsAfter(0, 'a', 1)).toEqual([{ id: 1, type: 'agent:progress', agentId: 'a', data: { id: 1 }, createdAt: 1 }]);
    expect((await repo.eventsAfter(0, null, 10)).map((e) => e.id)).toEqual([4]);
    expect(await repo.maxEventId()).toBe(5);
    expect(await repo.oldestEventId()).toBe(1);
  });

  it('expires old events', async () => {
    await using repo = await open();
    expect(await repo.maxEventId()).toBe(0);
    expect(await repo.oldestEventId()).toBeNull();
    repo.write({ op: 'event.insert', event: { type: 'agent:paused', agentId: 'a', data: {}, createdAt: 100 } });
    repo.write({ op: 'event.insert', event: { type: 'agent:paused', agentId: 'a', data: {}, createdAt: 200 } });
    repo.write({ op: 'events.trim', before: 150 });
    await repo.flush();
    expect(await repo.oldestEventId()).toBe(2);
  });

  it('reads see writes still buffered, with no flush', async () => {
    await using repo = await open();
    await repo.insertAgent(agent('a1'));
    repo.write({ op: 'agent.update', id: 'a1', set: { status: 'RUNNING', lastError: 'x' } });
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 10) });
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1') });
    repo.write({ op: 'event.insert', event: { type: 'agent:started', agentId: 'a1', data: {}, createdAt: 10 } });
    // Every read at once: each waits for the same batch.
    const [a, r, s, runs, max] = await Promise.all([repo.getAgent('a1'), repo.getRun('r1'), repo.getSchedule('a1'), repo.listRuns('a1', 5), repo.maxEventId()]);
    expect(a).toMatchObject({ status: 'RUNNING', lastError: 'x' });
    expect(r).toMatchObject({ id: 'r1', status: 'queued' });
    expect(s).toMatchObject({ agentId: 'a1' });
    expect(runs.map((x) => x.id)).toEqual(['r1']);
    expect(max).toBe(1);
    repo.write({ op: 'run.update', id: 'r1', set: { status: 'completed' } });
    expect(await repo.loadOpenRuns()).toEqual([]);
  });

  it('reads see writes whose batch is already in flight', async () => {
    await using repo = await open();
    for (let i = 0; i < 3000; i++) repo.write({ op: 'run.insert', run: run(`r${i}`, 'a1', i) }); // past one batch: the first is committing
    expect((await repo.listRuns('a1', 5000)).length).toBe(3000);
  });

  it('inserts and deletes an agent in order with the buffered writes', async () => {
    await using repo = await open();
    repo.write({ op: 'agent.update', id: 'a1', set: { lastError: 'before the insert' } });
    const inserted = repo.insertAgent(agent('a1'));
    repo.write({ op: 'agent.update', id: 'a1', set: { status: 'RUNNING' } });
    expect(await inserted).toBe(true);
    expect(await repo.getAgent('a1')).toMatchObject({ lastError: null, status: 'RUNNING' });

    repo.write({ op: 'run.insert', run: run('r1', 'a1', 1) });
    const deleted = repo.deleteAgent('a1');
    repo.write({ op: 'run.insert', run: run('r2', 'a1', 2) });
    await deleted;
    expect((await repo.listRuns('a1', 10)).map((r) => r.id)).toEqual(['r2']);
  });

  it('keeps what it was given apart from what it stores', async () => {
    await using repo = await open();
    const a = agent('a1', 'alice', { config: { nested: { n: 1 } } });
    await repo.insertAgent(a);
    (a.config['nested'] as { n: number }).n = 2;
    const read = (await repo.getAgent('a1'))!;
    expect(read.config).toEqual({ nested: { n: 1 } });
    (read.config['nested'] as { n: number }).n = 3;
    expect((await repo.getAgent('a1'))!.config).toEqual({ nested: { n: 1 } });
  });
});

// ---------- claim before run (docs/cluster.md) ----------

/** A schedule fire's claim: slot `jobId@at`, under schedule revision `revision`, skipped as `busy` when the agent has an open run. */
const fire = (id: string, agentId: string, at: number, extra: Partial<RunClaim> & { run?: Partial<RunRecord> } = {}): RunClaim => {
  const { run: runExtra, ...claimExtra } = extra;
  return { run: run(id, agentId, at, { dedupeKey: `${agentId}@${at}`, ...runExtra }), revision: 0, busy: 'busy', ...claimExtra };
};
const outcomes = (list: ClaimOutcome[]) => list.map((o) => `${o.run.id}:${o.outcome}`);

describe.each(stores)('claims, the queue and leases on %s', (name, open) => {
  it(`is ${name === 'postgres' ? '' : 'not '}shared`, async () => {
    await using repo = await open();
    expect(repo.shared).toBe(name === 'postgres');
  });

  it('claims a run: inserted queued, answered as stored', async () => {
    await using repo = await open();
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1', { revision: 3 }) });
    const got = await repo.claim([fire('r1', 'a1', 10, { revision: 3 })]);
    expect(got).toEqual([{ outcome: 'claimed', run: run('r1', 'a1', 10, { dedupeKey: 'a1@10' }) }]);
    expect(await repo.getRun('r1')).toEqual(run('r1', 'a1', 10, { dedupeKey: 'a1@10' }));
    // A claim without a revision or busy (a manual run) checks neither.
    expect(outcomes(await repo.claim([{ run: run('m1', 'nosched', 10) }]))).toEqual(['m1:claimed']);
  });

  it('answers taken for a slot that already has a run, writing nothing; within one batch too', async () => {
    await using repo = await open();
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1') });
    repo.write({ op: 'run.insert', run: run('old', 'a1', 10, { dedupeKey: 'a1@10', status: 'completed' }) });
    const got = await repo.claim([fire('r1', 'a1', 10), fire('r2', 'a1', 20, { busy: undefined }), fire('r3', 'a1', 20)]);
    expect(outcomes(got)).toEqual(['r1:taken', 'r2:claimed', 'r3:taken']);
    expect((await repo.listRuns('a1', 10)).map((r) => r.id).sort()).toEqual(['old', 'r2']);
  });

  it.each([
    ['the schedule is gone', undefined],
    ['the schedule has another revision', { revision: 1 }],
    ['the schedule is disabled', { enabled: false }],
    ['the schedule is paused', { paused: true }],
  ] as const)('answers stale when %s, writing nothing', async (_why, stored) => {
    await using repo = await open();
    if (stored) repo.write({ op: 'schedule.upsert', schedule: schedule('a1', stored) });
    const claim = fire('r1', 'a1', 10);
    const got = await repo.claim([claim, fire('r2', 'a1', 20, { revision: undefined })]);
    expect(got[0]).toEqual({ outcome: 'stale', run: claim.run });
    expect(got[0]!.run).toBe(claim.run);
    expect(got[1]!.outcome).toBe('claimed');
    expect(await repo.getRun('r1')).toBeUndefined();
  });

  it('records a slot of a busy agent as skipped, under its dedupe key, whether the open run is queued or running', async () => {
    await using repo = await open();
    for (const a of ['q', 'r']) repo.write({ op: 'schedule.upsert', schedule: schedule(a) });
    repo.write({ op: 'run.insert', run: run('q0', 'q', 1, { status: 'queued', scheduledAt: 1_000 }) }); // a pending retry
    repo.write({ op: 'run.insert', run: run('r0', 'r', 1, { status: 'running' }) });
    repo.write({ op: 'run.insert', run: run('done', 'free', 1, { status: 'completed' }) });
    const got = await repo.claim([fire('q1', 'q', 10), fire('r1', 'r', 10), fire('f1', 'free', 10, { revision: undefined })]);
    expect(outcomes(got)).toEqual(['q1:skipped', 'r1:skipped', 'f1:claimed']);
    const skipped = run('q1', 'q', 10, { dedupeKey: 'q@10', status: 'skipped', error: 'busy', finishedAt: 10 });
    expect(got[0]!.run).toEqual(skipped);
    expect(await repo.getRun('q1')).toEqual(skipped);
    // The slot is recorded: whoever sees it next finds it taken.
    expect(outcomes(await repo.claim([fire('q1b', 'q', 10)]))).toEqual(['q1b:taken']);
  });

  it('counts a run claimed earlier in the same batch as open for the later claims of its agent', async () => {
    await using repo = await open();
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1') });
    repo.write({ op: 'run.insert', run: run('old', 'a1', 5, { dedupeKey: 'a1@5', status: 'completed' }) });
    const got = await repo.claim([
      fire('t', 'a1', 5), // taken: inserts nothing, so the agent is still free
      fire('c1', 'a1', 10),
      fire('s1', 'a1', 20),
      fire('n', 'a1', 30, { busy: undefined }), // no overlap check: claimed beside the open one
      fire('s2', 'a1', 40),
    ]);
    expect(outcomes(got)).toEqual(['t:taken', 'c1:claimed', 's1:skipped', 'n:claimed', 's2:skipped']);
    expect((await repo.loadOpenRuns()).map((r) => r.id).sort()).toEqual(['c1', 'n']);
  });

  it('claims after every write buffered before it, and before every later one', async () => {
    await using repo = await open();
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1') });
    repo.write({ op: 'run.insert', run: run('open', 'a1', 1) });
    const claimed = repo.claim([fire('r1', 'a1', 10)]);
    repo.write({ op: 'run.update', id: 'open', set: { status: 'completed' } });
    repo.write({ op: 'schedule.update', agentId: 'a1', set: { revision: 1 } });
    expect(outcomes(await claimed)).toEqual(['r1:skipped']);
    expect(outcomes(await repo.claim([fire('r2', 'a1', 20, { revision: 1 })]))).toEqual(['r2:claimed']);
  });

  it('claims a burst of 1,000 coincident fires in one call', async () => {
    await using repo = await open();
    for (let i = 0; i < 1000; i++) repo.write({ op: 'schedule.upsert', schedule: schedule(`a${i}`) });
    const got = await repo.claim(Array.from({ length: 1000 }, (_, i) => fire(`r${i}`, `a${i % 500}`, 60_000)));
    // Two claims per agent and slot (a0@60000 …): the first claims, the second finds its slot taken.
    expect(got.filter((o) => o.outcome === 'claimed')).toHaveLength(500);
    expect(got.filter((o) => o.outcome === 'taken')).toHaveLength(500);
    expect(await repo.take('i1', 60_000, 90_000, [], 2000)).toHaveLength(500);
  });

  it('keeps the claims it was given apart from what it stores', async () => {
    await using repo = await open();
    const claim = fire('r1', 'a1', 10, { revision: undefined });
    const got = repo.claim([claim]);
    claim.run.priority = 4;
    const [o] = await got;
    expect(o!.run.priority).toBe(2);
    o!.run.priority = 3;
    expect((await repo.getRun('r1'))!.priority).toBe(2);
  });

  it('takes the given ids first, then the next due runs by priority, age and id, up to `more`', async () => {
    await using repo = await open();
    const queued: [string, number, number][] = [['low', 1, 1], ['hiOld', 4, 2], ['hiNew', 4, 3], ['b', 2, 5], ['a', 2, 5], ['late', 4, 1]];
    for (const [id, priority, at] of queued) repo.write({ op: 'run.insert', run: run(id, `agent-${id}`, at, { priority, scheduledAt: id === 'late' ? 500 : at }) });
    repo.write({ op: 'run.insert', run: run('done', 'x', 1, { status: 'completed' }) });
    const got = await repo.take('i1', 100, 130, ['low', 'done', 'late', 'ghost'], 3);
    expect(got.map((r) => r.id)).toEqual(['low', 'hiOld', 'hiNew', 'a']);
    expect(got[0]).toEqual(run('low', 'agent-low', 1, { priority: 1, status: 'running', instanceId: 'i1', startedAt: 100, leaseUntil: 130, epoch: 1 }));
    expect(await repo.getRun('hiOld')).toMatchObject({ status: 'running', instanceId: 'i1', startedAt: 100, leaseUntil: 130, epoch: 1 });
    // Taken once: a second taker gets what is left, and nothing twice.
    expect((await repo.take('i2', 100, 130, ['low'], 10)).map((r) => r.id)).toEqual(['b']);
    expect(await repo.take('i2', 100, 130, [], 10)).toEqual([]);
    expect((await repo.take('i2', 500, 530, [], 0)).map((r) => r.id)).toEqual([]);
    expect((await repo.take('i2', 500, 530, ['late'], 0)).map((r) => r.id)).toEqual(['late']);
  });

  it('takes no more runs of one owner than `perOwner` less its running ones, ids first, then by priority and age', async () => {
    await using repo = await open();
    for (const [id, owner] of [['a1', 'alice'], ['a2', 'alice'], ['a3', 'alice'], ['b1', 'bob']] as const) await repo.insertAgent(agent(id, owner));
    repo.write({ op: 'run.insert', run: run('r-a1', 'a1', 1) });
    repo.write({ op: 'run.insert', run: run('r-a2', 'a2', 2) });
    repo.write({ op: 'run.insert', run: run('r-a3', 'a3', 3) });
    repo.write({ op: 'run.insert', run: run('r-b1', 'b1', 4) });
    expect((await repo.take('i1', 100, 130, ['r-a2'], 0, 2)).map((r) => r.id)).toEqual(['r-a2']);
    // alice has one running: one more of hers fits, then bob's; a3 stays queued.
    expect((await repo.take('i2', 100, 130, [], 10, 2)).map((r) => r.id)).toEqual(['r-a1', 'r-b1']);
    expect(await repo.getRun('r-a3')).toMatchObject({ status: 'queued' });
    expect(await repo.take('i2', 100, 130, ['r-a3'], 10, 2)).toEqual([]);
    repo.write({ op: 'run.update', id: 'r-a1', set: { status: 'completed' } });
    expect((await repo.take('i2', 100, 130, ['r-a3'], 0, 2)).map((r) => r.id)).toEqual(['r-a3']);
  });

  it('takes after every write buffered before it', async () => {
    await using repo = await open();
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 1) });
    expect((await repo.take('i1', 10, 20, ['r1'], 0)).map((r) => r.id)).toEqual(['r1']);
  });

  it('renews the leases of the running runs one instance names and holds, and no others', async () => {
    await using repo = await open();
    for (const id of ['m1', 'm2', 'm3', 'o1']) repo.write({ op: 'run.insert', run: run(id, id, 1) });
    repo.write({ op: 'run.insert', run: run('q', 'q', 50) });
    await repo.take('me', 10, 20, ['m1', 'm2', 'm3'], 0);
    await repo.take('other', 10, 20, ['o1'], 0);
    // Renewed after the writes buffered before it: m2's finish lands first, so m2 keeps no lease.
    repo.write({ op: 'run.update', id: 'm2', set: { status: 'completed' } });
    // m3 is 'me's in the database but not named: a take whose answer never reached it. Its lease runs out.
    await repo.renewLeases('me', 99, ['m1', 'm2', 'o1', 'q']);
    expect((await repo.getRun('m1'))!.leaseUntil).toBe(99);
    expect((await repo.getRun('m2'))!.leaseUntil).toBe(20);
    expect((await repo.getRun('m3'))!.leaseUntil).toBe(20);
    expect((await repo.getRun('o1'))!.leaseUntil).toBe(20);
    expect((await repo.getRun('q'))!.leaseUntil).toBeNull();
  });

  it('reaps running runs whose lease ended before now: failed, epoch bumped, lease cleared, answered once', async () => {
    await using repo = await open();
    for (const id of ['dead', 'edge', 'alive']) repo.write({ op: 'run.insert', run: run(id, id, 1) });
    await repo.take('i1', 5, 100, ['dead', 'edge'], 0);
    await repo.take('i2', 5, 200, ['alive'], 0);
    await repo.renewLeases('i1', 100, ['dead', 'edge']);
    repo.write({ op: 'run.update', id: 'edge', set: { leaseUntil: 150 } });
    const reaped = await repo.reapExpired(150, 'interrupted');
    expect(reaped).toEqual([run('dead', 'dead', 1, { status: 'failed', error: 'interrupted', instanceId: 'i1', startedAt: 5, finishedAt: 150, epoch: 2, leaseUntil: null })]);
    expect(await repo.getRun('dead')).toEqual(reaped[0]);
    expect(await repo.reapExpired(150, 'interrupted')).toEqual([]);
    expect((await repo.reapExpired(201, 'interrupted')).map((r) => r.id).sort()).toEqual(['alive', 'edge']);
  });

  it('answers when the earliest queued run is due, seeing buffered writes', async () => {
    await using repo = await open();
    expect(await repo.nextQueuedAt()).toBeNull();
    repo.write({ op: 'run.insert', run: run('later', 'a', 1, { scheduledAt: 900 }) });
    repo.write({ op: 'run.insert', run: run('soon', 'b', 1, { scheduledAt: 300 }) });
    repo.write({ op: 'run.insert', run: run('going', 'c', 1, { scheduledAt: 100, status: 'running' }) });
    expect(await repo.nextQueuedAt()).toBe(300);
    await repo.take('i1', 300, 400, ['soon'], 0);
    expect(await repo.nextQueuedAt()).toBe(900);
  });
});

describe.each(stores)('fences on %s', (_name, open) => {
  /** Run `held` taken once (epoch 1): writes fenced at epoch 1 apply, at epoch 0 (a holder the cluster gave up on) do not. */
  async function held() {
    const repo = await open();
    await repo.insertAgent(agent('a1'));
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1') });
    repo.write({ op: 'run.insert', run: run('held', 'a1', 1) });
    repo.write({ op: 'run.insert', run: run('other', 'a1', 1, { status: 'completed' }) });
    expect((await repo.take('i1', 1, 100, ['held'], 0))[0]!.epoch).toBe(1);
    return repo;
  }
  const now = { runId: 'held', epoch: 1 };
  const gone = { runId: 'held', epoch: 0 };

  it.each([
    ['run.update of the fenced run', (fence: Fence): WriteOp => ({ op: 'run.update', id: 'held', set: { progress: 50 }, fence }), (s: Store) => s.getRun('held').then((r) => r!.progress === 50)],
    ['run.update of another run', (fence: Fence): WriteOp => ({ op: 'run.update', id: 'other', set: { error: 'x' }, fence }), (s: Store) => s.getRun('other').then((r) => r!.error === 'x')],
    ['run.insert', (fence: Fence): WriteOp => ({ op: 'run.insert', run: run('retry', 'a1', 5, { dedupeKey: 'retry:held', progress: 0.5 }), fence }), (s: Store) => s.getRun('retry').then((r) => r?.progress === 0.5)],
    ['agent.update', (fence: Fence): WriteOp => ({ op: 'agent.update', id: 'a1', set: { status: 'COMPLETED', lastRunAt: 7 }, fence }), (s: Store) => s.getAgent('a1').then((a) => a!.status === 'COMPLETED')],
    ['schedule.upsert', (fence: Fence): WriteOp => ({ op: 'schedule.upsert', schedule: schedule('a1', { expression: '@hourly', nextRunAt: 9 }), fence }), (s: Store) => s.getSchedule('a1').then((x) => x!.expression === '@hourly')],
    ['schedule.update', (fence: Fence): WriteOp => ({ op: 'schedule.update', agentId: 'a1', set: { nextRunAt: 42 }, fence }), (s: Store) => s.getSchedule('a1').then((x) => x!.nextRunAt === 42)],
    ['schedule.delete', (fence: Fence): WriteOp => ({ op: 'schedule.delete', agentId: 'a1', fence }), (s: Store) => s.getSchedule('a1').then((x) => x === undefined)],
    ['runs.trim', (fence: Fence): WriteOp => ({ op: 'runs.trim', agentId: 'a1', keep: 0, fence }), (s: Store) => s.getRun('other').then((r) => r === undefined)],
    ['event.insert', (fence: Fence): WriteOp => ({ op: 'event.insert', event: ev(1, { agentId: 'a1' }), fence }), (s: Store) => s.maxEventId().then((n) => n === 1)],
  ] as const)('applies a fenced %s while the fence holds, and nothing once it does not', async (_kind, op, applied) => {
    {
      await using repo = await held();
      repo.write(op(gone));
      await repo.flush();
      expect(await applied(repo)).toBe(false);
    }
    await using repo = await held();
    repo.write(op(now));
    await repo.flush();
    expect(await applied(repo)).toBe(true);
  });

  it('applies a fenced events.trim only while the fence holds', async () => {
    await using repo = await held();
    repo.write({ op: 'event.insert', event: ev(1) });
    await repo.flush();
    repo.write({ op: 'events.trim', before: 10, fence: gone });
    await repo.flush();
    expect(await repo.oldestEventId()).toBe(1);
    repo.write({ op: 'events.trim', before: 10, fence: now });
    await repo.flush();
    expect(await repo.oldestEventId()).toBeNull();
  });

  it('refuses a late holder after a reap: its finish, its agent state and its events change nothing', async () => {
    await using repo = await held();
    await repo.reapExpired(101, 'interrupted');
    repo.write({ op: 'run.update', id: 'held', set: { status: 'completed', error: null, finishedAt: 120 }, fence: now });
    repo.write({ op: 'agent.update', id: 'a1', set: { status: 'COMPLETED' }, fence: now });
    repo.write({ op: 'event.insert', event: ev(1, { type: 'agent:completed' }), fence: now });
    await repo.flush();
    expect(await repo.getRun('held')).toMatchObject({ status: 'failed', error: 'interrupted', finishedAt: 101, epoch: 2 });
    expect((await repo.getAgent('a1'))!.status).toBe('IDLE');
    expect(await repo.maxEventId()).toBe(0);
  });

  it('never folds a fenced write into an unfenced one, nor across fences', async () => {
    await using repo = await held();
    repo.write({ op: 'run.insert', run: run('n', 'a1', 3) });
    repo.write({ op: 'run.update', id: 'n', set: { progress: 10 }, fence: gone });
    repo.write({ op: 'run.update', id: 'held', set: { progress: 1 } });
    repo.write({ op: 'run.update', id: 'held', set: { error: 'late' }, fence: gone });
    repo.write({ op: 'run.update', id: 'held', set: { durationMs: 5 }, fence: now });
    repo.write({ op: 'agent.update', id: 'a1', set: { lastError: 'late' }, fence: gone });
    repo.write({ op: 'agent.update', id: 'a1', set: { retryCount: 3 }, fence: now });
    await repo.flush();
    expect(await repo.getRun('n')).toMatchObject({ progress: null });
    expect(await repo.getRun('held')).toMatchObject({ progress: 1, error: null, durationMs: 5 });
    expect(await repo.getAgent('a1')).toMatchObject({ lastError: null, retryCount: 3 });
  });

  it('gives refused events no id: the ids of committed events stay consecutive and a follower gets every one', async () => {
    await using repo = await held();
    const f = follow(repo, 0);
    repo.write({ op: 'event.insert', event: ev(1), fence: now });
    repo.write({ op: 'event.insert', event: ev(2), fence: gone });
    repo.write({ op: 'event.insert', event: ev(3) });
    await repo.flush();
    repo.write({ op: 'event.insert', event: ev(4), fence: gone });
    await repo.flush();
    repo.write({ op: 'event.insert', event: ev(5) });
    await repo.flush();
    await f.until(3);
    expect(f.got.map((e) => [e.id, (e.data as { n: number }).n])).toEqual([[1, 1], [2, 3], [3, 5]]);
    expect(await repo.maxEventId()).toBe(3);
    f.stop();
  });
});

// ---------- event ids and followers ----------

const ev = (n: number, extra: Partial<NewEvent> = {}): NewEvent => ({ type: 'agent:progress', agentId: 'a', data: { n }, createdAt: n, ...extra });

/** Follows a store's events, recording them; `until(id)` resolves once that id has been delivered. */
function follow(store: Pick<Store, 'followEvents'>, after: number) {
  const got: EventRecord[] = [];
  const waiters = new Set<{ id: number; resolve: () => void }>();
  const stop = store.followEvents(after, (batch) => {
    got.push(...batch);
    const last = got[got.length - 1]!.id;
    for (const w of waiters) {
      if (last < w.id) continue;
      waiters.delete(w);
      w.resolve();
    }
  });
  return {
    got,
    ids: () => got.map((e) => e.id),
    stop,
    until: (id: number) =>
      new Promise<void>((resolve, reject) => {
        if ((got.at(-1)?.id ?? after) >= id) return resolve();
        const timer = setTimeout(() => reject(new Error(`event ${id} not delivered; got ${got.map((e) => e.id).join(',')}`)), 10_000);
        waiters.add({ id, resolve: () => (clearTimeout(timer), resolve()) });
      }),
  };
}

const range = (from: number, to: number) => Array.from({ length: to - from + 1 }, (_, i) => from + i);

describe('the event feed', () => {
  // The stores give refused fenced events no id, so committed ids have no holes; a hole (a database
  // edited by hand, a future change) must still never make a follower wait for an id that will not come.
  it('delivers past a hole in the ids: a batch after the hole is read from the table, not waited for', async () => {
    const table: EventRecord[] = [1, 2, 4, 5].map((id) => ({ id, ...ev(id) }));
    const feed = createEventFeed({ read: async (after, limit) => table.filter((e) => e.id > after).slice(0, limit), logger: silentLogger });
    const f = follow({ followEvents: feed.follow }, 0);
    await f.until(5);
    feed.committed([{ id: 7, ...ev(7) }]);
    table.push({ id: 7, ...ev(7) });
    await feed.poll();
    await f.until(7);
    expect(f.ids()).toEqual([1, 2, 4, 5, 7]);
    f.stop();
  });
});

describe.each(stores)('event ids and followers on %s', (_name, open) => {
  it('numbers events from one counter in write order, consecutive across batches, and never hands an id out twice', async () => {
    await using repo = await open();
    for (const n of [1, 2, 3]) repo.write({ op: 'event.insert', event: ev(n) });
    await repo.flush();
    for (const n of [4, 5]) repo.write({ op: 'event.insert', event: ev(n) });
    await repo.flush();
    expect((await repo.eventsAfter(0, 'a', 10)).map((e) => [e.id, (e.data as { n: number }).n])).toEqual(range(1, 5).map((n) => [n, n]));
    // Retention empties the table; the counter goes on.
    repo.write({ op: 'events.trim', before: Number.MAX_SAFE_INTEGER });
    await repo.flush();
    expect(await repo.oldestEventId()).toBeNull();
    expect(await repo.maxEventId()).toBe(5);
    repo.write({ op: 'event.insert', event: ev(6) });
    expect((await repo.eventsAfter(0, 'a', 10)).map((e) => e.id)).toEqual([6]);
  });

  it('takes no ids for a batch that fails: ids have no holes', async () => {
    await using repo = await open();
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 1) });
    await repo.flush();
    repo.write({ op: 'event.insert', event: ev(1) });
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 2) });
    await expect(repo.flush()).rejects.toThrow();
    expect(await repo.maxEventId()).toBe(0);
    repo.write({ op: 'event.insert', event: ev(2) });
    expect(await repo.eventsAfter(0, 'a', 10)).toEqual([{ id: 1, ...ev(2) }]);
  });

  it('delivers its own events to a follower once committed, in id order, each once', async () => {
    await using repo = await open();
    const f = follow(repo, 0);
    repo.write({ op: 'event.insert', event: ev(1) });
    repo.write({ op: 'event.insert', event: ev(2, { agentId: null, type: 'scheduler:status' }) });
    expect(f.got).toEqual([]); // nothing before its commit
    await f.until(2);
    expect(f.got).toEqual([...(await repo.eventsAfter(0, 'a', 10)), ...(await repo.eventsAfter(0, null, 10))]);
    // Caught up, a follower gets a batch as it commits: by the time flush resolves.
    for (const n of [3, 4, 5]) repo.write({ op: 'event.insert', event: ev(n) });
    await repo.flush();
    expect(f.ids()).toEqual(range(1, 5));
    f.stop();
  });

  it('delivers first what was committed after `after` before following began, then what follows', async () => {
    await using repo = await open();
    for (const n of [1, 2, 3]) repo.write({ op: 'event.insert', event: ev(n) });
    await repo.flush();
    const f = follow(repo, 1);
    await f.until(3);
    repo.write({ op: 'event.insert', event: ev(4) });
    await f.until(4);
    expect(f.ids()).toEqual([2, 3, 4]);
    f.stop();
  });

  it('stops delivering to a follower that stopped; the others go on', async () => {
    await using repo = await open();
    const first = follow(repo, 0);
    const second = follow(repo, 0);
    repo.write({ op: 'event.insert', event: ev(1) });
    await Promise.all([first.until(1), second.until(1)]);
    first.stop();
    repo.write({ op: 'event.insert', event: ev(2) });
    await second.until(2);
    await repo.flush();
    expect(first.ids()).toEqual([1]);
    expect(second.ids()).toEqual([1, 2]);
    second.stop();
  });
});

/** A fresh, migrated PostgreSQL schema, and the URL that makes it the search path. */
async function pgSchemaUrl(): Promise<string> {
  const { repo, schema } = await pgStore();
  await repo[Symbol.asyncDispose]();
  const url = new URL(pgUrl!);
  url.searchParams.set('options', `-c search_path=${schema!}`);
  return url.toString();
}

/** `n` repositories (each its own pool, as separate instances have) on one schema. */
async function sharedPg(n: number, options: RepositoryOptions = {}): Promise<Repository[]> {
  const url = await pgSchemaUrl();
  return Array.from({ length: n }, () => createRepository(new Kysely<Database>({ dialect: postgresDialect(url) }), undefined, options));
}

const disposeAll = (repos: Repository[]) => Promise.all(repos.map((r) => r[Symbol.asyncDispose]()));

describe.skipIf(!pgUrl)('events across instances on one postgres', () => {
  it("delivers the other instance's events to a follower in id order, none missing, reading the gaps", async () => {
    const repos = await sharedPg(2, { eventPollMs: 0 }); // no polling: only gap reads bring the other's events
    const [a, b] = repos as [Repository, Repository];
    try {
      const f = follow(b, 0);
      let n = 0;
      for (let round = 0; round < 5; round++) {
        a.write({ op: 'event.insert', event: ev(++n, { agentId: 'from-a' }) });
        a.write({ op: 'event.insert', event: ev(++n, { agentId: 'from-a' }) });
        await a.flush();
        b.write({ op: 'event.insert', event: ev(++n, { agentId: 'from-b' }) });
        await b.flush();
      }
      await f.until(n);
      expect(f.ids()).toEqual(range(1, n));
      expect(f.got.map((e) => (e.data as { n: number }).n)).toEqual(range(1, n));
      expect(f.got.filter((e) => e.agentId === 'from-a')).toEqual(await b.eventsAfter(0, 'from-a', 100));
      // Nothing of ours follows these: they come with a poll (the wake-up hook).
      a.write({ op: 'event.insert', event: ev(++n, { agentId: 'from-a' }) });
      await a.flush();
      await b.pollEvents();
      expect(f.ids()).toEqual(range(1, n));
      f.stop();
    } finally {
      await disposeAll(repos);
    }
  });

  it('hands out ids in commit order across instances: a follower polling all along misses none', async () => {
    const repos = await sharedPg(3, { eventPollMs: 0 });
    const [a, b, watcher] = repos as [Repository, Repository, Repository];
    try {
      const f = follow(watcher, 0);
      let written = 0;
      const writer = async (repo: Repository, name: string) => {
        for (let batch = 0; batch < 40; batch++) {
          const size = 1 + ((batch * 7) % 5);
          for (let i = 0; i < size; i++) repo.write({ op: 'event.insert', event: ev(i, { agentId: `${name}:${batch}` }) });
          written += size;
          await repo.flush();
        }
      };
      let writing = true;
      const watching = (async () => {
        while (writing) await watcher.pollEvents();
      })();
      await Promise.all([writer(a, 'a'), writer(b, 'b')]);
      writing = false;
      await watching;
      await watcher.pollEvents();
      // Had a later id become visible before an earlier one, a poll in between would have skipped the earlier.
      expect(f.ids()).toEqual(range(1, written));
      // Each batch took its ids in one go: consecutive, in the order written.
      const byBatch = new Map<string, EventRecord[]>();
      for (const e of f.got) byBatch.set(e.agentId!, [...(byBatch.get(e.agentId!) ?? []), e]);
      expect(byBatch.size).toBe(80);
      for (const events of byBatch.values()) {
        expect(events.map((e) => e.id)).toEqual(range(events[0]!.id, events[0]!.id + events.length - 1));
        expect(events.map((e) => (e.data as { n: number }).n)).toEqual(range(0, events.length - 1));
      }
      f.stop();
    } finally {
      await disposeAll(repos);
    }
  });

  it('polls by default on postgres: events of another instance arrive with no wake-up and no own write', async () => {
    const repos = await sharedPg(2);
    const [a, b] = repos as [Repository, Repository];
    try {
      const f = follow(b, 0);
      for (const n of [1, 2, 3]) a.write({ op: 'event.insert', event: ev(n) });
      await a.flush();
      await f.until(3);
      expect(f.ids()).toEqual([1, 2, 3]);
      f.stop();
    } finally {
      await disposeAll(repos);
    }
  });
});

/** Declared column types as each dialect reports them, in the portable vocabulary of tables.ts. */
const SQL_TYPE: Record<string, SqlType> = { text: 'text', varchar: 'text', bigint: 'bigint', int8: 'bigint', integer: 'integer', int4: 'integer', real: 'real', float4: 'real', 'double precision': 'double precision', float8: 'double precision' };

describe.each(sqlDialects)('schema on %s', (_name, open) => {
  it('has exactly the columns of the specs in tables.ts, with their types and nullability', async () => {
    const { repo, schema } = await open();
    await using _ = repo;
    const tables = (await repo.db.introspection.getTables()).filter((t) => t.schema === schema);
    expect(tables.map((t) => t.name).sort()).toEqual(TABLES.map((t) => t.table).sort());
    for (const spec of TABLES) {
      const columns = tables.find((t) => t.name === spec.table)!.columns;
      const actual = columns.map((c) => ({
        name: c.name,
        type: SQL_TYPE[c.dataType.toLowerCase().replace(/\(.*$/, '')] ?? c.dataType,
        // SQLite reports a non-integer primary key as nullable (a legacy quirk); a key is never null.
        nullable: c.isNullable && c.name !== spec.keyColumn,
      }));
      const expected = spec.list.map((c) => ({ name: c.name, type: c.type, nullable: c.codec.nullable }));
      const byName = (a: { name: string }, b: { name: string }) => a.name.localeCompare(b.name);
      expect(actual.sort(byName), spec.table).toEqual(expected.sort(byName));
    }
  });
});

describe('the in-memory store', () => {
  it('imports neither Kysely nor a driver, directly or through the modules it uses', () => {
    const seen = new Set<string>();
    const bare: string[] = [];
    const visit = (file: string) => {
      if (seen.has(file)) return;
      seen.add(file);
      for (const [, spec] of readFileSync(file, 'utf8').matchAll(/^import[^'"]*['"]([^'"]+)['"]/gm)) {
        if (spec!.startsWith('.')) visit(join(dirname(file), spec!));
        else bare.push(spec!);
      }
    };
    visit(join(import.meta.dirname, '../src/storage/memory.ts'));
    expect(seen.size).toBeGreaterThan(1);
    expect(bare.filter((m) => /^(kysely|pg|better-sqlite3|node:sqlite)$/.test(m))).toEqual([]);
  });
});

const instance = (id: string, at: number, extra: Partial<InstanceRecord> = {}): InstanceRecord => ({
  id, host: `host-${id}`, pid: 100, startedAt: at, heartbeatAt: at, running: 0, maxConcurrent: 5, stoppedAt: null, ...extra,
});

describe.each(stores)('instances on %s', (_name, open) => {
  it('registers instances and lists the live ones oldest first, as registered', async () => {
    await using repo = await open();
    await repo.upsertInstance(instance('b', 20));
    await repo.upsertInstance(instance('a', 20, { host: 'h', pid: 7, running: 2, maxConcurrent: 9 }));
    await repo.upsertInstance(instance('c', 10));
    expect(await repo.listInstances(0)).toEqual([instance('c', 10), instance('a', 20, { host: 'h', pid: 7, running: 2, maxConcurrent: 9 }), instance('b', 20)]);
  });

  it('renews a heartbeat with the running count; an instance whose heartbeat is older than aliveSince is not live', async () => {
    await using repo = await open();
    await repo.upsertInstance(instance('a', 100));
    await repo.upsertInstance(instance('b', 100));
    await repo.heartbeatInstance('a', 150, 3);
    await repo.heartbeatInstance('ghost', 150, 1); // no row: nothing happens
    expect(await repo.listInstances(150)).toEqual([instance('a', 100, { heartbeatAt: 150, running: 3 })]);
    expect((await repo.listInstances(100)).map((i) => i.id)).toEqual(['a', 'b']);
    expect(await repo.listInstances(151)).toEqual([]);
  });

  it('leaves a stopped instance out at once, and registers it anew when it upserts again', async () => {
    await using repo = await open();
    await repo.upsertInstance(instance('a', 100, { running: 4 }));
    await repo.stopInstance('a', 120);
    expect(await repo.listInstances(0)).toEqual([]);
    await repo.upsertInstance(instance('a', 100, { heartbeatAt: 130, running: 1 }));
    expect(await repo.listInstances(0)).toEqual([instance('a', 100, { heartbeatAt: 130, running: 1 })]);
  });

  it('keeps the record it was given apart from what it stores', async () => {
    await using repo = await open();
    const i = instance('a', 1);
    await repo.upsertInstance(i);
    i.running = 99;
    expect((await repo.listInstances(0))[0]!.running).toBe(0);
  });
});

describe.each(stores)('open runs, cancel requests, revisions and changed schedules on %s', (_name, open) => {
  it("reads an agent's open runs, oldest first, however many finished runs are newer", async () => {
    await using repo = await open();
    repo.write({ op: 'run.insert', run: run('q', 'a1', 1) });
    repo.write({ op: 'run.insert', run: run('r', 'a1', 2, { status: 'running', instanceId: 'i1' }) });
    repo.write({ op: 'run.insert', run: run('other', 'a2', 3) });
    for (let i = 0; i < 300; i++) repo.write({ op: 'run.insert', run: run(`s${i}`, 'a1', 10 + i, { status: 'skipped', finishedAt: 10 + i }) });
    expect((await repo.openRuns('a1')).map((r) => r.id)).toEqual(['q', 'r']);
    expect(await repo.openRuns('nobody')).toEqual([]);
  });

  it('answers the running runs of one instance whose cancel was recorded', async () => {
    await using repo = await open();
    for (const id of ['m1', 'm2', 'o1', 'q']) repo.write({ op: 'run.insert', run: run(id, id, 1) });
    await repo.take('me', 10, 20, ['m1', 'm2'], 0);
    await repo.take('other', 10, 20, ['o1'], 0);
    expect(await repo.cancelRequests('me')).toEqual([]);
    for (const id of ['m1', 'o1', 'q']) repo.write({ op: 'run.update', id, set: { cancelRequestedAt: 15 } });
    expect(await repo.cancelRequests('me')).toEqual(['m1']);
    expect(await repo.getRun('m1')).toMatchObject({ status: 'running', cancelRequestedAt: 15 });
    // Once it has ended (cancelled by its holder) it is no longer asked about.
    repo.write({ op: 'run.update', id: 'm1', set: { status: 'cancelled' } });
    expect(await repo.cancelRequests('me')).toEqual([]);
  });

  it('hands out schedule revisions from one counter, each once and increasing', async () => {
    await using repo = await open();
    const got = await Promise.all(Array.from({ length: 20 }, () => repo.nextRevision()));
    expect(new Set(got).size).toBe(20);
    const next = await repo.nextRevision();
    expect(next).toBeGreaterThan(Math.max(...got));
  });

  it('loads only the schedules whose changedAt is at `since` or later; a fire moving updatedAt does not count', async () => {
    await using repo = await open();
    repo.write({ op: 'schedule.upsert', schedule: schedule('old', { changedAt: 10 }) });
    repo.write({ op: 'schedule.upsert', schedule: schedule('edge', { changedAt: 20 }) });
    repo.write({ op: 'schedule.upsert', schedule: schedule('new', { changedAt: 30 }) });
    repo.write({ op: 'schedule.update', agentId: 'old', set: { nextRunAt: 99, updatedAt: 99 } });
    expect((await repo.loadSchedules(20)).map((s) => s.agentId).sort()).toEqual(['edge', 'new']);
    repo.write({ op: 'schedule.update', agentId: 'old', set: { paused: true, changedAt: 40 } });
    expect((await repo.loadSchedules(35)).map((s) => s.agentId)).toEqual(['old']);
    expect(await repo.loadSchedules()).toHaveLength(3);
  });
});

describe.skipIf(!pgUrl)('schedule revisions across instances on one postgres', () => {
  it('never hands one revision to two instances taking them at once', async () => {
    const repos = await sharedPg(3);
    try {
      const got = (await Promise.all(repos.map((r) => Promise.all(Array.from({ length: 30 }, () => r.nextRevision()))))).flat();
      expect(new Set(got).size).toBe(90);
    } finally {
      await disposeAll(repos);
    }
  });

});
