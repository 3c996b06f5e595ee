import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Kysely } from 'kysely';
import { afterAll, describe, expect, it } from 'vitest';
import { createManualClock } from '../src/core/clock.ts';
import { createEventBus } from '../src/core/events.ts';
import type { EventLog } from '../src/core/event-log.ts';
import type { ActiveRuns } from '../src/core/active-runs.ts';
import type { Schedules } from '../src/core/schedules.ts';
import { createStatus, type Lifecycle } from '../src/core/status.ts';
import type { AgentRecord, ClusterFigures, RunRecord, ScheduleRecord, Store, WriteTrouble } from '../src/core/store.ts';
import type { SchedulerStats } from '../src/schemas/schedule.ts';
import type { StoredEvent } from '../src/schemas/events.ts';
import { silentLogger } from '../src/core/logger.ts';
import { createAuth } from '../src/services/auth.ts';
import { createHealth, type Health } from '../src/services/health.ts';
import type { Services } from '../src/services/services.ts';
import { createRestHandler } from '../src/transport/rest/handler.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { postgresDialect } from '../src/storage/dialects/postgres.ts';
import { createMemoryStore } from '../src/storage/memory.ts';
import { migrate } from '../src/storage/migrator.ts';
import { createRepository } from '../src/storage/repository.ts';
import type { Database } from '../src/storage/schema.ts';
import { deferred, pgSchema, TEST_POSTGRES_URL, TEST_SECRET } from './harness.ts';

/**
 * The status figures (core/status.ts: this process's own on a SQLite file, the cluster's from the
 * database on a shared store) and `/healthz` (services/health.ts). README, "Running several instances".
 */

// ---------- the store's one read of the cluster figures ----------

const disposers: (() => Promise<void>)[] = [];
afterAll(async () => {
  for (const d of disposers.reverse()) await d();
});

async function sqlite(): Promise<Store> {
  const db = new Kysely<Database>({ dialect: betterSqliteDialect(':memory:') });
  await migrate(db);
  const repo = createRepository(db);
  disposers.push(async () => {
    await repo[Symbol.asyncDispose]();
  });
  return repo;
}

async function postgres(): Promise<Store> {
  const schema = await pgSchema();
  const db = new Kysely<Database>({ dialect: postgresDialect(schema.url) });
  await migrate(db, { schema: schema.schema });
  const repo = createRepository(db);
  disposers.push(async () => {
    await repo[Symbol.asyncDispose]();
    await schema[Symbol.asyncDispose]();
  });
  return repo;
}

const stores: [string, () => Promise<Store>][] = [['memory', async () => createMemoryStore()], ['sqlite', sqlite]];
if (TEST_POSTGRES_URL) stores.push(['postgres', postgres]);

const agent = (id: string): AgentRecord => ({
  id, owner: 'alice', name: id, handler: 'demo', config: {}, description: null, timeoutMs: null, maxRetries: null,
  status: 'IDLE', lastRunAt: null, lastError: null, retryCount: 0, backoffUntil: null, budget: null, createdAt: 1, updatedAt: 1,
});
const schedule = (agentId: string, extra: Partial<ScheduleRecord>): ScheduleRecord => ({
  agentId, jobId: agentId, expression: '@daily', timezone: 'UTC', priority: 2, enabled: true, paused: false, catchUp: true,
  nextRunAt: null, pauseReason: null, resumeAt: null, pauseNote: null, jitterMs: 0, catchUpPolicy: 'latest', catchUpWindowMs: null, overlap: 'skip', owner: 'alice', revision: 1, changedAt: 1, createdAt: 1, updatedAt: 1, ...extra,
});
const run = (id: string, agentId: string, extra: Partial<RunRecord>): RunRecord => ({
  id, agentId, jobId: agentId, trigger: 'manual', attempt: 1, status: 'queued', priority: 2, scheduledAt: 1000,
  startedAt: null, finishedAt: null, durationMs: null, progress: null, error: null, dedupeKey: null, waiting: false, instanceId: null,
  epoch: 0, leaseUntil: null, cancelRequestedAt: null, output: null, outputTruncated: false, usageModel: null, inputTokens: null, outputTokens: null, costUsd: null, createdAt: 1, ...extra,
});

