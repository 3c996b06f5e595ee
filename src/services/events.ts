import type { Listener } from '../core/events.ts';
import { MAX_BUFFERED_EVENTS } from '../core/limits.ts';
import type { Scheduler } from '../core/scheduler.ts';
import type { Store } from '../core/store.ts';
import type { StoredEvent } from '../schemas/events.ts';
import type { Principal } from './auth.ts';
import { ownedAgent } from './ownership.ts';

/**
 * The one way to watch, shared by Socket.IO and tRPC: who may watch an agent, the scheduler figures
 * now, resumable streams (stored events after an id, then live ones, each once and in id order) and
 * the live feed a broadcaster listens to. An `after` older than what is kept yields one `resync`
 * event first, so a client sees an explicit gap instead of a silent one.
 */
export interface ResyncEvent {
  id: number;
  type: 'resync';
  agentId: string | null;
  data: { reason: string; oldestAvailableId: number | null };
}
export type StreamEvent = StoredEvent | ResyncEvent;
export type StatusSnapshot = Extract<StoredEvent, { type: 'scheduler:status' }>;

export interface WatchOptions {
  /** The last id the client has; null or omitted for live events only. */
  after?: number | null;
  signal?: AbortSignal;
}

export class SlowConsumerError extends Error {
  override name = 'SlowConsumerError';
}

export interface EventsDeps {
  store: Pick<Store, 'getAgent' | 'eventsAfter' | 'oldestEventId'>;
  scheduler: Pick<Scheduler, 'events' | 'figures' | 'lastEventId'>;
  /**
   * Live events buffered for one slow stream consumer; past this its stream ends with
   * `SlowConsumerError` and the client resumes from its last id, so a stuck subscriber cannot grow
   * server memory without bound.
   * @default MAX_BUFFERED_EVENTS (10000)
   */
  maxBuffered?: number;
}

export type EventsService = ReturnType<typeof createEventsService>;

/** Rows read per page when replaying from the database. */
const PAGE = 500;

export function createEventsService({ store, scheduler, maxBuffered = MAX_BUFFERED_EVENTS }: EventsDeps) {
  const bus = scheduler.events;

  /**
   * The figures now (on a shared store the cluster's, read from the database), numbered with the last event
   * id published before the read, so a stream that starts with them resumes after it.
   */
  const snapshot = async (): Promise<StatusSnapshot> => {
    const id = scheduler.lastEventId();
    return { id, type: 'scheduler:status', agentId: null, data: { stats: await scheduler.figures(), timestamp: new Date().toISOString() } };
  };

  async function* stream(agentId: string | null, after: number | null | undefined, signal: AbortSignal | undefined): AsyncGenerator<StreamEvent> {
    const buffer: StoredEvent[] = [];
    let overflow = false;
    let wake: (() => void) | undefined;
    // Listening starts before the replay, so nothing emitted while it reads is lost; ids drop the overlap.
    const off = bus.on((e) => {
      if (e.agentId !== agentId) return;
      if (buffer.length >= maxBuffered) overflow = true;
      else buffer.push(e);
      wake?.();
    });
    const onAbort = () => wake?.();
    signal?.addEventListener('abort', onAbort);
    try {
      let last = after ?? -1;
      if (after != null) {
        const oldest = await store.oldestEventId();
        if (oldest !== null && after < oldest - 1) {
          yield { id: after, type: 'resync', agentId, data: { reason: 'events after the given id have expired', oldestAvailableId: oldest } };
        }
        for (;;) {
          const page = await store.eventsAfter(last, agentId, PAGE);
          for (const row of page) {
            if (signal?.aborted) return;
            last = row.id;
            yield { id: row.id, type: row.type, agentId: row.agentId, data: row.data } as StoredEvent;
          }
          if (page.length < PAGE) break;
        }
      }
      while (!signal?.aborted) {
        if (overflow) throw new SlowConsumerError('subscriber too slow: reconnect with the last event id');
        const next = buffer.shift();
        if (next) {
          if (next.id > last) {
            last = next.id;
            yield next;
          }
          continue;
        }
        await new Promise<void>((r) => (wake = r));
        wake = undefined;
      }
    } finally {
      off();
      signal?.removeEventListener('abort', onAbort);
    }
  }

  return {
    /** Resolves when `p` may watch the agent; NOT_FOUND otherwise, exactly as for a missing agent. */
    async authorize(p: Principal, agentId: string): Promise<void> {
      await ownedAgent(store, p, agentId);
    },
    snapshot,
    /**
     * Every event as the scheduler emits it (the same frozen object for every listener). A broadcaster
     * keeps one such listener for all its clients and fans out by room, so an event is encoded once.
     */
    live(listener: Listener): () => void {
      return bus.on(listener);
    },
    /** One agent's events, after the ownership check. */
    async *watchAgent(p: Principal, agentId: string, options: WatchOptions = {}): AsyncGenerator<StreamEvent> {
      await ownedAgent(store, p, agentId);
      yield* stream(agentId, options.after, options.signal);
    },
    /** Scheduler-wide figures (`scheduler:status`): without `after`, the current ones first, then every change. */
    async *watchScheduler(options: WatchOptions = {}): AsyncGenerator<StreamEvent> {
      let after = options.after;
      if (after == null) {
        const now = await snapshot();
        after = now.id;
        yield now;
      }
      yield* stream(null, after, options.signal);
    },
  };
}
