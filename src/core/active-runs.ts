import type { RunRecord } from './store.ts';

/** A run the scheduler is responsible for: waiting for its retry time, queued for a slot, or running. */
export interface ActiveRun {
  run: RunRecord;
  state: 'waiting' | 'queued' | 'running';
  controller: AbortController;
}

/**
 * The runs the scheduler holds, by id and by agent (an agent has at most one: its runs never
 * overlap), and the only count of how many are queued and running. The executor's own figures are not
 * used: a run dropped while queued stays inside p-queue until its turn comes, and is skipped then.
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
  const byAgent = new Map<string, ActiveRun>();
  const byId = new Map<string, ActiveRun>();
  let queued = 0;
  let running = 0;

  function leave(state: ActiveRun['state']): void {
    if (state === 'queued') queued--;
    else if (state === 'running') running--;
  }

  return {
    add(run) {
      const active: ActiveRun = { run, state: 'waiting', controller: new AbortController() };
      byAgent.set(run.agentId, active);
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
      if (byAgent.get(active.run.agentId) === active) byAgent.delete(active.run.agentId);
      byId.delete(active.run.id);
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
