import { notFound } from '../core/errors.ts';
import type { Listener } from '../core/events.ts';
import { MAX_BUFFERED_EVENTS } from '../core/limits.ts';
import type { Scheduler } from '../core/scheduler.ts';
import type { Store } from '../core/store.ts';
import type { StoredEvent } from '../schemas/events.ts';
import type { Principal } from './auth.ts';
import { mayAccess, ownedAgent } from './ownership.ts';

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

  /**
   * An agent's stream (or the scheduler's, `agentId` null). `owns` (an agent's stream) is asked before the first
   * event and again after each replayed page is read: it resolves false once the agent is gone or is someone else's.
   * Ownership holds per event without an owner stored on each: a delete removes the agent's events and commits its
   * `agent:deleted` marker in the same transaction, so an event of a new agent under the same id always has a
   * higher id than the marker. Live events arrive in id order and the stream ends at the marker; a replayed page
   * read after the delete is dropped by the check that follows it.
   */
  async function* stream(agentId: string | null, after: number | null | undefined, signal: AbortSignal | undefined, owns?: () => Promise<boolean>): AsyncGenerator<StreamEvent> {
    const buffer: StoredEvent[] = [];
    let overflow = false;
    let wake: (() => void) | undefined;
    // Listening starts before the ownership check and the replay, so nothing emitted meanwhile is lost (ids drop the
    // overlap), and a delete that commits after the check reaches this listener.
    const off = bus.on((e) => {
      if (e.type === 'agent:deleted') {
        if (agentId === null || e.data.agentId !== agentId) return;
        buffer.push(e); // never dropped for overflow: it is what ends the stream
      } else if (e.agentId !== agentId) return;
      else if (buffer.length >= maxBuffered) overflow = true;
      else buffer.push(e);
      wake?.();
    });
    // Read once per event: the `aborted` getter is not free, and every event is read by every subscriber.
    let aborted = signal?.aborted ?? false;
    const onAbort = () => {
      aborted = true;
      wake?.();
    };
    signal?.addEventListener('abort', onAbort);
    try {
      if (owns && !(await owns())) throw notFound(`Agent ${agentId} not found`);
      let last = after ?? -1;
      if (after != null) {
        const oldest = await store.oldestEventId();
        if (oldest !== null && after < oldest - 1) {
          yield { id: after, type: 'resync', agentId, data: { reason: 'events after the given id have expired', oldestAvailableId: oldest } };
        }
        for (;;) {
          const page = await store.eventsAfter(last, agentId, PAGE);
          // Read after a delete: the page may be a new agent's under the same id. The stream ends as at the marker.
          if (page.length > 0 && owns && !(await owns())) return;
          for (const row of page) {
            if (aborted) return;
            last = row.id;
            if (row.type === 'agent:deleted') continue; // stored with no agent: only a scheduler stream reads it, and skips it
            yield { id: row.id, type: row.type, agentId: row.agentId, data: row.data } as StoredEvent;
          }
          if (page.length < PAGE) break;
        }
      }
      while (!aborted) {
        if (overflow) throw new SlowConsumerError('subscriber too slow: reconnect with the last event id');
        const next = buffer.shift();
        if (next) {
          if (next.type === 'agent:deleted') {
            // Later than everything replayed (a delete after the replay's read): the last event, then the end.
            if (next.id > last) yield { ...next, agentId };
            return;
          }
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
    watchAgent(p: Principal, agentId: string, options: WatchOptions = {}): AsyncGenerator<StreamEvent> {
      const owns = async () => {
        const agent = await store.getAgent(agentId);
        return agent !== undefined && agent !== null && mayAccess(p, agent);
      };
      // The stream itself, not a generator around it (`yield*` would add promise turns to every event); it starts
      // on the first `next()` all the same.
      return stream(agentId, options.after, options.signal, owns);
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
