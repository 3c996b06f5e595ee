import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kysely, type Dialect } from 'kysely';
import pg from 'pg';
import { z } from 'zod';
import { createApp, type App } from '../src/app.ts';
import { isPostgresUrl, loadConfig, type Config } from '../src/config.ts';
import { createManualClock, type Clock, type ManualClock } from '../src/core/clock.ts';
import type { EventBus } from '../src/core/events.ts';
import type { Logger } from '../src/core/logger.ts';
import { SCHEDULER_DEFAULTS } from '../src/core/limits.ts';
import { createHandlerRegistry, type HandlerContext, type HandlerDefinition } from '../src/core/handlers.ts';
import { createScheduler, type Scheduler, type SchedulerOptions } from '../src/core/scheduler.ts';
import type { Signals } from '../src/core/signals.ts';
import type { AgentRecord, RunRecord, Store, WriteOp } from '../src/core/store.ts';
import type { StoredEvent } from '../src/schemas/events.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { postgresDialect } from '../src/storage/dialects/postgres.ts';
import { createPostgresSignals } from '../src/storage/dialects/postgres-signals.ts';
import { createMemoryStore } from '../src/storage/memory.ts';
import { migrate } from '../src/storage/migrator.ts';
import { createRepository } from '../src/storage/repository.ts';
import type { Database } from '../src/storage/schema.ts';

/**
 * The one test harness. Two ways in, one way of watching:
 * - `createHarness()`: the scheduler alone on a manual clock (time moves only when a test says so), on the
 *   in-memory store unless a test passes `dbUrl` (a SQLite file, for tests that restart on the same data).
 *   Its `scripted` handler does whatever the test queued for the next attempt (resolve, throw, hang).
 * - `startServer()`: the whole app on a free port, called over real HTTP.
 * Both record the scheduler's events through `recordEvents`, so a test waits on events the same way in either.
 * With TEST_DATABASE=postgres (npm test's second pass, README "Tests and CI") both run on a fresh PostgreSQL
 * schema each instead of memory or SQLite `:memory:`; a test that passes a SQLite file stays on SQLite.
 */

// ---------- watching events ----------

export interface EventLog extends Disposable {
  /** Every event since the log was made, in order. */
  events: StoredEvent[];
  /** Resolves at the next event that matches (events already past are not seen). */
  waitFor(pred: (e: StoredEvent) => boolean, timeoutMs?: number): Promise<StoredEvent>;
  /** Resolves with the first matching event, already seen or still to come. */
  eventually(pred: (e: StoredEvent) => boolean, timeoutMs?: number): Promise<StoredEvent>;
}

/** A wait that never comes fails the test with a reason instead of hanging it until vitest's own timeout. */
const WAIT_TIMEOUT_MS = 15_000;

export function recordEvents(bus: EventBus): EventLog {
  const events: StoredEvent[] = [];
  const waiters = new Set<{ pred: (e: StoredEvent) => boolean; resolve: (e: StoredEvent) => void }>();
  const off = bus.on((e) => {
    events.push(e);
    for (const w of waiters) {
      if (w.pred(e)) {
        waiters.delete(w);
        w.resolve(e);
      }
    }
  });
  const waitFor = (pred: (e: StoredEvent) => boolean, timeoutMs = WAIT_TIMEOUT_MS) =>
    new Promise<StoredEvent>((resolve, reject) => {
      const timer = setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error('timed out waiting for an event'));
      }, timeoutMs);
      const waiter = { pred, resolve: (e: StoredEvent) => (clearTimeout(timer), resolve(e)) };
      waiters.add(waiter);
    });
  return {
    events,
    waitFor,
    eventually(pred, timeoutMs) {
      const seen = events.find(pred);
      return seen ? Promise.resolve(seen) : waitFor(pred, timeoutMs);
    },
    [Symbol.dispose]: off,
  };
}

/** Resolves with the next event of the app matching `pred` (events already past are not seen). */
export function nextEvent(app: App, pred: (e: StoredEvent) => boolean, timeoutMs = WAIT_TIMEOUT_MS): Promise<StoredEvent> {
  const log = recordEvents(app.scheduler.events);
  return log.waitFor(pred, timeoutMs).finally(() => log[Symbol.dispose]());
}

// ---------- the scheduler alone, on a manual clock ----------

/** One attempt's behaviour; what it resolves to is the run's output. */
export type Script = (ctx: HandlerContext) => Promise<unknown>;

