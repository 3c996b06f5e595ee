import type { ActiveRun, ActiveRuns } from './active-runs.ts';
import type { AgentState } from './agent-state.ts';
import type { Clock } from './clock.ts';
import { errorText } from './errors.ts';
import { iso, type EventLog } from './event-log.ts';
import type { HandlerContext, HandlerDefinition, HandlerRegistry, ProgressUpdate } from './handlers.ts';
import type { Logger } from './logger.ts';
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

type Settled = { ok: true } | { ok: false; err: unknown };
const RESOLVED: Settled = Object.freeze({ ok: true as const });

/**
 * One promise that settles on whichever comes first, the handler or its signal: an abort frees the
 * slot even if the handler ignores it. A handler that throws synchronously settles it too.
 */
function race(handler: HandlerDefinition<unknown>, ctx: HandlerContext<unknown>): Promise<Settled> {
  const signal = ctx.signal;
  return new Promise<Settled>((resolve) => {
    if (signal.aborted) return resolve({ ok: false, err: signal.reason });
    signal.addEventListener('abort', () => resolve({ ok: false, err: signal.reason }), { once: true });
    let running: Promise<void>;
    try {
      running = handler.run(ctx);
    } catch (err) {
      return resolve({ ok: false, err });
    }
    Promise.resolve(running).then(
      () => resolve(RESOLVED),
      (err: unknown) => resolve({ ok: false, err }),
    );
  });
}

/** How a settled handler ends its run: an abort wins over a late success; cancel and delete are not failures. */
function outcomeOf(settled: Settled, signal: AbortSignal): Outcome {
  if (settled.ok && !signal.aborted) return COMPLETED;
  const reason = signal.aborted ? signal.reason : settled.ok ? undefined : settled.err;
  if (reason instanceof RunAbort && (reason.kind === 'cancel' || reason.kind === 'deleted')) return { kind: 'cancelled', error: reason.message };
  return { kind: 'failed', error: errorText(reason) };
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
  /** This instance, recorded on each run it starts; null for a scheduler that runs outside a server. */
  instanceId: string | null;
}

/** Runs a queued run's handler once it has a slot: started, progress, timeout, and how it ended. */
export type RunHandler = ReturnType<typeof createRunHandler>;

export function createRunHandler(options: RunHandlerOptions) {
  const { store, clock, log, handlers, agents, active, events, finish, timeoutMs: defaultTimeoutMs, instanceId } = options;
  /** Runs between the executor handing them a slot and their finish; stop() waits for them. */
  let executing = 0;
  let idleWaiters: (() => void)[] = [];

  function progress(a: ActiveRun, update: ProgressUpdate): void {
    if (a.state !== 'running' || !active.holds(a)) return; // late report after the run ended
    const { run } = a;
    const pct = Number.isFinite(update.progress) ? Math.min(100, Math.max(0, update.progress)) : 0;
    run.progress = pct;
    store.write({ op: 'run.update', id: run.id, set: { progress: pct } });
    events.emit('agent:progress', run.agentId, {
      agentId: run.agentId,
      jobId: run.jobId,
      runId: run.id,
      progress: pct,
      ...(update.message !== undefined && { message: String(update.message) }),
      ...(update.currentStep !== undefined && { currentStep: String(update.currentStep) }),
      ...(update.totalSteps !== undefined && { totalSteps: update.totalSteps }),
      timestamp: iso(clock.now())!,
    });
  }

  async function execute(a: ActiveRun): Promise<void> {
    if (!active.holds(a) || a.state !== 'queued') return; // dropped while queued
    const { run, controller } = a;
    active.setState(a, 'running');
    executing++;
    try {
      // No await when the agent is known: the run starts within its fire's slice, not after the whole burst.
      const agent = agents.get(run.agentId) ?? (await agents.load(run.agentId));
      const handler = agent ? handlers.get(agent.handler) : undefined;
      if (!agent || !handler) {
        finish(a, agent, { kind: 'cancelled', error: agent ? `unknown handler "${agent.handler}"` : 'agent no longer exists' });
        return;
      }
      const startedAt = clock.now();
      run.status = 'running';
      run.startedAt = startedAt;
      run.instanceId = instanceId;
      store.write({ op: 'run.update', id: run.id, set: { status: 'running', startedAt, instanceId } });
      agents.write(agent, { status: 'RUNNING' });
      events.emit('agent:started', agent.id, { agentId: agent.id, jobId: run.jobId, runId: run.id, attempt: run.attempt, status: 'started', timestamp: iso(startedAt)! });

      const timeoutMs = agent.timeoutMs ?? defaultTimeoutMs;
      const timeout = clock.setTimer(() => controller.abort(new RunAbort('timeout', `timed out after ${timeoutMs} ms`)), timeoutMs);
      const settled = await race(handler, {
        agentId: agent.id,
        jobId: run.jobId,
        runId: run.id,
        attempt: run.attempt,
        scheduledAt: run.scheduledAt,
        config: agent.config,
        signal: controller.signal,
        progress: (update) => progress(a, update),
        log,
      });
      timeout.cancel();
      finish(a, agent, outcomeOf(settled, controller.signal));
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
      for (const a of active.values()) if (a.state === 'running') a.controller.abort(new RunAbort(kind, message));
    },
  };
}
