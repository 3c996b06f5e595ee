import { PRIORITY_LEVELS } from './executor.ts';
import type { ActiveRuns } from './active-runs.ts';
import type { AgentState } from './agent-state.ts';
import type { Crossing } from './budgets.ts';
import type { Clock } from './clock.ts';
import { validateCron } from './cron.ts';
import { badRequest, conflict, notFound } from './errors.ts';
import { iso, type EventLog } from './event-log.ts';
import type { Runs } from './runs.ts';
import type { Schedules, ScheduleSpec, ScheduleState } from './schedules.ts';
import type { Status } from './status.ts';
import type { AgentRecord, RunRecord, ScheduleRecord, SchedulerStore } from './store.ts';

/** What a pause may say (CONTRACT §11): a note shown with the paused job, and when it ends by itself. */
export interface PauseOptions {
  note?: string | undefined;
  /** Resumes by itself then (`agent:resumed`), on whichever instance is alive. */
  until?: number | undefined;
}

export interface ScheduleCommandsOptions {
  store: SchedulerStore;
  clock: Clock;
  schedules: Schedules;
  agents: AgentState;
  active: ActiveRuns;
  runs: Runs;
  events: EventLog;
  status: Status;
  /** On a shared store, reads the stored schedule first: another instance may have changed it since. */
  fresh(agentId: string): Promise<void>;
  /** Tells the other instances (the `schedules` signal) once a change is committed. */
  onScheduleChange?(agentId: string): void;
}

