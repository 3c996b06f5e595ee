import type { ActiveRuns } from './active-runs.ts';
import type { AgentState } from './agent-state.ts';
import type { Logger } from './logger.ts';
import { RunAbort } from './run-handler.ts';
import type { Runs } from './runs.ts';
import { BUSY } from './runs.ts';
import type { Schedules } from './schedules.ts';
import type { SchedulerStore } from './store.ts';

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
}

/** The most missed fires counted one by one when recording what a restart missed; past it the count reads "10000+". */
const MISSED_COUNT_LIMIT = 10_000;

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
 */
export function catchUpMissedFires({ log, runs, schedules }: Recovery, now: number): void {
  for (const s of schedules.values()) {
    if (!s.enabled || s.paused) continue;
    if (s.nextRunAt === null) {
      schedules.setNext(s, schedules.nextAfter(s, now));
      continue;
    }
    if (s.nextRunAt > now) {
      schedules.plan(s);
      continue;
    }
    let last = s.nextRunAt;
    let missed = 1;
    for (let t = schedules.nextAfter(s, last); t !== null && t <= now && missed < MISSED_COUNT_LIMIT; t = schedules.nextAfter(s, t)) {
      last = t;
      missed++;
    }
    const counted = missed >= MISSED_COUNT_LIMIT ? `${MISSED_COUNT_LIMIT}+` : String(missed);
    const why = `missed ${counted} fire(s) while the server was down`;
    if (!s.catchUp) runs.recordSkipped(s, 'catchup', last, `${why}; catch-up is off`);
    else {
      runs.offer(s, 'catchup', last, `${why}; ${BUSY}`);
      log.info('catch-up run claimed', { agentId: s.agentId, missed: counted });
    }
    schedules.setNext(s, schedules.nextAfter(s, now));
  }
}
