import { CompiledQuery, type Kysely } from 'kysely';
import type { AgentStatus, RunStatus, RunTrigger } from '../schemas/common.ts';
import type { EventName } from '../schemas/events.ts';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import type { AgentRecord, EventRecord, RunRecord, ScheduleRecord, SchedulerStore, WriteOp } from '../core/store.ts';
import type { AgentsTable, Database, RunsTable, SchedulesTable } from './schema.ts';

/**
 * The only code that knows SQL. It takes a Kysely instance and never knows which driver is behind it.
 * Implements the scheduler's store port (with write batching) plus the reads the services need.
 */

// ---------- rows ↔ records ----------

const num = (v: unknown): number => (typeof v === 'number' ? v : Number(v));
const numOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : num(v));

function agentFromRow(r: AgentsTable): AgentRecord {
  return {
    id: r.id,
    owner: r.owner,
    name: r.name,
    handler: r.handler,
    config: JSON.parse(r.config) as Record<string, unknown>,
    description: r.description,
    timeoutMs: numOrNull(r.timeout_ms),
    maxRetries: numOrNull(r.max_retries),
    status: r.status as AgentStatus,
    lastRunAt: numOrNull(r.last_run_at),
    lastError: r.last_error,
    retryCount: num(r.retry_count),
    backoffUntil: numOrNull(r.backoff_until),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  };
}

const AGENT_COLUMNS: Record<keyof Omit<AgentRecord, 'id'>, keyof AgentsTable> = {
  owner: 'owner',
  name: 'name',
  handler: 'handler',
  config: 'config',
  description: 'description',
  timeoutMs: 'timeout_ms',
  maxRetries: 'max_retries',
  status: 'status',
  lastRunAt: 'last_run_at',
  lastError: 'last_error',
  retryCount: 'retry_count',
  backoffUntil: 'backoff_until',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
};


/**
 * A record (or part of one) as column values: names through the table's map, booleans as 0/1 and
 * objects (an agent's config) as JSON text, the portable encodings the schema uses.
 */
function columnsOf(map: Record<string, string>, set: object): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(set)) {
    const col = map[k];
    if (col) out[col] = typeof v === 'boolean' ? (v ? 1 : 0) : v !== null && typeof v === 'object' ? JSON.stringify(v) : v;
  }
  return out;
}
const agentSet = (set: Partial<AgentRecord>) => columnsOf(AGENT_COLUMNS, set) as Partial<AgentsTable>;
const scheduleSet = (set: Partial<ScheduleRecord>) => columnsOf(SCHEDULE_COLUMNS, set) as Partial<SchedulesTable>;
const runSet = (set: Partial<RunRecord>) => columnsOf(RUN_COLUMNS, set) as Partial<RunsTable>;

function agentToRow(a: AgentRecord): AgentsTable {
  return { id: a.id, ...agentSet(a) } as AgentsTable;
}

function scheduleFromRow(r: SchedulesTable): ScheduleRecord {
  return {
    agentId: r.agent_id,
    jobId: r.job_id,
    expression: r.expression,
    timezone: r.timezone,
    priority: num(r.priority),
    enabled: num(r.enabled) === 1,
    paused: num(r.paused) === 1,
    catchUp: num(r.catch_up) === 1,
    nextRunAt: numOrNull(r.next_run_at),
    createdAt: num(r.created_at),
    updatedAt: num(r.updated_at),
  };
}

const SCHEDULE_COLUMNS: Record<keyof ScheduleRecord, keyof SchedulesTable> = {
  agentId: 'agent_id',
  jobId: 'job_id',
  expression: 'expression',
  timezone: 'timezone',
  priority: 'priority',
  enabled: 'enabled',
  paused: 'paused',
  catchUp: 'catch_up',
  nextRunAt: 'next_run_at',
  createdAt: 'created_at',
  updatedAt: 'updated_at',
};


