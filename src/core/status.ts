import type { SchedulerStats } from '../schemas/schedule.ts';
import type { ActiveRuns } from './active-runs.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { iso, type EventLog } from './event-log.ts';
import type { EventBus } from './events.ts';
import type { Schedules } from './schedules.ts';
import type { ClusterFigures } from './store.ts';

/** Where the scheduler is in its life: shared by the parts that behave differently before start or while stopping. */
export interface Lifecycle {
  started: boolean;
  stopping: boolean;
}

export interface StatusOptions {
  clock: Clock;
  events: EventLog;
  lifecycle: Lifecycle;
  schedules: Schedules;
  active: ActiveRuns;
  /** `maxConcurrentAgents`: the sum of MAX_CONCURRENT_AGENTS over the live instances (core/instances.ts). */
  capacity(): number;
  /** Least time between two `scheduler:status` events. */
  intervalMs: number;
  /**
   * On a shared store (several instances on one database): the figures of the whole cluster, read from the
   * database at `now` (store.clusterFigures). Unset on a SQLite file or in memory, where this process's own
   * figures are the whole truth and cost nothing.
   */
  cluster?: (now: number) => Promise<ClusterFigures>;
  /** The bus the event log publishes on: on a shared store, the status events of every instance arrive there. Needed with `cluster`. */
  bus?: EventBus;
}

/** The scheduler's figures, and the `scheduler:status` event that reports their changes. */
export type Status = ReturnType<typeof createStatus>;

/**
 * On a SQLite file or in memory the figures are this process's own (exact, and free to read). On a shared
 * store they are the cluster's, read from the database in one query (README, "Running several instances";
 * docs/cluster.md), so that every instance answers the same once a change has been answered:
 *
 * - `figures()` never answers from a read that began before the call (a change answered just before would
 *   be missed); callers that arrive while a read is going share the next one, so a burst of status requests
 *   costs at most one query in flight per instance and no cache can be stale.
 * - `scheduler:status` is emitted by the instance that made the change (every change of the figures is made
 *   by some instance: a schedule, pause or resume answered, a run claimed, taken, finished or reaped), from
 *   the cluster figures, on the trailing edge of `intervalMs`. Status events are stored and cross instances
 *   like every event, so each instance sees the others' too: it takes the last one published as what
 *   subscribers already know (no event for equal figures) and as the start of the interval (the throttle
 *   holds across the cluster, up to two instances deciding in the same few ms). Nothing is read while
 *   nothing changes: no poll, no cost in a quiet cluster.
 * - Two instances' events can be published in the other order than their reads (ids follow commits):
 *   the instance that emitted reads once more one interval later and emits again if the last event
 *   published says something else, so the last word subscribers get is a fresh read.
 */
export function createStatus({ clock, events, lifecycle, schedules, active, capacity, intervalMs, cluster, bus }: StatusOptions) {
  let timer: TimerHandle | undefined;
  let lastAt = -Infinity;
  let lastJson = '';
  /** On a shared store: a read for the event is going, and whether something changed meanwhile (then another follows). */
  let computing = false;
  let dirty = false;

  function stats(): SchedulerStats {
    let scheduled = 0;
    let paused = 0;
    for (const s of schedules.values()) {
      if (s.enabled) scheduled++;
      if (s.paused) paused++;
    }
    return {
      isRunning: lifecycle.started && !lifecycle.stopping,
      scheduledTasksCount: scheduled,
      runningAgentsCount: active.running,
      queuedTasksCount: active.queued,
      maxConcurrentAgents: capacity(),
      pausedJobsCount: paused,
    };
  }

  async function read(): Promise<SchedulerStats> {
    const f = await cluster!(clock.now());
    return {
      isRunning: lifecycle.started && !lifecycle.stopping,
      scheduledTasksCount: f.scheduled,
      runningAgentsCount: f.running,
      queuedTasksCount: f.queued,
      maxConcurrentAgents: f.capacity,
      pausedJobsCount: f.paused,
    };
  }

  let reading: Promise<SchedulerStats> | undefined;
  let nextRead: Promise<SchedulerStats> | undefined;
  function figures(): Promise<SchedulerStats> {
    if (!cluster) return Promise.resolve(stats());
    if (!reading) {
      reading = read().finally(() => (reading = undefined));
      return reading;
    }
    // The read going may have begun before this caller's change was answered: wait for the next one.
    nextRead ??= reading.catch(() => {}).then(() => {
      nextRead = undefined;
      return figures();
    });
    return nextRead;
  }

  function publish(s: SchedulerStats): boolean {
    const json = JSON.stringify(s);
    if (json === lastJson) return false;
    lastJson = json;
    lastAt = clock.now();
    events.emit('scheduler:status', null, { stats: s, timestamp: iso(lastAt)! });
    return true;
  }

  // Every status event published, this instance's and the others': what subscribers were last told.
  const unwatch = cluster && bus
    ? bus.on((e) => {
        if (e.type !== 'scheduler:status') return;
        lastJson = JSON.stringify(e.data.stats);
        lastAt = Math.max(lastAt, clock.now());
      })
    : undefined;

  function arm(): void {
    const wait = Math.max(0, lastAt + intervalMs - clock.now());
    timer = clock.setTimer(() => {
      timer = undefined;
      if (!cluster) {
        publish(stats());
        return;
      }
      computing = true;
      dirty = false;
      let again = false;
      read()
        .then((s) => {
          if (lifecycle.stopping) return;
          again = publish(s); // once more one interval on: see "the last word" above
        }, () => (again = true)) // the database did not answer: try again one interval on
        .finally(() => {
          computing = false;
          if ((dirty || again) && lifecycle.started && !lifecycle.stopping && !timer) arm();
        });
    }, wait);
  }

  return {
    /** This process's own figures, synchronously (what its heartbeat reports as its running runs). */
    stats,
    /** The figures a status request answers: this process's own, or on a shared store the cluster's (see above). */
    figures,
    /**
     * Says the figures may have changed: `scheduler:status` follows if they did, at most once per
     * `intervalMs` (trailing edge), so a burst of runs costs one event, not one per run.
     */
    changed(): void {
      if (!lifecycle.started || lifecycle.stopping) return;
      if (timer) return;
      if (computing) {
        dirty = true;
        return;
      }
      arm();
    },
    stop(): void {
      timer?.cancel();
      timer = undefined;
      unwatch?.();
    },
  };
}
