import type { AgentRecord, Budget, CatchUpPolicy, EventRecord, InstanceRecord, OverlapPolicy, PauseReason, PauseRecord, RunRecord, ScheduleRecord } from '../core/store.ts';
import type { AgentStatus, RunStatus, RunTrigger } from '../schemas/common.ts';
import type { EventName } from '../schemas/events.ts';

/**
 * Every table described once: for each record field, its column, the column's portable SQL type and
 * the codec between the two. The row mappers, the column lists, the casts of bulk updates, the Kysely
 * table types (schema.ts) and the in-memory store all follow from these specs. Times are integer
 * milliseconds, booleans 0/1 integers and JSON is text, so the same rows serve SQLite and PostgreSQL.
 * The migrations build the same tables as history; test/storage.test.ts checks that they agree.
 */

/** The portable storage types: what a bulk update casts its untyped VALUES parameters to. */
export type SqlType = 'text' | 'integer' | 'bigint' | 'real' | 'double precision';

/** How a field is stored (`encode`) and read back (`decode`, from whatever the driver returns). */
export interface Codec<V, S> {
  /** false for a NOT NULL column. */
  readonly nullable: boolean;
  // Function properties, not methods: checked both ways, so a column's codec must fit its field exactly.
  readonly encode: (value: V) => S;
  readonly decode: (stored: unknown) => V;
  /** `encode` as a JavaScript expression of the value's expression, for the generated encoders (compileEncoder). @default a call of `encode` */
  readonly inline?: (value: string) => string;
}

// PostgreSQL's driver may hand numbers back as strings; SQLite's as numbers.
const toNumber = (v: unknown): number => (typeof v === 'number' ? v : Number(v));

/** Text as it is; `T` narrows it to a closed set of strings (statuses, triggers). */
const text = <T extends string = string>(): Codec<T, string> => ({ nullable: false, encode: (v) => v, decode: (v) => v as T, inline: (v) => v });
const textOrNull: Codec<string | null, string | null> = { nullable: true, encode: (v) => v ?? null, decode: (v) => (v ?? null) as string | null, inline: (v) => `(${v} ?? null)` };
const num: Codec<number, number> = { nullable: false, encode: (v) => v, decode: toNumber, inline: (v) => v };
const numOrNull: Codec<number | null, number | null> = { nullable: true, encode: (v) => v ?? null, decode: (v) => (v === null || v === undefined ? null : toNumber(v)), inline: (v) => `(${v} ?? null)` };
const bool: Codec<boolean, number> = { nullable: false, encode: (v) => (v ? 1 : 0), decode: (v) => toNumber(v) === 1, inline: (v) => `(${v} ? 1 : 0)` };
const json = <T>(): Codec<T, string> => ({ nullable: false, encode: (v) => JSON.stringify(v), decode: (v) => JSON.parse(v as string) as T });
const jsonOrNull = <T>(): Codec<T | null, string | null> => ({
  nullable: true,
  encode: (v) => (v === null || v === undefined ? null : JSON.stringify(v)),
  decode: (v) => (v === null || v === undefined ? null : (JSON.parse(v as string) as T)),
});

export interface Column<V, S = unknown> {
  /** The SQL column name. */
  readonly name: string;
  readonly type: SqlType;
  readonly codec: Codec<V, S>;
}

/** A column with the record field it holds. */
export type FieldColumn = Column<any, any> & { readonly field: string };

const col = <const N extends string, V, S>(name: N, type: SqlType, codec: Codec<V, S>) => ({ name, type, codec });

export interface TableSpec<R = any> {
  readonly table: string;
  /** The record field of the primary key. */
  readonly key: keyof R & string;
  readonly columns: { readonly [F in keyof R]-?: Column<R[F]> };
  /** The columns in declaration order, each with its field: the order of every full-row INSERT. */
  readonly list: readonly FieldColumn[];
  /** Column names in `list` order. */
  readonly names: readonly string[];
  readonly keyColumn: string;
  /** A stored row as its record (see `compileDecoder`). */
  readonly decode: (row: Row) => R;
  /** Pushes a record's values, encoded, in `names` order (see `compileEncoder`): a full-row INSERT's parameters. */
  readonly encodeInto: (params: unknown[], record: R) => void;
}

/**
 * A table of records `R`: `columns` must name every field of `R` and nothing else, each with a codec
 * of the field's type. `R` comes first and explicitly; the columns are inferred, names as literals.
 */
function table<R>() {
  return <const C extends { [F in keyof R]-?: Column<R[F]> }>(table: string, key: keyof R & string, columns: C & Record<Exclude<keyof C, keyof R>, never>) => {
    const byField = columns as Record<string, Column<any, any>>;
    const list: FieldColumn[] = Object.entries(byField).map(([field, c]) => ({ ...c, field }));
    return { table, key, columns, list, names: list.map((c) => c.name), keyColumn: byField[key]!.name, decode: compileDecoder<R>(list), encodeInto: compileEncoder<R>(list) } satisfies TableSpec<R>;
  };
}