function runFromRow(r: RunsTable): RunRecord {
  return {
    id: r.id,
    agentId: r.agent_id,
    jobId: r.job_id,
    trigger: r.trigger as RunTrigger,
    attempt: num(r.attempt),
    status: r.status as RunStatus,
    priority: num(r.priority),
    scheduledAt: num(r.scheduled_at),
    startedAt: numOrNull(r.started_at),
    finishedAt: numOrNull(r.finished_at),
    durationMs: numOrNull(r.duration_ms),
    progress: numOrNull(r.progress),
    error: r.error,
    dedupeKey: r.dedupe_key,
    createdAt: num(r.created_at),
  };
}

const RUN_COLUMNS: Record<keyof RunRecord, keyof RunsTable> = {
  id: 'id',
  agentId: 'agent_id',
  jobId: 'job_id',
  trigger: 'trigger',
  attempt: 'attempt',
  status: 'status',
  priority: 'priority',
  scheduledAt: 'scheduled_at',
  startedAt: 'started_at',
  finishedAt: 'finished_at',
  durationMs: 'duration_ms',
  progress: 'progress',
  error: 'error',
  dedupeKey: 'dedupe_key',
  createdAt: 'created_at',
};


function eventFromRow(r: { id: unknown; type: string; agent_id: string | null; data: string; created_at: unknown }): EventRecord {
  return { id: num(r.id), type: r.type as EventName, agentId: r.agent_id, data: JSON.parse(r.data), createdAt: num(r.created_at) };
}

// ---------- batching ----------

/** Ops buffered before a batch is committed without waiting for the end of the turn. */
const MAX_BATCH_OPS = 2048;

/** Rows a multi-row INSERT carries: under SQLite's 32,766 bound parameters at 15 columns a row. */
const INSERT_CHUNK = 500;

/**
 * Folds a batch: an update of a key whose last op in the batch was its insert or an update is merged
 * into that op, so a run that is queued, started, reports progress and completes in one tick costs one
 * INSERT, not five statements. Only ops of the same key are ever merged, so the order of effects holds.
 */
function coalesce(ops: WriteOp[]): WriteOp[] {
  const out: WriteOp[] = [];
  const last = new Map<string, number>();
  for (const op of ops) {
    const key = keyOf(op);
    const prev = key === undefined ? undefined : out[last.get(key) ?? -1];
    if (prev && mergeInto(prev, op)) continue; // the key's last op stays where it was
    out.push(clone(op));
    if (key !== undefined) last.set(key, out.length - 1);
  }
  return out;
}

function mergeInto(prev: WriteOp, op: WriteOp): boolean {
  if (op.op === 'run.update' && prev.op === 'run.insert') Object.assign(prev.run, op.set);
  else if (op.op === 'run.update' && prev.op === 'run.update') Object.assign(prev.set, op.set);
  else if (op.op === 'agent.update' && prev.op === 'agent.update') Object.assign(prev.set, op.set);
  else if (op.op === 'schedule.update' && prev.op === 'schedule.upsert') Object.assign(prev.schedule, op.set);
  else if (op.op === 'schedule.update' && prev.op === 'schedule.update') Object.assign(prev.set, op.set);
  else return false;
  return true;
}

/**
 * Copies what a merge may change. Inserts carry records the caller goes on using, so they are copied;
 * an update's `set` belongs to the store once written (the port's contract), so it is merged in place.
 */
function clone(op: WriteOp): WriteOp {
  switch (op.op) {
    case 'run.insert': return { ...op, run: { ...op.run } };
    case 'schedule.upsert': return { ...op, schedule: { ...op.schedule } };
    default: return op;
  }
}

function keyOf(op: WriteOp): string | undefined {
  switch (op.op) {
    case 'run.insert': return `r:${op.run.id}`;
    case 'run.update': return `r:${op.id}`;
    case 'agent.update': return `a:${op.id}`;
    case 'schedule.upsert': return `s:${op.schedule.agentId}`;
    case 'schedule.update':
    case 'schedule.delete': return `s:${op.agentId}`;
    default: return undefined;
  }
}