describe.each(stores)('clusterFigures on %s', (_name, open) => {
  it('counts enabled (paused included) and paused schedules, running runs, due queued runs and live capacity in one read', async () => {
    const store = await open();
    for (const id of ['a', 'b', 'c', 'd', 'e']) expect(await store.insertAgent(agent(id))).toBe(true);
    store.write({ op: 'schedule.upsert', schedule: schedule('a', {}) });
    store.write({ op: 'schedule.upsert', schedule: schedule('b', { paused: true }) });
    store.write({ op: 'schedule.upsert', schedule: schedule('c', { enabled: false }) });
    store.write({ op: 'run.insert', run: run('r1', 'a', { status: 'running', startedAt: 900, instanceId: 'i1', leaseUntil: 5000 }) });
    store.write({ op: 'run.insert', run: run('r2', 'b', { scheduledAt: 1000 }) }); // due at 1000
    store.write({ op: 'run.insert', run: run('r3', 'c', { scheduledAt: 1001 }) }); // a retry waiting for its time: not queued for a slot
    store.write({ op: 'run.insert', run: run('r4', 'd', { status: 'completed', finishedAt: 950 }) });
    const inst = (id: string, heartbeatAt: number, maxConcurrent: number) =>
      store.upsertInstance({ id, host: 'h', pid: 1, startedAt: 0, heartbeatAt, running: 0, maxConcurrent, stoppedAt: null });
    await inst('i1', 990, 5);
    await inst('i2', 995, 3);
    await inst('i3', 100, 7); // its heartbeat stopped: not live
    await inst('i4', 999, 11);
    await store.stopInstance('i4', 999); // stopped cleanly
    // No flush: the read sees the buffered writes, like every read of the store.
    const f: ClusterFigures = await store.clusterFigures(1000, 900);
    expect(f).toEqual({ scheduled: 2, paused: 1, running: 1, queued: 1, capacity: 8 });
    expect(await store.clusterFigures(1001, 900)).toMatchObject({ queued: 2 });
    await store.flush();
  });

  it('answers zeros on an empty database', async () => {
    const store = await open();
    expect(await store.clusterFigures(0, 0)).toEqual({ scheduled: 0, paused: 0, running: 0, queued: 0, capacity: 0 });
  });
});

// ---------- core/status.ts ----------

const local = { isRunning: true, scheduledTasksCount: 0, runningAgentsCount: 0, queuedTasksCount: 0, maxConcurrentAgents: 5, pausedJobsCount: 0 };
const figures = (scheduled: number, running = 0): ClusterFigures => ({ scheduled, paused: 0, running, queued: 0, capacity: 10 });

/** A status over a fake cluster read and a recording event log; `reads` are answered by hand, in order. */
function sharedStatus() {
  const clock = createManualClock(1_000_000);
  const bus = createEventBus();
  const emitted: SchedulerStats[] = [];
  let nextId = 0;
  const events = {
    // Published at once, as the store would after the commit: what every instance's bus carries.
    emit: (_type: string, _agentId: string | null, data: { stats: SchedulerStats; timestamp: string }) => {
      emitted.push(data.stats);
      bus.emit({ id: ++nextId, type: 'scheduler:status', agentId: null, data } as StoredEvent);
    },
  } as unknown as EventLog;
  const reads: ReturnType<typeof deferred<ClusterFigures>>[] = [];
  const lifecycle: Lifecycle = { started: true, stopping: false };
  const status = createStatus({
    clock, events, lifecycle, intervalMs: 250, bus, capacity: () => 5,
    schedules: { values: () => [][Symbol.iterator]() } as unknown as Schedules,
    active: { running: 0, queued: 0 } as ActiveRuns,
    cluster: () => {
      const d = deferred<ClusterFigures>();
      reads.push(d);
      return d.promise;
    },
  });
  /** A status event another instance published. */
  const foreign = (stats: SchedulerStats) => bus.emit({ id: ++nextId, type: 'scheduler:status', agentId: null, data: { stats, timestamp: '' } } as StoredEvent);
  return { clock, status, emitted, reads, foreign };
}

