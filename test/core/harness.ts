import { Kysely } from 'kysely';
import { createManualClock, type ManualClock } from '../../src/core/clock.ts';
import { createHandlerRegistry, type HandlerContext, type HandlerDefinition } from '../../src/core/handlers.ts';
import { createScheduler, type Scheduler, type SchedulerOptions } from '../../src/core/scheduler.ts';
import type { AgentRecord, RunRecord, Store, WriteOp } from '../../src/core/store.ts';
import type { StoredEvent } from '../../src/schemas/events.ts';
import { betterSqliteDialect } from '../../src/storage/dialects/better-sqlite3.ts';
import { createMemoryStore } from '../../src/storage/memory.ts';
import { migrate } from '../../src/storage/migrations.ts';
import { createRepository } from '../../src/storage/repository.ts';
import type { Database } from '../../src/storage/schema.ts';
import { z } from 'zod';

/**
 * A scheduler with a manual clock: time moves only when a test says so. It runs on the in-memory store
 * unless a test passes `dbUrl` (a SQLite file, for tests that restart on the same data).
 * The `scripted` handler does whatever the test queued for the next attempt (resolve, throw, hang).
 */
export type Script = (ctx: HandlerContext) => Promise<void>;

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

export async function createHarness(options: Partial<SchedulerOptions> & { start?: number; dbUrl?: string; keepOpen?: boolean; extraHandlers?: HandlerDefinition<never>[] } = {}): Promise<Harness> {
  const repo = options.dbUrl === undefined ? createMemoryStore() : await sqliteStore(options.dbUrl);
  const inserted: RunRecord[] = [];
  const store = {
    ...repo,
    write(op: WriteOp) {
      if (op.op === 'run.insert') inserted.push({ ...op.run });
      repo.write(op);
    },
  };
  const clock = createManualClock(options.start ?? at('2026-01-01T00:00:00Z'));
  const queue: Script[] = [];
  const calls: HandlerContext[] = [];
  const scripted: HandlerDefinition<Record<string, unknown>> = {
    name: 'scripted',
    config: z.record(z.string(), z.unknown()),
    run: async (ctx) => {
      calls.push(ctx);
      const step = queue.shift();
      if (step) await step(ctx);
    },
  };
  const handlers = createHandlerRegistry([scripted as HandlerDefinition<never>, ...(options.extraHandlers ?? [])]);
  const scheduler = createScheduler({ store, handlers, clock, statusIntervalMs: 0, ...options });
  const events: StoredEvent[] = [];
  const waiters = new Set<{ pred: (e: StoredEvent) => boolean; resolve: (e: StoredEvent) => void }>();
  scheduler.events.on((e) => {
    events.push(e);
    for (const w of waiters) if (w.pred(e)) {
      waiters.delete(w);
      w.resolve(e);
    }
  });
  await scheduler.start();
  return {
    clock,
    repo,
    scheduler,
    events,
    inserted,
    calls,
    script: (...steps) => queue.push(...steps),
    async addAgent(id, extra = {}) {
      const a: AgentRecord = {
        id, owner: 'alice', name: id, handler: 'scripted', config: {}, description: null, timeoutMs: null, maxRetries: null,
        status: 'IDLE', lastRunAt: null, lastError: null, retryCount: 0, backoffUntil: null, createdAt: clock.now(), updatedAt: clock.now(), ...extra,
      };
      await repo.insertAgent(a);
      return a;
    },
    waitFor: (pred) => new Promise((resolve) => waiters.add({ pred, resolve })),
    eventually(pred) {
      const seen = events.find(pred);
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.add({ pred, resolve }));
    },
    async runUntil(agent, type) {
      const seen = new Promise<StoredEvent>((resolve) => waiters.add({ pred: (e) => e.type === type && e.agentId === agent.id, resolve }));
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
      await scheduler.stop(0);
      await repo[Symbol.asyncDispose]();
    },
  };
}

async function sqliteStore(url: string): Promise<Store> {
  const db = new Kysely<Database>({ dialect: betterSqliteDialect(url) });
  await migrate(db);
  return createRepository(db);
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
