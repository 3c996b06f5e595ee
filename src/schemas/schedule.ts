import { z } from 'zod';
import { OVERLAP_POLICIES } from '../core/records.ts';
import { CATCH_UP_MAX_WINDOW_MS } from '../core/limits.ts';
import { parseDuration } from '../core/duration.ts';
import { agentStatus, idSchema, isoDate, isoInstant, priorityName } from './common.ts';

const windowError = { error: 'expected a duration like "90s", "30m", "1h" or "7d", at most 366d' };
/** A catch-up window: a whole number and a unit (ms, s, m, h, d), at most CATCH_UP_MAX_WINDOW_MS; parsed to milliseconds. */
export const catchUpWindow = z
  .string(windowError)
  .regex(/^[1-9][0-9]{0,9}(ms|s|m|h|d)$/, windowError)
  .transform((text, ctx) => {
    const ms = parseDuration(text);
    if (ms > CATCH_UP_MAX_WINDOW_MS) ctx.addIssue({ code: 'custom', message: windowError.error });
    return ms;
  })
  .meta({ description: 'Missed slots older than this are left alone: a whole number and a unit (ms, s, m, h, d), at most 366d', examples: ['1h'] });

/**
 * `true`: one run for the latest missed slot (the seed's rule); `false`: none (misses are recorded);
 * `{ policy, window? }`: `latest` or `all` (every missed slot, oldest first, at most 100), ignoring slots older than `window`.
 */
export const catchUpInput = z
  .union([
    z.boolean(),
    z.strictObject({
      policy: z.enum(['latest', 'all'], { error: 'expected "latest" or "all"' }).default('latest'),
      window: catchUpWindow.optional(),
    }),
  ], { error: 'expected true, false or { policy: "latest" | "all", window?: "1h" }' })
  .meta({ description: 'What a restart does with the slots missed while no instance ran: true (one run for the latest), false (none), or { policy, window }' });
export type CatchUpInput = z.output<typeof catchUpInput>;

export const overlapPolicy = z
  .enum(OVERLAP_POLICIES, { error: 'expected one of "skip", "queue-one", "cancel-previous", "allow"' })
  .meta({
    id: 'Overlap',
    description: 'A fire while a run of the agent is in progress: `skip` it (recorded), `queue-one` (it waits and starts after; at most one waits), `cancel-previous` (the running one is cancelled), `allow` (they overlap, still bounded by the slots)',
  });

/** How taskDetails shows a catch-up: as it was given (`true`/`false`), or the policy with its window in the largest whole unit. */
export const catchUpOutput = z.union([
  z.boolean(),
  z.object({ policy: z.enum(['latest', 'all']), window: z.string().optional() }),
]).meta({ id: 'CatchUp' });
export type CatchUpOutput = z.output<typeof catchUpOutput>;

export const scheduleInput = z.strictObject({
  cronExpression: z
    .string({ error: 'expected a cron expression string' })
    .min(1, { error: 'expected a cron expression' })
    .max(200)
    .meta({ description: '5 fields (minute hour day month weekday), an optional leading seconds field, or @hourly, @daily, @weekly, @monthly, @yearly', examples: ['*/5 * * * *'] }),
  priority: priorityName.default('NORMAL'),
  enabled: z.boolean({ error: 'expected a boolean' }).default(true),
  jobId: idSchema.optional(),
  timezone: z.string().min(1).max(100).meta({ description: 'An IANA time zone', examples: ['Europe/Berlin'] }).default('UTC'),
  catchUp: catchUpInput.default(true),
  overlap: overlapPolicy.default('skip'),
  jitterMs: z.number({ error: 'expected a whole number of milliseconds from 0 to 3600000' }).int({ error: 'expected a whole number of milliseconds from 0 to 3600000' }).min(0, { error: 'expected a whole number of milliseconds from 0 to 3600000' }).max(3_600_000, { error: 'expected a whole number of milliseconds from 0 to 3600000' }).default(0)
    .meta({ description: 'Each fire starts up to this long after its slot, by a delay fixed per slot (the same on every instance); scheduledAt stays the slot' }),
});
export type ScheduleInput = z.output<typeof scheduleInput>;

export const pauseReason = z.enum(['manual', 'budget']).meta({ id: 'PauseReason' });

export const scheduleSummary = z.object({
  id: z.string(),
  name: z.string(),
  scheduleExpression: z.string().nullable(),
  scheduleEnabled: z.boolean(),
  nextRunAt: isoDate.nullable(),
}).meta({ id: 'ScheduleSummary' });

export const taskDetails = z.object({
  agentId: z.string(),
  agentName: z.string(),
  priority: z.number().int().min(1).max(4).meta({ description: 'The priority as a number: LOW 1, NORMAL 2, HIGH 3, CRITICAL 4' }),
  nextRunTime: isoDate.nullable(),
  retryCount: z.number().int(),
  lastError: z.string().nullable(),
  backoffUntil: isoDate.nullable(),
  isRunning: z.boolean(),
  isPaused: z.boolean(),
  /** Why it is paused (`manual`: pause; `budget`: its agent's budget, until the next period); null while not. */
  pauseReason: pauseReason.nullable(),
  /** The note the pause was given; null without one or while not paused. */
  pauseNote: z.string().nullable(),
  /** When the pause ends by itself (a budget's next period, or the `until` it was given); null otherwise. */
  pausedUntil: isoDate.nullable(),
  jobId: z.string(),
  timezone: z.string(),
  catchUp: catchUpOutput,
  overlap: overlapPolicy,
  jitterMs: z.number().int(),
}).meta({ id: 'TaskDetails' });

