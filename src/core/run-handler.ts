import type { ActiveRun, ActiveRuns, RunControl } from './active-runs.ts';
import type { AgentState } from './agent-state.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { MAX_PROGRESS_EVENTS_PER_RUN, PROGRESS_COALESCE_MS } from './limits.ts';
import { errorText } from './errors.ts';
import { iso, type EventLog } from './event-log.ts';
import { HandlerError, type HandlerContext, type HandlerDefinition, type HandlerRegistry, type ProgressUpdate, type UsageReport } from './handlers.ts';
import type { Logger } from './logger.ts';
import type { RunObserver } from './observer.ts';
import { costOf, tokens, type Prices } from './outputs.ts';
import type { Taker } from './taker.ts';
import { fenceOf } from './run-maker.ts';
import { COMPLETED, type Outcome } from './runs.ts';
import type { AgentRecord, SchedulerStore } from './store.ts';

/** Why a run's signal fired: the reason object on `signal.reason`. */
export type AbortKind = 'timeout' | 'cancel' | 'deleted' | 'shutdown';
export class RunAbort extends Error {
  override name = 'RunAbort';
  constructor(
    readonly kind: AbortKind,
    message: string,
  ) {
    super(message);
  }
}

/**
 * `ctx.signal`, made when a handler first reads it (RunControl): one accessor shared by every context, so a
 * context has no getter of its own to allocate, and a copy of the context (`{ ...ctx }`) still gets the signal.
 */
const CONTROL = Symbol('run control');
const SIGNAL: PropertyDescriptor = {
  get(this: { [CONTROL]: RunControl }) {
    return this[CONTROL].signal;
  },
  enumerable: true,
  configurable: true,
};

type Settled = { ok: true; value: unknown } | { ok: false; err: unknown };

/**
 * One promise that settles on whichever comes first, the handler or its abort: an abort frees the
 * slot even if the handler ignores it. A handler that throws synchronously settles it too.
 */
function race(handler: HandlerDefinition<unknown>, ctx: HandlerContext<unknown>, control: RunControl): Promise<Settled> {
  return new Promise<Settled>((resolve) => {
    if (control.aborted) return resolve({ ok: false, err: control.reason });
    control.onAbort = (err) => resolve({ ok: false, err });
    let running: Promise<unknown>;
    try {
      running = handler.run(ctx);
    } catch (err) {
      return resolve({ ok: false, err });
    }
    Promise.resolve(running).then(
      (value) => resolve({ ok: true, value }),
      (err: unknown) => resolve({ ok: false, err }),
    );
  });
}

/**
 * How a settled handler ends its run: an abort wins over a late success; cancel and delete are not failures.
 * A failure that says how to retry it (`HandlerError`, matched by its fields so a handler built against another
 * copy of this module is understood too) keeps what it says.
 */
function outcomeOf(settled: Settled, control: RunControl): Outcome {
  if (settled.ok && !control.aborted) return settled.value === undefined ? COMPLETED : { kind: 'completed', output: settled.value };
  const reason = control.aborted ? control.reason : settled.ok ? undefined : settled.err;
  if (reason instanceof RunAbort && (reason.kind === 'cancel' || reason.kind === 'deleted')) return { kind: 'cancelled', error: reason.message };
  const failed: Outcome & { kind: 'failed' } = { kind: 'failed', error: errorText(reason) };
  if (reason instanceof HandlerError || (reason instanceof Error && reason.name === 'HandlerError')) {
    const { retryable, retryAfterMs } = reason as HandlerError;
    if (retryable === false) failed.retryable = false;
    if (typeof retryAfterMs === 'number' && Number.isFinite(retryAfterMs) && retryAfterMs > 0) failed.retryAfterMs = retryAfterMs;
  }
  return failed;
}

export interface RunHandlerOptions {
  store: SchedulerStore;
  clock: Clock;
  log: Logger;
  handlers: HandlerRegistry;
  agents: AgentState;
  active: ActiveRuns;
  events: EventLog;
  /** Records how the run ended (runs.ts). */
  finish(active: ActiveRun, agent: AgentRecord | undefined, outcome: Outcome): void;
  /** A run still going after this is aborted, unless its agent sets `timeoutMs`. */
  timeoutMs: number;
  /** Hands queued runs to this instance (claims.ts): a run starts only once the database gave it here. */
  taker: Taker;
  /** Prices a usage report without a cost. @default {} (such a cost stays null) */
  prices?: Prices;
  /** Told of each run's start (metrics, logs, traces). */
  observer: Required<RunObserver>;
}

/** Runs a queued run's handler once it has a slot: started, progress, timeout, and how it ended. */
export type RunHandler = ReturnType<typeof createRunHandler>;

