import type { ActiveRuns } from './active-runs.ts';
import type { AgentState } from './agent-state.ts';
import type { Logger } from './logger.ts';
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

/** Runs the previous process left open: running ones were interrupted (failed, then retried), queued ones queue again. */
export async function recoverOpenRuns({ store, agents, active, runs }: Recovery, now: number): Promise<void> {
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
    if (!s.catchUp) runs.record(s, 'catchup', 1, last, `${why}; catch-up is off`);
    else if (runs.offer(s, 'catchup', last, `${why}; ${BUSY}`).status === 'queued') log.info('catch-up run queued', { agentId: s.agentId, missed: counted });
    schedules.setNext(s, schedules.nextAfter(s, now));
  }
}
