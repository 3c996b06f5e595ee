import type { Logger } from '../core/logger.ts';
import type { RunObserver } from '../core/observer.ts';
import type { RunRecord } from '../core/store.ts';

/** An error text in a log line is cut here: a handler's error may be long (a remote answer is capped at 1,000 characters already). */
const ERROR_CHARS = 500;

const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
const usageOf = (run: Readonly<RunRecord>) =>
  run.usageModel === null ? undefined : { model: run.usageModel, inputTokens: run.inputTokens, outputTokens: run.outputTokens, costUsd: run.costUsd };

/**
 * A log line at each run's start and end (README "Logs"), for this instance's own runs: `run started` (info) and
 * `run ended` (info; warn when it failed) with agentId, runId, attempt and the outcome. A skipped fire is a line at
 * info too: "why didn't it run?" is the first thing an operator asks the logs. Fields are the run's own, never
 * its agent's config (which may hold headers) or output.
 */
export function createRunLogObserver(logger: Logger): RunObserver {
  return {
    runStarted(run) {
      logger.info('run started', { agentId: run.agentId, runId: run.id, jobId: run.jobId, attempt: run.attempt, trigger: run.trigger, scheduledAt: iso(run.scheduledAt) });
    },
    runEnded(run, _agent, retryAt) {
      const fields = {
        agentId: run.agentId, runId: run.id, jobId: run.jobId, attempt: run.attempt, trigger: run.trigger, outcome: run.status, durationMs: run.durationMs,
        ...(run.error !== null && { error: run.error.length > ERROR_CHARS ? `${run.error.slice(0, ERROR_CHARS)}…` : run.error }),
        ...(run.status === 'failed' && { willRetry: retryAt !== null, nextRetryAt: iso(retryAt) }),
        ...(usageOf(run) && { usage: usageOf(run) }),
      };
      if (run.status === 'failed') logger.warn('run ended', fields);
      else logger.info('run ended', fields);
    },
    runSkipped(run) {
      logger.info('run skipped', { agentId: run.agentId, runId: run.id, jobId: run.jobId, trigger: run.trigger, scheduledAt: iso(run.scheduledAt), reason: run.error });
    },
    firesMissed(agentId, count, capped) {
      logger.info('fires missed while no instance ran', { agentId, missed: capped ? `${count}+` : count });
    },
  };
}
