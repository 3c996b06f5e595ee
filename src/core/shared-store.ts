import type { ActiveRuns } from './active-runs.ts';
import type { AgentState } from './agent-state.ts';
import type { Taker } from './taker.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { errorText } from './errors.ts';
import type { Executor } from './executor.ts';
import { QUEUE_POLL_MS, SCHEDULE_RECONCILE_MS } from './limits.ts';
import type { Logger } from './logger.ts';
import { reapExpired, type Recovery } from './recovery.ts';
import { RunAbort, type RunHandler } from './run-handler.ts';
import type { Schedules } from './schedules.ts';
import type { Lifecycle, Status } from './status.ts';
import type { SchedulerStore } from './store.ts';

/**
 * How often an instance that runs something looks for cancels other instances recorded on its runs: half
 * the 1 s a cancel elsewhere may take (docs/cluster.md), the other half left for the read and the abort.
 */
const CANCEL_CHECK_MS = 500;
/** Every this many reconciles (5 s each) is a full read of the schedules: once a minute (see `reconcile`). */
const FULL_RECONCILE_EVERY = 12;

export interface SharedStoreOptions {
  store: SchedulerStore;
  clock: Clock;
  log: Logger;
  lifecycle: Lifecycle;
  schedules: Schedules;
  active: ActiveRuns;
  agents: AgentState;
  executor: Executor;
  runner: RunHandler;
  taker: Taker;
  status: Status;
  recovery: Recovery;
  instanceId: string;
  leaseMs: number;
  maxConcurrent: number;
}

/**
 * What an instance does only on a shared database (docs/cluster.md): takes the due runs of every
 * instance into its free slots, renews its leases and reaps expired ones, keeps its schedules in step
 * with the changes other instances make, and aborts runs whose cancel another instance recorded.
 */
