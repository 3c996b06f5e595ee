import type { EventMap, StoredEvent } from '../schemas/events.ts';

/**
 * A typed event bus. Emitting never throws into the scheduler: a listener that throws is reported
 * through `onListenerError` and the other listeners still run.
 */
export type Listener = (event: StoredEvent) => void;

export interface EventBus {
  on(listener: Listener): () => void;
  emit(event: StoredEvent): void;
  readonly listenerCount: number;
}

export function createEventBus(onListenerError: (err: unknown) => void = () => {}): EventBus {
  const listeners = new Set<Listener>();
  return {
    on(listener) {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    emit(event) {
      for (const l of listeners) {
        try {
          l(event);
        } catch (err) {
          try {
            onListenerError(err);
          } catch {
            // The error reporter itself failed; nothing more can be done without throwing into the scheduler.
          }
        }
      }
    },
    get listenerCount() {
      return listeners.size;
    },
  };
}

export type { EventMap, StoredEvent };
