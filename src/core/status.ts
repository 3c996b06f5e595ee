import type { SchedulerStats } from '../schemas/schedule.ts';
import type { ActiveRuns } from './active-runs.ts';
import type { Clock, TimerHandle } from './clock.ts';
import { iso, type EventLog } from './event-log.ts';
import type { Schedules } from './schedules.ts';

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
}

/** The scheduler's figures, and the `scheduler:status` event that reports their changes. */
export type Status = ReturnType<typeof createStatus>;

export function createStatus({ clock, events, lifecycle, schedules, active, capacity, intervalMs }: StatusOptions) {
  let timer: TimerHandle | undefined;
  let lastAt = -Infinity;
  let lastJson = '';

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

  return {
    stats,
    /**
     * Says the figures may have changed: `scheduler:status` follows if they did, at most once per
     * `intervalMs` (trailing edge), so a burst of runs costs one event, not one per run.
     */
    changed(): void {
      if (timer || !lifecycle.started) return;
      const wait = Math.max(0, lastAt + intervalMs - clock.now());
      timer = clock.setTimer(() => {
        timer = undefined;
        const s = stats();
        const json = JSON.stringify(s);
        if (json === lastJson) return;
        lastJson = json;
        lastAt = clock.now();
        events.emit('scheduler:status', null, { stats: s, timestamp: iso(lastAt)! });
      }, wait);
    },
    stop(): void {
      timer?.cancel();
    },
  };
}