export function createRunHandler(options: RunHandlerOptions) {
  const { store, clock, log, handlers, agents, active, events, finish, timeoutMs: defaultTimeoutMs, taker } = options;
  const prices = options.prices ?? {};
  /** Runs between the executor handing them a slot and their finish; stop() waits for them. */
  let executing = 0;
  let idleWaiters: (() => void)[] = [];
  /** Set by abortRunning: a run whose take was still on its way when it came starts aborted (it finishes at once). */
  let abortedAll: RunAbort | undefined;

  /**
   * A run's progress past MAX_PROGRESS_EVENTS_PER_RUN events: the updates that came since the last event, merged
   * (the latest figures, the deltas joined in order), sent at most once per PROGRESS_COALESCE_MS and before the run ends.
   */
  interface Coalescing {
    sent: number;
    pending: ProgressUpdate | undefined;
    timer: TimerHandle | undefined;
  }
  const coalescing = new WeakMap<ActiveRun, Coalescing>();

  function sendProgress(a: ActiveRun, update: ProgressUpdate): void {
    const { run } = a;
    const pct = Number.isFinite(update.progress) ? Math.min(100, Math.max(0, update.progress)) : 0;
    run.progress = pct;
    const fence = fenceOf(run);
    store.write({ op: 'run.update', id: run.id, set: { progress: pct }, fence });
    events.emit('agent:progress', run.agentId, {
      agentId: run.agentId,
      jobId: run.jobId,
      runId: run.id,
      progress: pct,
      ...(update.message !== undefined && { message: String(update.message) }),
      ...(update.currentStep !== undefined && { currentStep: String(update.currentStep) }),
      ...(update.totalSteps !== undefined && { totalSteps: update.totalSteps }),
      ...(typeof update.delta === 'string' && { delta: update.delta }),
      timestamp: iso(clock.now())!,
    }, fence);
  }

  /** Sends the merged updates a run still holds back (its timer came, or the run is ending). */
  function flushProgress(a: ActiveRun): void {
    const c = coalescing.get(a);
    if (!c) return;
    c.timer?.cancel();
    c.timer = undefined;
    const pending = c.pending;
    c.pending = undefined;
    if (pending && a.state === 'running' && active.holds(a)) sendProgress(a, pending);
  }

  /**
   * Every update is an event (stored, so a client resuming from its last id misses none) until a run has sent
   * MAX_PROGRESS_EVENTS_PER_RUN; past that they are coalesced, so one chatty run cannot fill the event log.
   * Nothing is lost by merging: the figures are the latest and the deltas, joined, are the same text.
   */
  function progress(a: ActiveRun, update: ProgressUpdate): void {
    if (a.state !== 'running' || !active.holds(a) || !update || typeof update !== 'object') return; // late report after the run ended
    let c = coalescing.get(a);
    if (!c) coalescing.set(a, (c = { sent: 0, pending: undefined, timer: undefined }));
    if (c.sent < MAX_PROGRESS_EVENTS_PER_RUN && !c.pending) {
      c.sent++;
      sendProgress(a, update);
      return;
    }
    const delta = typeof update.delta === 'string' ? (c.pending?.delta ?? '') + update.delta : c.pending?.delta;
    c.pending = { ...c.pending, ...update, ...(delta !== undefined && { delta }) };
    c.timer ??= clock.setTimer(() => flushProgress(a), PROGRESS_COALESCE_MS);
  }

  /** Usage reported while the run goes: kept on the run (the last report wins) and written with its end. */
  function reportUsage(a: ActiveRun, usage: UsageReport): void {
    if (a.state !== 'running' || !active.holds(a) || !usage || typeof usage !== 'object') return;
    const { run } = a;
    run.usageModel = typeof usage.model === 'string' && usage.model !== '' ? usage.model.slice(0, 200) : 'unknown';
    run.inputTokens = tokens(usage.inputTokens);
    run.outputTokens = tokens(usage.outputTokens);
    run.costUsd = costOf({ ...usage, model: run.usageModel }, prices);
  }

  const progressOf = (a: ActiveRun) => (update: ProgressUpdate) => progress(a, update);
  const usageOf = (a: ActiveRun) => (usage: UsageReport) => reportUsage(a, usage);
  const lastOutputOf = (agentId: string) => async () => (await store.lastOutput(agentId)) ?? '';

  /**
   * The slot came, on a shared store: the run starts only if the database hands it to this instance now
   * (claims.ts). Answers false when it is not this instance's to run; it is then no longer held.
   */
  async function takenByStore(a: ActiveRun): Promise<boolean> {
    const { run } = a;
    const got = (await taker.take(run.id)).get(run.id);
    if (!got) {
      // The scheduler's queue poll took it for this instance meanwhile: it updated this very record.
      if (run.status === 'running') return true;
      // Cancelled, or taken by another instance (a queued run any instance may start): not ours to finish.
      if (active.holds(a)) active.remove(a);
      return false;
    }
    const droppedWhy = active.holds(a) ? null : (run.error ?? 'cancelled');
    run.status = 'running';
    run.startedAt = got.startedAt;
    run.instanceId = got.instanceId;
    run.epoch = got.epoch;
    run.leaseUntil = got.leaseUntil;
    if (droppedWhy !== null) {
      // Dropped here (a cancel, a pause) while the take was on its way: the take came first, so the drop's
      // writes, fenced by the old epoch, did nothing. It ends cancelled again, under the epoch it has now.
      const again = active.add(run);
      active.setState(again, 'running');
      finish(again, agents.get(run.agentId), { kind: 'cancelled', error: droppedWhy });
      return false;
    }
    return true;
  }

  async function execute(a: ActiveRun): Promise<void> {
    if (!active.holds(a) || a.state !== 'queued') return; // dropped while queued
    const { run, controller } = a;
    executing++;
    try {
      // No await on an exclusive store (takeHere), nor for a run a take already handed over.
      const handedOver = run.status === 'running' || !taker.takeHere(run);
      if (handedOver && run.status !== 'running' && !(await takenByStore(a))) return;
      active.setState(a, 'running');
      if (abortedAll) controller.abort(new RunAbort(abortedAll.kind, abortedAll.message));
      // No await when the agent is known: the run starts within its fire's slice, not after the whole burst.
      // A run the database handed over (shared store) reads its agent as stored: another instance may have changed it.
      const agent = handedOver ? await agents.refresh(run.agentId) : (agents.get(run.agentId) ?? (await agents.load(run.agentId)));
      const handler = agent ? handlers.get(agent.handler) : undefined;
      if (!agent || !handler) {
        finish(a, agent, { kind: 'cancelled', error: agent ? `unknown handler "${agent.handler}"` : 'agent no longer exists' });
        return;
      }
      // The take wrote the start (status, startedAt, instanceId, lease, epoch).
      const startedAt = run.startedAt ?? clock.now();
      const fence = fenceOf(run);
      agents.write(agent, { status: 'RUNNING' }, fence);
      events.emit('agent:started', agent.id, { agentId: agent.id, jobId: run.jobId, runId: run.id, attempt: run.attempt, status: 'started', timestamp: iso(startedAt)! }, fence);
      options.observer.runStarted(run, agent);

      const timeoutMs = agent.timeoutMs ?? defaultTimeoutMs;
      const timeout = clock.setTimer(() => controller.abort(new RunAbort('timeout', `timed out after ${timeoutMs} ms`)), timeoutMs);
      const ctx: Omit<HandlerContext<unknown>, 'signal'> & { [CONTROL]: RunControl } = {
        agentId: agent.id,
        agentName: agent.name,
        jobId: run.jobId,
        runId: run.id,
        attempt: run.attempt,
        scheduledAt: run.scheduledAt,
        config: agent.config,
        [CONTROL]: controller,
        // Made by functions rather than written inline: under tsx an inline arrow in a named position costs a
        // call that names it (esbuild's keepNames), per closure and so per run.
        progress: progressOf(a),
        reportUsage: usageOf(a),
        lastOutput: lastOutputOf(agent.id),
        log,
      };
      Object.defineProperty(ctx, 'signal', SIGNAL);
      const settled = await race(handler, ctx as unknown as HandlerContext<unknown>, controller);
      timeout.cancel();
      flushProgress(a); // what was held back is sent before the run's end
      finish(a, agent, outcomeOf(settled, controller));
    } catch (err) {
      log.error('run failed to execute', { runId: run.id, error: errorText(err) });
      finish(a, agents.get(run.agentId), { kind: 'failed', error: errorText(err) });
    } finally {
      if (--executing === 0 && idleWaiters.length > 0) {
        const waiters = idleWaiters;
        idleWaiters = [];
        for (const w of waiters) w();
      }
    }
  }

  return {
    execute,
    /** How many runs are between their start and their finish. */
    get executing() {
      return executing;
    },
    /** Resolves once no run is executing. */
    idle(): Promise<void> {
      return executing === 0 ? Promise.resolve() : new Promise((resolve) => idleWaiters.push(resolve));
    },
    /** Aborts every running run with a fresh `RunAbort` of `kind` (they then finish as that reason says). */
    abortRunning(kind: AbortKind, message: string): void {
      abortedAll = new RunAbort(kind, message);
      for (const a of active.values()) if (a.state === 'running') a.controller.abort(new RunAbort(kind, message));
    },
  };
}
