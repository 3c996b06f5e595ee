import type { Clock } from './clock.ts';
import { nextOccurrence } from './cron.ts';
import type { Fence, ScheduleRecord, SchedulerStore } from './store.ts';
import type { Timeline } from './timeline.ts';

/** What a caller sets on an agent's schedule; the scheduler adds its state (paused, next fire, times). */
export interface ScheduleSpec {
  jobId: string;
  expression: string;
  timezone: string;
  priority: number;
  enabled: boolean;
  catchUp: boolean;
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
   * One copy of each distinct expression and timezone string: 100,000 schedules usually share a few
   * dozen, and a copy per schedule would be most of their memory.
   */
  const interned = new Map<string, string>();
  function intern(s: string): string {
    const found = interned.get(s);
    if (found !== undefined) return found;
    interned.set(s, s);
    return s;
  }

  function bump(s: ScheduleState): void {
    s.version = ++versions;
    s.updatedAt = clock.now();
  }

  /** Puts the schedule's next fire on the timeline, if it has one and may fire. */
  function plan(s: ScheduleState): void {
    if (s.nextRunAt !== null && s.enabled && !s.paused) timeline.fireAt(s.agentId, s.version, s.nextRunAt);
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

    /** Takes the stored schedules as they are; their fires are planned by recovery, which knows what was missed. */
    async load(): Promise<void> {
      // The loaded records become the states in place: at 100,000 schedules a copy each is 100,000 more objects to collect.
      for (const record of await store.loadSchedules()) {
        const s = record as ScheduleState;
        s.expression = intern(record.expression);
        s.timezone = intern(record.timezone);
        s.version = ++versions;
        byAgent.set(s.agentId, s);
      }
    },

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

    /**
     * Creates or replaces the schedule of `agentId`, unpaused, and plans its first fire. `storedRevision`
     * is the revision the database holds (read by the caller on a shared store, where another instance may
     * have changed it since): the new one is above both it and this instance's.
     */
    replace(agentId: string, spec: ScheduleSpec, storedRevision = 0): ScheduleRecord {
      const now = clock.now();
      const prev = byAgent.get(agentId);
      const s: ScheduleState = {
        agentId,
        ...spec,
        expression: intern(spec.expression),
        timezone: intern(spec.timezone),
        paused: false,
        nextRunAt: spec.enabled ? nextOccurrence(spec.expression, spec.timezone, now) : null,
        revision: Math.max(prev?.revision ?? 0, storedRevision) + 1,
        createdAt: prev?.createdAt ?? now,
        updatedAt: now,
        version: 0,
      };
      bump(s);
      const { version: _v, ...record } = s;
      store.write({ op: 'schedule.upsert', schedule: record });
      byAgent.set(agentId, s);
      plan(s);
      return record;
    },

    /**
     * Takes the stored record of `agentId` (undefined: it has none) when it differs from this instance's
     * copy: another instance changed it (docs/cluster.md, "Signals carry the urgent part"). Changes only
     * memory — the instance that made the change wrote it. `readAt`: when the read began; a copy changed
     * here after that is newer than what was read, and stays. Returns the schedule as held now, or undefined.
     */
    adopt(agentId: string, stored: ScheduleRecord | undefined, readAt: number): { changed: boolean; schedule: ScheduleState | undefined } {
      const held = byAgent.get(agentId);
      if (held && held.updatedAt > readAt) return { changed: false, schedule: held };
      if (!stored) {
        if (held) byAgent.delete(agentId);
        return { changed: held !== undefined, schedule: undefined };
      }
      if (held && held.revision === stored.revision && held.enabled === stored.enabled && held.paused === stored.paused && held.jobId === stored.jobId) {
        return { changed: false, schedule: held };
      }
      const s = stored as ScheduleState;
      s.expression = intern(stored.expression);
      s.timezone = intern(stored.timezone);
      s.version = ++versions;
      // A stored next fire already past was fired (or will be claimed as taken) elsewhere: plan the one after now.
      const now = clock.now();
      if (s.enabled && !s.paused && (s.nextRunAt === null || s.nextRunAt <= now)) s.nextRunAt = nextAfter(s, now);
      byAgent.set(agentId, s);
      plan(s);
      return { changed: true, schedule: s };
    },

    remove(agentId: string): void {
      byAgent.delete(agentId);
      store.write({ op: 'schedule.delete', agentId });
    },

    /** Drops the schedule from memory only: its agent's row (and the schedule with it) is being deleted. */
    forget(agentId: string): void {
      byAgent.delete(agentId);
    },

    pause(s: ScheduleState): void {
      s.paused = true;
      s.revision++;
      bump(s);
      store.write({ op: 'schedule.update', agentId: s.agentId, set: { paused: true, revision: s.revision, updatedAt: s.updatedAt } });
    },

    /** Unpauses: fires missed while paused are not made up, the next one is the first after now. */
    resume(s: ScheduleState): void {
      s.paused = false;
      s.revision++;
      store.write({ op: 'schedule.update', agentId: s.agentId, set: { paused: false, revision: s.revision } });
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
      store.write({ op: 'schedule.update', agentId: s.agentId, set: { enabled: false, nextRunAt: null, updatedAt: s.updatedAt }, ...(fence && { fence }) });
    },
  };
}