export function createSharedStore({ store, clock, log, lifecycle, schedules, active, agents, executor, runner, taker, status, recovery, instanceId, leaseMs, maxConcurrent }: SharedStoreOptions) {

  let pollTimer: TimerHandle | undefined;
  let reconcileTimer: TimerHandle | undefined;
  let cancelTimer: TimerHandle | undefined;
  let polling = false;
  /** When the last read of the schedules that succeeded began (full or incremental); the next reconcile reads the changes since. */
  let reconciledAt = 0;
  /** Incremental reconciles since the last full read. */
  let sinceFullRead = 0;

  function armQueuePoll(ms: number): void {
    pollTimer?.cancel();
    pollTimer = lifecycle.stopping ? undefined : clock.setTimer(() => void pollQueue(), ms);
  }

  /**
   * Free slots take due queued runs of any instance (a retry of a reaped run, a run whose claimer is busy):
   * every QUEUE_POLL_MS while slots are free, sooner when the next queued run is due sooner.
   */
  async function pollQueue(): Promise<void> {
    if (polling || lifecycle.stopping) return;
    polling = true;
    let wait = QUEUE_POLL_MS;
    try {
      const free = maxConcurrent - runner.executing - executor.waiting;
      if (free > 0) {
        const got = await taker.more(free);
        for (const run of got) {
          // A run this instance holds (its own retry, or one waiting for a slot here) comes as itself, its
          // record updated in place; any other is held from now. Either way its status is 'running', so the
          // run handler starts it without a take of its own (and one already on its way lets it be).
          const held = active.byId(run.id);
          if (held) Object.assign(held.run, run);
          if (held?.state === 'queued') continue; // its execute is already in the executor's queue
          const a = held ?? active.add(run);
          agents.prefetch(run.agentId);
          active.setState(a, 'queued');
          executor.add(() => runner.execute(a), run.priority);
        }
        if (got.length < free) {
          const nextAt = await store.nextQueuedAt();
          if (nextAt !== null) wait = Math.min(wait, Math.max(0, nextAt - clock.now()));
        }
      }
    } catch (err) {
      log.warn('taking queued runs failed', { error: errorText(err) });
    } finally {
      polling = false;
      armQueuePoll(wait);
    }
  }

  async function reloadSchedule(agentId: string): Promise<void> {
    const mark = schedules.mark();
    adopted(agentId, schedules.adopt(agentId, await store.getSchedule(agentId), mark));
  }

  /** A schedule another instance changed: a run held here that the change forbids is let go (that instance cancelled its row). */
  function adopted(agentId: string, { changed, schedule }: ReturnType<Schedules['adopt']>): void {
    if (!changed) return;
    const a = active.ofAgent(agentId);
    if (a && a.state !== 'running' && (!schedule || schedule.paused)) active.remove(a);
    status.changed();
  }

  /** Reads every schedule again (a lost signal costs at most this long): a full read, cheap next to the fires it keeps right. */
  async function reloadSchedules(): Promise<void> {
    const readAt = clock.now();
    const mark = schedules.mark();
    const stored = await store.loadSchedules();
    const seen = new Set<string>();
    for (const record of stored) {
      seen.add(record.agentId);
      adopted(record.agentId, schedules.adopt(record.agentId, record, mark));
    }
    for (const s of [...schedules.values()]) if (!seen.has(s.agentId)) adopted(s.agentId, schedules.adopt(s.agentId, undefined, mark));
    reconciledAt = readAt;
    sinceFullRead = 0;
  }

  /**
   * The periodic reconcile (docs/cluster.md, "Signals carry the urgent part"): the schedules the API changed
   * since the last read (`changedAt`, indexed; fires do not move it), looking back one more interval so a
   * change that committed a little after its stamp, or was stamped by a clock a little behind, is still
   * seen. A deletion leaves no row to find: its signal, or the stale claim of its next fire, drops it here;
   * so does the full read every FULL_RECONCILE_EVERY turns, which also catches a change that committed
   * later still (a batch that waited out an outage). At 100,000 schedules the full read is ~375 ms on
   * SQLite; the incremental one reads only the rows changed.
   */
  async function reconcile(): Promise<void> {
    if (++sinceFullRead >= FULL_RECONCILE_EVERY) return reloadSchedules();
    const readAt = clock.now();
    const mark = schedules.mark();
    for (const record of await store.loadSchedules(reconciledAt - SCHEDULE_RECONCILE_MS)) adopted(record.agentId, schedules.adopt(record.agentId, record, mark));
    reconciledAt = readAt;
  }

  function reconcileLoop(): void {
    void reconcile()
      .catch((err: unknown) => log.warn('reconciling schedules failed', { error: errorText(err) }))
      .finally(() => {
        if (!lifecycle.stopping) reconcileTimer = clock.setTimer(reconcileLoop, SCHEDULE_RECONCILE_MS);
      });
  }

  /**
   * With each heartbeat (core/instances.ts): renews the leases of the runs this instance holds, then
   * takes back those of instances that stopped renewing theirs and applies the retry policy to them.
   */
  async function maintainLeases(): Promise<void> {
    if (lifecycle.stopping || !lifecycle.started) return;
    const now = clock.now();
    // The runs this instance holds as handed to it (running, waiting for a slot or in one): only those.
    const held: string[] = [];
    for (const a of active.values()) if (a.run.status === 'running' && a.run.instanceId === instanceId) held.push(a.run.id);
    await store.renewLeases(instanceId, now + leaseMs, held);
    await reapExpired(recovery, now);
    // The sweep behind the letting go of waiting runs (storage/promote.ts): a claim that queued one behind a
    // run while that run's end was committing elsewhere left it waiting with nothing before it.
    await store.promoteWaiting();
  }

  /** Aborts the runs held here whose cancel another instance recorded. */
  async function abortCancelRequests(): Promise<void> {
    for (const runId of await store.cancelRequests(instanceId)) {
      const a = active.byId(runId);
      if (a?.state === 'running' && !a.controller.aborted) a.controller.abort(new RunAbort('cancel', 'cancelled'));
    }
  }

  let checking = false;
  /**
   * While this instance runs anything it looks every CANCEL_CHECK_MS for cancels recorded on its runs by
   * other instances, so it aborts them within a second even when the `cancel` signal was lost (the
   * heartbeat, every 5 s, would be too late). With nothing running it costs no query.
   */
  function cancelCheckLoop(): void {
    const check = runner.executing > 0 && !checking && !lifecycle.stopping;
    if (check) checking = true;
    void (check ? abortCancelRequests() : Promise.resolve())
      .catch((err: unknown) => log.warn('checking for cancelled runs failed', { error: errorText(err) }))
      .finally(() => {
        if (check) checking = false;
        if (!lifecycle.stopping) cancelTimer = clock.setTimer(cancelCheckLoop, CANCEL_CHECK_MS);
      });
  }

  /** On a shared store, reads the stored schedule first: another instance may have changed it since this one last looked. */
  async function fresh(agentId: string): Promise<void> {
    if (store.shared) await reloadSchedule(agentId);
  }


  return {
    /** Starts the loops; the schedules were just read in full at `loadedAt`. */
    start(loadedAt: number): void {
      reconciledAt = loadedAt;
      armQueuePoll(0);
      reconcileTimer = clock.setTimer(reconcileLoop, SCHEDULE_RECONCILE_MS);
      cancelTimer = clock.setTimer(cancelCheckLoop, CANCEL_CHECK_MS);
    },
    stop(): void {
      pollTimer?.cancel();
      reconcileTimer?.cancel();
      cancelTimer?.cancel();
    },
    reloadSchedule,
    reloadSchedules,
    maintainLeases,
    fresh,
  };
}
