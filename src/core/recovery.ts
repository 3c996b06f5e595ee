import type { ActiveRuns } from './active-runs.ts';
import type { AgentState } from './agent-state.ts';
import { countOccurrences, latestOccurrences } from './cron.ts';
import { CATCH_UP_ALL_MAX, MISSED_FIRES_COUNTED } from './limits.ts';
import type { Logger } from './logger.ts';
import type { RunObserver } from './observer.ts';
import { RunAbort } from './run-handler.ts';
import type { Runs } from './runs.ts';
import { BUSY } from './runs.ts';
import type { Schedules, ScheduleState } from './schedules.ts';
import type { SchedulerStore } from './store.ts';
import { SLICE_MS } from './timeline.ts';

/**
 * Start-up reconciliation: the state the previous process left in the database (README, "Restarts")
 * is brought up to `now` before the scheduler takes new work.
 */
export interface Recovery {
  store: SchedulerStore;
  log: Logger;
  agents: AgentState;
  active: ActiveRuns;
  runs: Runs;
  schedules: Schedules;
  /** Told how many fires each schedule missed (metrics). */
  observer: Required<RunObserver>;
}

/** Why a run whose instance stopped heartbeating failed (docs/cluster.md, "Leases and fences"). */
export const REAPED = 'interrupted: its instance stopped answering';

/**
 * Runs the previous process left open. On an exclusive store (a SQLite file, memory) every one is a
 * leftover: running ones were interrupted (failed, then retried), queued ones queue again. On a shared
 * store the running runs of live instances are theirs: only those whose lease ended are taken back
 * (`reapExpired`), and queued runs stay in the database for whichever instance takes them.
 */
export async function recoverOpenRuns(recovery: Recovery, now: number): Promise<void> {
  const { store, agents, active, runs } = recovery;
  if (store.shared) return reapExpired(recovery, now);
  for (const run of await store.loadOpenRuns()) {
    // No await when the agent is known: most open runs belong to agents already read for an earlier one.
    const agent = agents.get(run.agentId) ?? (await agents.load(run.agentId));
    if (run.waiting) {
      runs.foundWaiting(run); // the store lets it go when the runs before it end
      continue;
    }
    const a = active.add(run);
    if (run.status === 'running') {
      active.setState(a, 'running');
      runs.finish(a, agent, { kind: 'failed', error: 'interrupted by restart' });
    } else if (!agent) {
      runs.finish(a, agent, { kind: 'cancelled', error: 'agent no longer exists' });
    } else {
      runs.admit(a, now);
    }
  }
  // Every run the predecessor left open is held or ended now, and it recorded no slot after `now` (it is
  // gone, and a slot is recorded once the clock reached it): later claims can be decided here (claims.ts).
  runs.decideClaimsAfter(now);
  // A waiting run whose agent has nothing open left (a database from before a crash mid-way) goes now.
  await store.promoteWaiting();
}

/**
 * Takes back the runs whose instance stopped renewing their lease: the store marks them failed (under a
 * new epoch, so their holder's late writes change nothing) and this instance applies the retry policy,
 * queuing the retry under `retry:<run id>`, so only one instance ever queues it.
 */
export async function reapExpired({ store, agents, active, runs }: Recovery, now: number): Promise<void> {
  for (const run of await store.reapExpired(now, REAPED)) {
    // As stored: the dead instance made the last changes to it.
    const agent = await agents.refresh(run.agentId);
    // The store already wrote the failure; `finish` writes it again under the new epoch (the same values) and decides the retry.
    // Held here too only if this instance's own lease ran out (it was frozen): that handler goes, its writes void.
    active.byId(run.id)?.controller.abort(new RunAbort('shutdown', REAPED));
    const a = active.add(run);
    active.setState(a, 'running');
    runs.finish(a, agent, { kind: 'failed', error: REAPED });
  }
}

