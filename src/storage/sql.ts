import { CompiledQuery, PostgresAdapter, type Kysely } from 'kysely';
import type { Fence, NewEvent, WriteOp } from '../core/store.ts';
import type { Database } from './schema.ts';
import { counters, events, pauses, rowValues, runs, schedules, agents, setColumns, type Row, type SqlType, type TableSpec } from './tables.ts';
import { compileRunsTrim } from './trim-sql.ts';

/**
 * A write batch as SQL. The statements are built as text once per shape and run through
 * `CompiledQuery.raw`: a 500-row INSERT through the query builder allocates thousands of nodes per
 * statement and its compilation cost more than SQLite's work. The SQL is the portable subset SQLite and
 * PostgreSQL share; only the placeholder style differs, and it is read from the dialect's own compiler.
 */

/** Rows a multi-row INSERT carries: under SQLite's 32,766 bound parameters at 15 columns a row. */
export const INSERT_CHUNK = 500;

/** Statement texts remembered; past this the cache starts over (shapes repeat, so it refills at once). */
const STATEMENT_CACHE = 500;

/** Rows per statement so one stays under SQLite's 32,766 bound parameters (and PostgreSQL's 65,535). */
const rowsPerStatement = (width: number) => Math.max(1, Math.floor(30_000 / width));

const q = (id: string) => `"${id}"`;

/** SQL types by column, per table: parameters inside VALUES are untyped in PostgreSQL, so a bulk update casts them. */
const typesOf = (t: TableSpec) => new Map<string, SqlType>(t.list.map((c) => [c.name, c.type]));
const COLUMN_TYPES = new Map([agents, schedules, runs, events].map((t) => [t.table, typesOf(t)]));

/** `$1` (PostgreSQL) or `?` (SQLite), as the dialect's own compiler writes them. */
export function placeholderOf(db: Kysely<Database>): (n: number) => string {
  const numbered = db.selectFrom('agents').select('id').where('id', '=', 'x').compile().sql.includes('$1');
  return numbered ? (n) => `$${n}` : () => '?';
}

/**
 * Whether other instances may write the same database: PostgreSQL is the one dialect several instances
 * share; a SQLite file has one writer (a second instance refuses to start on it).
 */
export function isSharedDatabase(db: Kysely<Database>): boolean {
  return db.getExecutor().adapter instanceof PostgresAdapter;
}

