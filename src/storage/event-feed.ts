import type { Logger } from '../core/logger.ts';
import type { EventRecord, NewEvent } from '../core/store.ts';

/**
 * `SchedulerStore.followEvents` for both stores. After each commit the store hands the feed the batch's
 * events, ids stamped; a follower gets them at once when they continue the last id it was given. When
 * they do not (another instance committed in between, or the follower started behind), it reads the gap
 * from the events table first and holds later batches back meanwhile, so every follower sees every
 * committed event once, in id order. Events other instances commit with none of ours after them arrive
 * through `poll`, which the store calls on an interval on a shared database and which is the hook a
 * cross-instance wake-up (LISTEN/NOTIFY) calls.
 *
 * Ids within a batch are consecutive (the store takes them from one counter update), and every id up to
 * one that is visible is committed too: on PostgreSQL the counter's row lock is held until commit, so
 * transactions commit in id order.
 */

/** Rows per catch-up read: a follower far behind catches up in pages, never in one huge result. */
const PAGE = 1000;

export type EventsListener = (events: readonly EventRecord[]) => void;

export interface EventFeed {
  follow(after: number, listener: EventsListener): () => void;
  /** A batch's events, ids ascending and consecutive, once its transaction has committed. */
  committed(events: readonly EventRecord[]): void;
  /** Reads what others committed; resolves once every follower has read past what was committed at the call. */
  poll(): Promise<void>;
}

export interface EventFeedOptions {
  /** Committed events with id > `after`, in id order, up to `limit`: straight from the table, not waiting for buffered writes. */
  read(after: number, limit: number): Promise<EventRecord[]>;
  logger: Logger;
  /** Called with true when the first follower arrives and false when the last one leaves (a store polls only meanwhile). */
  onActive?: (active: boolean) => void;
}

/**
 * Gives a batch's events the ids `last - n + 1 … last` (the counter's value after adding n) and returns
 * them as records. The store owns a written op (the port's rule), so the id is set on the event object
 * itself: the object the scheduler made is the one delivered, with no copy per event.
 */
export function stampIds(events: NewEvent[], last: number): EventRecord[] {
  let id = last - events.length;
  for (const e of events) (e as EventRecord).id = ++id;
  return events as EventRecord[];
}

interface Follower {
  listener: EventsListener;
  /** The last id delivered. */
  last: number;
  /** Batches committed while a read was going (or after one failed), delivered after it, in order. */
  held: (readonly EventRecord[])[];
  /** A catch-up read is going on (set and cleared synchronously by `readGap` itself). */
  busy: boolean;
  /** The last catch-up read started: what a poll waits for. */
  reading: Promise<void>;
  /** A poll came while reading: read once more before resting, so the poll sees what was committed at its call. */
  again: boolean;
  stopped: boolean;
}

export function createEventFeed({ read, logger, onActive }: EventFeedOptions): EventFeed {
  const followers = new Set<Follower>();

  function deliver(f: Follower, events: readonly EventRecord[]): void {
    if (events.length === 0 || f.stopped) return;
    f.last = events[events.length - 1]!.id;
    try {
      f.listener(events);
    } catch (err) {
      logger.error('an events listener failed', { error: err instanceof Error ? err.message : String(err) });
    }
  }

  /** Delivers what of `batch` follows `f.last`; false when there is a gap before it. */
  function offer(f: Follower, batch: readonly EventRecord[]): boolean {
    const first = batch[0]!.id;
    if (first > f.last + 1) return false;
    // Consecutive ids: what the follower already has is a prefix of the batch.
    deliver(f, first === f.last + 1 ? batch : batch.slice(f.last + 1 - first));
    return true;
  }

  /** Reads from `f.last` until the table has no more, then delivers the held batches the read did not cover. */
  async function readGap(f: Follower): Promise<void> {
    f.busy = true;
    try {
      do {
        f.again = false;
        for (;;) {
          const page = await read(f.last, PAGE);
          if (f.stopped) return;
          deliver(f, page);
          if (page.length < PAGE) break;
        }
        // Held batches the read covered are dropped; one that still leaves a gap committed after the
        // read's snapshot was taken: read again.
        while (f.held.length > 0 && !f.again) {
          if (offer(f, f.held[0]!)) f.held.shift();
          else f.again = true;
        }
      } while (f.again && !f.stopped);
    } catch (err) {
      // The held batches stay held: the next commit or poll reads again from the last id delivered.
      logger.error('reading committed events failed', { after: f.last, error: err instanceof Error ? err.message : String(err) });
    } finally {
      f.busy = false;
    }
  }

  /** One read at a time per follower; a second caller shares the one going on. */
  function catchUp(f: Follower): Promise<void> {
    if (!f.busy) f.reading = readGap(f);
    return f.reading;
  }

  return {
    follow(after, listener) {
      const f: Follower = { listener, last: after, held: [], busy: false, reading: Promise.resolve(), again: false, stopped: false };
      followers.add(f);
      if (followers.size === 1) onActive?.(true);
      // Whatever was committed after `after` before this call arrives first.
      void catchUp(f);
      return () => {
        if (f.stopped) return;
        f.stopped = true;
        followers.delete(f);
        if (followers.size === 0) onActive?.(false);
      };
    },
    committed(batch) {
      if (batch.length === 0) return;
      for (const f of followers) {
        // Behind a read (or a failed one), or after a gap: held, and the read delivers it in its turn.
        if (f.busy || f.held.length > 0 || !offer(f, batch)) {
          f.held.push(batch);
          void catchUp(f);
        }
      }
    },
    poll() {
      const reads: Promise<void>[] = [];
      for (const f of followers) {
        if (f.busy) f.again = true;
        reads.push(catchUp(f));
      }
      return Promise.all(reads).then(() => {});
    },
  };
}
