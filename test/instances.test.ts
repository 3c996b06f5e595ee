import { once } from 'node:events';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { TRPCClientError } from '@trpc/client';
import { Kysely } from 'kysely';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { createSchedulerClient } from '../client/index.ts';
import { createApp, PortInUseError } from '../src/app.ts';
import { ConfigError, loadConfig } from '../src/config.ts';
import { createManualClock } from '../src/core/clock.ts';
import type { HandlerDefinition } from '../src/core/handlers.ts';
import { createInstanceRegistry, type InstanceStore } from '../src/core/instances.ts';
import { silentLogger } from '../src/core/logger.ts';
import type { InstanceRecord, RunRecord } from '../src/core/store.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { DatabaseInUseError } from '../src/storage/dialects/sqlite-lock.ts';
import { createMemoryStore } from '../src/storage/memory.ts';
import { migrate } from '../src/storage/migrator.ts';
import { createRepository } from '../src/storage/repository.ts';
import type { Database } from '../src/storage/schema.ts';
import { deferred, ON_POSTGRES, recordEvents, tempDir, TEST_SECRET, testConfig, testDatabase } from './harness.ts';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

/** The memory store, recording the instance writes made and able to fail the next heartbeat. */
function watchedStore() {
  const store = createMemoryStore();
  let failNext = false;
  const calls: string[] = [];
  const watched: InstanceStore = {
    upsertInstance: (i) => (calls.push('upsert'), store.upsertInstance(i)),
    heartbeatInstance: async (id, at, running) => {
      calls.push('heartbeat');
      if (failNext) {
        failNext = false;
        throw new Error('database went away');
      }
      await store.heartbeatInstance(id, at, running);
    },
    stopInstance: (id, at) => store.stopInstance(id, at),
    listInstances: (since) => store.listInstances(since),
  };
  return { store, watched, calls, failNextHeartbeat: () => void (failNext = true) };
}

const other = (id: string, at: number, extra: Partial<InstanceRecord> = {}): InstanceRecord => ({
  id, host: 'elsewhere', pid: 77, startedAt: at, heartbeatAt: at, running: 1, maxConcurrent: 3, stoppedAt: null, ...extra,
});

// On the memory store by design, whatever TEST_DATABASE says: only the first (SQLite) pass runs them.
describe.skipIf(ON_POSTGRES)('instance registry (manual clock; memory store, so skipped on the PostgreSQL pass)', () => {
  it('registers, heartbeats with its running count, sums live capacity, and drops a silent instance after the lease', async () => {
    const clock = createManualClock(1_000_000);
    const s = watchedStore();
    let running = 0;
    let capacityChanges = 0;
    const registry = createInstanceRegistry({
      store: s.watched, clock, log: silentLogger, identity: { id: 'me', host: 'here', pid: 42 }, maxConcurrent: 5,
      running: () => running, heartbeatMs: 5_000, leaseMs: 30_000, onCapacityChange: () => capacityChanges++,
    });
    // Another instance, started a second earlier, that heartbeats once and then goes silent (its process died).
    await s.store.upsertInstance(other('them', clock.now() - 1_000));
    await registry.start();
    expect(await registry.live()).toEqual([
      { id: 'them', host: 'elsewhere', pid: 77, startedAt: 999_000, heartbeatAt: 999_000, running: 1, maxConcurrent: 3, stoppedAt: null },
      { id: 'me', host: 'here', pid: 42, startedAt: 1_000_000, heartbeatAt: 1_000_000, running: 0, maxConcurrent: 5, stoppedAt: null },
    ]);
    expect(registry.capacity()).toBe(8);
    expect(capacityChanges).toBe(1);

    running = 2;
    clock.advance(5_000);
    await registry.idle();
    expect((await registry.live()).find((i) => i.id === 'me')).toMatchObject({ heartbeatAt: 1_005_000, running: 2 });

    // Heartbeats go on every 5 s: 26 s after its last heartbeat the silent one is still live, 31 s after it is not.
    for (let t = 10_000; t <= 25_000; t += 5_000) {
      clock.advance(5_000);
      await registry.idle();
    }
    expect((await registry.live()).map((i) => i.id)).toEqual(['them', 'me']);
    expect(registry.capacity()).toBe(8);
    clock.advance(5_000);
    await registry.idle();
    expect((await registry.live()).map((i) => i.id)).toEqual(['me']);
    expect(registry.capacity()).toBe(5);
    expect(capacityChanges).toBe(2);

    await registry.stop();
    expect(await registry.live()).toEqual([]);
    expect(clock.pendingTimers()).toBe(0);
  });

  it('registers again after a failed heartbeat, in case its row is what went missing', async () => {
    const clock = createManualClock(0);
    const s = watchedStore();
    const registry = createInstanceRegistry({
      store: s.watched, clock, log: silentLogger, identity: { id: 'me', host: 'h', pid: 1 }, maxConcurrent: 2,
      running: () => 0, heartbeatMs: 1_000, leaseMs: 3_000,
    });
    await registry.start();
    s.failNextHeartbeat();
    clock.advance(1_000);
    await registry.idle();
    clock.advance(1_000);
    await registry.idle();
    expect(s.calls).toEqual(['upsert', 'heartbeat', 'upsert']);
    expect(await registry.live()).toMatchObject([{ id: 'me', heartbeatAt: 2_000 }]);
    await registry.stop();
  });
});

