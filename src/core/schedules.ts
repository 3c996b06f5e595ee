import type { Clock } from './clock.ts';
import { nextOccurrence } from './cron.ts';
import type { ScheduleRecord, SchedulerStore } from './store.ts';
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

/** A schedule as the scheduler holds it: the stored record plus the version its planned fires carry. */
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
      setNext(s, nextAfter(s, Math.max(at, clock.now())));
      return s;
    },

    /** Creates or replaces the schedule of `agentId`, unpaused, and plans its first fire. */
    replace(agentId: string, spec: ScheduleSpec): ScheduleRecord {
      const now = clock.now();
      const s: ScheduleState = {
        agentId,
        ...spec,
        expression: intern(spec.expression),
        timezone: intern(spec.timezone),
        paused: false,
        nextRunAt: spec.enabled ? nextOccurrence(spec.expression, spec.timezone, now) : null,
        createdAt: byAgent.get(agentId)?.createdAt ?? now,
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
      bump(s);
      store.write({ op: 'schedule.update', agentId: s.agentId, set: { paused: true, updatedAt: s.updatedAt } });
    },

    /** Unpauses: fires missed while paused are not made up, the next one is the first after now. */
    resume(s: ScheduleState): void {
      s.paused = false;
      store.write({ op: 'schedule.update', agentId: s.agentId, set: { paused: false } });
      setNext(s, s.enabled ? nextAfter(s, clock.now()) : null);
    },

    /** Retries are exhausted: the schedule stops firing but is kept, so its expression stays visible. */
    disable(s: ScheduleState): void {
      s.enabled = false;
      store.write({ op: 'schedule.update', agentId: s.agentId, set: { enabled: false } });
      setNext(s, null);
    },
  };
}
