import type { Clock } from './clock.ts';
import { nextOccurrence } from './cron.ts';
import { jitterOf } from './jitter.ts';
import type { CatchUpPolicy, Fence, OverlapPolicy, PauseReason, ScheduleRecord, SchedulerStore } from './store.ts';
import type { Timeline } from './timeline.ts';
import { createStateBuilder } from './schedule-state.ts';

/** What a caller sets on an agent's schedule; the scheduler adds its state (paused, next fire, times). */
export interface ScheduleSpec {
  jobId: string;
  expression: string;
  timezone: string;
  priority: number;
  enabled: boolean;
  catchUp: boolean;
  /** @default 0 */
  jitterMs?: number;
  /** @default 'latest' */
  catchUpPolicy?: CatchUpPolicy;
  /** @default null: no window */
  catchUpWindowMs?: number | null;
  /** @default 'skip' */
  overlap?: OverlapPolicy;
  /** The agent's owner. @default '' */
  owner?: string;
}

/**
 * A schedule as the scheduler holds it: the stored record plus the version its planned fires carry.
 * `revision` (stored) changes with every API change and is what a fire claims under, across instances;
 * `version` (memory only) also changes with every new next slot and drops superseded timeline entries here.
 */
export interface ScheduleState extends ScheduleRecord {
  /**
   * Changed by `bump` whenever planned fires become stale (a new next slot, a pause, a replacement):
   * a fire whose version differs is ignored when it comes due. Drawn from one counter for every
   * schedule, so a schedule removed and set again never matches a fire planned for the old one.
   */
  version: number;
}

/** The in-memory table of schedules, one per agent, and every change to it (each one written through). */
export type Schedules = ReturnType<typeof createSchedules>;