describe.skipIf(ON_POSTGRES)('configuration of instances (no database, so skipped on the PostgreSQL pass)', () => {
  it('defaults to a 5 s heartbeat and a 30 s lease', () => {
    expect(loadConfig({})).toMatchObject({ INSTANCE_HEARTBEAT_MS: 5000, INSTANCE_LEASE_MS: 30000 });
  });

  it.each([
    [{ INSTANCE_HEARTBEAT_MS: 'soon' }, /^Invalid environment variable INSTANCE_HEARTBEAT_MS: expected a whole number from 1 .*got "soon"$/],
    [{ INSTANCE_LEASE_MS: '0' }, /^Invalid environment variable INSTANCE_LEASE_MS: expected a whole number from 1 .*got "0"$/],
    [{ INSTANCE_LEASE_MS: '5000' }, /^Invalid environment variable INSTANCE_LEASE_MS: expected more than INSTANCE_HEARTBEAT_MS \(5000\), got 5000$/],
    [{ INSTANCE_HEARTBEAT_MS: '60000' }, /^Invalid environment variable INSTANCE_LEASE_MS: expected more than INSTANCE_HEARTBEAT_MS \(60000\), got 30000$/],
  ])('refuses %j with one line naming the variable', (env, message) => {
    expect(() => loadConfig(env)).toThrow(ConfigError);
    expect(() => loadConfig(env)).toThrow(message);
  });
});

// ---------- the whole server ----------

const hold = (() => {
  let release = deferred();
  const entered: (() => void)[] = [];
  const def: HandlerDefinition<Record<string, unknown>> = {
    name: 'hold',
    config: z.record(z.string(), z.unknown()),
    run: async () => {
      entered.shift()?.();
      await release.promise;
    },
  };
  return {
    def: def as HandlerDefinition<never>,
    entered: () => new Promise<void>((r) => entered.push(r)),
    release: () => {
      release.resolve();
      release = deferred();
    },
  };
})();

