import type { EventBus } from '../core/events.ts';
import type { StoredEvent } from '../schemas/events.ts';
import type { Repository } from '../storage/repository.ts';

/**
 * A resumable stream of stored events, shared by the transports: the events after `after` from the
 * database, then live ones, each once and in id order. An `after` older than what is kept yields one
 * `resync` event first, so a client sees an explicit gap instead of a silent one.
 */
export interface ResyncEvent {
  id: number;
  type: 'resync';
  agentId: string | null;
  data: { reason: string; oldestAvailableId: number | null };
}
export type StreamEvent = StoredEvent | ResyncEvent;

export interface StreamOptions {
  /** One agent's events, or the scheduler-wide ones (`scheduler:status`) when null. */
  agentId: string | null;
  /** The last id the client has; omitted for live events only. */
  after?: number;
  signal?: AbortSignal;
  /**
   * Live events buffered while the consumer is slow; past this the stream ends with an error and the
   * client resumes from its last id, so a stuck subscriber cannot grow server memory without bound.
   * @default 10000
   */
  maxBuffered?: number;
}

/** Rows read per page when replaying from the database. */
const PAGE = 500;

export class SlowConsumerError extends Error {
  override name = 'SlowConsumerError';
}

export async function* streamEvents(repo: Repository, bus: EventBus, options: StreamOptions): AsyncGenerator<StreamEvent> {
  const { agentId, signal } = options;
  const maxBuffered = options.maxBuffered ?? 10_000;
  const buffer: StoredEvent[] = [];
  let overflow = false;
  let wake: (() => void) | undefined;
  const off = bus.on((e) => {
    if (e.agentId !== agentId) return;
    if (buffer.length >= maxBuffered) overflow = true;
    else buffer.push(e);
    wake?.();
  });
  const onAbort = () => wake?.();
  signal?.addEventListener('abort', onAbort);
  try {
    let last = options.after ?? -1;
    if (options.after !== undefined) {
      await repo.flush();
      const oldest = await repo.oldestEventId();
      if (oldest !== null && options.after < oldest - 1) {
        yield { id: options.after, type: 'resync', agentId, data: { reason: 'events after the given id have expired', oldestAvailableId: oldest } };
      }
      for (;;) {
        const page = await repo.eventsAfter(last, agentId, PAGE);
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
