import { z } from 'zod';
import { agentStatus, idSchema, isoDate, priorityName } from './common.ts';

export const scheduleInput = z.strictObject({
  cronExpression: z.string({ error: 'expected a cron expression string' }).min(1, { error: 'expected a cron expression' }).max(200),
  priority: priorityName.default('NORMAL'),
  enabled: z.boolean({ error: 'expected a boolean' }).default(true),
  jobId: idSchema.optional(),
  timezone: z.string().min(1).max(100).default('UTC'),
  catchUp: z.boolean({ error: 'expected a boolean' }).default(true),
});
export type ScheduleInput = z.output<typeof scheduleInput>;

export const pauseReason = z.enum(['manual', 'budget']);

export const scheduleSummary = z.object({
  id: z.string(),
  name: z.string(),
  scheduleExpression: z.string().nullable(),
  scheduleEnabled: z.boolean(),
  nextRunAt: isoDate.nullable(),
});

export const taskDetails = z.object({
  agentId: z.string(),
  agentName: z.string(),
  priority: z.number().int().min(1).max(4),
  nextRunTime: isoDate.nullable(),
  retryCount: z.number().int(),
  lastError: z.string().nullable(),
  backoffUntil: isoDate.nullable(),
  isRunning: z.boolean(),
  isPaused: z.boolean(),
  /** Why it is paused (`manual`: pause; `budget`: its agent's budget, until the next period); null while not. */
  pauseReason: pauseReason.nullable(),
  jobId: z.string(),
  timezone: z.string(),
  catchUp: z.boolean(),
});

export const scheduleInfo = scheduleSummary.extend({
  lastRunAt: isoDate.nullable(),
  status: agentStatus,
  taskDetails: taskDetails.nullable(),
});
export type ScheduleInfo = z.output<typeof scheduleInfo>;

export const pauseResult = z.object({ agentId: z.string(), jobId: z.string(), status: z.literal('paused') });
export const resumeResult = z.object({
  agentId: z.string(),
  jobId: z.string(),
  status: z.literal('resumed'),
  nextRunAt: isoDate.nullable(),
});

export const schedulerStats = z.object({
  isRunning: z.boolean(),
  scheduledTasksCount: z.number().int(),
  runningAgentsCount: z.number().int(),
  queuedTasksCount: z.number().int(),
  maxConcurrentAgents: z.number().int(),
  pausedJobsCount: z.number().int(),
});
export type SchedulerStats = z.output<typeof schedulerStats>;

export const pausedJob = z.object({ agentId: z.string(), jobId: z.string(), pauseReason });

/** What setting a schedule answers. */
export const scheduleSetResult = scheduleSummary.extend({ jobId: z.string(), priority: z.string(), timezone: z.string() });
/** What removing a schedule answers. */
export const unscheduled = z.object({ agentId: z.string() });
