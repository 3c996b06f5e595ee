import { z } from 'zod';

/** Agent and job ids (README, "Concepts"): global, 1 to 64 characters of A-Z, a-z, 0-9, _ or -. */
export const idSchema = z
  .string({ error: 'expected a string' })
  .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'expected 1 to 64 characters of A-Z, a-z, 0-9, _ or -' })
  .meta({ examples: ['writer'] });

/**
 * An instant as the API answers it (`Date#toISOString()`, always UTC). `format: date-time` is metadata for the
 * OpenAPI document, so generated clients know it is a time; outputs are not validated at run time.
 */
/** An instant given by a caller (ISO 8601 with Z or an offset), parsed to epoch milliseconds. */
export const isoInstant = z.iso.datetime({ offset: true, error: 'expected an ISO 8601 date-time' }).transform((s) => Date.parse(s));

export const isoDate = z.string().meta({ description: 'ISO 8601 timestamp (UTC)', format: 'date-time', examples: ['2026-01-01T09:00:00.000Z'] });

export const PRIORITIES = { LOW: 1, NORMAL: 2, HIGH: 3, CRITICAL: 4 } as const;
export type PriorityName = keyof typeof PRIORITIES;
export const priorityName = z
  .enum(['LOW', 'NORMAL', 'HIGH', 'CRITICAL'], { error: 'expected one of "LOW", "NORMAL", "HIGH", "CRITICAL"' })
  .meta({ id: 'Priority', description: 'Waiting runs start highest priority first (LOW 1, NORMAL 2, HIGH 3, CRITICAL 4), then oldest first' });

export const AGENT_STATUSES = ['IDLE', 'RUNNING', 'ERROR', 'PAUSED', 'COMPLETED'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];
export const agentStatus = z.enum(AGENT_STATUSES).meta({ id: 'AgentStatus' });

export const RUN_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'skipped'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const RUN_TRIGGERS = ['schedule', 'manual', 'retry', 'catchup', 'backfill'] as const;
export type RunTrigger = (typeof RUN_TRIGGERS)[number];

export const agentIdParam = z.object({ agentId: idSchema });
export const jobParams = z.object({ agentId: idSchema, jobId: idSchema });
export const runIdParam = z.object({ runId: z.string().min(1).max(100) });
