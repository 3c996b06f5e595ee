import type { RunTrigger } from '../schemas/common.ts';
import type { ActiveRun, ActiveRuns } from './active-runs.ts';
import type { AgentState } from './agent-state.ts';
import { retryDelay, type RetryPolicy } from './backoff.ts';
import type { Clock } from './clock.ts';
import { iso, type EventLog } from './event-log.ts';
import type { Executor } from './executor.ts';
import type { Schedules } from './schedules.ts';
import type { AgentRecord, RunRecord, SchedulerStore } from './store.ts';
import type { Timeline } from './timeline.ts';

/** How a run ended. */
export type Outcome = { kind: 'completed' } | { kind: 'failed'; error: string } | { kind: 'cancelled'; error: string };
export const COMPLETED: Outcome = Object.freeze({ kind: 'completed' });

/** Whose run it is: a schedule, or the run a retry follows, or (for a manual run) a plain literal. */
export type RunOwner = Pick<RunRecord, 'agentId' | 'jobId' | 'priority'>;

/** Why a fire or manual run is recorded as skipped: an agent's runs never overlap. */
export const BUSY = 'skipped: the previous run or its retry is still in progress';

/** How many finished runs of one agent between two history trims: trimming per run would be a delete per run. */
const TRIM_EVERY = 64;

export interface RunsOptions {
  store: SchedulerStore;
  clock: Clock;
  agents: AgentState;
  schedules: Schedules;
  active: ActiveRuns;
  timeline: Timeline;
  executor: Executor;
  events: EventLog;
  /** Runs a queued run once it has a slot (run-handler.ts). */
  execute(active: ActiveRun): Promise<void>;
  maxRetries: number;
  retry: RetryPolicy;
  runHistoryLimit: number;
}

/** A run's life in the scheduler: created, queued (now or at its retry time), finished, retried. */
export type Runs = ReturnType<typeof createRuns>;

