import { Kysely } from 'kysely';
import { z } from 'zod';
import { createHandlerRegistry, type HandlerDefinition } from '../src/core/handlers.ts';
import { createScheduler } from '../src/core/scheduler.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { migrate } from '../src/storage/migrator.ts';
import { createRepository } from '../src/storage/repository.ts';
import type { Database } from '../src/storage/schema.ts';
import { Cron } from 'croner';

/**
 * Runs in its own process (so RSS is its own), built to plain JavaScript as `npm start` runs the server (bench/scale.ts):
 * `create N file`, `reload file`, or `croner N`.
 */
const [mode, a, b] = process.argv.slice(2);
const gc = () => (globalThis as { gc?: () => void }).gc?.();
const mb = (n: number) => Math.round((n / 2 ** 20) * 10) / 10;
const noop: HandlerDefinition<Record<string, unknown>> = { name: 'noop', config: z.record(z.string(), z.unknown()), run: async () => {} };
const EXPRESSIONS = ['0 * * * *', '*/15 * * * *', '0 9 * * 1-5', '30 2 * * *', '@daily', '0 */6 * * *', '5 4 * * 0', '0 0 1 * *'];

async function idleCpu(ms: number): Promise<number> {
  const before = process.cpuUsage();
  await new Promise((r) => setTimeout(r, ms));
  const used = process.cpuUsage(before);
  return ((used.user + used.system) / 1000 / ms) * 100;
}

if (mode === 'create') {
  const n = Number(a);
  const db = new Kysely<Database>({ dialect: betterSqliteDialect(`file:${b}`) });
  await migrate(db);
  const repo = createRepository(db);
  const scheduler = createScheduler({ store: repo, handlers: createHandlerRegistry([noop as HandlerDefinition<never>]) });
  await scheduler.start();
  const t = Date.now();
  for (let i = 0; i < n; i += 500) {
    await db.insertInto('agents').values(Array.from({ length: Math.min(500, n - i) }, (_, j) => ({ id: `s${i + j}`, owner: 'bench', name: 's', handler: 'noop', config: '{}', description: null, timeout_ms: null, max_retries: null, status: 'IDLE', last_run_at: null, last_error: null, retry_count: 0, backoff_until: null, created_at: t, updated_at: t }))).execute();
  }
  gc();
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  const start = performance.now();
  for (let i = 0; i < n; i += 5000) {
    const agents = await repo.getAgents(Array.from({ length: Math.min(5000, n - i) }, (_, j) => `s${i + j}`));
    await Promise.all(agents.map((ag, k) => scheduler.setSchedule(ag, { jobId: ag.id, expression: EXPRESSIONS[(i + k) % EXPRESSIONS.length]!, timezone: 'UTC', priority: 2, enabled: true, catchUp: true })));
  }
  await repo.flush();
  const createMs = performance.now() - start;
  gc();
  const mem = process.memoryUsage();
  const cpu = await idleCpu(Number(process.env['IDLE_MS'] ?? 10_000));
  console.log(JSON.stringify({ createMs, rssBeforeMb: mb(rssBefore), rssMb: mb(mem.rss), rssDeltaMb: mb(mem.rss - rssBefore), heapMb: mb(mem.heapUsed), heapDeltaMb: mb(mem.heapUsed - heapBefore), idleCpuPct: cpu, scheduled: scheduler.stats().scheduledTasksCount }));
  await scheduler.stop(0);
  await repo[Symbol.asyncDispose]();
} else if (mode === 'reload') {
  const db = new Kysely<Database>({ dialect: betterSqliteDialect(`file:${a}`) });
  const repo = createRepository(db);
  const scheduler = createScheduler({ store: repo, handlers: createHandlerRegistry([noop as HandlerDefinition<never>]) });
  gc();
  const before = process.memoryUsage();
  const start = performance.now();
  await scheduler.start();
  const reloadMs = performance.now() - start;
  // The start's pass over every schedule (missed fires) goes on in slices after `start`: measure the process once it is idle.
  await new Promise((r) => setTimeout(r, 2000));
  gc();
  const mem = process.memoryUsage();
  console.log(JSON.stringify({
    reloadMs, scheduled: scheduler.stats().scheduledTasksCount, rssBeforeMb: mb(before.rss), rssMb: mb(mem.rss), rssDeltaMb: mb(mem.rss - before.rss),
    heapDeltaMb: mb(mem.heapUsed - before.heapUsed), heapTotalMb: mb(mem.heapTotal),
  }));
  await scheduler.stop(0);
  await repo[Symbol.asyncDispose]();
} else if (mode === 'croner') {
  const n = Number(a);
  gc();
  const rssBefore = process.memoryUsage().rss;
  const heapBefore = process.memoryUsage().heapUsed;
  const start = performance.now();
  const jobs = Array.from({ length: n }, (_, i) => new Cron(EXPRESSIONS[i % EXPRESSIONS.length]!, () => {}));
  const createMs = performance.now() - start;
  gc();
  const mem = process.memoryUsage();
  const cpu = await idleCpu(Number(process.env['IDLE_MS'] ?? 10_000));
  console.log(JSON.stringify({ createMs, rssMb: mb(mem.rss), rssDeltaMb: mb(mem.rss - rssBefore), heapDeltaMb: mb(mem.heapUsed - heapBefore), idleCpuPct: cpu }));
  for (const j of jobs) j.stop();
}
process.exit(0);
