/**
 * Time is an input. The scheduler reads the time and arms timers only through a Clock, so
 * tests drive cron and retry logic with a manual clock or fake timers instead of sleeping.
 */
export interface TimerHandle {
  cancel(): void;
}

export interface Clock {
  now(): number;
  /** Calls `fn` after `ms` (clamped to what a platform timer can hold: longer waits re-arm). */
  setTimer(fn: () => void, ms: number): TimerHandle;
}

/** setTimeout holds at most 2^31-1 ms (~24.8 days); a longer wait is split by the caller re-arming. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** The real clock. It looks up `Date.now`/`setTimeout` at each call, so vitest's fake timers apply. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    const t = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    return { cancel: () => clearTimeout(t) };
  },
};

export interface ManualClock extends Clock {
  /** Moves time forward by `ms`, firing every timer that falls due on the way, in order. */
  advance(ms: number): void;
  set(at: number): void;
  pendingTimers(): number;
}

export function createManualClock(start = 0): ManualClock {
  let now = start;
  let seq = 0;
  const timers = new Map<number, { at: number; fn: () => void }>();
  const clock: ManualClock = {
    now: () => now,
    setTimer(fn, ms) {
      const id = ++seq;
      timers.set(id, { at: now + Math.max(0, ms), fn });
      return { cancel: () => void timers.delete(id) };
    },
    advance(ms) {
      clock.set(now + ms);
    },
    set(at) {
      for (;;) {
        let next: [number, { at: number; fn: () => void }] | undefined;
        for (const entry of timers) if (entry[1].at <= at && (!next || entry[1].at < next[1].at)) next = entry;
        if (!next) break;
        timers.delete(next[0]);
        now = Math.max(now, next[1].at);
        next[1].fn();
      }
      now = Math.max(now, at);
    },
    pendingTimers: () => timers.size,
  };
  return clock;
}
