import { Cron } from 'croner';
import { Kysely } from 'kysely';
import { z } from 'zod';
import { createHandlerRegistry, type HandlerDefinition } from '../src/core/handlers.ts';
import { createScheduler } from '../src/core/scheduler.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { migrate } from '../src/storage/migrator.ts';
import { createRepository } from '../src/storage/repository.ts';
import type { Database } from '../src/storage/schema.ts';
import { percentile, quick, record, round } from './harness.ts';

/**
 * Fire accuracy: JOBS schedules on `* * * * * *` for SECONDS seconds on the real clock; lateness is a
 * run's start minus its scheduled instant, with enough slots that the queue never saturates.
 * Baseline: the same jobs as bare croner callbacks.
 */
const JOBS = quick ? 50 : 1000;
const SECONDS = quick ? 3 : 30;
/** Fires in the first seconds are left out of the figures: they share the loop with setup and JIT warm-up. */
const WARMUP_MS = 2000;

async function ours(dbFile: string): Promise<number[]> {
  const db = new Kysely<Database>({ dialect: betterSqliteDialect(`file:${dbFile}`) });
  await migrate(db);
  const repo = createRepository(db);
  const lateness: number[] = [];
  const warmEnd = Date.now() + WARMUP_MS;
  const noop: HandlerDefinition<Record<string, unknown>> = {
    name: 'noop',
    config: z.record(z.string(), z.unknown()),
    run: async (ctx) => void (ctx.scheduledAt >= warmEnd && lateness.push(Date.now() - ctx.scheduledAt)),
  };
  const scheduler = createScheduler({ store: repo, handlers: createHandlerRegistry([noop as HandlerDefinition<never>]), maxConcurrent: JOBS * 2 });
  await scheduler.start();
  const t = Date.now();
  await db.insertInto('agents').values(Array.from({ length: JOBS }, (_, i) => ({ id: `f${i}`, owner: 'bench', name: 'f', handler: 'noop', config: '{}', description: null, timeout_ms: null, max_retries: null, status: 'IDLE', last_run_at: null, last_error: null, retry_count: 0, backoff_until: null, created_at: t, updated_at: t }))).execute();
  const agents = await repo.getAgents(Array.from({ length: JOBS }, (_, i) => `f${i}`));
  await Promise.all(agents.map((a) => scheduler.setSchedule(a, { jobId: a.id, expression: '* * * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: false })));
  await new Promise((r) => setTimeout(r, WARMUP_MS + SECONDS * 1000));
  await scheduler.stop(1000);
  await repo[Symbol.asyncDispose]();
  return lateness;
}

async function croner(): Promise<number[]> {
  const lateness: number[] = [];
  const warmEnd = Date.now() + WARMUP_MS;
  const jobs = Array.from({ length: JOBS }, () => new Cron('* * * * * *', () => void (Date.now() >= warmEnd && lateness.push(Date.now() % 1000))));
  await new Promise((r) => setTimeout(r, WARMUP_MS + SECONDS * 1000));
  for (const j of jobs) j.stop();
  return lateness;
}

export async function benchFire(tmp: string): Promise<void> {
  const mine = (await ours(`${tmp}/fire.db`)).sort((a, b) => a - b);
  const base = (await croner()).sort((a, b) => a - b);
  const expected = JOBS * SECONDS;
  for (const [p, target] of [[50, 5], [99, 15]] as const) {
    const v = percentile(mine, p);
    record({ name: `fire lateness p${p}, ${JOBS} coincident jobs`, value: v, unit: 'ms', baseline: 'bare croner callbacks', baselineValue: percentile(base, p), target: `≤ ${target} ms`, met: v <= target, lowerIsBetter: true });
  }
  record({ name: `fire lateness max, ${JOBS} coincident jobs`, value: mine.at(-1) ?? NaN, unit: 'ms', baseline: 'bare croner callbacks', baselineValue: base.at(-1) ?? NaN, target: null, met: null, lowerIsBetter: true });
  record({ name: `fires in ${SECONDS} s after warm-up (expected ≈ ${expected})`, value: mine.length, unit: 'runs', baseline: 'bare croner callbacks', baselineValue: base.length, target: `≈ ${expected}`, met: Math.abs(mine.length - expected) <= 2 * JOBS, note: `${round((100 * mine.length) / expected)} % of slots` });
}