/**
 * Order of statement kinds inside one generation of a batch (see `plan`). Inserts come before updates
 * so that an update of a row inserted by an earlier batch-generation never misses it.
 */
const KIND_ORDER: Record<WriteOp['op'], number> = {
  'run.insert': 0,
  'schedule.upsert': 1,
  'run.update': 2,
  'agent.update': 3,
  'schedule.update': 4,
  'schedule.delete': 5,
  'event.insert': 6,
  'runs.trim': 7,
  'events.trim': 8,
};

/**
 * Reorders a coalesced batch so that ops of one kind sit together and can share multi-row statements.
 * Ops on different rows are independent; ops on the same row keep their order, because an op's
 * generation (how many earlier ops touch its row) sorts before its kind.
 */
function plan(ops: WriteOp[]): WriteOp[] {
  const seen = new Map<string, number>();
  const keyed = ops.map((op, index) => {
    const key = keyOf(op);
    const generation = key === undefined ? 0 : (seen.get(key) ?? 0);
    if (key !== undefined) seen.set(key, generation + 1);
    return { op, index, generation };
  });
  keyed.sort((a, b) => a.generation - b.generation || KIND_ORDER[a.op.op] - KIND_ORDER[b.op.op] || a.index - b.index);
  return keyed.map((k) => k.op);
}

/** SQL types of the columns updated in bulk: parameters inside VALUES are untyped in PostgreSQL. */
const COLUMN_TYPES: Record<string, string> = {
  timeout_ms: 'bigint', max_retries: 'integer', retry_count: 'integer', last_run_at: 'bigint', backoff_until: 'bigint',
  created_at: 'bigint', updated_at: 'bigint', attempt: 'integer', priority: 'integer', scheduled_at: 'bigint',
  started_at: 'bigint', finished_at: 'bigint', duration_ms: 'bigint', progress: 'real', enabled: 'integer',
  paused: 'integer', catch_up: 'integer', next_run_at: 'bigint',
};

const RUN_COLUMNS_LIST = Object.values(RUN_COLUMNS);
const SCHEDULE_COLUMNS_LIST = Object.values(SCHEDULE_COLUMNS);
const EVENT_COLUMNS_LIST = ['id', 'type', 'agent_id', 'data', 'created_at'];

/**
 * The batch writer's statements, built as text once per shape and run through `CompiledQuery.raw`:
 * a 500-row INSERT through the query builder allocates thousands of nodes per statement and its
 * compilation cost more than SQLite's work. The SQL is the portable subset SQLite and PostgreSQL share;
 * only the placeholder style differs, and it is read from the dialect's own compiler.
 */
function createStatements(placeholder: (n: number) => string) {
  const cache = new Map<string, string>();
  const q = (id: string) => `"${id}"`;
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
      if (cache.size > 500) cache.clear();
      cache.set(key, text);
    }
    return text;
  };
  return {
    insert: (table: string, columns: string[], rows: number, conflict: string) =>
      memo(`i:${table}:${rows}:${conflict}`, () => `INSERT INTO ${q(table)} (${columns.map(q).join(', ')}) VALUES ${tuples(rows, columns.length)} ${conflict}`),
    update: (table: string, key: string, columns: string[], rows: number) =>
      memo(`u:${table}:${columns.join(',')}:${rows}`, () => {
        const sets = columns.map((c, n) => `${q(c)} = CAST(v.column${n + 2} AS ${COLUMN_TYPES[c] ?? 'text'})`).join(', ');
        return `UPDATE ${q(table)} SET ${sets} FROM (VALUES ${tuples(rows, columns.length + 1)}) AS v WHERE ${q(table)}.${q(key)} = v.column1`;
      }),
  };
}
type Statements = ReturnType<typeof createStatements>;

/** Rows per statement so one stays under SQLite's 32,766 bound parameters (and PostgreSQL's 65,535). */
const rowsPerStatement = (width: number) => Math.max(1, Math.floor(30_000 / width));