export const scheduleInfo = scheduleSummary.extend({
  lastRunAt: isoDate.nullable(),
  status: agentStatus,
  taskDetails: taskDetails.nullable(),
}).meta({
  id: 'ScheduleInfo',
  examples: [{
    id: 'writer', name: 'Writer', scheduleExpression: '*/5 * * * *', scheduleEnabled: true, nextRunAt: '2026-01-01T09:05:00.000Z', lastRunAt: '2026-01-01T09:00:00.000Z', status: 'IDLE',
    taskDetails: {
      agentId: 'writer', agentName: 'Writer', priority: 3, nextRunTime: '2026-01-01T09:05:00.000Z', retryCount: 0, lastError: null, backoffUntil: null,
      isRunning: false, isPaused: false, pauseReason: null, pauseNote: null, pausedUntil: null, jobId: 'writer', timezone: 'UTC', catchUp: true, overlap: 'skip', jitterMs: 0,
    },
  }],
});
export type ScheduleInfo = z.output<typeof scheduleInfo>;

export const pauseResult = z.object({ agentId: z.string(), jobId: z.string(), status: z.literal('paused') }).meta({ id: 'JobPaused' });
export const resumeResult = z.object({
  agentId: z.string(),
  jobId: z.string(),
  status: z.literal('resumed'),
  nextRunAt: isoDate.nullable(),
}).meta({ id: 'JobResumed' });

export const schedulerStats = z.object({
  isRunning: z.boolean(),
  scheduledTasksCount: z.number().int(),
  runningAgentsCount: z.number().int(),
  queuedTasksCount: z.number().int(),
  maxConcurrentAgents: z.number().int(),
  pausedJobsCount: z.number().int(),
}).meta({ id: 'SchedulerStats', examples: [{ isRunning: true, scheduledTasksCount: 3, runningAgentsCount: 1, queuedTasksCount: 0, maxConcurrentAgents: 5, pausedJobsCount: 1 }] });
export type SchedulerStats = z.output<typeof schedulerStats>;

export const pausedJob = z.object({ agentId: z.string(), jobId: z.string(), pauseReason, pauseNote: z.string().nullable(), pausedUntil: isoDate.nullable() }).meta({ id: 'PausedJob' });
/** A pause's body (all optional): a note shown with the paused job, and when it resumes by itself. */
export const pauseInput = z.strictObject({
  note: z.string({ error: 'expected a string' }).max(500, { error: 'expected at most 500 characters' }).optional(),
  until: isoInstant.optional().meta({ description: 'Resumes by itself then (agent:resumed); a time in the future' }),
});
export type PauseInput = z.output<typeof pauseInput>;

/** What setting a schedule answers: the priority by name, as it was given. */
export const scheduleSetResult = scheduleSummary.extend({ jobId: z.string(), priority: priorityName, timezone: z.string() }).meta({
  id: 'ScheduleSet',
  examples: [{ id: 'writer', name: 'Writer', scheduleExpression: '*/5 * * * *', scheduleEnabled: true, nextRunAt: '2026-01-01T09:05:00.000Z', jobId: 'writer', priority: 'HIGH', timezone: 'UTC' }],
});
/** What removing a schedule answers. */
export const unscheduled = z.object({ agentId: z.string() }).meta({ id: 'Unscheduled' });

const countError = { error: 'expected a whole number from 1 to 100' };
/** `GET /api/agents/:agentId/schedule/preview`: the agent's schedule, or an unsaved expression and zone to check before saving. */
export const previewQuery = z.object({
  count: z.coerce.number(countError).int(countError).min(1, countError).max(100, countError).default(10),
  cronExpression: scheduleInput.shape.cronExpression.optional(),
  timezone: z.string().min(1).max(100).optional().meta({ description: "An IANA time zone (default: the schedule's, else UTC)" }),
});
export const previewFire = z.object({
  at: isoDate,
  local: z.string().meta({ description: "The wall time in the schedule's zone with its offset", examples: ['2026-03-08T03:00:00-04:00'] }),
  note: z.enum(['dst-gap', 'dst-repeat']).optional().meta({
    description: '`dst-gap`: that wall time does not exist that day and the fire moves; `dst-repeat`: the wall time happens twice that day',
  }),
}).meta({ id: 'PreviewFire' });
export type PreviewQuery = z.output<typeof previewQuery>;

/** `GET /api/agents/:agentId/ledger?from=ISO&to=ISO`: `from` inclusive, `to` exclusive. */
export const ledgerQuery = z.object({ from: isoInstant, to: isoInstant });
export const ledgerEntry = z.object({
  scheduledAt: isoDate,
  outcome: z.enum(['ran', 'skipped-overlap', 'skipped-paused', 'skipped-budget', 'missed-downtime', 'caught-up', 'backfilled', 'disabled', 'pending']),
  runId: z.string().optional(),
  note: z.string().optional().meta({ description: "`ran`: the run's final status (after its retries); a pause's note; why a slot was missed" }),
}).meta({ id: 'LedgerEntry' });

/** `POST /api/agents/:agentId/backfill`: one run per slot of the schedule in [from, to) (at most 1,000 slots). */
export const backfillInput = z.strictObject({
  from: isoInstant.meta({ description: 'The first slot considered (inclusive)' }),
  to: isoInstant.meta({ description: 'The end of the range (exclusive); not in the future' }),
});
export const backfillResult = z.object({
  runIds: z.array(z.string()).meta({ description: 'The runs queued, one per slot without a run yet, oldest slot first' }),
  skipped: z.number().int().meta({ description: 'Slots left alone because they already have a run' }),
}).meta({ id: 'Backfill', examples: [{ runIds: ['r_01', 'r_02'], skipped: 1 }] });
