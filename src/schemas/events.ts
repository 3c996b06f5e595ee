import { z } from 'zod';
import { budgetPeriod, runUsage } from './run.ts';
import { schedulerStats } from './schedule.ts';

/** Live events, with the names and payload fields of the published API (README, "Socket.IO"); runId, attempt, willRetry, nextRetryAt are our additions. */
const base = { agentId: z.string(), jobId: z.string(), timestamp: z.string() };

export const agentStarted = z.object({ ...base, runId: z.string(), attempt: z.number(), status: z.literal('started') });
export const agentProgress = z.object({
  ...base,
  runId: z.string(),
  progress: z.number(),
  message: z.string().optional(),
  currentStep: z.string().optional(),
  totalSteps: z.number().optional(),
  /** The text streamed since the previous progress event (an `llm` run): a run's deltas, in order, are its output. */
  delta: z.string().optional(),
});
export const agentCompleted = z.object({ ...base, runId: z.string(), attempt: z.number(), status: z.literal('completed'), duration: z.number(), usage: runUsage.nullable() });
export const agentFailed = z.object({
  ...base,
  runId: z.string(),
  attempt: z.number(),
  status: z.literal('failed'),
  error: z.string(),
  willRetry: z.boolean(),
  nextRetryAt: z.string().nullable(),
  usage: runUsage.nullable(),
});
export const agentCancelled = z.object({ ...base, runId: z.string(), status: z.literal('cancelled') });
export const agentPaused = z.object({ ...base, status: z.literal('paused') });
export const agentResumed = z.object({ ...base, status: z.literal('resumed'), nextRunAt: z.string().nullable() });
export const agentBudgetExceeded = z.object({
  agentId: z.string(),
  jobId: z.string(),
  period: budgetPeriod,
  /** The period's totals when the budget was crossed. */
  costUsd: z.number(),
  tokens: z.number(),
  /** The next period's start, when the job resumes by itself. */
  resumesAt: z.string(),
  timestamp: z.string(),
});
/**
 * Our addition: the agent was deleted. The last event a subscription to it gets: a tRPC subscription then completes,
 * a Socket.IO socket is taken out of the agent's room. Stored with no `agentId` of its own (the id is in `data`),
 * so a new agent under the same id never replays it; every instance reads it from the events table and ends its
 * own subscribers' subscriptions.
 */
export const agentDeleted = z.object({ agentId: z.string(), timestamp: z.string() });
export const schedulerStatus = z.object({ stats: schedulerStats, timestamp: z.string() });

export type AgentEventMap = {
  'agent:started': z.output<typeof agentStarted>;
  'agent:progress': z.output<typeof agentProgress>;
  'agent:completed': z.output<typeof agentCompleted>;
  'agent:failed': z.output<typeof agentFailed>;
  'agent:cancelled': z.output<typeof agentCancelled>;
  'agent:paused': z.output<typeof agentPaused>;
  'agent:resumed': z.output<typeof agentResumed>;
  'agent:budget-exceeded': z.output<typeof agentBudgetExceeded>;
  'agent:deleted': z.output<typeof agentDeleted>;
};
export type AgentEventName = keyof AgentEventMap;
export type SchedulerStatusEvent = z.output<typeof schedulerStatus>;

export type EventMap = AgentEventMap & { 'scheduler:status': SchedulerStatusEvent };
export type EventName = keyof EventMap;

/** A stored, numbered event: what streams yield and resume from. */
export type StoredEvent = {
  [K in EventName]: { id: number; type: K; agentId: string | null; data: EventMap[K] };
}[EventName];

/** The last event id a client saw: wsLink sends it back as a string on reconnect. */
export const lastEventId = z
  .union([z.number(), z.string()])
  .transform((v) => Number(v))
  .pipe(z.number().int().min(0, { error: 'expected an event id' }))
  .nullish();
