import { PRIORITIES } from '../schemas/common.ts';
import type { ActiveRuns } from './active-runs.ts';
import type { AgentState } from './agent-state.ts';
import type { Budgets } from './budgets.ts';
import type { Clock } from './clock.ts';
import { conflict } from './errors.ts';
import { RunAbort } from './run-handler.ts';
import type { Runs } from './runs.ts';
import type { Schedules } from './schedules.ts';
import type { Lifecycle, Status } from './status.ts';
import type { AgentRecord, RunRecord, SchedulerStore } from './store.ts';

export interface RunCommandsOptions {
  store: SchedulerStore;
  clock: Clock;
  lifecycle: Lifecycle;
  schedules: Schedules;
  agents: AgentState;
  active: ActiveRuns;
  runs: Runs;
  status: Status;
  budgets: Pick<Budgets, 'refuseIfOver'>;
  /** Asked to cancel a run another instance is running (SchedulerOptions.onCancelElsewhere). */
  onCancelElsewhere?(runId: string): void;
}

/** The run commands the services call: run now, backfill, cancel a run, forget an agent being deleted. */
export function createRunCommands({ store, clock, lifecycle, schedules, agents, active, runs, status, budgets, onCancelElsewhere }: RunCommandsOptions) {
  /**
   * Queues one run per slot of `slots` (trigger `backfill`, the schedule's priority, `scheduledAt` the
   * slot), oldest first, each waiting its turn behind the agent's open runs (they never overlap); a slot
   * that already has a run (its dedupe key `jobId@slot`) is left alone. Answers the runs it queued.
   * The caller checks the agent, its schedule and the number of slots (BACKFILL_MAX_SLOTS).
   */
  async function backfill(agentId: string, slots: readonly number[]): Promise<RunRecord[]> {
    if (lifecycle.stopping) throw conflict('The scheduler is shutting down');
    const s = schedules.get(agentId);
    if (!s) throw conflict(`Agent "${agentId}" has no schedule to backfill`);
    const queued = await runs.backfill(s, [...slots].sort((a, b) => a - b));
    await store.flush();
    return queued;
  }

  /** One run now through the same queue and retry policy; skipped (and recorded) if one is in progress. */
  async function runNow(agent: AgentRecord): Promise<RunRecord> {
    if (lifecycle.stopping) throw conflict('The scheduler is shutting down');
    const held = await agents.load(agent.id);
    await budgets.refuseIfOver(held ?? agent);
    const run = await runs.offerNow(schedules.get(agent.id) ?? { agentId: agent.id, jobId: agent.id, priority: PRIORITIES.NORMAL });
    await store.flush();
    return run;
  }

  /**
   * Cancels a run; false when it is finished or unknown. On a shared store `stored` (the run as the
   * database has it, read by the services) lets it cancel a run another instance holds: a queued one in
   * the database (fenced, so one taken meanwhile is left alone), a running one by recording the request on
   * its row (durable: its holder looks for such requests twice a second while it runs anything) and telling its
   * instance at once (`onCancelElsewhere`, the `cancel` signal); either way the holder aborts it.
   */
  async function cancel(runId: string, stored?: RunRecord): Promise<boolean> {
    const a = active.byId(runId);
    if (!a) {
      // A waiting run is held by no instance (the store lets it go in its turn): cancelled like a queued one elsewhere.
      if (!stored || (!store.shared && !stored.waiting)) return false;
      if (stored.status === 'running') {
        store.write({ op: 'run.update', id: runId, set: { cancelRequestedAt: clock.now() } });
        await store.flush();
        onCancelElsewhere?.(runId);
        return true;
      }
      if (stored.status !== 'queued') return false;
      await agents.load(stored.agentId);
      runs.drop(active.add(stored), 'cancelled');
      await store.flush();
      return true;
    }
    if (a.state === 'running') {
      a.controller.abort(new RunAbort('cancel', 'cancelled'));
      await Promise.resolve(); // let the handler race settle, so the run is cancelled on return
    } else runs.drop(a, 'cancelled');
    await store.flush();
    return true;
  }

  /** Forgets an agent that is being deleted: aborts its run, drops its retry and schedule. */
  async function forgetAgent(agentId: string): Promise<void> {
    const a = active.ofAgent(agentId);
    if (a?.state === 'running') a.controller.abort(new RunAbort('deleted', 'agent deleted'));
    else if (a) runs.drop(a, 'agent deleted');
    schedules.forget(agentId);
    agents.forget(agentId);
    status.changed();
    await store.flush();
  }

  return { backfill, runNow, cancel, forgetAgent };
}