export const agents = table<AgentRecord>()('agents', 'id', {
  id: col('id', 'text', text()),
  owner: col('owner', 'text', text()),
  name: col('name', 'text', text()),
  handler: col('handler', 'text', text()),
  config: col('config', 'text', json<Record<string, unknown>>()),
  description: col('description', 'text', textOrNull),
  timeoutMs: col('timeout_ms', 'bigint', numOrNull),
  maxRetries: col('max_retries', 'integer', numOrNull),
  status: col('status', 'text', text<AgentStatus>()),
  lastRunAt: col('last_run_at', 'bigint', numOrNull),
  lastError: col('last_error', 'text', textOrNull),
  retryCount: col('retry_count', 'integer', num),
  backoffUntil: col('backoff_until', 'bigint', numOrNull),
  budget: col('budget', 'text', jsonOrNull<Budget>()),
  createdAt: col('created_at', 'bigint', num),
  updatedAt: col('updated_at', 'bigint', num),
});

export const schedules = table<ScheduleRecord>()('schedules', 'agentId', {
  agentId: col('agent_id', 'text', text()),
  jobId: col('job_id', 'text', text()),
  expression: col('expression', 'text', text()),
  timezone: col('timezone', 'text', text()),
  priority: col('priority', 'integer', num),
  enabled: col('enabled', 'integer', bool),
  paused: col('paused', 'integer', bool),
  catchUp: col('catch_up', 'integer', bool),
  catchUpPolicy: col('catch_up_policy', 'text', text<CatchUpPolicy>()),
  catchUpWindowMs: col('catch_up_window_ms', 'bigint', numOrNull),
  overlap: col('overlap', 'text', text<OverlapPolicy>()),
  jitterMs: col('jitter_ms', 'integer', num),
  owner: col('owner', 'text', text()),
  nextRunAt: col('next_run_at', 'bigint', numOrNull),
  pauseReason: col('pause_reason', 'text', textOrNull as Codec<PauseReason | null, string | null>),
  resumeAt: col('resume_at', 'bigint', numOrNull),
  pauseNote: col('pause_note', 'text', textOrNull),
  revision: col('revision', 'integer', num),
  changedAt: col('changed_at', 'bigint', num),
  createdAt: col('created_at', 'bigint', num),
  updatedAt: col('updated_at', 'bigint', num),
});

export const runs = table<RunRecord>()('runs', 'id', {
  id: col('id', 'text', text()),
  agentId: col('agent_id', 'text', text()),
  jobId: col('job_id', 'text', text()),
  trigger: col('trigger', 'text', text<RunTrigger>()),
  attempt: col('attempt', 'integer', num),
  status: col('status', 'text', text<RunStatus>()),
  priority: col('priority', 'integer', num),
  scheduledAt: col('scheduled_at', 'bigint', num),
  startedAt: col('started_at', 'bigint', numOrNull),
  finishedAt: col('finished_at', 'bigint', numOrNull),
  durationMs: col('duration_ms', 'bigint', numOrNull),
  progress: col('progress', 'real', numOrNull),
  error: col('error', 'text', textOrNull),
  dedupeKey: col('dedupe_key', 'text', textOrNull),
  waiting: col('waiting', 'integer', bool),
  instanceId: col('instance_id', 'text', textOrNull),
  epoch: col('epoch', 'integer', num),
  leaseUntil: col('lease_until', 'bigint', numOrNull),
  cancelRequestedAt: col('cancel_requested_at', 'bigint', numOrNull),
  output: col('output', 'text', textOrNull),
  outputTruncated: col('output_truncated', 'integer', bool),
  usageModel: col('usage_model', 'text', textOrNull),
  inputTokens: col('input_tokens', 'bigint', numOrNull),
  outputTokens: col('output_tokens', 'bigint', numOrNull),
  costUsd: col('cost_usd', 'double precision', numOrNull),
  createdAt: col('created_at', 'bigint', num),
});

export const events = table<EventRecord>()('events', 'id', {
  id: col('id', 'bigint', num),
  type: col('type', 'text', text<EventName>()),
  agentId: col('agent_id', 'text', textOrNull),
  data: col('data', 'text', json<unknown>()),
  createdAt: col('created_at', 'bigint', num),
});

export const instances = table<InstanceRecord>()('instances', 'id', {
  id: col('id', 'text', text()),
  host: col('host', 'text', text()),
  pid: col('pid', 'integer', num),
  startedAt: col('started_at', 'bigint', num),
  heartbeatAt: col('heartbeat_at', 'bigint', num),
  running: col('running', 'integer', num),
  maxConcurrent: col('max_concurrent', 'integer', num),
  stoppedAt: col('stopped_at', 'bigint', numOrNull),
});

/** Named counters: `event_id`, the last event id handed out; `schedule_revision`, the last schedule revision. */
export interface CounterRecord {
  name: string;
  value: number;
}
export const counters = table<CounterRecord>()('counters', 'name', {
  name: col('name', 'text', text()),
  value: col('value', 'bigint', num),
});