export function createStatements(placeholder: (n: number) => string) {
  const cache = new Map<string, string>();
  const tuples = (rows: number, width: number) => {
    const out: string[] = [];
    let n = 0;
    for (let r = 0; r < rows; r++) {
      const cells: string[] = [];
      for (let c = 0; c < width; c++) cells.push(placeholder(++n));
      out.push(`(${cells.join(', ')})`);
    }
    return out.join(', ');
  };
  const memo = (key: string, build: () => string) => {
    let text = cache.get(key);
    if (text === undefined) {
      text = build();
      if (cache.size > STATEMENT_CACHE) cache.clear();
      cache.set(key, text);
    }
    return text;
  };
  /**
   * The condition that a fence carried in VALUES columns `run` and `run + 1` holds: its run has its epoch
   * now. On the fenced run's own row (`self`) it is a condition on that row, which PostgreSQL re-checks on
   * the newest version when a concurrent reaper or taker changed it; elsewhere an EXISTS on the run. A
   * fenced write that races a reap on PostgreSQL (READ COMMITTED) is ordered before that reap: it
   * touches no row the reaper reads.
   */
  const fenceHolds = (run: number, self: string | undefined) =>
    self !== undefined
      ? `${q(self)}.${q(runs.columns.epoch.name)} = CAST(v.column${run + 1} AS integer)`
      : `EXISTS (SELECT 1 FROM ${q(runs.table)} f WHERE f.${q(runs.keyColumn)} = v.column${run} AND f.${q(runs.columns.epoch.name)} = CAST(v.column${run + 1} AS integer))`;
  return {
    insert: (table: string, columns: readonly string[], rows: number, conflict: string) =>
      memo(`i:${table}:${rows}:${conflict}`, () => `INSERT INTO ${q(table)} (${columns.map(q).join(', ')}) VALUES ${tuples(rows, columns.length)} ${conflict}`),
    /**
     * Many single-row updates of one column set as one statement: `UPDATE t SET c = v.column2 … FROM
     * (VALUES (key, value, …), …) AS v WHERE t.key = v.column1`, portable between SQLite (≥ 3.33) and
     * PostgreSQL, whose VALUES columns are both named column1, column2, ….
     */
    update: (table: string, key: string, columns: string[], rows: number, fence?: 'self' | 'other') =>
      memo(`u:${table}:${columns.join(',')}:${rows}:${fence ?? ''}`, () => {
        const types = COLUMN_TYPES.get(table);
        const sets = columns.map((c, n) => `${q(c)} = CAST(v.column${n + 2} AS ${types?.get(c) ?? 'text'})`).join(', ');
        const width = columns.length + 1 + (fence ? 2 : 0);
        const condition = fence ? ` AND ${fenceHolds(columns.length + 2, fence === 'self' ? table : undefined)}` : '';
        return `UPDATE ${q(table)} SET ${sets} FROM (VALUES ${tuples(rows, width)}) AS v WHERE ${q(table)}.${q(key)} = v.column1${condition}`;
      }),
    /**
     * A fenced multi-row INSERT: `INSERT … SELECT (the row's columns, cast) FROM (VALUES (row…, fence run,
     * fence epoch), …) AS v WHERE (the fence holds)`. The WHERE also settles SQLite's parsing of
     * `INSERT … SELECT … ON CONFLICT`, which needs one.
     */
    insertFenced: (t: TableSpec, rows: number, conflict: string) =>
      memo(`if:${t.table}:${rows}:${conflict}`, () => {
        const cells = t.list.map((c, n) => `CAST(v.column${n + 1} AS ${c.type})`).join(', ');
        return `INSERT INTO ${q(t.table)} (${t.names.map(q).join(', ')}) SELECT ${cells} FROM (VALUES ${tuples(rows, t.list.length + 2)}) AS v WHERE ${fenceHolds(t.list.length + 1, undefined)} ${conflict}`;
      }),
    /**
     * Takes n event ids: the counter's value after adding n is the last of them. On PostgreSQL the
     * UPDATE locks the counter's row until the transaction ends, so concurrent committers take their
     * ids one after the other and commit in id order.
     */
    takeEventIds: `UPDATE ${q(counters.table)} SET ${q(counters.columns.value.name)} = ${q(counters.columns.value.name)} + ${placeholder(1)} WHERE ${q(counters.columns.name.name)} = 'event_id' RETURNING ${q(counters.columns.value.name)}`,
  };
}
export type Statements = ReturnType<typeof createStatements>;

export function insertRows(out: CompiledQuery[], st: Statements, t: TableSpec, rows: unknown[][], conflict: string): void {
  const per = Math.min(INSERT_CHUNK, rowsPerStatement(t.names.length));
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    out.push(CompiledQuery.raw(st.insert(t.table, t.names, chunk.length, conflict), chunk.flat()));
  }
}

/** Rows whose fence rides along as two more values, inserted only where it holds. */
function insertFenced(out: CompiledQuery[], st: Statements, t: TableSpec, rows: unknown[][], conflict: string): void {
  const per = Math.min(INSERT_CHUNK, rowsPerStatement(t.names.length + 2));
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    out.push(CompiledQuery.raw(st.insertFenced(t, chunk.length, conflict), chunk.flat()));
  }
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

const withFence = (values: unknown[], fence: Fence) => (values.push(fence.runId, fence.epoch), values);

/** A single-statement op (a delete, a trim) under its fence, if any. */
export function fencedWhere<Q extends { where: (...args: any[]) => Q }>(query: Q, fence: Fence | undefined): Q {
  if (!fence) return query;
  return query.where((eb: any) => eb.exists(eb.selectFrom('runs as f').select(eb.lit(1).as('one')).where('f.id', '=', fence.runId).where('f.epoch', '=', fence.epoch)));
}

/**
 * Updates grouped by the columns they set, each group as bulk UPDATE statements. Fenced rows carry their
 * fence as two more VALUES columns (`self`: the fence is the updated run's own).
 */
