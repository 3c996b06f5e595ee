import type { Clock, TimerHandle } from './clock.ts';
import { errorText } from './errors.ts';
import { MinHeap } from './heap.ts';
import type { Logger } from './logger.ts';

/**
 * Everything the scheduler waits for, in one min-heap with one platform timer armed for its head:
 * a schedule's next fire, or the time a pending retry may queue. A fire carries the version its
 * schedule had when it was planned, so a fire planned before a change (reschedule, pause) is ignored.
 */
type Due = { at: number; seq: number } & ({ kind: 'fire' | 'resume'; agentId: string; version: number } | { kind: 'retry'; runId: string } | { kind: 'call'; fn: () => void });

/** What the timeline calls when an item comes due. They must not throw; if one does, it is logged and the rest go on. */
export interface DueHandlers {
  fire(agentId: string, version: number, at: number): void;
  retry(runId: string): void;
  /** A budget pause's time came (planned under the schedule's `version`). */
  resume?(agentId: string, version: number): void;
}

/**
 * Longest stretch a burst of due items (thousands of schedules due at one instant) holds the event loop
 * before yielding, so API calls and started runs are not held up behind the whole burst. 10 ms takes a
 * thousand coincident fires (~8 µs each to their handler's start) in one slice; at 5 ms the second half
 * waited for the ends of the first half's runs (fire lateness p99 ~20 ms), and a request waits for one
 * slice at most either way (REST p99 during a burst ≤ 25 ms).
 */
export const SLICE_MS = 10;
/** The clock is read once per this many items: reading it per item would cost more than most items. */
const SLICE_CHECK_EVERY = 32;

export interface Timeline {
  /** Plans a schedule's fire at `at`; `version` is the schedule's version it belongs to. */
  fireAt(agentId: string, version: number, at: number): void;
  /** Plans the moment a waiting run (a retry) may queue. */
  retryAt(runId: string, at: number): void;
  /** Plans the end of a budget pause; `version` is the paused schedule's. */
  resumeAt(agentId: string, version: number, at: number): void;
  /**
   * Calls `fn` at `at` (at once when it is past), in a slice of its own: the rest of a long piece of work
   * (a restart's catch-up) that must not hold the event loop. It is not called once the timeline stops.
   */
  callAt(at: number, fn: () => void): void;
  /** Starts arming the timer; until then items only collect. */
  start(handlers: DueHandlers): void;
  /** Disarms for good: nothing comes due after this. */
  stop(): void;
  /** Items waiting, stale fires included (they are dropped when they come due). */
  readonly size: number;
}

export interface TimelineOptions {
  /**
   * Called when due items outlast a slice (a burst: thousands of fires at one instant); the function it
   * answers is called once the burst is done. The scheduler holds the store's commits meanwhile, so the
   * slices follow one another with only I/O between them, not a commit (storage/write-batch.ts, `hold`).
   * @default none
   */
  burst?: () => () => void;
}

export function createTimeline(clock: Clock, log: Logger, options: TimelineOptions = {}): Timeline {
  const heap = new MinHeap<Due>();
  let seq = 0;
  let handlers: DueHandlers | undefined;
  let stopped = false;
  let timer: TimerHandle | undefined;
  /** When the armed timer fires (Infinity when none is armed): a push later than it needs no re-arm. */
  let timerAt = Infinity;
  /** Ends the burst in progress (see TimelineOptions.burst). */
  let endBurst: (() => void) | undefined;
  const yieldThen = (fn: () => void) => (clock.soon ? clock.soon(fn) : clock.setTimer(fn, 0));

  function burstOver(): void {
    const end = endBurst;
    endBurst = undefined;
    end?.();
  }

  /** A tick is handing items over: it arms the timer itself when it ends or yields. */
  let ticking = false;

  function push(item: Due): void {
    heap.push(item);
    // Not while ticking: every fire plans its next one, and a timer armed mid-tick for the items still due
    // became a second chain of ticks beside the slices (two slices per turn instead of one).
    if (item.at < timerAt && !ticking) arm();
  }

  function arm(): void {
    if (stopped || !handlers) return;
    const head = heap.peek();
    const at = head ? head.at : Infinity;
    if (at === timerAt && timer) return;
    timer?.cancel();
    timer = undefined;
    timerAt = at;
    if (at === Infinity) return;
    timer = clock.setTimer(tick, at - clock.now());
  }

  /** Pops every item that is due and hands it over; one slice's writes share one transaction. */
  function tick(): void {
    timer = undefined;
    timerAt = Infinity;
    ticking = true;
    try {
      slice(handlers!);
    } finally {
      ticking = false;
    }
  }

  function slice(due: DueHandlers): void {
    const sliceStart = clock.now();
    // Read once per SLICE_CHECK_EVERY items, like the slice's budget: an item that comes due meanwhile waits
    // at most that many items (or for the tick that arm() plans at the end).
    let now = sliceStart;
    let n = 0;
    for (let head = heap.peek(); head && head.at <= now; head = heap.peek()) {
      if (++n % SLICE_CHECK_EVERY === 0 && (now = clock.now()) - sliceStart >= SLICE_MS) {
        timerAt = head.at;
        endBurst ??= options.burst?.();
        timer = yieldThen(tick);
        return;
      }
      heap.pop();
      try {
        if (head.kind === 'fire') due.fire(head.agentId, head.version, head.at);
        else if (head.kind === 'retry') due.retry(head.runId);
        else if (head.kind === 'call') {
          head.fn();
          n = SLICE_CHECK_EVERY - 1; // a call may take a whole slice: the clock is read before the next item
        } else due.resume?.(head.agentId, head.version);
      } catch (err) {
        log.error('scheduler tick failed', { error: errorText(err) });
      }
    }
    burstOver();
    arm();
  }

  return {
    // The literals carry `seq` from the start: a property added afterwards lands outside the object,
    // one more allocation per entry (there is one per schedule).
    fireAt: (agentId, version, at) => push({ at, seq: ++seq, kind: 'fire', agentId, version }),
    retryAt: (runId, at) => push({ at, seq: ++seq, kind: 'retry', runId }),
    resumeAt: (agentId, version, at) => push({ at, seq: ++seq, kind: 'resume', agentId, version }),
    callAt: (at, fn) => push({ at, seq: ++seq, kind: 'call', fn }),
    start(h) {
      handlers = h;
      arm();
    },
    stop() {
      stopped = true;
      timer?.cancel();
      timer = undefined;
      burstOver();
    },
    get size() {
      return heap.size;
    },
  };
}
