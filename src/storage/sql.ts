import { CompiledQuery, PostgresAdapter, type Kysely } from 'kysely';
import type { EventRecord, NewEvent, WriteOp } from '../core/store.ts';
import type { Database } from './schema.ts';
import { counters, events, rowValues, runs, schedules, agents, setColumns, type Row, type SqlType, type TableSpec } from './tables.ts';

/**
 * A write batch as SQL. The statements are built as text once per shape and run through
 * `CompiledQuery.raw`: a 500-row INSERT through the query builder allocates thousands of nodes per
 * statement and its compilation cost more than SQLite's work. The SQL is the portable subset SQLite and
 * PostgreSQL share; only the placeholder style differs, and it is read from the dialect's own compiler.
 */

/** Rows a multi-row INSERT carries: under SQLite's 32,766 bound parameters at 15 columns a row. */
const INSERT_CHUNK = 500;

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
  return {
    insert: (table: string, columns: readonly string[], rows: number, conflict: string) =>
      memo(`i:${table}:${rows}:${conflict}`, () => `INSERT INTO ${q(table)} (${columns.map(q).join(', ')}) VALUES ${tuples(rows, columns.length)} ${conflict}`),
    /**
     * Many single-row updates of one column set as one statement: `UPDATE t SET c = v.column2 … FROM
     * (VALUES (key, value, …), …) AS v WHERE t.key = v.column1`, portable between SQLite (≥ 3.33) and
     * PostgreSQL, whose VALUES columns are both named column1, column2, ….
     */
    update: (table: string, key: string, columns: string[], rows: number) =>
      memo(`u:${table}:${columns.join(',')}:${rows}`, () => {
        const types = COLUMN_TYPES.get(table);
        const sets = columns.map((c, n) => `${q(c)} = CAST(v.column${n + 2} AS ${types?.get(c) ?? 'text'})`).join(', ');
        return `UPDATE ${q(table)} SET ${sets} FROM (VALUES ${tuples(rows, columns.length + 1)}) AS v WHERE ${q(table)}.${q(key)} = v.column1`;
      }),
    /**
     * Takes n event ids: the counter's value after adding n is the last of them. On PostgreSQL the
     * UPDATE locks the counter's row until the transaction ends, so concurrent committers take their
     * ids one after the other and commit in id order.
     */
    takeEventIds: `UPDATE ${q(counters.table)} SET ${q(counters.columns.value.name)} = ${q(counters.columns.value.name)} + ${placeholder(1)} WHERE ${q(counters.columns.name.name)} = 'event_id' RETURNING ${q(counters.columns.value.name)}`,
  };
}
type Statements = ReturnType<typeof createStatements>;

function insertRows(out: CompiledQuery[], st: Statements, t: TableSpec, rows: unknown[][], conflict: string): void {
  const per = Math.min(INSERT_CHUNK, rowsPerStatement(t.names.length));
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    out.push(CompiledQuery.raw(st.insert(t.table, t.names, chunk.length, conflict), chunk.flat()));
  }
}

/** Updates grouped by the columns they set, each group as bulk UPDATE statements. */
function bulkUpdate(out: CompiledQuery[], st: Statements, t: TableSpec, rows: { key: string; set: Row }[]): void {
  const bySignature = new Map<string, { key: string; set: Row }[]>();
  for (const row of rows) {
    const cols = Object.keys(row.set).sort().join(',');
    if (!cols) continue;
    let list = bySignature.get(cols);
    if (!list) bySignature.set(cols, (list = []));
    list.push(row);
  }
  for (const [signature, list] of bySignature) {
    const cols = signature.split(',');
    const per = Math.min(INSERT_CHUNK, rowsPerStatement(cols.length + 1));
    for (let i = 0; i < list.length; i += per) {
      const chunk = list.slice(i, i + per);
      const params: unknown[] = [];
      for (const r of chunk) {
        params.push(r.key);
        for (const c of cols) params.push(r.set[c] ?? null);
      }
      out.push(CompiledQuery.raw(st.update(t.table, t.keyColumn, cols, chunk.length), params));
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
  for (let i = 0; i < ops.length; ) {
    const kind = ops[i]!.op;
    let j = i;
    while (j < ops.length && ops[j]!.op === kind) j++;
    const group = ops.slice(i, j);
    i = j;
    switch (kind) {
      case 'run.insert':
        insertRows(out, st, runs, (group as Op<'run.insert'>[]).map((o) => rowValues(runs, o.run)), RUN_INSERT);
        break;
      case 'event.insert':
        for (const o of group as Op<'event.insert'>[]) newEvents.push(o.event);
        break;
      case 'schedule.upsert':
        insertRows(out, st, schedules, (group as Op<'schedule.upsert'>[]).map((o) => rowValues(schedules, o.schedule)), SCHEDULE_UPSERT);
        break;
      case 'run.update':
        bulkUpdate(out, st, runs, (group as Op<'run.update'>[]).map((o) => ({ key: o.id, set: setColumns(runs, o.set) })));
        break;
      case 'agent.update':
        bulkUpdate(out, st, agents, (group as Op<'agent.update'>[]).map((o) => ({ key: o.id, set: setColumns(agents, o.set) })));
        break;
      case 'schedule.update':
        bulkUpdate(out, st, schedules, (group as Op<'schedule.update'>[]).map((o) => ({ key: o.agentId, set: setColumns(schedules, o.set) })));
        break;
      case 'schedule.delete':
        for (let k = 0; k < group.length; k += INSERT_CHUNK) {
          const ids = (group.slice(k, k + INSERT_CHUNK) as Op<'schedule.delete'>[]).map((o) => o.agentId);
          out.push(db.deleteFrom('schedules').where('agent_id', 'in', ids).compile());
        }
        break;
      case 'runs.trim':
        // The newest `keep` runs stay; of the older ones, those still queued or running stay too.
        for (const o of group as Op<'runs.trim'>[]) {
          out.push(
            db
              .deleteFrom('runs')
              .where('agent_id', '=', o.agentId)
              .where('status', 'not in', ['queued', 'running'])
              .where('id', 'not in', (qb) => qb.selectFrom('runs').select('id').where('agent_id', '=', o.agentId).orderBy('created_at', 'desc').orderBy('id', 'desc').limit(o.keep))
              .compile(),
          );
        }
        break;
      case 'events.trim':
        for (const o of group as Op<'events.trim'>[]) trims.push(db.deleteFrom('events').where('created_at', '<', o.before).compile());
        break;
    }
  }
  return { queries: out, events: newEvents, trims };
}

/** The counter update that takes `n` event ids; its one row's `value` is the last id taken. */
export const takeEventIds = (st: Statements, n: number): CompiledQuery<{ value: unknown }> => CompiledQuery.raw(st.takeEventIds, [n]);

/** The INSERTs of events whose ids are stamped. A clash is an error, never skipped: the counter is the one source of ids. */
export function eventStatements(st: Statements, records: EventRecord[]): CompiledQuery[] {
  const out: CompiledQuery[] = [];
  insertRows(out, st, events, records.map((e) => rowValues(events, e)), '');
  return out;
}
