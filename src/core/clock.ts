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
  /**
   * Calls `fn` as soon as the I/O that is ready now has had its turn: how a long piece of work yields (the
   * timeline's slices). A timer of 0 ms does not always do that: timers that come due while timers run are
   * run in the same phase of the event loop, before any request is read. @default setTimer(fn, 0)
   */
  soon?(fn: () => void): TimerHandle;
}

/** setTimeout holds at most 2^31-1 ms (~24.8 days); a longer wait is split by the caller re-arming. */
export const MAX_TIMER_MS = 2 ** 31 - 1;

/** A platform timer as a handle: a method, not a closure per timer (a run arms one for its timeout). */
class PlatformTimer implements TimerHandle {
  constructor(private readonly timer: ReturnType<typeof setTimeout>) {}
  cancel(): void {
    clearTimeout(this.timer);
  }
}

/** setImmediate, where the platform has it (Node, and Deno's Node globals): it runs after the poll for I/O. */
class PlatformImmediate implements TimerHandle {
  constructor(private readonly immediate: ReturnType<typeof setImmediate>) {}
  cancel(): void {
    clearImmediate(this.immediate);
  }
}

/** The real clock. It looks up `Date.now`/`setTimeout` at each call, so vitest's fake timers apply. */
export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(fn, ms) {
    return new PlatformTimer(setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS)));
  },
  soon(fn) {
    return typeof setImmediate === 'function' ? new PlatformImmediate(setImmediate(fn)) : new PlatformTimer(setTimeout(fn, 0));
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
      return {
        cancel() {
          timers.delete(id);
        },
      };
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
