import { z } from 'zod';
import { isoDate, RUN_STATUSES, RUN_TRIGGERS } from './common.ts';

export const runOutput = z.object({
  id: z.string(),
  agentId: z.string(),
  jobId: z.string(),
  trigger: z.enum(RUN_TRIGGERS),
  attempt: z.number().int(),
  status: z.enum(RUN_STATUSES),
  scheduledAt: isoDate,
  startedAt: isoDate.nullable(),
  finishedAt: isoDate.nullable(),
  durationMs: z.number().nullable(),
  progress: z.number().nullable(),
  error: z.string().nullable(),
  /** The instance that started it; null before it starts. */
  instanceId: z.string().nullable(),
});
export type RunOutput = z.output<typeof runOutput>;

export const runsQuery = z.object({
  limit: z.coerce.number({ error: 'expected a whole number from 1 to 1000' }).int({ error: 'expected a whole number from 1 to 1000' }).min(1, { error: 'expected a whole number from 1 to 1000' }).max(1000, { error: 'expected a whole number from 1 to 1000' }).default(50),
});

export const runAccepted = z.object({ runId: z.string() });
export const cancelResult = z.object({ runId: z.string(), status: z.literal('cancelled') });
