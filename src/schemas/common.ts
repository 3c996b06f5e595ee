import { z } from 'zod';

/** Agent and job ids (README, "Concepts"): global, 1 to 64 characters of A-Z, a-z, 0-9, _ or -. */
export const idSchema = z
  .string({ error: 'expected a string' })
  .regex(/^[A-Za-z0-9_-]{1,64}$/, { error: 'expected 1 to 64 characters of A-Z, a-z, 0-9, _ or -' });

export const isoDate = z.string().describe('ISO 8601 timestamp');

export const PRIORITIES = { LOW: 1, NORMAL: 2, HIGH: 3, CRITICAL: 4 } as const;
export type PriorityName = keyof typeof PRIORITIES;
export const priorityName = z.enum(['LOW', 'NORMAL', 'HIGH', 'CRITICAL'], {
  error: 'expected one of "LOW", "NORMAL", "HIGH", "CRITICAL"',
});

export const AGENT_STATUSES = ['IDLE', 'RUNNING', 'ERROR', 'PAUSED', 'COMPLETED'] as const;
export type AgentStatus = (typeof AGENT_STATUSES)[number];
export const agentStatus = z.enum(AGENT_STATUSES);

export const RUN_STATUSES = ['queued', 'running', 'completed', 'failed', 'cancelled', 'skipped'] as const;
export type RunStatus = (typeof RUN_STATUSES)[number];
export const RUN_TRIGGERS = ['schedule', 'manual', 'retry', 'catchup'] as const;
export type RunTrigger = (typeof RUN_TRIGGERS)[number];

export const agentIdParam = z.object({ agentId: idSchema });
export const jobParams = z.object({ agentId: idSchema, jobId: idSchema });
export const runIdParam = z.object({ runId: z.string().min(1).max(100) });