export interface Harness extends AsyncDisposable {
  clock: ManualClock;
  repo: Store;
  scheduler: Scheduler;
  events: StoredEvent[];
  /** Every run insert the scheduler wrote, in order. */
  inserted: RunRecord[];
  /** Contexts of handler calls, in order. */
  calls: HandlerContext[];
  /** Queue behaviour for the next handler calls; with nothing queued a call succeeds at once. */
  script(...steps: Script[]): void;
  addAgent(id: string, extra?: Partial<AgentRecord>): Promise<AgentRecord>;
  /** Resolves at the next event that matches. */
  waitFor(pred: (e: StoredEvent) => boolean): Promise<StoredEvent>;
  /** Resolves with the first matching event, already seen or still to come. */
  eventually(pred: (e: StoredEvent) => boolean): Promise<StoredEvent>;
  runs(agentId: string): Promise<RunRecord[]>;
  /** Runs `agent` now and resolves with the first event of `type` that follows (for that agent). */
  runUntil(agent: AgentRecord, type: StoredEvent['type']): Promise<StoredEvent>;
  /** Runs `agent` now with a handler that holds until released; resolves once the handler has started. */
  holdRun(agent: AgentRecord, honour?: boolean): Promise<{ run: RunRecord; gate: ReturnType<typeof gate> }>;
}

export const at = (iso: string) => Date.parse(iso);

export interface HarnessOptions extends Partial<SchedulerOptions> {
  start?: number;
  /**
   * A database for tests that restart on the same data: a SQLite file, or a PostgreSQL URL (a `pgSchema()` the
   * test owns and drops). @default a fresh in-memory store (a fresh PostgreSQL schema with TEST_DATABASE=postgres)
   */
  dbUrl?: string;
  /** Another harness's store (`repo`), for two schedulers on one database; it is disposed by its owner. */
  repo?: Store;
  /** Another harness's clock, so two schedulers share one time. */
  clock?: ManualClock;
  /** Let the scheduler treat the store as shared by several instances (leases, reaping, the queue poll). @default the store's own */
  shared?: boolean;
  keepOpen?: boolean;
  extraHandlers?: HandlerDefinition<never>[];
}

export async function createHarness(options: HarnessOptions = {}): Promise<Harness> {
  const ownsRepo = options.repo === undefined;
  const repo = options.repo ?? (options.dbUrl !== undefined ? await storeAt(options.dbUrl) : ON_POSTGRES ? await postgresStore() : createMemoryStore());
  const inserted: RunRecord[] = [];
  // The store's methods are plain functions (no `this`), so a spread copy with two of them wrapped is the store.
  const store: Store = {
    ...repo,
    shared: options.shared ?? repo.shared,
    write(op: WriteOp) {
      if (op.op === 'run.insert') inserted.push({ ...op.run });
      repo.write(op);
    },
    async claim(claims) {
      const outcomes = await repo.claim(claims);
      for (const o of outcomes) if (o.outcome === 'claimed' || o.outcome === 'skipped') inserted.push({ ...o.run });
      return outcomes;
    },
  };
  const clock = options.clock ?? createManualClock(options.start ?? at('2026-01-01T00:00:00Z'));
  const queue: Script[] = [];
  const calls: HandlerContext[] = [];
  const scripted: HandlerDefinition<Record<string, unknown>> = {
    name: 'scripted',
    config: z.record(z.string(), z.unknown()),
    run: async (ctx) => {
      calls.push(ctx);
      const step = queue.shift();
      return step ? await step(ctx) : undefined;
    },
  };
  const handlers = createHandlerRegistry([scripted as HandlerDefinition<never>, ...(options.extraHandlers ?? [])]);
  const scheduler = createScheduler({ store, handlers, clock, statusIntervalMs: 0, ...options });
  const log = recordEvents(scheduler.events);
  // On a shared store the status sums the capacity of the live instances (README, "Running several
  // instances"): this scheduler registers as the app's instance registry would, with no heartbeat after.
  if (store.shared) {
    await repo.upsertInstance({
      id: scheduler.instanceId, host: 'harness', pid: 0, startedAt: clock.now(), heartbeatAt: clock.now(), running: 0,
      maxConcurrent: options.maxConcurrent ?? SCHEDULER_DEFAULTS.MAX_CONCURRENT_AGENTS, stoppedAt: null,
    });
  }
  await scheduler.start();
  return {
    clock,
    repo,
    scheduler,
    events: log.events,
    inserted,
    calls,
    script: (...steps) => queue.push(...steps),
    async addAgent(id, extra = {}) {
      const a: AgentRecord = {
        id, owner: 'alice', name: id, handler: 'scripted', config: {}, description: null, timeoutMs: null, maxRetries: null,
        status: 'IDLE', lastRunAt: null, lastError: null, retryCount: 0, backoffUntil: null, budget: null, createdAt: clock.now(), updatedAt: clock.now(), ...extra,
      };
      await repo.insertAgent(a);
      return a;
    },
    waitFor: (pred) => log.waitFor(pred),
    eventually: (pred) => log.eventually(pred),
    async runUntil(agent, type) {
      const seen = log.waitFor((e) => e.type === type && e.agentId === agent.id);
      await scheduler.runNow(agent);
      return seen;
    },
    async holdRun(agent, honour = true) {
      const g = gate(honour);
      queue.push(g.step);
      const run = await scheduler.runNow(agent);
      await g.started;
      return { run, gate: g };
    },
    runs: (agentId) => repo.listRuns(agentId, 1000),
    async [Symbol.asyncDispose]() {
      if (options.keepOpen) return;
      log[Symbol.dispose]();
      await scheduler.stop(0);
      if (ownsRepo) await repo[Symbol.asyncDispose]();
    },
  };
}