const settle = () => new Promise<void>((r) => setImmediate(r));
const asStats = (f: ClusterFigures): SchedulerStats => ({
  isRunning: true, scheduledTasksCount: f.scheduled, runningAgentsCount: f.running, queuedTasksCount: f.queued, maxConcurrentAgents: f.capacity, pausedJobsCount: f.paused,
});

describe('status figures on a shared store', () => {
  it('answers a request from a read begun after it: callers during a read share the next one', async () => {
    const { status, reads } = sharedStatus();
    const first = status.figures();
    expect(reads).toHaveLength(1);
    // The change answered now may be missed by the read already going: these two wait for a new one.
    const second = status.figures();
    const third = status.figures();
    expect(reads).toHaveLength(1);
    reads[0]!.resolve(figures(1));
    expect(await first).toMatchObject({ scheduledTasksCount: 1 });
    await settle();
    expect(reads).toHaveLength(2); // one read for both
    reads[1]!.resolve(figures(2));
    expect(await second).toMatchObject({ scheduledTasksCount: 2, maxConcurrentAgents: 10 });
    expect(await third).toMatchObject({ scheduledTasksCount: 2 });
  });

  it('emits the cluster figures on a change, at most every 250 ms, and not again for figures already published', async () => {
    const { clock, status, emitted, reads } = sharedStatus();
    status.changed();
    clock.advance(0);
    expect(reads).toHaveLength(1);
    reads[0]!.resolve(figures(1));
    await settle();
    expect(emitted).toEqual([asStats(figures(1))]);
    // The last-word read one interval on finds the same figures: nothing more.
    status.changed(); // a change meanwhile: covered by the same read
    clock.advance(249);
    expect(reads).toHaveLength(1);
    clock.advance(1);
    expect(reads).toHaveLength(2);
    reads[1]!.resolve(figures(1));
    await settle();
    expect(emitted).toHaveLength(1);
    expect(clock.pendingTimers()).toBe(0); // quiet: nothing is read while nothing changes
  });

  it('counts another instance\'s event as published: equal figures are not sent twice, and the interval starts from it', async () => {
    const { clock, status, emitted, reads, foreign } = sharedStatus();
    foreign(asStats(figures(3)));
    clock.advance(100);
    status.changed();
    clock.advance(149);
    expect(reads).toHaveLength(0); // 250 ms after the other instance's event, not at once
    clock.advance(1);
    reads[0]!.resolve(figures(3));
    await settle();
    expect(emitted).toEqual([]); // subscribers already have these figures
  });

  it('has the last word when another instance\'s older figures are published after its own', async () => {
    const { clock, status, emitted, reads, foreign } = sharedStatus();
    status.changed();
    clock.advance(0);
    reads[0]!.resolve(figures(2));
    await settle();
    expect(emitted).toEqual([asStats(figures(2))]);
    foreign(asStats(figures(1))); // read earlier elsewhere, committed later
    clock.advance(250);
    reads[1]!.resolve(figures(2));
    await settle();
    expect(emitted).toEqual([asStats(figures(2)), asStats(figures(2))]);
  });

  it('keeps this process\'s own figures synchronous (the heartbeat reports its running runs from them)', () => {
    const { status } = sharedStatus();
    expect(status.stats()).toEqual(local);
  });

  it('tries again one interval on when the database did not answer', async () => {
    const { clock, status, emitted, reads } = sharedStatus();
    status.changed();
    clock.advance(0);
    reads[0]!.reject(new Error('Connection terminated'));
    await settle();
    expect(emitted).toEqual([]);
    clock.advance(250);
    expect(reads).toHaveLength(2);
    reads[1]!.resolve(figures(4));
    await settle();
    expect(emitted).toEqual([asStats(figures(4))]);
  });
});

// ---------- services/health.ts ----------

