import type { EventMap, EventName, StoredEvent } from '../schemas/events.ts';
import type { Clock, TimerHandle } from './clock.ts';
import type { EventBus } from './events.ts';
import type { EventRecord, Fence, SchedulerStore } from './store.ts';

/** How often expired events are deleted: often enough to bound the table, rarely enough to cost nothing. */
const TRIM_INTERVAL_MS = 10 * 60_000;

/**
 * The scheduler's events. `emit` writes an event, unnumbered, into the store's current batch; the store
 * numbers it when the batch commits, and what the store then delivers (README, "How the engine works") —
 * this instance's events and, on a shared database, every other instance's, in id order — is what
 * the bus publishes. So no subscriber ever sees an event that is not durable, or an id that a crash
 * could hand out again.
 */
export interface EventLog {
  /** `fence`: the event of a held run is stored only while the run is still this instance's (store.ts, Fence). */
  emit<K extends EventName>(type: K, agentId: string | null, data: EventMap[K], fence?: Fence): void;
  /** The id of the last event published (before the first: the last one stored when following began). */
  readonly lastId: number;
  /** Publishes every event committed after `id` (the last one stored), until `stopFollowing`. */
  follow(id: number): void;
  stopFollowing(): void;
  /** Deletes events older than `retentionMs` now and every TRIM_INTERVAL_MS until `stopTrimming`. */
  startTrimming(retentionMs: number): void;
  stopTrimming(): void;
}

/**
 * A time as its ISO string. The last one is kept: a burst stamps thousands of events with the same
 * millisecond, and formatting a Date costs more than the rest of an event.
 */
let lastMs = NaN;
let lastIso = '';
export function iso(ms: number | null): string | null {
  if (ms === null) return null;
  if (ms !== lastMs) {
    lastIso = new Date(ms).toISOString();
    lastMs = ms;
  }
  return lastIso;
}

export function createEventLog(store: SchedulerStore, clock: Clock, bus: EventBus): EventLog {
  let lastId = 0;
  let unfollow: (() => void) | undefined;
  let trimTimer: TimerHandle | undefined;

  function publish(batch: readonly EventRecord[]): void {
    for (const e of batch) {
      lastId = e.id;
      // Frozen: one event object goes to every subscriber, and transports may cache its serialised form.
      bus.emit(Object.freeze({ id: e.id, type: e.type, agentId: e.agentId, data: Object.freeze(e.data) }) as StoredEvent);
    }
  }

  return {
    emit(type, agentId, data, fence) {
      // Hot path: one record and no promise per event; its id and its publication come with the commit.
      // Frozen now, so what is stored is what is published.
      Object.freeze(data);
      const event = { type, agentId, data, createdAt: clock.now() };
      store.write(fence ? { op: 'event.insert', event, fence } : { op: 'event.insert', event });
    },
    get lastId() {
      return lastId;
    },
    follow(id) {
      unfollow?.();
      lastId = id;
      unfollow = store.followEvents(id, publish);
    },
    stopFollowing() {
      unfollow?.();
      unfollow = undefined;
    },
    startTrimming(retentionMs) {
      const trim = () => store.write({ op: 'events.trim', before: clock.now() - retentionMs });
      trim();
      const again = () => {
        trim();
        trimTimer = clock.setTimer(again, TRIM_INTERVAL_MS);
      };
      trimTimer = clock.setTimer(again, TRIM_INTERVAL_MS);
    },
    stopTrimming() {
      trimTimer?.cancel();
    },
  };
}