/** The schedule commands the services call: set, remove, pause, resume (README, "Concepts"); and a budget's pause and resume. */
export function createScheduleCommands({ store, clock, schedules, agents, active, runs, events, status, fresh, onScheduleChange }: ScheduleCommandsOptions) {
  function changedSchedule(agentId: string): void {
    onScheduleChange?.(agentId);
  }

  function requireSchedule(agentId: string, jobId: string): ScheduleState {
    const s = schedules.get(agentId);
    if (!s || s.jobId !== jobId) throw notFound(`No scheduled task found for agent ${agentId} with job ${jobId}`);
    return s;
  }

  /**
   * Drops the agent's run waiting or queued here, and any other open one `stored` names (held by no one
   * here, e.g. a retry queued by another instance): cancelled, fenced by the epoch read, so a run taken
   * meanwhile is not touched.
   */
  function dropOpen(agentId: string, stored: readonly RunRecord[], why: string): void {
    const a = active.ofAgent(agentId);
    if (a && a.state !== 'running') runs.drop(a, why);
    for (const run of stored) {
      if (run.status !== 'queued' || active.byId(run.id)) continue;
      runs.drop(active.add(run), why);
    }
  }

  /** After a change to its schedule, an agent with nothing running shows the status that follows from it. */
  async function settleStatus(agentId: string): Promise<void> {
    const agent = await agents.load(agentId);
    if (agent && agent.status !== 'RUNNING') agents.write(agent, { status: agents.restingStatus(agent) });
  }

  return {
    /** Creates or replaces the agent's schedule (validated: a bad expression or timezone is a 400). */
    async setSchedule(agent: AgentRecord, spec: ScheduleSpec): Promise<ScheduleRecord> {
      validateCron(spec.expression, spec.timezone);
      if (!Number.isInteger(spec.priority) || spec.priority < 1 || spec.priority > PRIORITY_LEVELS) throw badRequest(`priority: expected 1 to ${PRIORITY_LEVELS}, got ${spec.priority}`);
      // The caller's fresh record serves when the scheduler holds no copy: no read per schedule.
      const cached = agents.get(agent.id) ?? agent;
      const record = schedules.replace(agent.id, { ...spec, owner: agent.owner }, await schedules.nextRevision());
      // A new schedule clears an exhausted agent's error state (lastError stays visible); RUNNING stays RUNNING.
      if (cached.status !== 'RUNNING') {
        const wasError = cached.status === 'ERROR';
        if (wasError) cached.status = 'IDLE';
        agents.write(cached, { ...(wasError && { retryCount: 0, backoffUntil: null }), status: agents.restingStatus(cached) });
      }
      status.changed();
      await store.flush();
      changedSchedule(agent.id);
      return record;
    },

    /**
     * Removes the agent's schedule and drops its pending retry or queued run; a run already going finishes.
     * `stored`: the agent's open runs as the database has them (the services read them on a shared store),
     * so a retry another instance holds is cancelled too.
     */
    async removeSchedule(agentId: string, stored: readonly RunRecord[] = []): Promise<void> {
      await fresh(agentId);
      if (!schedules.get(agentId)) throw notFound(`No scheduled task found for agent ${agentId}`);
      schedules.remove(agentId);
      dropOpen(agentId, stored, 'dropped: agent unscheduled');
      await settleStatus(agentId);
      status.changed();
      await store.flush();
      changedSchedule(agentId);
    },

    /**
     * Pauses the schedule (409 while its agent runs, here or — per `stored`, its open runs as the database
     * has them — on another instance); a pending retry or queued run is dropped as cancelled. With `until` it
     * resumes by itself then; `note` is shown with it. A paused job paused again takes the new note and end
     * (a budget pause becomes the caller's), without another `agent:paused`.
     */
    async pause(agentId: string, jobId: string, stored: readonly RunRecord[] = [], how: PauseOptions = {}): Promise<void> {
      const until = how.until ?? null;
      if (until !== null && until <= clock.now()) throw badRequest(`body.until: expected a time in the future, got ${iso(until)}`);
      await fresh(agentId);
      const revision = await schedules.nextRevision();
      const s = requireSchedule(agentId, jobId);
      const a = active.ofAgent(agentId);
      if (a?.state === 'running' || stored.some((r) => r.status === 'running')) throw conflict(`Cannot pause agent ${agentId} while it is running`);
      const wasPaused = s.paused;
      if (!wasPaused) dropOpen(agentId, stored, 'dropped: job paused');
      schedules.pause(s, revision, 'manual', until, how.note ?? null);
      if (!wasPaused) {
        const agent = await agents.load(agentId);
        if (agent) agents.write(agent, { status: 'PAUSED', retryCount: 0, backoffUntil: null });
        events.emit('agent:paused', agentId, { agentId, jobId, status: 'paused', timestamp: iso(clock.now())! });
        status.changed();
      }
      await store.flush();
      changedSchedule(agentId);
    },

    /**
     * The agent's budget is spent (budgets.ts): `agent:budget-exceeded`, then its job is paused until the
     * next period (`agent:paused`) — a run already going finishes — and a pending retry is dropped. A job
     * paused by hand stays as it is and an agent without a schedule only gets the event (their manual runs are 409s).
     */
    async pauseForBudget(agentId: string, crossing: Crossing): Promise<void> {
      await fresh(agentId);
      const forBudget = (agentId: string) => schedules.get(agentId)?.pauseReason === 'budget';
      if (forBudget(agentId)) return;
      const revision = await schedules.nextRevision();
      if (forBudget(agentId)) return;
      // A job paused by hand stays paused as it is; the crossing is still told.
      const s = schedules.get(agentId);
      const pause = s !== undefined && !s.paused;
      const now = clock.now();
      const jobId = s?.jobId ?? agentId;
      events.emit('agent:budget-exceeded', agentId, {
        agentId, jobId, period: crossing.period, costUsd: crossing.costUsd, tokens: crossing.tokens, resumesAt: iso(crossing.resumesAt)!, timestamp: iso(now)!,
      });
      if (s && pause) {
        dropOpen(agentId, [], 'dropped: budget exceeded');
        schedules.pause(s, revision, 'budget', crossing.resumesAt);
        const agent = await agents.load(agentId);
        if (agent && active.ofAgent(agentId)?.state !== 'running') agents.write(agent, { status: 'PAUSED', retryCount: 0, backoffUntil: null });
        events.emit('agent:paused', agentId, { agentId, jobId, status: 'paused', timestamp: iso(now)! });
        status.changed();
      }
      await store.flush();
      if (pause) changedSchedule(agentId);
    },

    /**
     * A pause's end came (a budget's next period, or the `until` it was given; planned under `version`): resumed by
     * whichever instance's conditional update lands first (`endTimedPause`), which alone sends `agent:resumed`; the
     * others see the change.
     */
    async resumeOnTime(agentId: string, version: number): Promise<void> {
      const s = schedules.get(agentId);
      if (!s || s.version !== version || !s.paused || s.resumeAt === null) return;
      const revision = await schedules.nextRevision();
      const won = await store.endTimedPause(agentId, s.revision, { paused: false, pauseReason: null, resumeAt: null, pauseNote: null, revision, changedAt: clock.now() });
      if (!won) {
        await fresh(agentId); // resumed elsewhere, or changed through the API meanwhile
        return;
      }
      if (schedules.get(agentId) !== s) return;
      schedules.resume(s, revision);
      await settleStatus(agentId);
      events.emit('agent:resumed', agentId, { agentId, jobId: s.jobId, status: 'resumed', nextRunAt: iso(s.nextRunAt), timestamp: iso(clock.now())! });
      status.changed();
      await store.flush();
      changedSchedule(agentId);
    },

    /** Resumes a paused schedule (400 unless paused) at the first occurrence after now; returns that time. */
    async resume(agentId: string, jobId: string): Promise<number | null> {
      await fresh(agentId);
      const revision = await schedules.nextRevision();
      const s = requireSchedule(agentId, jobId);
      if (!s.paused) throw badRequest(`Job ${jobId} is not paused`);
      schedules.resume(s, revision);
      await settleStatus(agentId);
      events.emit('agent:resumed', agentId, { agentId, jobId, status: 'resumed', nextRunAt: iso(s.nextRunAt), timestamp: iso(clock.now())! });
      status.changed();
      await store.flush();
      changedSchedule(agentId);
      return s.nextRunAt;
    },

  };
}
