import { Queue, Worker } from 'bullmq';
import { Kysely } from 'kysely';
import PQueue from 'p-queue';
import { z } from 'zod';
import { createManualClock } from '../src/core/clock.ts';
import { createHandlerRegistry, type HandlerDefinition } from '../src/core/handlers.ts';
import { createScheduler } from '../src/core/scheduler.ts';
import type { AgentRecord } from '../src/core/store.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { migrate } from '../src/storage/migrator.ts';
import { createRepository } from '../src/storage/repository.ts';
import type { Database } from '../src/storage/schema.ts';
import { quick, record, round } from './harness.ts';

/**
 * Dispatch throughput: N no-op runs made due at once (N schedules firing at one instant), carried
 * through the real path — queue, priority, the batched writes of each run and its events — at
 * concurrency 5, until every run is `completed` on disk. Baselines: BullMQ on the local Redis with a
 * worker of concurrency 5, and a bare p-queue with no persistence (the ceiling).
 */
const N = quick ? 500 : 20_000;
const CONCURRENCY = 5;

async function ours(dbFile: string): Promise<number> {
  const db = new Kysely<Database>({ dialect: betterSqliteDialect(`file:${dbFile}`) });
  await migrate(db);
  const repo = createRepository(db);
  const clock = createManualClock(Date.parse('2026-01-01T00:00:00Z'));
  let completed = 0;
  let allDone!: () => void;
  const done = new Promise<void>((r) => (allDone = r));
  const noop: HandlerDefinition<Record<string, unknown>> = { name: 'noop', config: z.record(z.string(), z.unknown()), run: async () => {} };
  const scheduler = createScheduler({ store: repo, handlers: createHandlerRegistry([noop as HandlerDefinition<never>]), clock, maxConcurrent: CONCURRENCY });
  scheduler.events.on((e) => void (e.type === 'agent:completed' && ++completed === N && allDone()));
  await scheduler.start();
  const t = clock.now();
  const agents: AgentRecord[] = Array.from({ length: N }, (_, i) => ({
    id: `a${i}`, owner: 'bench', name: `a${i}`, handler: 'noop', config: {}, description: null, timeoutMs: null, maxRetries: null,
    status: 'IDLE', lastRunAt: null, lastError: null, retryCount: 0, backoffUntil: null, budget: null, createdAt: t, updatedAt: t,
  }));
  for (let i = 0; i < N; i += 500) await db.insertInto('agents').values(agents.slice(i, i + 500).map((a) => ({ id: a.id, owner: a.owner, name: a.name, handler: a.handler, config: '{}', description: null, timeout_ms: null, max_retries: null, status: 'IDLE', last_run_at: null, last_error: null, retry_count: 0, backoff_until: null, created_at: t, updated_at: t }))).execute();
  const setupStart = performance.now();
  await Promise.all(agents.map((a, i) => scheduler.setSchedule(a, { jobId: a.id, expression: '0 0 * * *', timezone: 'UTC', priority: 1 + (i % 4), enabled: true, catchUp: true })));
  await repo.flush();
  process.stderr.write(`  setup: ${Math.round(performance.now() - setupStart)} ms\n`);

  const { Session } = await import('node:inspector/promises');
  const session = process.env['BENCH_PROFILE'] ? new Session() : undefined;
  if (session) { session.connect(); await session.post('Profiler.enable'); await session.post('Profiler.start'); }
  const start = performance.now();
  clock.set(Date.parse('2026-01-02T00:00:00Z')); // every schedule fires at this instant
  await done;
  const tDone = performance.now();
  await repo.flush();
  if (process.env['BENCH_DEBUG']) process.stderr.write(`  commits ${(globalThis as any).__commits} ops ${(globalThis as any).__ops}\n`);
  if (process.env['BENCH_DEBUG']) process.stderr.write(`  all completed after ${Math.round(tDone - start)} ms, flushed after ${Math.round(performance.now() - start)} ms\n`);
  const seconds = (performance.now() - start) / 1000;
  if (session) { const { profile } = await session.post('Profiler.stop'); (await import('node:fs')).writeFileSync(process.env['BENCH_PROFILE']!, JSON.stringify(profile)); }
  const onDisk = await db.selectFrom('runs').select((eb) => eb.fn.countAll<number>().as('n')).where('status', '=', 'completed').executeTakeFirstOrThrow();
  if (Number(onDisk.n) !== N) throw new Error(`expected ${N} completed runs on disk, found ${onDisk.n}`);
  await scheduler.stop(0);
  await repo[Symbol.asyncDispose]();
  return N / seconds;
}

async function bullmq(): Promise<number> {
  const connection = { host: '127.0.0.1', port: 6379, maxRetriesPerRequest: null };
  const name = `bench-${Date.now()}`;
  const queue = new Queue(name, { connection });
  await queue.waitUntilReady();
  let completed = 0;
  let allDone!: () => void;
  const done = new Promise<void>((r) => (allDone = r));
  const start = performance.now();
  const worker = new Worker(name, async () => {}, { connection, concurrency: CONCURRENCY });
  worker.on('completed', () => void (++completed === N && allDone()));
  for (let i = 0; i < N; i += 1000) {
    await queue.addBulk(Array.from({ length: Math.min(1000, N - i) }, (_, j) => ({ name: 'noop', data: { i: i + j }, opts: { priority: 1 + ((i + j) % 4) } })));
  }
  await done;
  const seconds = (performance.now() - start) / 1000;
  await worker.close();
  await queue.obliterate({ force: true });
  await queue.close();
  return N / seconds;
}

async function bare(): Promise<number> {
  const q = new PQueue({ concurrency: CONCURRENCY });
  const start = performance.now();
  for (let i = 0; i < N; i++) void q.add(async () => {}, { priority: 1 + (i % 4) });
  await q.onIdle();
  return N / ((performance.now() - start) / 1000);
}

/** Is Redis there? CI must have it (and fails loudly without it); elsewhere the BullMQ baseline is skipped, saying so. */
async function redisReachable(): Promise<boolean> {
  const { createConnection } = await import('node:net');
  return new Promise((resolve) => {
    const socket = createConnection({ host: '127.0.0.1', port: 6379 });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function benchDispatch(tmp: string): Promise<void> {
  const mine = await ours(`${tmp}/dispatch.db`);
  let bull: number | null = null;
  if (await redisReachable()) bull = await bullmq();
  else if (process.env['CI']) throw new Error('CI needs Redis at 127.0.0.1:6379 for the BullMQ baseline');
  else console.warn('bench: BullMQ baseline skipped: no Redis at 127.0.0.1:6379');
  const ceiling = await bare();
  const target = 30_000;
  record({ name: `dispatch: ${N} runs, persisted (vs BullMQ)`, value: round(mine), unit: 'runs/s', baseline: 'BullMQ on local Redis', baselineValue: bull === null ? null : round(bull), target: `≥ ${target.toLocaleString('en-US')} runs/s and ≥ 3× BullMQ`, met: mine >= target && (bull === null || mine >= 3 * bull) });
  record({ name: `dispatch: ${N} runs (vs bare p-queue)`, value: round(mine), unit: 'runs/s', baseline: 'bare p-queue, no persistence', baselineValue: round(ceiling), target: 'within 2× of the ceiling', met: mine * 2 >= ceiling });
}
