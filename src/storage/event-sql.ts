import { CompiledQuery, type Kysely } from 'kysely';
import type { EventRecord, Fence, NewEvent } from '../core/store.ts';
import type { Database } from './schema.ts';
import { INSERT_CHUNK, insertRows, type Statements } from './statements.ts';
import { stampIds } from './event-feed.ts';
import { events } from './tables.ts';

/** The SQL that numbers and stores a batch's events, last in its transaction (README, "How the engine works"). */

/**
 * The events of a batch whose fences hold, checked just before their ids are taken (events are written
 * last, so this is their point of the transaction): one read of the fenced runs' epochs. Refused events
 * never get an id, so the ids of committed events stay consecutive and followers never meet a hole.
 */
export async function fencedEvents(run: (query: CompiledQuery) => Promise<{ rows: unknown[] }>, db: Kysely<Database>, events: NewEvent[], fences: (Fence | undefined)[], holding?: ReadonlyMap<string, number>): Promise<NewEvent[]> {
  // Fences the batch's own statements proved (repository.ts) are not read again.
  const held = (f: Fence) => holding !== undefined && holding.get(f.runId) === f.epoch;
  const epochs = new Map<string, number>();
  const ids = [...new Set(fences.filter((f) => f !== undefined && !held(f)).map((f) => f!.runId))];
  for (let i = 0; i < ids.length; i += INSERT_CHUNK) {
    const rows = (await run(db.selectFrom('runs').select(['id', 'epoch']).where('id', 'in', padded(ids.slice(i, i + INSERT_CHUNK))).compile())).rows as { id: string; epoch: unknown }[];
    for (const r of rows) epochs.set(r.id, Number(r.epoch));
  }
  return events.filter((_, i) => {
    const f = fences[i];
    return f === undefined || held(f) || epochs.get(f.runId) === f.epoch;
  });
}

/**
 * An `IN (…)` list grown to a power of two by repeating its last id (the same rows match): a list of each
 * length is a new statement for SQLite to prepare, and a few lengths are kept prepared.
 */
export function padded(ids: string[]): string[] {
  let size = 1;
  while (size < ids.length) size *= 2;
  for (const last = ids[ids.length - 1]!; ids.length < size; ) ids.push(last);
  return ids;
}

/** The counter update that takes `n` event ids; its one row's `value` is the last id taken. */
export const takeEventIds = (st: Statements, n: number): CompiledQuery<{ value: unknown }> => CompiledQuery.raw(st.takeEventIds, [n]);

/** The INSERTs of events whose ids are stamped. A clash is an error, never skipped: the counter is the one source of ids. */
export function eventStatements(st: Statements, records: EventRecord[]): CompiledQuery[] {
  const out: CompiledQuery[] = [];
  insertRows(out, st, events, records, '');
  return out;
}

/** Numbers `events` from the counter and inserts them, inside the caller's transaction: what a batch does with its events, for a write outside the batches (an agent's delete and its marker). */
export async function insertEvents(run: (query: CompiledQuery) => Promise<{ rows: unknown[] }>, st: Statements, events: NewEvent[]): Promise<EventRecord[]> {
  if (events.length === 0) return [];
  const last = (await run(takeEventIds(st, events.length))).rows[0] as { value: unknown } | undefined;
  if (last?.value == null) throw new Error("counters has no row 'event_id' (migration 0003 makes it)");
  const stamped = stampIds(events, Number(last.value));
  for (const query of eventStatements(st, stamped)) await run(query);
  return stamped;
}