/**
 * An agent's usage of one UTC day, folded in from its runs as the history trim deletes them (`runs.trim`), so
 * usage and budgets count every run, kept or trimmed. The primary key is (agent_id, day).
 */
export interface UsageDayRecord {
  agentId: string;
  /** Days since the epoch (UTC). */
  day: number;
  runs: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}
export const usageDays = table<UsageDayRecord>()('usage_days', 'agentId', {
  agentId: col('agent_id', 'text', text()),
  day: col('day', 'integer', num),
  runs: col('runs', 'integer', num),
  inputTokens: col('input_tokens', 'bigint', num),
  outputTokens: col('output_tokens', 'bigint', num),
  costUsd: col('cost_usd', 'double precision', num),
});

/**
 * A manual run's `Idempotency-Key` (CONTRACT §11): the run it made, for 24 h. `runId` is null while the
 * request that reserved the key is still making its run. The primary key is (agent_id, key).
 */
export interface IdempotencyKeyRecord {
  agentId: string;
  key: string;
  runId: string | null;
  createdAt: number;
}
export const idempotencyKeys = table<IdempotencyKeyRecord>()('idempotency_keys', 'agentId', {
  agentId: col('agent_id', 'text', text()),
  key: col('key', 'text', text()),
  runId: col('run_id', 'text', textOrNull),
  createdAt: col('created_at', 'bigint', num),
});

/** A schedule's pauses, for the ledger (core/records.ts `PauseRecord`); deleted with the agent. */
export const pauses = table<PauseRecord>()('pauses', 'id', {
  id: col('id', 'text', text()),
  agentId: col('agent_id', 'text', text()),
  jobId: col('job_id', 'text', text()),
  reason: col('reason', 'text', text() as unknown as Codec<PauseReason, string>),
  note: col('note', 'text', textOrNull),
  pausedAt: col('paused_at', 'bigint', num),
  resumedAt: col('resumed_at', 'bigint', numOrNull),
});

export const TABLES = [agents, schedules, runs, events, instances, counters, usageDays, idempotencyKeys, pauses] as const;

/** The row type of a table as Kysely sees it: column name → stored type. */
export type RowOf<T extends TableSpec> = {
  -readonly [F in keyof T['columns'] as T['columns'][F]['name']]: T['columns'][F]['codec'] extends Codec<any, infer S> ? S : never;
};

export type Row = Record<string, unknown>;

/** A stored row as its record. */
export const fromRow = <R>(t: TableSpec<R>, row: Row): R => t.decode(row);

/**
 * The row → record mapper of a table, generated once as one object literal: a loop that adds each
 * field by name builds every record key by key, which measured 4–8× slower (reloading 100,000
 * schedules at start, or reading an agent per fire). The generated text holds only the spec's own
 * names, quoted, and calls each column's codec.
 */
function compileDecoder<R>(list: readonly FieldColumn[]): (row: Row) => R {
  const fields = list.map((c, i) => `${JSON.stringify(c.field)}: d[${i}](row[${JSON.stringify(c.name)}])`);
  const make = new Function('d', `return (row) => ({ ${fields.join(', ')} });`) as (d: Codec<unknown, unknown>['decode'][]) => (row: Row) => R;
  return make(list.map((c) => c.codec.decode));
}

/**
 * The record → parameters encoder of a table, generated once like the decoder: one push of every column's
 * value, the simple codecs written inline (a call per column through each codec cost more than the rest of a
 * batch's compilation). The text holds only the spec's own field names, quoted.
 */
function compileEncoder<R>(list: readonly FieldColumn[]): (params: unknown[], record: R) => void {
  const values = list.map((c, i) => {
    const value = `r[${JSON.stringify(c.field)}]`;
    return c.codec.inline ? c.codec.inline(value) : `e[${i}](${value})`;
  });
  const make = new Function('e', `return (params, r) => { params.push(${values.join(', ')}); };`) as (e: Codec<unknown, unknown>['encode'][]) => (params: unknown[], record: R) => void;
  return make(list.map((c) => c.codec.encode));
}

/** A whole record as its row. */
export function toRow<R>(t: TableSpec<R>, record: R): Row {
  const out: Row = {};
  for (const c of t.list) out[c.name] = c.codec.encode((record as Row)[c.field]);
  return out;
}

/** A whole record as the values of a full-row INSERT, in `names` order. */
export function rowValues<R>(t: TableSpec<R>, record: R): unknown[] {
  const out: unknown[] = [];
  t.encodeInto(out, record);
  return out;
}

/**
 * An update's fields as column values. The key is left out (an update never moves a row), and so is
 * anything that is not a field of the table.
 */
export function setColumns<R>(t: TableSpec<R>, set: NoInfer<Partial<R>>): Row {
  const out: Row = {};
  const columns = t.columns as Record<string, Column<any, any> | undefined>;
  for (const field in set) {
    const c = columns[field];
    if (c && field !== t.key) out[c.name] = c.codec.encode((set as Row)[field]);
  }
  return out;
}
