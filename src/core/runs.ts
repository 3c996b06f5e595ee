import type { RunTrigger } from '../schemas/common.ts';
import type { ActiveRun, ActiveRuns } from './active-runs.ts';
import type { AgentState } from './agent-state.ts';
import { retryAt, type RetryPolicy } from './backoff.ts';
import type { Clock } from './clock.ts';
import { iso, type EventLog } from './event-log.ts';
import type { Executor } from './executor.ts';
import type { Schedules } from './schedules.ts';
import { createClaimer, type Claimer } from './claims.ts';
import type { Logger } from './logger.ts';
import { outputOf, usageOf } from './outputs.ts';
import type { RunObserver } from './observer.ts';
import { REPLACED, type AgentRecord, type ClaimOutcome, type OverlapPolicy, type RunClaim, type RunRecord, type SchedulerStore } from './store.ts';
import { RunAbort } from './run-handler.ts';
import type { Timeline } from './timeline.ts';
import { createRunMaker, fenceOf, retryKey, slotKey, type RunOwner } from './run-maker.ts';

/**
 * How a run ended. A completed run carries what its handler resolved to (its output); a failure may say
 * it is not to be retried (`retryable: false`: the schedule goes on) or how long its retry must wait at least.
 */
export type Outcome =
  | { kind: 'completed'; output?: unknown }
  | { kind: 'failed'; error: string; retryable?: boolean; retryAfterMs?: number }
  | { kind: 'cancelled'; error: string };
export const COMPLETED: Outcome = Object.freeze({ kind: 'completed' });

/** Why a fire or manual run is recorded as skipped: an agent's runs never overlap. */
export const BUSY = 'skipped: the previous run or its retry is still in progress';

/**
 * How many finished runs of one agent between two history trims: trimming per run would be a delete per run.
 * A history limit below it trims every `limit` runs instead, so an agent never holds more than twice its limit.
 */
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
  /** A fire was claimed under a revision the database no longer has: the schedule is read again. */
  stale(agentId: string): Promise<void>;
  log: Logger;
  maxRetries: number;
  retry: RetryPolicy;
  runHistoryLimit: number;
  /** A finished run of an agent with a budget reported usage: its period's total is checked (budgets.ts). */
  onUsage?(agent: AgentRecord): void;
  /** Told of every run this instance ends or records skipped (metrics, logs, traces). */
  observer: Required<RunObserver>;
}

/** A run's life in the scheduler: claimed, queued (now or at its retry time), finished, retried. */
export type Runs = ReturnType<typeof createRuns>;