function bulkUpdate(out: CompiledQuery[], st: Statements, t: TableSpec, rows: { key: string; set: Row; fence?: Fence }[], fence?: 'self' | 'other'): void {
  const bySignature = new Map<string, typeof rows>();
  for (const row of rows) {
    const cols = Object.keys(row.set).sort().join(',');
    if (!cols) continue;
    let list = bySignature.get(cols);
    if (!list) bySignature.set(cols, (list = []));
    list.push(row);
  }
  for (const [signature, list] of bySignature) {
    const cols = signature.split(',');
    const per = Math.min(INSERT_CHUNK, rowsPerStatement(cols.length + 1 + (fence ? 2 : 0)));
    for (let i = 0; i < list.length; i += per) {
      const chunk = list.slice(i, i + per);
      const params: unknown[] = [];
      for (const r of chunk) {
        params.push(r.key);
        for (const c of cols) params.push(r.set[c] ?? null);
        if (fence) params.push(r.fence!.runId, r.fence!.epoch);
      }
      out.push(CompiledQuery.raw(st.update(t.table, t.keyColumn, cols, chunk.length, fence), params));
    }
  }
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
        if (plain.length > 0) insertRows(out, st, runs, plain.map((o) => rowValues(runs, o.run)), RUN_INSERT);
        if (fenced.length > 0) insertFenced(out, st, runs, fenced.map((o) => withFence(rowValues(runs, o.run), o.fence)), RUN_INSERT);
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
        if (plain.length > 0) insertRows(out, st, schedules, plain.map((o) => rowValues(schedules, o.schedule)), SCHEDULE_UPSERT);
        if (fenced.length > 0) insertFenced(out, st, schedules, fenced.map((o) => withFence(rowValues(schedules, o.schedule), o.fence)), SCHEDULE_UPSERT);
        break;
      }
      case 'run.update': {
        const { plain, fenced } = byFence(group as Op<'run.update'>[]);
        const rows = (list: Op<'run.update'>[]) => list.map((o) => ({ key: o.id, set: setColumns(runs, o.set), ...(o.fence && { fence: o.fence }) }));
        bulkUpdate(out, st, runs, rows(plain));
        if (fenced.length > 0) {
          bulkUpdate(out, st, runs, rows(fenced.filter((o) => o.fence.runId === o.id)), 'self');
          bulkUpdate(out, st, runs, rows(fenced.filter((o) => o.fence.runId !== o.id)), 'other');
        }
        break;
      }
      case 'agent.update': {
        const { plain, fenced } = byFence(group as Op<'agent.update'>[]);
        bulkUpdate(out, st, agents, plain.map((o) => ({ key: o.id, set: setColumns(agents, o.set) })));
        if (fenced.length > 0) bulkUpdate(out, st, agents, fenced.map((o) => ({ key: o.id, set: setColumns(agents, o.set), fence: o.fence })), 'other');
        break;
      }
      case 'schedule.update': {
        for (const o of group as Op<'schedule.update'>[]) if ('revision' in o.set || 'enabled' in o.set || 'paused' in o.set) guard(o.agentId);
        const { plain, fenced } = byFence(group as Op<'schedule.update'>[]);
        bulkUpdate(out, st, schedules, plain.map((o) => ({ key: o.agentId, set: setColumns(schedules, o.set) })));
        if (fenced.length > 0) bulkUpdate(out, st, schedules, fenced.map((o) => ({ key: o.agentId, set: setColumns(schedules, o.set), fence: o.fence })), 'other');
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
        for (const o of group as Op<'runs.trim'>[]) out.push(...compileRunsTrim(db, o, fencedWhere));
        break;
      case 'events.trim':
        for (const o of group as Op<'events.trim'>[]) trims.push(fencedWhere(db.deleteFrom('events').where('created_at', '<', o.before), o.fence).compile());
        break;
      case 'pause.begin':
        insertRows(out, st, pauses, (group as Op<'pause.begin'>[]).map((o) => rowValues(pauses, o.pause)), '');
        break;
      case 'pause.end':
        for (const o of group as Op<'pause.end'>[]) out.push(db.updateTable('pauses').set({ resumed_at: o.at }).where('agent_id', '=', o.agentId).where('resumed_at', 'is', null).compile());
        break;
    }
  }
  return { queries: out, events: newEvents, ...(eventFences && { eventFences }), ...(guarded && { guarded: [...guarded] }), trims };
}