/** The app on a free port with a known identity, on SQLite in memory (a PostgreSQL schema with TEST_DATABASE=postgres). */
async function serve(env: Record<string, string> = {}) {
  const db = await testDatabase();
  const config = testConfig({ DATABASE_URL: db.url, ...env });
  const app = await createApp({
    config, dialect: db.dialect, signals: db.signals, jwtSecret: TEST_SECRET, webhookSecret: 'w', handlers: [hold.def], instance: { host: 'test-host', pid: 4242 },
  });
  const { port } = await app.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${port}`;
  const call = async (path: string, token: string | null, init: RequestInit = {}) => {
    const res = await fetch(url + path, { ...init, headers: { ...(token && { authorization: `Bearer ${token}` }), 'content-type': 'application/json' } });
    return { status: res.status, body: (await res.json()) as any };
  };
  return {
    app, url, call, admin: await app.auth.sign({ sub: 'ops', role: 'admin' }), alice: await app.auth.sign({ sub: 'alice' }),
    async [Symbol.asyncDispose]() {
      await app.close(1000);
      await db[Symbol.asyncDispose]();
    },
  };
}

describe('GET /api/instances and instances.list', () => {
  it('lists the live instances to an admin; anyone else authenticated gets 403 (tRPC FORBIDDEN), no token 401', async () => {
    await using s = await serve();
    const listed = await s.call('/api/instances', s.admin);
    expect(listed).toEqual({
      status: 200,
      body: { success: true, data: [{ id: s.app.instance.id, host: 'test-host', pid: 4242, startedAt: expect.stringMatching(ISO), heartbeatAt: expect.stringMatching(ISO), running: 0, maxConcurrent: 5 }] },
    });
    expect(await s.call('/api/instances', s.alice)).toEqual({ status: 403, body: { success: false, error: 'This call needs a token with role "admin"' } });
    expect((await s.call('/api/instances', null)).status).toBe(401);

    await using admin = createSchedulerClient({ url: s.url, token: s.admin });
    await using alice = createSchedulerClient({ url: s.url, token: s.alice });
    expect(await admin.instances.list.query()).toEqual(listed.body.data);
    const refused = await alice.instances.list.query().then(() => undefined, (e: unknown) => e);
    expect(refused).toBeInstanceOf(TRPCClientError);
    expect((refused as TRPCClientError<any>).data?.code).toBe('FORBIDDEN');
  });

  it('documents the route in OpenAPI with its 403', async () => {
    await using s = await serve();
    const doc = (await s.call('/api/openapi.json', null)).body;
    const op = doc.paths['/api/instances'].get;
    expect(op.operationId).toBe('instances.list');
    expect(Object.keys(op.responses)).toEqual(expect.arrayContaining(['200', '401', '403']));
    const items = op.responses['200'].content['application/json'].schema.properties.data.items;
    const instance = items.$ref ? doc.components.schemas[items.$ref.split('/').pop()] : items;
    expect(instance.required).toEqual(['id', 'host', 'pid', 'startedAt', 'heartbeatAt', 'running', 'maxConcurrent']);
  });

  it('sums maxConcurrent over live instances in the status, and drops one whose heartbeat stops (short settings)', async () => {
    // The lease outlasts the 250 ms status throttle, so the summed figure is reported before it lapses.
    await using s = await serve({ INSTANCE_HEARTBEAT_MS: '20', INSTANCE_LEASE_MS: '1000' });
    using log = recordEvents(s.app.scheduler.events);
    const status = (n: number) => (e: { type: string; data: unknown }) => e.type === 'scheduler:status' && (e.data as { stats: { maxConcurrentAgents: number } }).stats.maxConcurrentAgents === n;
    // Another instance on the same database heartbeats once and then dies.
    await s.app.repo.upsertInstance({ id: 'inst_other', host: 'b', pid: 9, startedAt: Date.now(), heartbeatAt: Date.now(), running: 0, maxConcurrent: 7, stoppedAt: null });
    await log.eventually(status(12));
    expect((await s.call('/api/agents/schedule/status', s.alice)).body.data.maxConcurrentAgents).toBe(12);
    expect((await s.call('/api/instances', s.admin)).body.data.map((i: { id: string }) => i.id)).toEqual(expect.arrayContaining(['inst_other', s.app.instance.id]));
    // Its lease runs out: it leaves the sum (a scheduler:status says so) and the list.
    await log.waitFor(status(5));
    expect((await s.call('/api/agents/schedule/status', s.alice)).body.data.maxConcurrentAgents).toBe(5);
    expect((await s.call('/api/instances', s.admin)).body.data.map((i: { id: string }) => i.id)).toEqual([s.app.instance.id]);
  });

  // Reopens a SQLite file after close: SQLite only.
  it.skipIf(ON_POSTGRES)('marks itself stopped on close, so it leaves the list at once (SQLite; on the PostgreSQL pass the cluster suite covers it)', async () => {
    using dir = tempDir();
    const url = `file:${join(dir.path, 'stop.db')}`;
    const app = await createApp({ config: testConfig({ DATABASE_URL: url }), dialect: betterSqliteDialect(url), jwtSecret: TEST_SECRET, webhookSecret: 'w' });
    await app.listen(0, '127.0.0.1');
    const id = app.instance.id;
    await app.close(0);
    await using repo = createRepository(new Kysely<Database>({ dialect: betterSqliteDialect(url) }));
    expect(await repo.listInstances(0)).toEqual([]);
    const row = await repo.db.selectFrom('instances').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
    expect(row.stopped_at).toEqual(expect.any(Number));
  });
});

describe('a run records the instance that started it', () => {
  it('is null while queued and this instance once it runs, in the runs list too', async () => {
    await using s = await serve({ MAX_CONCURRENT_AGENTS: '1' });
    const post = (path: string, body?: unknown) => s.call(path, s.alice, { method: 'POST', body: body === undefined ? undefined : JSON.stringify(body) });
    await post('/api/agents', { id: 'first', name: 'First', handler: 'hold' });
    await post('/api/agents', { id: 'second', name: 'Second', handler: 'hold' });
    const entered = hold.entered();
    await post('/api/agents/first/run');
    await entered;
    await post('/api/agents/second/run'); // no free slot: it waits, queued
    const runsOf = async (agentId: string) => (await s.call(`/api/agents/${agentId}/runs`, s.alice)).body.data as RunRecord[];
    expect(await runsOf('first')).toMatchObject([{ status: 'running', instanceId: s.app.instance.id }]);
    expect(await runsOf('second')).toMatchObject([{ status: 'queued', instanceId: null }]);
    using log = recordEvents(s.app.scheduler.events);
    const secondEntered = hold.entered();
    hold.release();
    await secondEntered;
    hold.release();
    await log.eventually((e) => e.type === 'agent:completed' && e.agentId === 'second');
    expect(await runsOf('first')).toMatchObject([{ status: 'completed', instanceId: s.app.instance.id }]);
    expect(await runsOf('second')).toMatchObject([{ status: 'completed', instanceId: s.app.instance.id }]);
  });
});

// ---------- start order ----------

/** A port some other server holds. */
async function takenPort(): Promise<{ port: number } & AsyncDisposable> {
  const blocker = createServer();
  blocker.listen(0, '127.0.0.1');
  await once(blocker, 'listening');
  const port = (blocker.address() as { port: number }).port;
  return { port, [Symbol.asyncDispose]: () => new Promise<void>((r) => blocker.close(() => r())) };
}

describe('start order', () => {
  // Recovery of a SQLite file's leftovers at start (a shared database reaps by lease instead): SQLite only.
  it.skipIf(ON_POSTGRES)('a server that cannot bind its port neither recovers the runs in the database nor registers itself (a SQLite file, so skipped on the PostgreSQL pass)', async () => {
    using dir = tempDir();
    const url = `file:${join(dir.path, 'order.db')}`;
    // The database as a running server has it: a run in progress (that server is alive and well).
    {
      await using repo = createRepository(new Kysely<Database>({ dialect: betterSqliteDialect(url) }));
      await migrate(repo.db);
      repo.write({
        op: 'run.insert',
        run: {
          id: 'run_live', agentId: 'a', jobId: 'a', trigger: 'manual', attempt: 1, status: 'running', priority: 2, scheduledAt: 1, startedAt: 1,
          finishedAt: null, durationMs: null, progress: 50, error: null, dedupeKey: null, waiting: false, instanceId: 'inst_owner', epoch: 1, leaseUntil: null, cancelRequestedAt: null, output: null, outputTruncated: false, usageModel: null, inputTokens: null, outputTokens: null, costUsd: null, createdAt: 1,
        },
      });
      await repo.flush();
    }
    await using blocker = await takenPort();
    const app = await createApp({ config: testConfig({ DATABASE_URL: url }), dialect: betterSqliteDialect(url), jwtSecret: TEST_SECRET, webhookSecret: 'w' });
    const failed = await app.listen(blocker.port, '127.0.0.1').then(() => undefined, (e: unknown) => e);
    expect(failed).toBeInstanceOf(PortInUseError);
    expect((failed as Error).message).toBe(`PORT ${blocker.port} is already in use on 127.0.0.1; stop the other server or set PORT`);
    expect(await app.repo.getRun('run_live')).toMatchObject({ status: 'running', error: null });
    expect(await app.repo.listInstances(0)).toEqual([]);
    expect(app.scheduler.stats().isRunning).toBe(false);
    await app.close(0);

    // A server that does get its port recovers as before: the run's process is gone, so it was interrupted.
    const next = await createApp({ config: testConfig({ DATABASE_URL: url }), dialect: betterSqliteDialect(url), jwtSecret: TEST_SECRET, webhookSecret: 'w' });
    await next.listen(0, '127.0.0.1');
    expect(await next.repo.getRun('run_live')).toMatchObject({ status: 'failed', error: 'interrupted by restart' });
    expect((await next.repo.listInstances(0)).map((i) => i.id)).toEqual([next.instance.id]);
    await next.close(0);
  });

  it('holds requests that arrive after the port is bound until the scheduler has started', async () => {
    await using db = await testDatabase();
    const app = await createApp({ config: testConfig({ DATABASE_URL: db.url }), dialect: db.dialect, signals: db.signals, jwtSecret: TEST_SECRET, webhookSecret: 'w' });
    await using _ = app;
    const token = await app.auth.sign({ sub: 'alice' });
    await app.auth.verify(token); // verified once, so the request below needs no await before its answer
    // Bind the port without starting (what `listen` does between its two steps).
    app.server.listen(0, '127.0.0.1');
    await once(app.server, 'listening');
    const { port } = app.server.address() as { port: number };
    const arrived = once(app.server, 'request');
    const answer = fetch(`http://127.0.0.1:${port}/api/agents/schedule/status`, { headers: { authorization: `Bearer ${token}` } }).then((r) => r.json() as Promise<any>);
    await arrived;
    await app.start();
    expect((await answer).data).toMatchObject({ isRunning: true });
  });
});