export function createRuns(options: RunsOptions) {
  const { store, clock, agents, schedules, active, timeline, executor, events, execute, maxRetries, retry, runHistoryLimit } = options;
  const finishedSinceTrim = new Map<string, number>();
  let counter = 0;

  /** Run ids sort by creation time: a millisecond prefix, then a per-process counter, then noise. */
  function newId(): string {
    counter = (counter + 1) % 0x1000000;
    const rand = Math.floor(Math.random() * 0x10000);
    return `run_${clock.now().toString(36).padStart(9, '0')}${counter.toString(36).padStart(5, '0')}${rand.toString(36).padStart(4, '0')}`;
  }

  /**
   * The one place a run record is made: queued, or skipped (finished at once) when `skipped` says why.
   * Schedule and catch-up runs carry `jobId@scheduledAt`, unique in the database, so a slot never runs twice.
   */
  function record(owner: RunOwner, trigger: RunTrigger, attempt: number, scheduledAt: number, skipped: string | null): RunRecord {
    const now = clock.now();
    const run: RunRecord = {
      id: newId(),
      agentId: owner.agentId,
      jobId: owner.jobId,
      trigger,
      attempt,
      status: skipped === null ? 'queued' : 'skipped',
      priority: owner.priority,
      scheduledAt,
      startedAt: null,
      finishedAt: skipped === null ? null : now,
      durationMs: null,
      progress: null,
      error: skipped,
      dedupeKey: trigger === 'schedule' || trigger === 'catchup' ? `${owner.jobId}@${scheduledAt}` : null,
      instanceId: null, // set by the instance that starts it (run-handler.ts)
      createdAt: now,
    };
    store.write({ op: 'run.insert', run });
    return run;
  }

  /** Creates a run and holds it: queued now if due, else waiting on the timeline for `scheduledAt`. */
  function start(owner: RunOwner, trigger: RunTrigger, attempt: number, scheduledAt: number): RunRecord {
    const run = record(owner, trigger, attempt, scheduledAt, null);
    agents.prefetch(run.agentId);
    admit(active.add(run), clock.now());
    return run;
  }

  /** A held, waiting run: queued if due at `now`, else planned on the timeline. */
  function admit(a: ActiveRun, now: number): void {
    if (a.run.scheduledAt > now) timeline.retryAt(a.run.id, a.run.scheduledAt);
    else enqueue(a);
  }

  function enqueue(a: ActiveRun): void {
    active.setState(a, 'queued');
    executor.add(() => execute(a), a.run.priority);
  }

  function noteFinished(agentId: string): void {
    const n = (finishedSinceTrim.get(agentId) ?? 0) + 1;
    if (n >= TRIM_EVERY) {
      finishedSinceTrim.delete(agentId);
      store.write({ op: 'runs.trim', agentId, keep: runHistoryLimit });
    } else finishedSinceTrim.set(agentId, n);
  }

  /** When a failed run's next attempt is due: base·2^(n-1) from now, or null once `maxRetries` retries are used or the schedule is paused. */
  function retryAt(run: RunRecord, agent: AgentRecord, paused: boolean, now: number): number | null {
    const retriesDone = run.attempt - 1;
    if (paused || retriesDone >= (agent.maxRetries ?? maxRetries)) return null;
    return now + retryDelay(retriesDone + 1, retry);
  }

  /** Records how a run ended and applies the retry policy. Synchronous: all its writes land in one batch. */
  function finish(a: ActiveRun, agent: AgentRecord | undefined, outcome: Outcome): void {
    const wasRunning = a.state === 'running';
    if (!active.remove(a)) return;
    const { run } = a;
    const now = clock.now();
    run.status = outcome.kind;
    run.finishedAt = now;
    run.durationMs = run.startedAt === null ? null : now - run.startedAt;
    run.error = outcome.kind === 'completed' ? null : outcome.error;
    store.write({ op: 'run.update', id: run.id, set: { status: run.status, finishedAt: now, durationMs: run.durationMs, error: run.error } });
    noteFinished(run.agentId);
    if (!agent) return;
    // Payloads are written out whole, keys in the order they have on the wire (no spread of a shared base).
    const timestamp = iso(now)!;
    if (wasRunning) agent.lastRunAt = run.startedAt;

    if (outcome.kind === 'completed') {
      agent.lastError = null;
      agents.write(agent, { lastRunAt: agent.lastRunAt, lastError: null, retryCount: 0, backoffUntil: null, status: agents.restingStatus(agent) });
      events.emit('agent:completed', agent.id, { agentId: agent.id, jobId: run.jobId, runId: run.id, timestamp, attempt: run.attempt, status: 'completed', duration: run.durationMs ?? 0 });
      return;
    }
    if (outcome.kind === 'cancelled') {
      agents.write(agent, { lastRunAt: agent.lastRunAt, status: agents.restingStatus(agent), backoffUntil: null });
      events.emit('agent:cancelled', agent.id, { agentId: agent.id, jobId: run.jobId, runId: run.id, timestamp, status: 'cancelled' });
      return;
    }

    const schedule = schedules.get(agent.id);
    const at = retryAt(run, agent, schedule?.paused === true, now);
    if (at !== null) {
      agents.write(agent, { lastRunAt: agent.lastRunAt, lastError: outcome.error, retryCount: run.attempt, backoffUntil: at, status: 'IDLE' });
      start(run, 'retry', run.attempt + 1, at);
    } else {
      agents.write(agent, { lastRunAt: agent.lastRunAt, lastError: outcome.error, retryCount: run.attempt - 1, backoffUntil: null, status: 'ERROR' });
      if (schedule?.enabled) schedules.disable(schedule);
    }
    events.emit('agent:failed', agent.id, {
      agentId: agent.id, jobId: run.jobId, runId: run.id, timestamp,
      attempt: run.attempt, status: 'failed', error: outcome.error, willRetry: at !== null, nextRetryAt: iso(at),
    });
  }

  return {
    record,
    start,
    admit,
    finish,

    /** A first attempt now, or, while the agent has a run or retry in progress, a skipped record saying `busy`. */
    offer(owner: RunOwner, trigger: RunTrigger, scheduledAt: number, busy = BUSY): RunRecord {
      return active.busy(owner.agentId) ? record(owner, trigger, 1, scheduledAt, busy) : start(owner, trigger, 1, scheduledAt);
    },

    /** A waiting run's time came: it queues for a slot (unless it was dropped meanwhile). */
    retryDue(runId: string): void {
      const a = active.byId(runId);
      if (a?.state === 'waiting') enqueue(a);
    },

    /** Ends a run that has not started (waiting for its retry, or queued for a slot) as cancelled. */
    drop(a: ActiveRun, why: string): void {
      finish(a, agents.get(a.run.agentId), { kind: 'cancelled', error: why });
    },
  };
}
