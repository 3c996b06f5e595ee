import { CompiledQuery, type Kysely } from 'kysely';
import type { Fence } from '../core/store.ts';
import type { Database } from './schema.ts';
import { agents, counters, events, runs, schedules, type Column, type Row, type SqlType, type TableSpec } from './tables.ts';

/**
 * The statements a write batch becomes (sql.ts). They are built as text once per shape and run through
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

export const q = (id: string) => `"${id}"`;

/** SQL types by column, per table: parameters inside VALUES are untyped in PostgreSQL, so a bulk update casts them. */
const typesOf = (t: TableSpec) => new Map<string, SqlType>(t.list.map((c) => [c.name, c.type]));
const COLUMN_TYPES = new Map([agents, schedules, runs, events].map((t) => [t.table, typesOf(t)]));

/** `$1` (PostgreSQL) or `?` (SQLite), as the dialect's own compiler writes them. */
export function placeholderOf(db: Kysely<Database>): (n: number) => string {
  const numbered = db.selectFrom('agents').select('id').where('id', '=', 'x').compile().sql.includes('$1');
  return numbered ? (n) => `$${n}` : () => '?';
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

/** Up to this many rows, a statement has the exact row count (few shapes, each small to prepare). */
const EXACT_ROWS = 32;

/**
 * How `n` rows are cut into statements of at most `per` rows: whole statements of `per`, then the rest in
 * powers of two down to EXACT_ROWS, and the last few exactly (300 → 256, 32, 12). A statement is prepared
 * once per shape and kept (the dialects' statement cache); cut to the row count of each batch, nearly every
 * batch of a burst had new shapes, and preparing a statement of a few hundred rows costs more than running it.
 */
export function statementSizes(n: number, per: number): number[] {
  const sizes: number[] = [];
  let left = n;
  for (; left >= per; left -= per) sizes.push(per);
  for (let size = 1 << 30; left > EXACT_ROWS; size >>= 1) {
    if (size <= left) {
      sizes.push(size);
      left -= size;
    }
  }
  if (left > 0) sizes.push(left);
  return sizes;
}


/**
 * Per statement of a batch, by its index: the fences that hold from it on when it changed every row it carries
 * (a run inserted, or updated under its own fence, with that epoch). The repository reads no epoch for them.
 */
export type Vouches = (readonly Fence[] | undefined)[];

/** Whole records as multi-row INSERTs; with `vouch`, each statement vouches for the fences its records make hold. */
export function insertRows<R>(out: CompiledQuery[], st: Statements, t: TableSpec<R>, records: readonly R[], conflict: string, vouch?: { vouches: Vouches; fenceOf(record: R): Fence }): void {
  let i = 0;
  for (const size of statementSizes(records.length, Math.min(INSERT_CHUNK, rowsPerStatement(t.names.length)))) {
    const params: unknown[] = [];
    for (let r = i; r < i + size; r++) t.encodeInto(params, records[r]!); // no array per row
    out.push(CompiledQuery.raw(st.insert(t.table, t.names, size, conflict), params));
    if (vouch) vouch.vouches[out.length - 1] = records.slice(i, i + size).map((r) => vouch.fenceOf(r));
    i += size;
  }
}

/** Records whose fence (`fences[i]`, record i's) rides along as two more values, inserted only where it holds. */
export function insertFenced<R>(out: CompiledQuery[], st: Statements, t: TableSpec<R>, records: readonly R[], fences: readonly Fence[], conflict: string): void {
  let i = 0;
  for (const size of statementSizes(records.length, Math.min(INSERT_CHUNK, rowsPerStatement(t.names.length + 2)))) {
    const params: unknown[] = [];
    for (let r = i; r < i + size; r++) {
      t.encodeInto(params, records[r]!);
      params.push(fences[r]!.runId, fences[r]!.epoch);
    }
    out.push(CompiledQuery.raw(st.insertFenced(t, size, conflict), params));
    i += size;
  }
}

type Columns = Record<string, Column<unknown> | undefined>;

/** The fields of `set` that are columns of `t`, in the set's order; the key is left out (an update never moves a row). */
function fieldsOf(t: TableSpec, set: object): string[] {
  const columns = t.columns as Columns;
  const fields: string[] = [];
  for (const f in set) if (columns[f] && f !== t.key) fields.push(f);
  return fields;
}

/** Whether those fields of `set` are exactly `fields`, in order: the shape of the row before, the usual case. */
function hasFields(t: TableSpec, set: object, fields: readonly string[]): boolean {
  const columns = t.columns as Columns;
  let n = 0;
  for (const f in set) {
    if (!columns[f] || f === t.key) continue;
    if (fields[n++] !== f) return false;
  }
  return n === fields.length;
}

/**
 * Updates of records (`setOf(op)`, record fields) grouped by the fields they set, each group as bulk UPDATE
 * statements, the values encoded straight into the parameters. Fields keep the order the set has them: no
 * sort, no key string or column object per row (they were most of a batch's garbage); one code path writes its
 * fields in one order, so its rows share statements. Fenced rows carry their fence as two more VALUES columns
 * (`self`: the fence is the updated run's own, and its statements vouch for it).
 */
export function bulkUpdate<O>(out: CompiledQuery[], st: Statements, t: TableSpec, ops: readonly O[], keyOf: (op: NoInfer<O>) => string, setOf: (op: NoInfer<O>) => object, fence?: { kind: 'self' | 'other'; of(op: NoInfer<O>): Fence }, vouches?: Vouches): void {
  const groups = new Map<string, { fields: string[]; list: O[] }>();
  let last: { fields: string[]; list: O[] } | undefined;
  for (const op of ops) {
    const set = setOf(op);
    if (!last || !hasFields(t, set, last.fields)) {
      const fields = fieldsOf(t, set);
      const signature = fields.join(',');
      last = groups.get(signature);
      if (!last) groups.set(signature, (last = { fields, list: [] }));
    }
    if (last.fields.length > 0) last.list.push(op);
  }
  const columns = t.columns as Columns;
  for (const { fields, list } of groups.values()) {
    if (fields.length === 0) continue;
    const codecs = fields.map((f) => columns[f]!.codec);
    const names = fields.map((f) => columns[f]!.name);
    let i = 0;
    for (const size of statementSizes(list.length, Math.min(INSERT_CHUNK, rowsPerStatement(fields.length + 1 + (fence ? 2 : 0))))) {
      const params: unknown[] = [];
      for (const end = i + size; i < end; i++) {
        const op = list[i]!;
        const set = setOf(op) as Row;
        params.push(keyOf(op));
        for (let c = 0; c < fields.length; c++) params.push(codecs[c]!.encode(set[fields[c]!]) ?? null);
        if (fence) {
          const f = fence.of(op);
          params.push(f.runId, f.epoch);
        }
      }
      out.push(CompiledQuery.raw(st.update(t.table, t.keyColumn, names, size, fence?.kind), params));
      if (vouches && fence?.kind === 'self') vouches[out.length - 1] = list.slice(i - size, i).map((op) => fence.of(op));
    }
  }
}
