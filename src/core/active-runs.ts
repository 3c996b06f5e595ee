import type { RunRecord } from './store.ts';

/**
 * How a held run is aborted (a timeout, a cancel, a delete, a shutdown). The handler's `AbortSignal` is made
 * only when a handler asks for it: an AbortController costs an EventTarget per run, and most runs end without
 * either. The run handler hears of an abort through `onAbort`, with no listener on a signal.
 */
export class RunControl {
  #controller: AbortController | undefined;
  #reason: unknown;
  #aborted = false;
  /** Called once, at the abort, with its reason (run-handler.ts's race). */
  onAbort: ((reason: unknown) => void) | undefined = undefined;
  get aborted(): boolean {
    return this.#aborted;
  }
  get reason(): unknown {
    return this.#reason;
  }
  /** The signal handed to the handler: aborted already, with the same reason, when it is asked for late. */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }
  /** Like AbortController's: only the first abort counts. */
  abort(reason: unknown): void {
    if (this.#aborted) return;
    this.#aborted = true;
    this.#reason = reason ?? new DOMException('This operation was aborted', 'AbortError');
    this.#controller?.abort(this.#reason);
    const told = this.onAbort;
    this.onAbort = undefined;
    told?.(this.#reason);
  }
}

/** A run the scheduler is responsible for: waiting for its retry time, queued for a slot, or running. */
export interface ActiveRun {
  run: RunRecord;
  state: 'waiting' | 'queued' | 'running';
  controller: RunControl;
}

/**
 * The runs the scheduler holds, by id and by agent (an agent has at most one: its runs never
 * overlap), and the only count of how many are queued and running. The executor's own figures are not
 * used: a run dropped while queued stays in the executor's queue until its turn comes, and is skipped then.
 */
export interface ActiveRuns {
  /** Starts holding `run`, waiting. */
  add(run: RunRecord): ActiveRun;
  /** Moves a held run on: waiting → queued → running (or straight to running, for a run found running at start-up). */
  setState(active: ActiveRun, state: 'queued' | 'running'): void;
  /** Stops holding it; false if it was no longer held (it already finished). */
  remove(active: ActiveRun): boolean;
  /** Whether `active` is still held: a run that ended is ignored by late callbacks (progress, a finished handler). */
  holds(active: ActiveRun): boolean;
  byId(runId: string): ActiveRun | undefined;
  ofAgent(agentId: string): ActiveRun | undefined;
  /** Whether the agent has a run or a pending retry: then a new fire of it is skipped. */
  busy(agentId: string): boolean;
  values(): IterableIterator<ActiveRun>;
  readonly queued: number;
  readonly running: number;
}

/** `onChange` is called whenever the figures (queued, running) may have changed. */
export function createActiveRuns(onChange: () => void): ActiveRuns {
  /** The run of each agent; with the overlap policy `allow` an agent may have more, counted in `besides`. */
  const byAgent = new Map<string, ActiveRun>();
  const besides = new Map<string, number>();
  const byId = new Map<string, ActiveRun>();
  let queued = 0;
  let running = 0;

  function leave(state: ActiveRun['state']): void {
    if (state === 'queued') queued--;
    else if (state === 'running') running--;
  }

  return {
    add(run) {
      const active: ActiveRun = { run, state: 'waiting', controller: new RunControl() };
      const other = byAgent.get(run.agentId);
      // Another run of the agent held beside it (`allow`) stays the agent's; the same run added again replaces itself.
      if (other && other.run.id !== run.id && byId.get(other.run.id) === other) besides.set(run.agentId, (besides.get(run.agentId) ?? 0) + 1);
      else byAgent.set(run.agentId, active);
      byId.set(run.id, active);
      return active;
    },
    setState(active, state) {
      leave(active.state);
      active.state = state;
      if (state === 'queued') queued++;
      else running++;
      onChange();
    },
    remove(active) {
      if (byId.get(active.run.id) !== active) return false;
      leave(active.state);
      byId.delete(active.run.id);
      const agentId = active.run.agentId;
      const more = besides.get(agentId);
      if (more === undefined) {
        if (byAgent.get(agentId) === active) byAgent.delete(agentId);
      } else {
        if (more > 1) besides.set(agentId, more - 1);
        else besides.delete(agentId);
        // The agent's entry goes to another of its runs (rare: only `allow` holds several, so a scan is fine).
        if (byAgent.get(agentId) === active) for (const o of byId.values()) if (o.run.agentId === agentId) { byAgent.set(agentId, o); break; }
      }
      onChange();
      return true;
    },
    holds: (active) => byId.get(active.run.id) === active,
    byId: (runId) => byId.get(runId),
    ofAgent: (agentId) => byAgent.get(agentId),
    busy: (agentId) => byAgent.has(agentId),
    values: () => byId.values(),
    get queued() {
      return queued;
    },
    get running() {
      return running;
    },
  };
}
