import { DAY_MS, totalsOf } from '../core/budgets.ts';
import { OUTPUT_PREVIEW_CHARS } from '../core/limits.ts';
import { usageOf } from '../core/outputs.ts';
import type { AgentRecord, InstanceRecord, RunRecord, ScheduleRecord, UsageDay } from '../core/store.ts';
import type { AgentOutput } from '../schemas/agent.ts';
import type { PriorityName } from '../schemas/common.ts';
import type { InstanceOutput } from '../schemas/instance.ts';
import type { RunDetail, RunOutput, UsageReportOutput } from '../schemas/run.ts';
import type { CatchUpInput, CatchUpOutput, ScheduleInfo } from '../schemas/schedule.ts';
import { formatDuration } from '../core/duration.ts';
import type { ScheduleSpec } from '../core/schedules.ts';

/**
 * Records → the API's data objects (ISO times, the field names the README documents). Every answer a
 * service gives is shaped here, once, and every transport sends it as it is (REST inside its envelope).
 */
export const iso = (ms: number | null): string | null => (ms === null ? null : new Date(ms).toISOString());

/** A paused job shows no next run: it will not fire until resumed. */
const shownNext = (s: Readonly<ScheduleRecord> | undefined) => (s && s.enabled && !s.paused ? iso(s.nextRunAt) : null);

export function agentView(a: AgentRecord, s: Readonly<ScheduleRecord> | undefined): AgentOutput {
  return {
    id: a.id,
    name: a.name,
    handler: a.handler,
    config: a.config,
    description: a.description,
    timeoutMs: a.timeoutMs,
    maxRetries: a.maxRetries,
    budget: a.budget,
    status: a.status,
    scheduleExpression: s?.expression ?? null,
    scheduleEnabled: s?.enabled ?? false,
    nextRunAt: shownNext(s),
    lastRunAt: iso(a.lastRunAt),
    lastError: a.lastError,
    owner: a.owner,
    createdAt: iso(a.createdAt)!,
    updatedAt: iso(a.updatedAt)!,
  };
}

/** A schedule body's `catchUp` as the scheduler's fields: `true` is `{ policy: "latest" }` without a window. */
export function catchUpSpec(c: CatchUpInput): Pick<ScheduleSpec, 'catchUp' | 'catchUpPolicy' | 'catchUpWindowMs'> {
  if (typeof c === 'boolean') return { catchUp: c, catchUpPolicy: 'latest', catchUpWindowMs: null };
  return { catchUp: true, catchUpPolicy: c.policy, catchUpWindowMs: c.window ?? null };
}

/** The other way: `true`/`false` for the seed's two cases, the object (its window in the largest whole unit) otherwise. */
function catchUpView(s: Readonly<ScheduleRecord>): CatchUpOutput {
  if (!s.catchUp) return false;
  if (s.catchUpPolicy === 'latest' && s.catchUpWindowMs === null) return true;
  return { policy: s.catchUpPolicy, ...(s.catchUpWindowMs !== null && { window: formatDuration(s.catchUpWindowMs) }) };
}

export function scheduleView(a: AgentRecord, s: Readonly<ScheduleRecord> | undefined, isRunning: boolean): ScheduleInfo {
  return {
    id: a.id,
    name: a.name,
    scheduleExpression: s?.expression ?? null,
    scheduleEnabled: s?.enabled ?? false,
    nextRunAt: shownNext(s),
    lastRunAt: iso(a.lastRunAt),
    status: a.status,
    taskDetails: s
      ? {
          agentId: a.id,
          agentName: a.name,
          priority: s.priority,
          nextRunTime: shownNext(s),
          retryCount: a.retryCount,
          lastError: a.lastError,
          backoffUntil: iso(a.backoffUntil),
          isRunning,
          isPaused: s.paused,
          pauseReason: s.paused ? (s.pauseReason ?? 'manual') : null,
          pauseNote: s.paused ? s.pauseNote : null,
          pausedUntil: s.paused ? iso(s.resumeAt) : null,
          jobId: s.jobId,
          timezone: s.timezone,
          catchUp: catchUpView(s),
          overlap: s.overlap,
          jitterMs: s.jitterMs,
        }
      : null,
  };
}

export function runView(r: RunRecord): RunOutput {
  return {
    id: r.id,
    agentId: r.agentId,
    jobId: r.jobId,
    trigger: r.trigger,
    attempt: r.attempt,
    status: r.status,
    scheduledAt: iso(r.scheduledAt)!,
    startedAt: iso(r.startedAt),
    finishedAt: iso(r.finishedAt),
    durationMs: r.durationMs,
    progress: r.progress,
    error: r.error,
    instanceId: r.instanceId,
    outputPreview: r.output === null ? null : r.output.slice(0, OUTPUT_PREVIEW_CHARS),
    outputTruncated: r.outputTruncated,
    usage: usageOf(r),
  };
}

/** One run with its whole output (`runs.get`). */
export const runDetailView = (r: RunRecord): RunDetail => ({ ...runView(r), output: r.output });

const day = (n: number) => new Date(n * DAY_MS).toISOString().slice(0, 10);

/** An agent's usage over a range: the totals and each UTC day that had runs. */
export function usageView(days: readonly UsageDay[]): UsageReportOutput {
  return {
    ...totalsOf(days),
    byDay: days.map((d) => ({ day: day(d.day), runs: d.runs, inputTokens: d.inputTokens, outputTokens: d.outputTokens, costUsd: d.costUsd })),
  };
}

export function instanceView(i: InstanceRecord): InstanceOutput {
  return {
    id: i.id,
    host: i.host,
    pid: i.pid,
    startedAt: iso(i.startedAt)!,
    heartbeatAt: iso(i.heartbeatAt)!,
    running: i.running,
    maxConcurrent: i.maxConcurrent,
  };
}

/** What `schedule.set` answers: the schedule as stored, with its next fire (shown even when disabled) and the priority by name. */
export function scheduleSetView(a: AgentRecord, s: Readonly<ScheduleRecord>, priority: PriorityName) {
  return {
    id: a.id,
    name: a.name,
    scheduleExpression: s.expression,
    scheduleEnabled: s.enabled,
    nextRunAt: iso(s.nextRunAt),
    jobId: s.jobId,
    priority,
    timezone: s.timezone,
  };
}

export const deletedView = (id: string) => ({ id, deleted: true as const });
export const unscheduledView = (agentId: string) => ({ agentId });
export const runAcceptedView = (runId: string) => ({ runId });
export const cancelledView = (runId: string) => ({ runId, status: 'cancelled' as const });
export const pausedView = (agentId: string, jobId: string) => ({ agentId, jobId, status: 'paused' as const });
export const resumedView = (agentId: string, jobId: string, nextRunAt: number | null) => ({ agentId, jobId, status: 'resumed' as const, nextRunAt: iso(nextRunAt) });