async function storeAt(url: string): Promise<Store> {
  const db = new Kysely<Database>({ dialect: isPostgresUrl(url) ? postgresDialect(url) : betterSqliteDialect(url) });
  await migrate(db);
  return createRepository(db);
}

/** A repository on a fresh PostgreSQL schema; disposing it closes the pool, then drops the schema. */
async function postgresStore(): Promise<Store> {
  const schema = await pgSchema();
  const db = new Kysely<Database>({ dialect: postgresDialect(schema.url) });
  await migrate(db);
  const repo = createRepository(db);
  const close = repo[Symbol.asyncDispose];
  return {
    ...repo,
    async [Symbol.asyncDispose]() {
      await close();
      await schema[Symbol.asyncDispose]();
    },
  };
}

/** A handler step that waits until the test releases it (or its signal fires, when `honour`). */
export function gate(honour = true) {
  let release!: () => void;
  let fail!: (e: unknown) => void;
  const released = new Promise<void>((res, rej) => {
    release = res;
    fail = rej;
  });
  let entered!: () => void;
  const started = new Promise<void>((r) => (entered = r));
  const step: Script = async (ctx) => {
    entered();
    if (honour) {
      await Promise.race([released, new Promise<void>((_, rej) => ctx.signal.addEventListener('abort', () => rej(ctx.signal.reason), { once: true }))]);
    } else await released;
  };
  return { step, started, release: () => release(), fail: (e: unknown) => fail(e) };
}

export const failWith = (message: string): Script => async () => {
  throw new Error(message);
};

// ---------- the whole server on a free port ----------

export const TEST_SECRET = 'test-secret-that-is-at-least-32-bytes-long!!';

export function testConfig(env: Record<string, string> = {}): Config {
  return loadConfig({ DATABASE_URL: ':memory:', JWT_SECRET: TEST_SECRET, PORT: '0', ...env });
}

/** A temporary folder removed on dispose. */
export function tempDir(): { path: string } & Disposable {
  const path = mkdtempSync(join(tmpdir(), 'sched-test-'));
  return { path, [Symbol.dispose]: () => rmSync(path, { recursive: true, force: true }) };
}

export interface TestServer extends AsyncDisposable {
  app: App;
  url: string;
  token(sub?: string, role?: string): Promise<string>;
  /** fetch against the server with a JSON body and a bearer token. */
  call(method: string, path: string, opts?: { token?: string | null; body?: unknown; raw?: string; headers?: Record<string, string> }): Promise<{ status: number; body: any; headers: Headers }>;
}

/**
 * The database a test server starts on: SQLite `:memory:`, or with TEST_DATABASE=postgres a fresh PostgreSQL
 * schema, whose URL the config must carry so the server takes its shared path (signals, leases, the queue in
 * the database; docs/cluster.md). Its signals get the schema as their channel prefix: NOTIFY channels belong
 * to the whole database, and servers of tests running side by side must not hear each other. Dispose after
 * the app has closed: it drops the schema.
 */
export interface TestDatabase extends AsyncDisposable {
  /** DATABASE_URL for the config. */
  url: string;
  dialect: Dialect;
  /** For createApp; undefined on SQLite (the app makes its in-process signals). */
  signals?: Signals;
}

export async function testDatabase(): Promise<TestDatabase> {
  if (!ON_POSTGRES) return { url: ':memory:', dialect: betterSqliteDialect(':memory:'), async [Symbol.asyncDispose]() {} };
  const schema = await pgSchema();
  return {
    url: schema.url,
    dialect: postgresDialect(schema.url),
    signals: createPostgresSignals({ url: schema.url, prefix: schema.schema }),
    [Symbol.asyncDispose]: () => schema[Symbol.asyncDispose](),
  };
}

