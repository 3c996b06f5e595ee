import type { EventMap, EventName, StoredEvent } from '../schemas/events.ts';
import type { Clock, TimerHandle } from './clock.ts';
import type { EventBus } from './events.ts';
import type { SchedulerStore } from './store.ts';

/** How often expired events are deleted: often enough to bound the table, rarely enough to cost nothing. */
const TRIM_INTERVAL_MS = 10 * 60_000;

/**
 * The scheduler's events: each one is numbered, stored (so a stream can resume from its id) and
 * published on the bus, in that order, with ids increasing across restarts.
 */
export interface EventLog {
  emit<K extends EventName>(type: K, agentId: string | null, data: EventMap[K]): void;
  /** The id of the last event emitted (or stored by the previous process). */
  readonly lastId: number;
  /** Continues numbering after `id`, the last one stored. */
  continueAfter(id: number): void;
  /** Deletes events older than `retentionMs` now and every TRIM_INTERVAL_MS until `stopTrimming`. */
  startTrimming(retentionMs: number): void;
  stopTrimming(): void;
}

export const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());

export function createEventLog(store: SchedulerStore, clock: Clock, bus: EventBus): EventLog {
  let lastId = 0;
  let trimTimer: TimerHandle | undefined;
  return {
    emit(type, agentId, data) {
      const id = ++lastId;
      // Frozen: one event object goes to every subscriber, and transports may cache its serialised form.
      Object.freeze(data);
      store.write({ op: 'event.insert', event: { id, type, agentId, data, createdAt: clock.now() } });
      bus.emit(Object.freeze({ id, type, agentId, data }) as StoredEvent);
    },
    get lastId() {
      return lastId;
    },
    continueAfter(id) {
      lastId = id;
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
