import { createInterface } from 'node:readline';
import { Kysely } from 'kysely';
import { z } from 'zod';
import { createHandlerRegistry, type HandlerDefinition } from '../src/core/handlers.ts';
import { createScheduler } from '../src/core/scheduler.ts';
import { postgresDialect } from '../src/storage/dialects/postgres.ts';
import { createRepository } from '../src/storage/repository.ts';
import type { Database } from '../src/storage/schema.ts';

/**
 * One instance of the PostgreSQL dispatch benchmark, in its own process: a scheduler on the shared
 * database with a no-op handler that counts what it ran, per slot. Prints `ready`, and on `stop` (stdin)
 * prints its counts as JSON and exits.
 */
const [url, instanceId, concurrency] = process.argv.slice(2) as [string, string, string];
const ran = new Map<string, number>();
const noop: HandlerDefinition<Record<string, unknown>> = {
  name: 'noop',
  config: z.record(z.string(), z.unknown()),
  run: async (ctx) => void ran.set(`${ctx.jobId}@${ctx.scheduledAt}`, (ran.get(`${ctx.jobId}@${ctx.scheduledAt}`) ?? 0) + 1),
};
const repo = createRepository(new Kysely<Database>({ dialect: postgresDialect(url) }));
const scheduler = createScheduler({ store: repo, handlers: createHandlerRegistry([noop as HandlerDefinition<never>]), maxConcurrent: Number(concurrency), instanceId });
await scheduler.start();
process.stdout.write('ready\n');
for await (const line of createInterface({ input: process.stdin })) {
  if (line !== 'stop') continue;
  await scheduler.stop(0);
  await repo[Symbol.asyncDispose]();
  // Exit only once the (large) line is written: a pipe drains asynchronously.
  process.stdout.write(`${JSON.stringify(Object.fromEntries(ran))}\n`, () => process.exit(0));
}