// ---------- one owner per SQLite file ----------

describe.skipIf(ON_POSTGRES)('one owner per SQLite file (skipped on the PostgreSQL pass: no file there)', () => {
  it('a second exclusive open of the file is refused, naming the owner; the lock goes with the database', async () => {
    using dir = tempDir();
    const file = join(dir.path, 'owned.db');
    const first = new Kysely<Database>({ dialect: betterSqliteDialect(`file:${file}`, { exclusive: true }) });
    await migrate(first);
    let refused: unknown;
    try {
      betterSqliteDialect(`file:${file}`, { exclusive: true });
    } catch (err) {
      refused = err;
    }
    expect(refused).toBeInstanceOf(DatabaseInUseError);
    expect((refused as Error).message).toBe(`Another agent-scheduler (pid ${process.pid}) is using ${file}; stop it or set DATABASE_URL`);
    await first.destroy();
    const second = new Kysely<Database>({ dialect: betterSqliteDialect(`file:${file}`, { exclusive: true }) });
    expect((await migrate(second)).applied).toEqual([]);
    await second.destroy();
  });

  it('takes no lock for :memory:', async () => {
    const a = new Kysely<Database>({ dialect: betterSqliteDialect(':memory:', { exclusive: true }) });
    const b = new Kysely<Database>({ dialect: betterSqliteDialect(':memory:', { exclusive: true }) });
    await Promise.all([a.destroy(), b.destroy()]);
  });
});