/**
 * Fires missed while the process was down make one catch-up run for the latest missed slot (or a
 * skipped record with `catchUp: false`), recorded either way with how many were missed; then every
 * schedule that may fire has its next fire planned.
 *
 * It must not hold the start: the server answers requests only once the scheduler has started (app.ts),
 * and 1,000 every-second schedules down six hours are 21.6 million missed slots. So the latest missed
 * slot is found with one backwards search, the count stops at MISSED_FIRES_COUNTED (shared by schedules
 * that missed the same slots), and the schedules are gone through in slices of the timeline's length:
 * the first slice runs within `start`, the rest in later turns of the event loop, after the server
 * answers. A schedule set, paused or removed before its turn came is taken as it is then (it was
 * planned by that change); one still waiting has its missed slots counted up to the time of its turn,
 * so a slot that came due meanwhile is in its catch-up, not lost.
 */
export function catchUpMissedFires(recovery: Recovery, now: number): void {
  // A snapshot of the schedules and their versions: a change made since is the change's business.
  const pending = Array.from(recovery.schedules.values(), (s) => ({ s, version: s.version }));
  catchUpFrom(recovery, pending, 0, now);
}

/** Goes through `pending` from `from` for one slice, then leaves the rest to a later turn of the event loop. */
function catchUpFrom(recovery: Recovery, pending: readonly { s: ScheduleState; version: number }[], from: number, now: number): void {
  const { schedules } = recovery;
  const { clock } = schedules;
  const sliceStart = clock.now();
  for (let i = from; i < pending.length; ) {
    const { s, version } = pending[i++]!;
    if (schedules.unchanged(s, version)) catchUp(recovery, s, Math.max(now, clock.now()));
    if (i < pending.length && clock.now() - sliceStart >= SLICE_MS) {
      schedules.later(() => catchUpFrom(recovery, pending, i, now));
      return;
    }
  }
}

/** One schedule's missed fires at `now`, then its next fire planned. */
function catchUp({ log, runs, schedules, observer }: Recovery, s: ScheduleState, now: number): void {
  if (!s.enabled || s.paused) return; // a budget pause's resume was planned by `load`
  if (s.nextRunAt === null) {
    schedules.setNext(s, schedules.nextAfter(s, now));
    return;
  }
  if (s.nextRunAt > now) {
    schedules.plan(s);
    return;
  }
  // The stored next fire is the first missed slot (counted even if the expression no longer names it, as before).
  const found = countOccurrences(s.expression, s.timezone, s.nextRunAt - 1, now, MISSED_FIRES_COUNTED);
  const last = found.latest ?? s.nextRunAt;
  const counted = found.capped ? `${found.count}+` : String(Math.max(1, found.count));
  const why = `missed ${counted} fire(s) while the server was down`;
  observer.firesMissed(s.agentId, Math.max(1, found.count), found.capped);
  // The window: missed slots older than it are left alone (the ledger shows them missed).
  const oldest = s.catchUpWindowMs === null ? s.nextRunAt : Math.max(s.nextRunAt, now - s.catchUpWindowMs);
  if (!s.catchUp) runs.recordSkipped(s, 'catchup', last, `${why}; catch-up is off`);
  else if (s.catchUpPolicy === 'all') {
    // Every missed slot in the window, the latest CATCH_UP_ALL_MAX of them, oldest first: one after another.
    const slots = latestOccurrences(s.expression, s.timezone, now, CATCH_UP_ALL_MAX).filter((t) => t >= oldest);
    for (const t of slots) runs.offer(s, 'catchup', t, `${why}; ${BUSY}`, true);
    log.info('catch-up runs claimed', { agentId: s.agentId, missed: counted, runs: slots.length });
  } else if (last >= oldest) {
    runs.offer(s, 'catchup', last, `${why}; ${BUSY}`);
    log.info('catch-up run claimed', { agentId: s.agentId, missed: counted });
  } else log.info('missed fires older than the catch-up window', { agentId: s.agentId, missed: counted });
  schedules.setNext(s, schedules.nextAfter(s, now));
}