function insertRows(out: CompiledQuery[], st: Statements, table: string, columns: string[], rows: unknown[][], conflict: string): void {
  const per = Math.min(INSERT_CHUNK, rowsPerStatement(columns.length));
  for (let i = 0; i < rows.length; i += per) {
    const chunk = rows.slice(i, i + per);
    out.push(CompiledQuery.raw(st.insert(table, columns, chunk.length, conflict), chunk.flat()));
  }
}

/**
 * Many single-row updates as one statement per column set: `UPDATE t SET c = v.column2 … FROM
 * (VALUES (key, value, …), …) AS v WHERE t.key = v.column1`, portable between SQLite (≥ 3.33) and
 * PostgreSQL, whose VALUES columns are both named column1, column2, ….
 */
function bulkUpdate(out: CompiledQuery[], st: Statements, table: string, keyColumn: string, rows: { key: string; set: Record<string, unknown> }[]): void {
  const bySignature = new Map<string, { key: string; set: Record<string, unknown> }[]>();
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
      out.push(CompiledQuery.raw(st.update(table, keyColumn, cols, chunk.length), params));
    }
  }
}

const SCHEDULE_UPSERT = `ON CONFLICT ("agent_id") DO UPDATE SET ${SCHEDULE_COLUMNS_LIST.filter((c) => c !== 'agent_id' && c !== 'created_at').map((c) => `"${c}" = excluded."${c}"`).join(', ')}`;