function healthFixture() {
  const clock = createManualClock(1_000_000);
  const trouble: WriteTrouble = { lastFailedAt: null, retrying: false };
  const pings: ReturnType<typeof deferred<void>>[] = [];
  let signals = true;
  const health = createHealth({
    clock,
    store: {
      ping: () => {
        const d = deferred<void>();
        pings.push(d);
        return d.promise;
      },
      writeTrouble: () => ({ ...trouble }),
    },
    signalsConnected: () => signals,
  });
  return { clock, trouble, pings, health, setSignals: (v: boolean) => (signals = v) };
}

describe('/healthz answers', () => {
  it('{ ok: true } while the database answers, probing it at most once a second', async () => {
    const { clock, pings, health } = healthFixture();
    const a = health.check();
    expect(pings).toHaveLength(1);
    pings[0]!.resolve();
    expect(await a).toEqual({ ok: true });
    clock.advance(999);
    expect(await health.check()).toEqual({ ok: true });
    expect(pings).toHaveLength(1);
    clock.advance(1);
    const b = health.check();
    expect(pings).toHaveLength(2);
    pings[1]!.resolve();
    expect(await b).toEqual({ ok: true });
  });

  it('degraded while a write batch waits out an outage, and for 5 s after a batch failed', async () => {
    const { clock, trouble, pings, health } = healthFixture();
    trouble.retrying = true;
    trouble.lastFailedAt = clock.now();
    expect(await health.check()).toMatchObject({ ok: true, degraded: true, reason: expect.stringMatching(/write batch waits/) });
    trouble.retrying = false;
    clock.advance(4_999);
    expect(await health.check()).toMatchObject({ degraded: true, reason: expect.stringMatching(/a moment ago/) });
    clock.advance(1);
    const back = health.check();
    pings[0]!.resolve();
    expect(await back).toEqual({ ok: true });
  });

  it('degraded when the probe fails or does not answer within 1 s; one probe at a time', async () => {
    const { clock, pings, health } = healthFixture();
    const a = health.check();
    pings[0]!.reject(Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:5432'), { code: 'ECONNREFUSED' }));
    expect(await a).toMatchObject({ degraded: true, reason: expect.stringMatching(/ECONNREFUSED/) });
    clock.advance(1000);
    const b = health.check(); // a probe that hangs (a silent network)
    expect(pings).toHaveLength(2);
    clock.advance(1000);
    expect(await b).toMatchObject({ degraded: true, reason: 'the database did not answer within 1000 ms' });
    clock.advance(1000);
    expect(await health.check()).toMatchObject({ degraded: true }); // still hanging: no second probe piles on
    expect(pings).toHaveLength(2);
    pings[1]!.resolve();
    await settle();
    const c = health.check();
    pings[2]!.resolve();
    expect(await c).toEqual({ ok: true });
  });

  it('degraded while the signals connection between instances is down', async () => {
    const { pings, health, setSignals } = healthFixture();
    setSignals(false);
    expect(await health.check()).toMatchObject({ ok: true, degraded: true, reason: expect.stringMatching(/signals/) });
    expect(pings).toHaveLength(0);
    setSignals(true);
    const a = health.check();
    pings[0]!.resolve();
    expect(await a).toEqual({ ok: true });
  });
});

describe('the /healthz route', () => {
  it('answers what the health service says, 200 either way, on GET and HEAD', async () => {
    let answer: Health = { ok: true };
    const services = { health: async () => answer } as unknown as Services;
    const handle = createRestHandler({ services, auth: createAuth({ secret: TEST_SECRET }), logger: silentLogger });
    const server = createServer((req, res) => void handle(req, res, new URL(req.url ?? '/', 'http://x')));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/healthz`;
      const get = async () => {
        const r = await fetch(url);
        return { status: r.status, body: await r.json() };
      };
      expect(await get()).toEqual({ status: 200, body: { ok: true } });
      answer = { ok: true, degraded: true, reason: 'the database did not answer within 1000 ms' };
      expect(await get()).toEqual({ status: 200, body: answer });
      expect((await fetch(url, { method: 'HEAD' })).status).toBe(200);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});