export async function startServer(opts: { env?: Record<string, string>; handlers?: HandlerDefinition<never>[]; clock?: Clock; dbFile?: string; logger?: Logger } = {}): Promise<TestServer> {
  // A SQLite file is asked for by tests of files (restarts on the same data); they stay on SQLite.
  const db: TestDatabase = opts.dbFile
    ? { url: `file:${opts.dbFile}`, dialect: betterSqliteDialect(`file:${opts.dbFile}`), async [Symbol.asyncDispose]() {} }
    : await testDatabase();
  const config = testConfig({ DATABASE_URL: db.url, ...opts.env });
  const app = await createApp({
    config,
    dialect: db.dialect,
    signals: db.signals,
    jwtSecret: config.JWT_SECRET ?? TEST_SECRET,
    webhookSecret: config.WEBHOOK_SIGNING_SECRET ?? 'webhook-secret',
    handlers: opts.handlers,
    clock: opts.clock,
    // The same variables serve as the process environment an `llm` agent's key is read from.
    env: { ...opts.env },
    ...(opts.logger && { logger: opts.logger }),
  }).catch(async (err: unknown) => {
    await db[Symbol.asyncDispose](); // a server that never started leaves no schema behind
    throw err;
  });
  const { port } = await app.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${port}`;
  const defaultToken = await app.auth.sign({ sub: 'alice' });
  return {
    app,
    url,
    token: (sub = 'alice', role?: string) => app.auth.sign({ sub, ...(role && { role }) }),
    async call(method, path, o = {}) {
      const headers: Record<string, string> = { ...o.headers };
      const token = o.token === undefined ? defaultToken : o.token;
      if (token) headers['authorization'] = `Bearer ${token}`;
      let body: string | undefined = o.raw;
      if (o.body !== undefined) {
        body = JSON.stringify(o.body);
        headers['content-type'] = 'application/json';
      }
      const res = await fetch(url + path, { method, headers, body });
      const text = await res.text();
      let parsed: unknown = text;
      try {
        parsed = JSON.parse(text);
      } catch {
        // not JSON: tests assert on the text
      }
      return { status: res.status, body: parsed, headers: res.headers };
    },
    async [Symbol.asyncDispose]() {
      await app.close(1000);
      await db[Symbol.asyncDispose]();
    },
  };
}

// ---------- small tools ----------


/** A promise with its resolve/reject on the outside. */
export function deferred<T = void>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

/** The local PostgreSQL the tests may use (.ci/run always sets it; without it PostgreSQL tests skip, saying so). */
export const TEST_POSTGRES_URL = process.env['TEST_POSTGRES_URL'];

/**
 * TEST_DATABASE=postgres: the servers and harnesses that would use memory or SQLite `:memory:` use PostgreSQL
 * (vitest.config.ts sets it for the `postgres` pass). Tests of what only SQLite has (files, their lock,
 * kill -9 on a file) ignore it and say so.
 */
export const ON_POSTGRES = process.env['TEST_DATABASE'] === 'postgres';

/**
 * A fresh PostgreSQL schema for one test and a URL whose connections use it (search_path), dropped on
 * dispose, so tests on one database never see each other's rows.
 */
export async function pgSchema(): Promise<{ url: string; schema: string } & AsyncDisposable> {
  if (!TEST_POSTGRES_URL) throw new Error('pgSchema (and so TEST_DATABASE=postgres) needs TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/test');
  const schema = `t_${Date.now().toString(36)}_${Math.random().toString(36).slice(2, 8)}`;
  const admin = new pg.Client(TEST_POSTGRES_URL);
  await admin.connect();
  await admin.query(`CREATE SCHEMA ${schema}`);
  await admin.end();
  const url = new URL(TEST_POSTGRES_URL);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: url.toString(),
    schema,
    async [Symbol.asyncDispose]() {
      const c = new pg.Client(TEST_POSTGRES_URL);
      await c.connect();
      await c.query(`DROP SCHEMA ${schema} CASCADE`);
      await c.end();
    },
  };
}

/**
 * `npm start`'s entry as a child process (port 0, the test secret, then `env`); `url` resolves once it
 * listens and rejects if it exits first. For tests that kill and restart a real server.
 */
export function spawnServer(env: Record<string, string>): { child: ChildProcess; url: Promise<string> } {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src/runtime/node.ts'], {
    env: { ...process.env, PORT: '0', JWT_SECRET: TEST_SECRET, ...env },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const url = new Promise<string>((resolve, reject) => {
    child.on('exit', (code) => reject(new Error(`server exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /"url":"([^"]+)"/.exec(line);
      if (m) resolve(m[1]!);
    });
  });
  return { child, url };
}