export function createRuns(options: RunsOptions) {
  const { store, clock, agents, schedules, active, timeline, executor, events, execute, maxRetries, retry, runHistoryLimit, observer } = options;
  const finishedSinceTrim = new Map<string, number>();
  const trimEvery = Math.min(TRIM_EVERY, runHistoryLimit);
  const newRun = createRunMaker(clock);

  /** Writes a run that is recorded and never runs (a catch-up with catch-up off): under its slot's key, so it is recorded once. */
  function recordSkipped(owner: RunOwner, trigger: RunTrigger, scheduledAt: number, why: string): void {
    const run = newRun(owner, trigger, 1, scheduledAt, slotKey(owner, trigger, scheduledAt));
    run.status = 'skipped';
    run.finishedAt = run.createdAt;
    run.error = why;
    store.write({ op: 'run.insert', run });
    noteFinished(run.agentId);
    observer.runSkipped(run);
  }

  /**
   * Waiting runs per agent, on a store this process alone writes (memory or a locked SQLite file): the
   * claims it decides itself count them as its busy agents (claims.ts), since no other instance can add or
   * let go of one. Counted as they are claimed, found at start, let go and dropped.
   */
  const waiting = new Map<string, number>();
  function noteWaiting(agentId: string, delta: 1 | -1): void {
    if (store.shared) return;
    const n = (waiting.get(agentId) ?? 0) + delta;
    if (n > 0) waiting.set(agentId, n);
    else waiting.delete(agentId);
  }

  /** The store let waiting runs go (the runs before them ended): each is held here like a run this instance claimed. */
  const unlisten = store.onPromoted((let_go) => {
    for (const run of let_go) {
      noteWaiting(run.agentId, -1);
      // A copy: the record becomes this instance's own (its take updates it), whoever else hears of it.
      if (!active.byId(run.id) && run.status === 'queued') hold({ ...run });
    }
  });

  /** What a `cancel-previous` claim ended or asked to stop: runs held here are let go (dropped) or aborted now. */
  function replaced(o: ClaimOutcome): void {
    const timestamp = iso(clock.now())!;
    for (const id of o.dropped ?? []) {
      // The claim's transaction wrote the end (under a new epoch); here it is only forgotten, and told.
      const a = active.byId(id);
      if (a) active.remove(a);
      if (a?.run.waiting !== false) noteWaiting(o.run.agentId, -1);
      events.emit('agent:cancelled', o.run.agentId, { agentId: o.run.agentId, jobId: o.run.jobId, runId: id, timestamp, status: 'cancelled' });
    }
    for (const id of o.cancels ?? []) active.byId(id)?.controller.abort(new RunAbort('cancel', REPLACED));
  }

  /** What the database answered for a claim: a claimed run is held (or, waiting, left for the store to let go); skipped and taken ones are done. */
  function settle(o: ClaimOutcome): Promise<void> | undefined {
    if (o.outcome === 'claimed' && (o.dropped || o.cancels)) replaced(o);
    if (o.outcome === 'claimed' && o.run.waiting) noteWaiting(o.run.agentId, 1);
    else if (o.outcome === 'claimed') hold(o.run);
    // A skipped fire or manual run is a finished run row like any other: it counts towards the next trim.
    else if (o.outcome === 'skipped') {
      noteFinished(o.run.agentId);
      observer.runSkipped(o.run);
    }
    else if (o.outcome === 'stale') return options.stale(o.run.agentId);
    return undefined;
  }

  // On an exclusive store the claims are decided from what this process holds (claims.ts says why that is safe).
  const claims: Claimer = createClaimer({
    store, log: options.log, settle, afterSend: schedules.writeFired,
    held: { schedule: (agentId) => schedules.get(agentId), busy: (agentId) => active.busy(agentId) || waiting.has(agentId) },
  });

  /** A first attempt: claimed with the fires of this tick; while the agent has a run or retry open anywhere, recorded skipped saying `busy`. */
  function claimOf(owner: RunOwner, trigger: RunTrigger, scheduledAt: number, busy: string, revision: number | undefined): RunClaim {
    const run = newRun(owner, trigger, 1, scheduledAt, slotKey(owner, trigger, scheduledAt));
    return revision === undefined ? { run, busy } : { run, busy, revision };
  }

  /** Holds a run this instance queued in the database: queued now if due, else waiting on the timeline. */
  function hold(run: RunRecord): void {
    agents.prefetch(run.agentId);
    admit(active.add(run), clock.now());
  }

  /** A held, waiting run: queued if due at `now`, else planned on the timeline. */
  function admit(a: ActiveRun, now: number): void {
    if (a.run.scheduledAt > now) timeline.retryAt(a.run.id, a.run.scheduledAt);
    else enqueue(a);
  }

  /** Queued for a slot in its owner's turn (executor.ts, fair share): the owner from the agent cache, else the schedule. */
  function enqueue(a: ActiveRun): void {
    active.setState(a, 'queued');
    const owner = agents.get(a.run.agentId)?.owner ?? schedules.get(a.run.agentId)?.owner ?? '';
    executor.add(() => execute(a), a.run.priority, owner);
  }

  function noteFinished(agentId: string): void {
    const n = (finishedSinceTrim.get(agentId) ?? 0) + 1;
    if (n >= trimEvery) {
      finishedSinceTrim.delete(agentId);
      store.write({ op: 'runs.trim', agentId, keep: runHistoryLimit });
    } else finishedSinceTrim.set(agentId, n);
  }

  /**
   * Records how a run ended and applies the retry policy. Synchronous: all its writes land in one batch,
   * each fenced by the run's epoch, so a run the cluster took back from this instance changes nothing.
   */
  function finish(a: ActiveRun, agent: AgentRecord | undefined, outcome: Outcome): void {
    const wasRunning = a.state === 'running';
    if (!active.remove(a)) return;
    const { run } = a;
    if (run.waiting) {
      // A waiting run dropped (a cancel, a pause): it no longer waits.
      noteWaiting(run.agentId, -1);
      run.waiting = false;
    }
    const now = clock.now();
    const fence = fenceOf(run);
    run.status = outcome.kind;
    run.finishedAt = now;
    run.durationMs = run.startedAt === null ? null : now - run.startedAt;
    run.error = outcome.kind === 'completed' ? null : outcome.error;
    run.leaseUntil = null;
    const set: Partial<RunRecord> = { status: run.status, finishedAt: now, durationMs: run.durationMs, error: run.error, leaseUntil: null, waiting: false };
    if (outcome.kind === 'completed' && outcome.output !== undefined) {
      const { output, truncated } = outputOf(outcome.output);
      run.output = output;
      run.outputTruncated = truncated;
      set.output = output;
      set.outputTruncated = truncated;
    }
    // Usage reported while the run went (ctx.reportUsage) is written with its end, whatever the end.
    if (run.usageModel !== null) Object.assign(set, { usageModel: run.usageModel, inputTokens: run.inputTokens, outputTokens: run.outputTokens, costUsd: run.costUsd });
    store.write({ op: 'run.update', id: run.id, set, fence });
    noteFinished(run.agentId);
    if (!agent) return observer.runEnded(run, undefined, null);
    const usage = usageOf(run);
    if (usage && agent.budget) options.onUsage?.(agent);
    // Payloads are written out whole, keys in the order they have on the wire (no spread of a shared base).
    const timestamp = iso(now)!;
    if (wasRunning) agent.lastRunAt = run.startedAt;

    if (outcome.kind === 'completed') {
      agent.lastError = null;
      agents.write(agent, { lastRunAt: agent.lastRunAt, lastError: null, retryCount: 0, backoffUntil: null, status: agents.restingStatus(agent) }, fence);
      events.emit('agent:completed', agent.id, { agentId: agent.id, jobId: run.jobId, runId: run.id, timestamp, attempt: run.attempt, status: 'completed', duration: run.durationMs ?? 0, usage }, fence);
      return observer.runEnded(run, agent, null);
    }
    if (outcome.kind === 'cancelled') {
      agents.write(agent, { lastRunAt: agent.lastRunAt, status: agents.restingStatus(agent), backoffUntil: null }, fence);
      events.emit('agent:cancelled', agent.id, { agentId: agent.id, jobId: run.jobId, runId: run.id, timestamp, status: 'cancelled' }, fence);
      return observer.runEnded(run, agent, null);
    }

    const schedule = schedules.get(agent.id);
    const retryable = outcome.retryable !== false;
    const at = retryable && schedule?.paused !== true ? retryAt(run.attempt, agent.maxRetries ?? maxRetries, now, outcome.retryAfterMs, retry) : null;
    if (!retryable) {
      // Not worth trying again (a 400, a missing key): this run failed, the schedule goes on.
      agents.write(agent, { lastRunAt: agent.lastRunAt, lastError: outcome.error, retryCount: 0, backoffUntil: null, status: agents.restingStatus(agent) }, fence);
    } else if (at !== null) {
      agents.write(agent, { lastRunAt: agent.lastRunAt, lastError: outcome.error, retryCount: run.attempt, backoffUntil: at, status: 'IDLE' }, fence);
      // The retry is a queued row due at `at`; this instance holds it on its timeline and takes it then.
      const next = newRun(run, 'retry', run.attempt + 1, at, retryKey(run.id));
      store.write({ op: 'run.insert', run: next, fence });
      admit(active.add(next), now);
    } else {
      agents.write(agent, { lastRunAt: agent.lastRunAt, lastError: outcome.error, retryCount: run.attempt - 1, backoffUntil: null, status: 'ERROR' }, fence);
      if (schedule?.enabled) schedules.disable(schedule, fence);
    }
    events.emit('agent:failed', agent.id, {
      agentId: agent.id, jobId: run.jobId, runId: run.id, timestamp,
      attempt: run.attempt, status: 'failed', error: outcome.error, willRetry: at !== null, nextRetryAt: iso(at), usage,
    }, fence);
    observer.runEnded(run, agent, at);
  }

  return {
    /** Stops holding the runs the store lets go (the scheduler stopped; another may go on with the store). */
    detach: () => unlisten(),
    recordSkipped,
    /** Resolves once every claim asked so far is answered and its run held. */
    claimsSettled: () => claims.settled(),
    /** Every open run is held, and no slot after `t` can have been recorded before: claims may be decided here (claims.ts). */
    decideClaimsAfter: (t: number) => claims.decideAfter(t),
    admit,
    finish,

    /**
     * A fire of `s` (or its catch-up): claimed under the revision it was planned with, with the other claims
     * of this tick, doing what the schedule's overlap policy says while the agent is busy (`wait`: a catch-up
     * of every missed slot, whose runs follow one another).
     */
    offer(s: RunOwner & { revision: number; overlap?: OverlapPolicy }, trigger: 'schedule' | 'catchup', scheduledAt: number, busy = BUSY, wait = false): void {
      const claim = claimOf(s, trigger, scheduledAt, busy, s.revision);
      const overlap = wait ? 'wait' : (s.overlap ?? 'skip');
      if (overlap === 'allow') delete claim.busy;
      else if (overlap !== 'skip') claim.overlap = overlap;
      claims.add(claim);
    },

    /** A waiting run found at start (exclusive stores): the store lets it go when the runs before it end. */
    foundWaiting: (run: RunRecord) => noteWaiting(run.agentId, 1),

    /** A manual run: answered once the database has it, queued (and held here) or recorded skipped. */
    async offerNow(owner: RunOwner): Promise<RunRecord> {
      return (await claims.ask(claimOf(owner, 'manual', clock.now(), BUSY, undefined))).run;
    },

    /** Backfill runs for `slots` (ascending): answered once the database has them; slots already run are left out. */
    async backfill(s: RunOwner, slots: readonly number[]): Promise<RunRecord[]> {
      const outcomes = await Promise.all(slots.map((t) => claims.ask({ run: newRun(s, 'backfill', 1, t, `${s.jobId}@${t}`), overlap: 'wait' })));
      return outcomes.filter((o) => o.outcome === 'claimed').map((o) => o.run);
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
