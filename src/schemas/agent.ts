import { z } from 'zod';
import { agentStatus, idSchema, isoDate } from './common.ts';
import { budgetPeriod } from './run.ts';

const positive = (what: string) => z.number({ error: `expected ${what}` }).positive({ error: `expected ${what}` });
/** What an agent may spend per UTC day or month (CONTRACT §9): crossing a figure pauses its job until the next period. */
export const budgetInput = z
  .strictObject({
    period: budgetPeriod,
    maxCostUsd: positive('a positive number of US dollars').optional(),
    maxTokens: positive('a positive whole number of tokens').int({ error: 'expected a positive whole number of tokens' }).optional(),
  }, { error: 'expected { period, maxCostUsd?, maxTokens? }' })
  .refine((b) => b.maxCostUsd !== undefined || b.maxTokens !== undefined, { error: 'expected maxCostUsd or maxTokens (or both)' })
  .meta({ id: 'BudgetInput', examples: [{ period: 'day', maxCostUsd: 2.5 }] });

const config = z.record(z.string(), z.unknown(), { error: 'expected a JSON object' }).meta({
  description: "The handler's settings, checked by its schema: demo `{ steps?, stepMs?, failTimes? }`, webhook `{ url, headers?, timeoutMs? }`, llm `{ baseUrl, model, prompt, … }`",
  examples: [{ steps: 4, stepMs: 250 }],
});

export const agentCreateInput = z.strictObject({
  id: idSchema.optional(),
  name: z.string({ error: 'expected a string' }).trim().min(1, { error: 'expected a non-empty string' }).max(200),
  handler: z
    .string({ error: 'expected a handler name' })
    .min(1, { error: 'expected a handler name' })
    .max(100)
    .meta({ description: 'A registered handler: the built-in `demo`, `webhook` and `llm`, or one the embedding app registers', examples: ['demo'] }),
  config: config.optional(),
  description: z.string().max(2000).nullable().optional(),
  timeoutMs: z.int().min(1).max(2 ** 31 - 1).nullable().optional(),
  maxRetries: z.int().min(0).max(100).nullable().optional(),
  budget: budgetInput.nullable().optional(),
}).meta({ id: 'AgentCreate', examples: [{ id: 'writer', name: 'Writer', handler: 'demo', config: { steps: 4, stepMs: 250 } }] });
export type AgentCreateInput = z.output<typeof agentCreateInput>;

export const agentUpdateInput = agentCreateInput.omit({ id: true, handler: true }).partial();
export type AgentUpdateInput = z.output<typeof agentUpdateInput>;

export const agentOutput = z.object({
  id: z.string(),
  name: z.string(),
  handler: z.string(),
  config: z.record(z.string(), z.unknown()),
  description: z.string().nullable(),
  timeoutMs: z.number().nullable(),
  maxRetries: z.number().nullable(),
  budget: z.object({ period: budgetPeriod, maxCostUsd: z.number().optional(), maxTokens: z.number().optional() }).meta({ id: 'Budget' }).nullable(),
  status: agentStatus,
  scheduleExpression: z.string().nullable(),
  scheduleEnabled: z.boolean(),
  nextRunAt: isoDate.nullable(),
  lastRunAt: isoDate.nullable(),
  lastError: z.string().nullable(),
  owner: z.string(),
  createdAt: isoDate,
  updatedAt: isoDate,
}).meta({
  id: 'Agent',
  examples: [{
    id: 'writer', name: 'Writer', handler: 'demo', config: { steps: 4, stepMs: 250, failTimes: 0 }, description: null, timeoutMs: null, maxRetries: null, budget: null,
    status: 'IDLE', scheduleExpression: '*/5 * * * *', scheduleEnabled: true, nextRunAt: '2026-01-01T09:05:00.000Z', lastRunAt: '2026-01-01T09:00:00.000Z',
    lastError: null, owner: 'alice', createdAt: '2026-01-01T08:00:00.000Z', updatedAt: '2026-01-01T08:00:00.000Z',
  }],
});
export type AgentOutput = z.output<typeof agentOutput>;

/** What deleting an agent answers. */
export const agentDeleted = z.object({ id: z.string(), deleted: z.literal(true) }).meta({ id: 'AgentDeleted' });
