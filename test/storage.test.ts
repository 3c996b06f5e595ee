import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { Kysely } from 'kysely';
import pg from 'pg';
import { afterAll, describe, expect, it } from 'vitest';
import type { AgentRecord, EventRecord, InstanceRecord, NewEvent, RunRecord, ScheduleRecord, Store } from '../src/core/store.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { postgresDialect } from '../src/storage/dialects/postgres.ts';
import { createMemoryStore } from '../src/storage/memory.ts';
import { migrate } from '../src/storage/migrations.ts';
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
  status: 'IDLE', lastRunAt: null, lastError: null, retryCount: 0, backoffUntil: null, createdAt: 1, updatedAt: 1, ...extra,
});
const run = (id: string, agentId: string, createdAt: number, extra: Partial<RunRecord> = {}): RunRecord => ({
  id, agentId, jobId: agentId, trigger: 'schedule', attempt: 1, status: 'queued', priority: 2, scheduledAt: createdAt,
  startedAt: null, finishedAt: null, durationMs: null, progress: null, error: null, dedupeKey: null, instanceId: null, createdAt, ...extra,
});
const schedule = (agentId: string, extra: Partial<ScheduleRecord> = {}): ScheduleRecord => ({
  agentId, jobId: agentId, expression: '@daily', timezone: 'UTC', priority: 2, enabled: true, paused: false, catchUp: true, nextRunAt: null, createdAt: 1, updatedAt: 1, ...extra,
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

  it('deletes an agent with its schedule and runs; its events expire with the others', async () => {
    await using repo = await open();
    await repo.insertAgent(agent('a1'));
    await repo.insertAgent(agent('a2'));
    repo.write({ op: 'run.insert', run: run('r1', 'a1', 1) });
    repo.write({ op: 'run.insert', run: run('r2', 'a2', 1) });
    repo.write({ op: 'schedule.upsert', schedule: schedule('a1') });
    repo.write({ op: 'event.insert', event: { type: 'agent:paused', agentId: 'a1', data: {}, createdAt: 1 } });
    await repo.flush();
    await repo.deleteAgent('a1');
    expect(await repo.getAgent('a1')).toBeUndefined();
    expect(await repo.getSchedule('a1')).toBeUndefined();
    expect(await repo.listRuns('a1', 10)).toEqual([]);
    expect((await repo.eventsAfter(0, 'a1', 10)).map((e) => e.id)).toEqual([1]);
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
const SQL_TYPE: Record<string, SqlType> = { text: 'text', varchar: 'text', bigint: 'bigint', int8: 'bigint', integer: 'integer', int4: 'integer', real: 'real', float4: 'real' };

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
