import { PostgresAdapter, type CompiledQuery, type Kysely } from 'kysely';
import type { Fence, NewEvent, WriteOp } from '../core/store.ts';
import type { Database } from './schema.ts';
import { bulkUpdate, INSERT_CHUNK, insertFenced, insertRows, q, type Statements, type Vouches } from './statements.ts';
import { pauses, runs, schedules, agents } from './tables.ts';
import { compileRunsTrim } from './trim-sql.ts';

/** A write batch as SQL: the ops of a planned batch (write-batch.ts) as the statements of statements.ts. */

/**
 * Whether other instances may write the same database: PostgreSQL is the one dialect several instances
 * share; a SQLite file has one writer (a second instance refuses to start on it).
 */
export function isSharedDatabase(db: Kysely<Database>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

/** Ops of one kind, split into the unfenced (compiled as always) and the fenced. */
function byFence<O extends WriteOp>(group: O[]): { plain: O[]; fenced: (O & { fence: Fence })[] } {
  const plain: O[] = [];
  const fenced: (O & { fence: Fence })[] = [];
  for (const o of group) {
    if (o.fence) fenced.push(o as O & { fence: Fence });
    else plain.push(o);
  }
  return { plain, fenced };
}

/** What bulkUpdate reads of an update op: its row's key, its fields, its fence. */
const idOf = (o: { id: string }) => o.id;
const agentOf = (o: { agentId: string }) => o.agentId;
const setOf = (o: { set: object }) => o.set;
const fenceOf = (o: { fence?: Fence }) => o.fence!;

/** A single-statement op (a delete, a trim) under its fence, if any. */
export function fencedWhere<Q extends { where: (...args: any[]) => Q }>(query: Q, fence: Fence | undefined): Q {
  if (!fence) return query;
  return query.where((eb: any) => eb.exists(eb.selectFrom('runs as f').select(eb.lit(1).as('one')).where('f.id', '=', fence.runId).where('f.epoch', '=', fence.epoch)));
}

/** A replaced schedule keeps its row's `created_at`. */
const SCHEDULE_UPSERT = `ON CONFLICT (${q(schedules.keyColumn)}) DO UPDATE SET ${schedules.names
  .filter((c) => c !== schedules.keyColumn && c !== schedules.columns.createdAt.name)
  .map((c) => `${q(c)} = excluded.${q(c)}`)
  .join(', ')}`;
const RUN_INSERT = `ON CONFLICT (${q(runs.columns.dedupeKey.name)}) DO NOTHING`;

type Op<K extends WriteOp['op']> = Extract<WriteOp, { op: K }>;

/**
 * A batch as SQL: `queries` in order, then its events, which get their ids last (see `eventStatements`),
 * then `trims`, the deletes of expired events, which come after the inserts as they were written.
 */
export interface CompiledBatch {
  queries: CompiledQuery[];
  events: NewEvent[];
  /** Each event's fence, when any event of the batch has one (see `fencedEvents`). */
  eventFences?: (Fence | undefined)[];
  /**
   * Agents whose schedule the batch allows or forbids to fire (an upsert, a delete, an update of its
   * revision, enabled or paused): on PostgreSQL the batch takes their claim locks first (claim-sql.ts).
   */
  guarded?: string[];
  trims: CompiledQuery[];
  /** What a statement that changed all its rows proves about fences (statements.ts, Vouches): events so fenced need no read. */
  vouches?: Vouches;
  /** Indexes of the runs trims' DELETEs, which answer the ids they delete: a deleted run's fence no longer holds. */
  trimmed?: number[];
}

/**
 * A planned batch (write-batch.ts) as the statements that write it, in order: consecutive ops of one
 * kind share statements. Compiled here, run in one transaction by the repository. The events are set
 * apart: their ids are known only once the counter is updated inside the transaction, and that update
 * comes after every other write, so that on PostgreSQL its row lock (which orders every instance's
 * committers of events) is held only for the event INSERTs and the commit — and, once per trim
 * interval, the DELETE of expired events, which keeps its place after the inserts as written.
 */
export function compileBatch(db: Kysely<Database>, st: Statements, ops: WriteOp[]): CompiledBatch {
  const out: CompiledQuery[] = [];
  const newEvents: NewEvent[] = [];
  const trims: CompiledQuery[] = [];
  let eventFences: (Fence | undefined)[] | undefined;
  let guarded: Set<string> | undefined;
  const vouches: Vouches = [];
  const trimmed: number[] = [];
  const guard = (agentId: string) => (guarded ??= new Set()).add(agentId);
  for (let i = 0; i < ops.length; ) {
    const kind = ops[i]!.op;
    let j = i;
    while (j < ops.length && ops[j]!.op === kind) j++;
    const group = ops.slice(i, j);
    i = j;
    switch (kind) {
      case 'run.insert': {
        const { plain, fenced } = byFence(group as Op<'run.insert'>[]);
        if (plain.length > 0) insertRows(out, st, runs, plain.map((o) => o.run), RUN_INSERT, { vouches, fenceOf: (r) => ({ runId: r.id, epoch: r.epoch }) });
        if (fenced.length > 0) insertFenced(out, st, runs, fenced.map((o) => o.run), fenced.map((o) => o.fence), RUN_INSERT);
        break;
      }
      case 'event.insert':
        for (const o of group as Op<'event.insert'>[]) {
          if (o.fence && !eventFences) eventFences = newEvents.map(() => undefined);
          newEvents.push(o.event);
          eventFences?.push(o.fence);
        }
        break;
      case 'schedule.upsert': {
        for (const o of group as Op<'schedule.upsert'>[]) guard(o.schedule.agentId);
        const { plain, fenced } = byFence(group as Op<'schedule.upsert'>[]);
        if (plain.length > 0) insertRows(out, st, schedules, plain.map((o) => o.schedule), SCHEDULE_UPSERT);
        if (fenced.length > 0) insertFenced(out, st, schedules, fenced.map((o) => o.schedule), fenced.map((o) => o.fence), SCHEDULE_UPSERT);
        break;
      }
      case 'run.update': {
        const { plain, fenced } = byFence(group as Op<'run.update'>[]);
        bulkUpdate(out, st, runs, plain, idOf, setOf);
        if (fenced.length > 0) {
          bulkUpdate(out, st, runs, fenced.filter((o) => o.fence.runId === o.id), idOf, setOf, { kind: 'self', of: fenceOf }, vouches);
          bulkUpdate(out, st, runs, fenced.filter((o) => o.fence.runId !== o.id), idOf, setOf, { kind: 'other', of: fenceOf });
        }
        break;
      }
      case 'agent.update': {
        const { plain, fenced } = byFence(group as Op<'agent.update'>[]);
        bulkUpdate(out, st, agents, plain, idOf, setOf);
        if (fenced.length > 0) bulkUpdate(out, st, agents, fenced, idOf, setOf, { kind: 'other', of: fenceOf });
        break;
      }
      case 'schedule.update': {
        for (const o of group as Op<'schedule.update'>[]) if ('revision' in o.set || 'enabled' in o.set || 'paused' in o.set) guard(o.agentId);
        const { plain, fenced } = byFence(group as Op<'schedule.update'>[]);
        bulkUpdate(out, st, schedules, plain, agentOf, setOf);
        if (fenced.length > 0) bulkUpdate(out, st, schedules, fenced, agentOf, setOf, { kind: 'other', of: fenceOf });
        break;
      }
      case 'schedule.delete': {
        for (const o of group as Op<'schedule.delete'>[]) guard(o.agentId);
        const { plain, fenced } = byFence(group as Op<'schedule.delete'>[]);
        for (let k = 0; k < plain.length; k += INSERT_CHUNK) {
          const ids = plain.slice(k, k + INSERT_CHUNK).map((o) => o.agentId);
          out.push(db.deleteFrom('schedules').where('agent_id', 'in', ids).compile());
        }
        for (const o of fenced) out.push(fencedWhere(db.deleteFrom('schedules').where('agent_id', '=', o.agentId), o.fence).compile());
        break;
      }
      case 'runs.trim':
        // Its usage fold and DELETE (trim-sql.ts).
        for (const o of group as Op<'runs.trim'>[]) {
          out.push(...compileRunsTrim(db, o, fencedWhere));
          trimmed.push(out.length - 1); // its DELETE comes last
        }
        break;
      case 'events.trim':
        for (const o of group as Op<'events.trim'>[]) trims.push(fencedWhere(db.deleteFrom('events').where('created_at', '<', o.before), o.fence).compile());
        break;
      case 'pause.begin':
        insertRows(out, st, pauses, (group as Op<'pause.begin'>[]).map((o) => o.pause), '');
        break;
      case 'pause.end':
        for (const o of group as Op<'pause.end'>[]) out.push(db.updateTable('pauses').set({ resumed_at: o.at }).where('agent_id', '=', o.agentId).where('resumed_at', 'is', null).compile());
        break;
    }
  }
  return {
    queries: out, events: newEvents, ...(eventFences && { eventFences }), ...(guarded && { guarded: [...guarded] }), trims,
    ...(vouches.length > 0 && { vouches }), ...(trimmed.length > 0 && { trimmed }),
  };
}