/** A batch as the statements that write it, in order: compiled here, run by whichever executor the store has. */
function compileBatch(db: Kysely<Database>, st: Statements, batch: WriteOp[]): CompiledQuery[] {
  const out: CompiledQuery[] = [];
  const ops = plan(batch);
  for (let i = 0; i < ops.length; ) {
    const kind = ops[i]!.op;
    let j = i;
    while (j < ops.length && ops[j]!.op === kind) j++;
    const group = ops.slice(i, j);
    i = j;
    switch (kind) {
      case 'run.insert': {
        const rows = group.map((o) => {
          const r = runSet((o as Extract<WriteOp, { op: 'run.insert' }>).run) as Record<string, unknown>;
          return RUN_COLUMNS_LIST.map((c) => r[c] ?? null);
        });
        insertRows(out, st, 'runs', RUN_COLUMNS_LIST, rows, 'ON CONFLICT ("dedupe_key") DO NOTHING');
        break;
      }
      case 'event.insert': {
        const rows = group.map((o) => {
          const e = (o as Extract<WriteOp, { op: 'event.insert' }>).event;
          return [e.id, e.type, e.agentId, JSON.stringify(e.data), e.createdAt];
        });
        insertRows(out, st, 'events', EVENT_COLUMNS_LIST, rows, 'ON CONFLICT ("id") DO NOTHING');
        break;
      }
      case 'schedule.upsert': {
        const rows = group.map((o) => {
          const r = scheduleSet((o as Extract<WriteOp, { op: 'schedule.upsert' }>).schedule) as Record<string, unknown>;
          return SCHEDULE_COLUMNS_LIST.map((c) => r[c] ?? null);
        });
        insertRows(out, st, 'schedules', SCHEDULE_COLUMNS_LIST, rows, SCHEDULE_UPSERT);
        break;
      }
      case 'run.update':
        bulkUpdate(out, st, 'runs', 'id', group.map((o) => ({ key: (o as Extract<WriteOp, { op: 'run.update' }>).id, set: runSet((o as Extract<WriteOp, { op: 'run.update' }>).set) })));
        break;
      case 'agent.update':
        bulkUpdate(out, st, 'agents', 'id', group.map((o) => ({ key: (o as Extract<WriteOp, { op: 'agent.update' }>).id, set: agentSet((o as Extract<WriteOp, { op: 'agent.update' }>).set) })));
        break;
      case 'schedule.update':
        bulkUpdate(out, st, 'schedules', 'agent_id', group.map((o) => ({ key: (o as Extract<WriteOp, { op: 'schedule.update' }>).agentId, set: scheduleSet((o as Extract<WriteOp, { op: 'schedule.update' }>).set) })));
        break;
      case 'schedule.delete':
        for (let k = 0; k < group.length; k += INSERT_CHUNK) {
          const ids = group.slice(k, k + INSERT_CHUNK).map((o) => (o as Extract<WriteOp, { op: 'schedule.delete' }>).agentId);
          out.push(db.deleteFrom('schedules').where('agent_id', 'in', ids).compile());
        }
        break;
      case 'runs.trim':
        for (const o of group as Extract<WriteOp, { op: 'runs.trim' }>[]) {
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
        for (const o of group as Extract<WriteOp, { op: 'events.trim' }>[]) out.push(db.deleteFrom('events').where('created_at', '<', o.before).compile());
        break;
    }
  }
  return out;
}



export interface Repository extends SchedulerStore {
  readonly db: Kysely<Database>;
  insertAgent(agent: AgentRecord): Promise<boolean>;
  updateAgentFields(id: string, set: Partial<AgentRecord>): Promise<void>;
  /** Deletes the agent with its schedule, runs and events, in one transaction. */
  deleteAgent(id: string): Promise<void>;
  listAgents(owner: string | null): Promise<AgentRecord[]>;
  getSchedule(agentId: string): Promise<ScheduleRecord | undefined>;
  getSchedules(agentIds: string[]): Promise<Map<string, ScheduleRecord>>;
  listRuns(agentId: string, limit: number): Promise<RunRecord[]>;
  getRun(id: string): Promise<RunRecord | undefined>;
  /** Events with id > `after`, oldest first; for one agent, or scheduler-wide ones when agentId is null. */
  eventsAfter(after: number, agentId: string | null, limit: number): Promise<EventRecord[]>;
  oldestEventId(): Promise<number | null>;
  [Symbol.asyncDispose](): Promise<void>;
}

export function createRepository(db: Kysely<Database>, logger: Logger = silentLogger): Repository {
  const execute = (statements: CompiledQuery[]) =>
    db.transaction().execute(async (trx) => {
      for (const q of statements) await trx.executeQuery(q);
    });
  // `$1` (PostgreSQL) or `?` (SQLite), as the dialect's own compiler writes them.
  const numbered = db.selectFrom('agents').select('id').where('id', '=', 'x').compile().sql.includes('$1');
  const statements = createStatements(numbered ? (n) => `$${n}` : () => '?');
  let pending: WriteOp[] = [];
  let chain: Promise<void> = Promise.resolve();
  /** The commit armed for this turn of the event loop, if any: every write until it runs joins it. */
  let armed: Promise<void> | undefined;
  // setImmediate runs after the current I/O phase: every write made in this turn of the loop joins the batch.
  const later: (fn: () => void) => void = typeof setImmediate === 'function' ? (fn) => void setImmediate(fn) : (fn) => void setTimeout(fn, 0);

  function commit(): Promise<void> {
    armed = undefined;
    if (pending.length === 0) return chain;
    const ops = coalesce(pending);
    pending = [];
    // Each transaction blocks the thread while SQLite works; consecutive batches of a burst are separated
    // by a turn of the event loop, so requests and timers get in between.
    const done = chain.then(() => new Promise<void>((r) => later(r))).then(() => execute(compileBatch(db, statements, ops)));
    chain = done.catch((err: unknown) => {
      logger.error('a write batch failed', { ops: ops.length, error: err instanceof Error ? err.message : String(err) });
    });
    return done;
  }

  function arm(): Promise<void> {
    armed ??= new Promise<void>((resolve, reject) => later(() => commit().then(resolve, reject)));
    return armed;
  }

  return {
    db,
    write(op) {
      pending.push(op);
      // A burst (thousands of runs finishing in one turn) is cut into batches of bounded size: the
      // objects of a committed batch die young, where a single huge batch would age into the old
      // generation and make the garbage collector the bottleneck.
      if (pending.length >= MAX_BATCH_OPS) void commit().catch(() => {});
      else void arm().catch(() => {});
    },
    // Waits for the batch of this turn (so concurrent callers share one commit), or the one in flight.
    flush: () => (pending.length > 0 ? arm() : chain),

    async loadSchedules() {
      const rows = await db.selectFrom('schedules').selectAll().execute();
      return rows.map(scheduleFromRow);
    },
    async loadOpenRuns() {
      const rows = await db.selectFrom('runs').selectAll().where('status', 'in', ['queued', 'running']).orderBy('created_at').orderBy('id').execute();
      return rows.map(runFromRow);
    },
    async maxEventId() {
      const row = await db.selectFrom('events').select((eb) => eb.fn.max('id').as('max')).executeTakeFirst();
      return numOrNull(row?.max) ?? 0;
    },
    async getAgent(id) {
      const row = await db.selectFrom('agents').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? agentFromRow(row) : undefined;
    },

    async getAgents(ids) {
      const out: AgentRecord[] = [];
      for (let i = 0; i < ids.length; i += INSERT_CHUNK) {
        const rows = await db.selectFrom('agents').selectAll().where('id', 'in', ids.slice(i, i + INSERT_CHUNK)).execute();
        for (const r of rows) out.push(agentFromRow(r));
      }
      return out;
    },
    async insertAgent(agent) {
      const result = await db.insertInto('agents').values(agentToRow(agent)).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
      return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
    },
    async updateAgentFields(id, set) {
      await db.updateTable('agents').set(agentSet(set)).where('id', '=', id).execute();
    },
    async deleteAgent(id) {
      await db.transaction().execute(async (trx) => {
        await trx.deleteFrom('schedules').where('agent_id', '=', id).execute();
        await trx.deleteFrom('runs').where('agent_id', '=', id).execute();
        await trx.deleteFrom('agents').where('id', '=', id).execute();
      });
    },
    async listAgents(owner) {
      let q = db.selectFrom('agents').selectAll().orderBy('created_at').orderBy('id');
      if (owner !== null) q = q.where('owner', '=', owner);
      return (await q.execute()).map(agentFromRow);
    },
    async getSchedule(agentId) {
      const row = await db.selectFrom('schedules').selectAll().where('agent_id', '=', agentId).executeTakeFirst();
      return row ? scheduleFromRow(row) : undefined;
    },
    async getSchedules(agentIds) {
      const out = new Map<string, ScheduleRecord>();
      for (let i = 0; i < agentIds.length; i += INSERT_CHUNK) {
        const rows = await db.selectFrom('schedules').selectAll().where('agent_id', 'in', agentIds.slice(i, i + INSERT_CHUNK)).execute();
        for (const r of rows) out.set(r.agent_id, scheduleFromRow(r));
      }
      return out;
    },
    async listRuns(agentId, limit) {
      const rows = await db.selectFrom('runs').selectAll().where('agent_id', '=', agentId).orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
      return rows.map(runFromRow);
    },
    async getRun(id) {
      const row = await db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst();
      return row ? runFromRow(row) : undefined;
    },
    async eventsAfter(after, agentId, limit) {
      let q = db.selectFrom('events').selectAll().where('id', '>', after).orderBy('id').limit(limit);
      q = agentId === null ? q.where('agent_id', 'is', null) : q.where('agent_id', '=', agentId);
      return (await q.execute()).map(eventFromRow);
    },
    async oldestEventId() {
      const row = await db.selectFrom('events').select((eb) => eb.fn.min('id').as('min')).executeTakeFirst();
      return numOrNull(row?.min);
    },
    async [Symbol.asyncDispose]() {
      await (pending.length > 0 ? arm() : chain).catch(() => {});
      await db.destroy();
    },
  };
}