export function createSchedules(store: SchedulerStore, clock: Clock, timeline: Timeline) {
  const byAgent = new Map<string, ScheduleState>();
  let versions = 0;
  /**
   * Changes this instance made (set, pause, resume, remove, forget, disable), numbered in order, by agent: a
   * read of the store that began before one (its `mark` is lower) saw the row as it was and must not undo
   * the change (`adopt`). A sequence, not a time: a read and a change within one millisecond are still
   * ordered. An entry is kept until a read for that agent begins after it.
   */
  const changedHere = new Map<string, number>();
  let changes = 0;
  // Only a shared store is read back (`adopt`); an exclusive one would just collect entries.
  const changed = (agentId: string) => void (store.shared && changedHere.set(agentId, ++changes));
  /** The last revision handed out here, on a store this process alone writes (see `nextRevision`). */
  let revisions = 0;

  const { stateOf } = createStateBuilder();

  /** Unique across instances: two pausing the same agent in the same millisecond differ in the random part. */
  const pauseId = (agentId: string, at: number) => `${agentId}:${at}:${Math.floor(Math.random() * 0x100000000).toString(36)}`;

  function bump(s: ScheduleState): void {
    s.version = ++versions;
    s.updatedAt = clock.now();
  }

  /** Puts the schedule's next fire on the timeline, if it has one and may fire; or, paused with an end (a budget's, or `until`), its resume. */
  function plan(s: ScheduleState): void {
    if (s.paused) {
      if (s.resumeAt !== null) timeline.resumeAt(s.agentId, s.version, s.resumeAt);
    } else if (s.nextRunAt !== null && s.enabled) timeline.fireAt(s.agentId, s.version, s.nextRunAt + jitterOf(s.jobId, s.nextRunAt, s.jitterMs));
  }

  function setNext(s: ScheduleState, next: number | null): void {
    s.nextRunAt = next;
    bump(s);
    store.write({ op: 'schedule.update', agentId: s.agentId, set: { nextRunAt: next, updatedAt: s.updatedAt } });
    plan(s);
  }

  const nextAfter = (s: ScheduleState, t: number) => nextOccurrence(s.expression, s.timezone, t);

  /**
   * Schedules moved on by fires whose claims are not sent yet, with the version each then had: their new
   * `nextRunAt` is written just after the claim is sent (`writeFired`), so the claim does not wait for the
   * commit of a thousand schedule updates. A crash in between leaves the fired slot as `nextRunAt`, and the
   * catch-up at the next start finds that slot's run taken: nothing runs twice.
   */
  let firedStates: ScheduleState[] = [];
  let firedVersions: number[] = [];

  return {
    get: (agentId: string) => byAgent.get(agentId),
    values: () => byAgent.values(),
    nextAfter,
    setNext,
    plan,
    /** Whether `s` is still the schedule held for its agent, unchanged since it had `version` (not replaced, paused, moved on or removed). */
    unchanged: (s: ScheduleState, version: number): boolean => byAgent.get(s.agentId) === s && s.version === version,
    /** The scheduler's clock, for work that measures its own slices (recovery.ts). */
    clock,
    /** Calls `fn` in a later slice of the timeline (at once, once the event loop has had a turn); never after the scheduler stops. */
    later: (fn: () => void): void => timeline.callAt(clock.now(), fn),

    /** Takes the stored schedules as they are; their fires are planned by recovery, which knows what was missed. */
    async load(): Promise<void> {
      const hold = (record: ScheduleRecord) => {
        const s = stateOf(record, ++versions);
        if (s.revision > revisions) revisions = s.revision;
        byAgent.set(s.agentId, s);
        // A budget pause resumes by itself at its time, even one passed while no process ran (then at once).
        if (s.paused) plan(s);
      };
      // Records come page by page, each made a state at once (not all read, then all copied); a store that
      // does not hand them over answers them all.
      for (const record of await store.loadSchedules(undefined, hold)) hold(record);
    },

    /**
     * The revision of the next API change (docs/cluster.md, "Claim before run"): on a shared store from the
     * database's counter, so concurrent changes on two instances never share one and a schedule removed and
     * set again never goes back to a revision an earlier fire was planned with. On an exclusive store this
     * process is the only writer: a counter here, started above every stored revision, is the same promise
     * without a round trip.
     */
    /** The position of the next read in the order of this instance's changes (see `adopt`). */
    mark: (): number => changes,

    nextRevision: (): Promise<number> => (store.shared ? store.nextRevision() : Promise.resolve(++revisions)),

    /**
     * The fire of `agentId` planned at `at` came due: moves its schedule on to the next slot and returns
     * it, or undefined when the fire is stale or the schedule may not fire. The next slot is computed from
     * now, not from `at`: if the process was blocked past several slots, they are not fired in a burst.
     */
    fired(agentId: string, version: number, at: number): ScheduleState | undefined {
      const s = byAgent.get(agentId);
      if (!s || s.version !== version || !s.enabled || s.paused) return undefined;
      s.nextRunAt = nextAfter(s, Math.max(at, clock.now()));
      bump(s);
      plan(s);
      firedStates.push(s);
      firedVersions.push(s.version);
      return s;
    },

    /** Writes the next fires of the schedules `fired` moved on; one changed since (paused, replaced) wrote its own. */
    writeFired(): void {
      const states = firedStates;
      const versions = firedVersions;
      firedStates = [];
      firedVersions = [];
      for (let i = 0; i < states.length; i++) {
        const s = states[i]!;
        if (s.version !== versions[i] || byAgent.get(s.agentId) !== s) continue;
        store.write({ op: 'schedule.update', agentId: s.agentId, set: { nextRunAt: s.nextRunAt, updatedAt: s.updatedAt } });
      }
    },

    /** Creates or replaces the schedule of `agentId`, unpaused, under `revision` (from `nextRevision`), and plans its first fire. */
    replace(agentId: string, spec: ScheduleSpec, revision: number): ScheduleRecord {
      const now = clock.now();
      const prev = byAgent.get(agentId);
      // A replaced schedule starts unpaused: a pause it had ends here (the ledger's record of it).
      if (prev?.paused) store.write({ op: 'pause.end', agentId, at: now });
      const s = stateOf({
        agentId,
        jobId: spec.jobId,
        expression: spec.expression,
        timezone: spec.timezone,
        priority: spec.priority,
        enabled: spec.enabled,
        paused: false,
        catchUp: spec.catchUp,
        catchUpPolicy: spec.catchUpPolicy ?? 'latest',
        catchUpWindowMs: spec.catchUpWindowMs ?? null,
        overlap: spec.overlap ?? 'skip',
        owner: spec.owner ?? '',
        jitterMs: spec.jitterMs ?? 0,
        nextRunAt: spec.enabled ? nextOccurrence(spec.expression, spec.timezone, now) : null,
        pauseReason: null,
        resumeAt: null,
        pauseNote: null,
        revision,
        changedAt: now,
        createdAt: prev?.createdAt ?? now,
        updatedAt: now,
      }, 0);
      bump(s);
      const { version: _v, ...record } = s;
      changed(agentId);
      store.write({ op: 'schedule.upsert', schedule: record });
      byAgent.set(agentId, s);
      plan(s);
      return record;
    },

    /**
     * Takes the stored record of `agentId` (undefined: it has none) when it differs from this instance's
     * copy: another instance changed it (docs/cluster.md, "Signals carry the urgent part"). Changes only
     * memory — the instance that made the change wrote it. `mark`: `mark()` when the read began; a change
     * made here after that is newer than what was read, and stays. Returns the schedule as held now, or undefined.
     */
    adopt(agentId: string, stored: ScheduleRecord | undefined, mark: number): { changed: boolean; schedule: ScheduleState | undefined } {
      const held = byAgent.get(agentId);
      const local = changedHere.get(agentId);
      if (local !== undefined && local > mark) return { changed: false, schedule: held };
      changedHere.delete(agentId);
      if (!stored) {
        if (held) byAgent.delete(agentId);
        return { changed: held !== undefined, schedule: undefined };
      }
      if (held && held.revision === stored.revision && held.enabled === stored.enabled && held.paused === stored.paused && held.jobId === stored.jobId) {
        return { changed: false, schedule: held };
      }
      const s = stateOf(stored, ++versions);
      // A stored next fire already past was fired (or will be claimed as taken) elsewhere: plan the one after now.
      const now = clock.now();
      if (s.enabled && !s.paused && (s.nextRunAt === null || s.nextRunAt <= now)) s.nextRunAt = nextAfter(s, now);
      byAgent.set(agentId, s);
      plan(s);
      return { changed: true, schedule: s };
    },

    remove(agentId: string): void {
      if (byAgent.get(agentId)?.paused) store.write({ op: 'pause.end', agentId, at: clock.now() });
      byAgent.delete(agentId);
      changed(agentId);
      store.write({ op: 'schedule.delete', agentId });
    },

    /** Drops the schedule from memory only: its agent's row (and the schedule with it) is being deleted. */
    forget(agentId: string): void {
      byAgent.delete(agentId);
      changed(agentId);
    },

    /** Pauses, by a caller (`manual`, until `resumeAt` if given) or by the agent's budget until `resumeAt` (its resume is planned here). */
    pause(s: ScheduleState, revision: number, reason: PauseReason = 'manual', resumeAt: number | null = null, note: string | null = null): void {
      // The ledger keeps each pause: paused again, the one before ends now and this one begins.
      const at = clock.now();
      if (s.paused) store.write({ op: 'pause.end', agentId: s.agentId, at });
      store.write({ op: 'pause.begin', pause: { id: pauseId(s.agentId, at), agentId: s.agentId, jobId: s.jobId, reason, note, pausedAt: at, resumedAt: null } });
      s.paused = true;
      s.pauseReason = reason;
      s.resumeAt = resumeAt;
      s.pauseNote = note;
      s.revision = revision;
      bump(s);
      s.changedAt = s.updatedAt;
      changed(s.agentId);
      store.write({ op: 'schedule.update', agentId: s.agentId, set: { paused: true, pauseReason: reason, resumeAt, pauseNote: note, revision, changedAt: s.changedAt, updatedAt: s.updatedAt } });
      plan(s);
    },

    /** Unpauses: fires missed while paused are not made up, the next one is the first after now. */
    resume(s: ScheduleState, revision: number): void {
      store.write({ op: 'pause.end', agentId: s.agentId, at: clock.now() });
      s.paused = false;
      s.pauseReason = null;
      s.resumeAt = null;
      s.pauseNote = null;
      s.revision = revision;
      s.changedAt = clock.now();
      changed(s.agentId);
      store.write({ op: 'schedule.update', agentId: s.agentId, set: { paused: false, pauseReason: null, resumeAt: null, pauseNote: null, revision, changedAt: s.changedAt } });
      setNext(s, s.enabled ? nextAfter(s, clock.now()) : null);
    },

    /**
     * Retries are exhausted: the schedule stops firing but is kept, so its expression stays visible.
     * Fenced by the run that exhausted them: a run the cluster took back disables nothing.
     */
    disable(s: ScheduleState, fence?: Fence): void {
      s.enabled = false;
      s.nextRunAt = null;
      bump(s);
      s.changedAt = s.updatedAt; // other instances' reconciles see it stop
      changed(s.agentId);
      store.write({ op: 'schedule.update', agentId: s.agentId, set: { enabled: false, nextRunAt: null, changedAt: s.changedAt, updatedAt: s.updatedAt }, ...(fence && { fence }) });
    },
  };
}
