import { z } from 'zod';
import { isoDate, isoInstant, RUN_STATUSES, RUN_TRIGGERS } from './common.ts';

/** What a run used (CONTRACT §9); `costUsd` null when neither given nor priced by LLM_PRICES. */
export const runUsage = z.object({
  model: z.string(),
  inputTokens: z.number().int(),
  outputTokens: z.number().int(),
  costUsd: z.number().nullable(),
}).meta({ id: 'RunUsage', examples: [{ model: 'gpt-4o-mini', inputTokens: 120, outputTokens: 380, costUsd: 0.00025 }] });
export type RunUsageOutput = z.output<typeof runUsage>;

export const budgetPeriod = z.enum(['day', 'month'], { error: 'expected "day" or "month"' }).meta({ id: 'BudgetPeriod', description: 'A UTC day or month' });

export const runOutput = z.object({
  id: z.string(),
  agentId: z.string(),
  jobId: z.string(),
  trigger: z.enum(RUN_TRIGGERS).meta({ id: 'RunTrigger' }),
  attempt: z.number().int(),
  status: z.enum(RUN_STATUSES).meta({ id: 'RunStatus' }),
  scheduledAt: isoDate,
  startedAt: isoDate.nullable(),
  finishedAt: isoDate.nullable(),
  durationMs: z.number().nullable(),
  progress: z.number().nullable(),
  error: z.string().nullable(),
  /** The instance that started it; null before it starts. */
  instanceId: z.string().nullable(),
  /** The first 500 characters of its output; null when it produced nothing. */
  outputPreview: z.string().nullable(),
  outputTruncated: z.boolean(),
  usage: runUsage.nullable(),
}).meta({
  id: 'Run',
  examples: [{
    id: 'run_8f3a', agentId: 'writer', jobId: 'writer', trigger: 'schedule', attempt: 1, status: 'completed', scheduledAt: '2026-01-01T09:00:00.000Z',
    startedAt: '2026-01-01T09:00:00.012Z', finishedAt: '2026-01-01T09:00:01.020Z', durationMs: 1008, progress: 100, error: null, instanceId: 'inst_1',
    outputPreview: null, outputTruncated: false, usage: null,
  }],
});
export type RunOutput = z.output<typeof runOutput>;

/** One run, whole: its list fields and its whole output (at most 256 KiB of UTF-8). */
export const runDetail = runOutput.extend({ output: z.string().nullable() }).meta({ id: 'RunDetail' });
export type RunDetail = z.output<typeof runDetail>;

export const usageQuery = z.object({ from: isoInstant.optional(), to: isoInstant.optional() });

const usageFigures = { runs: z.number().int(), inputTokens: z.number().int(), outputTokens: z.number().int(), costUsd: z.number() };
/** An agent's usage over a range (GET /api/agents/:agentId/usage), with its UTC days. */
export const usageReport = z.object({
  ...usageFigures,
  byDay: z.array(z.object({ day: z.string().meta({ format: 'date', examples: ['2026-01-01'] }), ...usageFigures })),
}).meta({ id: 'UsageReport' });
export type UsageReportOutput = z.output<typeof usageReport>;

export const runsQuery = z.object({
  limit: z.coerce.number({ error: 'expected a whole number from 1 to 1000' }).int({ error: 'expected a whole number from 1 to 1000' }).min(1, { error: 'expected a whole number from 1 to 1000' }).max(1000, { error: 'expected a whole number from 1 to 1000' }).default(50),
});

const keyError = { error: 'expected 1 to 200 visible ASCII characters' };
/** A manual run's idempotency key (the `Idempotency-Key` header over REST): the same key answers the same run for 24 h. */
export const idempotencyKey = z.string(keyError).min(1, keyError).max(200, keyError).regex(/^[\x20-\x7e]+$/, keyError)
  .meta({ description: 'The same key for the same agent answers the same runId for 24 h', examples: ['9f1c2e6a-0d4b-4c1e-9a57-3f0e8b1d2c4a'] });

export const runAccepted = z.object({ runId: z.string() }).meta({ id: 'RunAccepted' });
export const cancelResult = z.object({ runId: z.string(), status: z.literal('cancelled') }).meta({ id: 'RunCancelled' });
