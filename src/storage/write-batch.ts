import type { Logger } from '../core/logger.ts';
import type { WriteOp } from '../core/store.ts';

/**
 * The write path both stores share: writes are buffered, folded and applied in order, many to one
 * transaction per turn of the event loop. It knows no SQL: each store passes the function that applies
 * a batch (compiled SQL in one transaction, or maps in memory), so both see a batch the same way.
 */

/** Ops buffered before a batch is committed without waiting for the end of the turn. */
const MAX_BATCH_OPS = 2048;

/**
 * Folds a batch: an update of a key whose last op in the batch was its insert or an update is merged
 * into that op, so a run that is queued, started, reports progress and completes in one tick costs one
 * INSERT, not five statements. Only ops of the same key are ever merged, so the order of effects holds.
 */
export function coalesce(ops: WriteOp[]): WriteOp[] {
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

/** Ops merge only under the same fence (or none): a fenced op folded into another would apply or fail with it. */
const sameFence = (a: WriteOp, b: WriteOp) => a.fence === b.fence || (a.fence !== undefined && b.fence !== undefined && a.fence.runId === b.fence.runId && a.fence.epoch === b.fence.epoch);

function mergeInto(prev: WriteOp, op: WriteOp): boolean {
  if (!sameFence(prev, op)) return false;
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

/** The row an op touches; the trims touch many and have none. */
function keyOf(op: WriteOp): string | undefined {
  switch (op.op) {
    case 'run.insert': return `r:${op.run.id}`;
    case 'run.update': return `r:${op.id}`;
    case 'agent.update': return `a:${op.id}`;
    case 'schedule.upsert': return `s:${op.schedule.agentId}`;
    case 'schedule.update':
    case 'schedule.delete': return `s:${op.agentId}`;
    case 'pause.begin': return `p:${op.pause.agentId}`;
    case 'pause.end': return `p:${op.agentId}`;
    default: return undefined;
  }
}

/**
 * Order of statement kinds inside one generation of a batch (see `plan`). Inserts come before updates
 * so that an update of a row inserted by an earlier batch-generation never misses it. Events and their
 * trims touch no other row; each store writes them after everything else, once the batch's event ids
 * are taken (sql.ts says why).
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
  'pause.end': 9,
  'pause.begin': 10,
};

/**
 * Reorders a coalesced batch so that ops of one kind sit together and can share multi-row statements.
 * Ops on different rows are independent; ops on the same row keep their order, because an op's
 * generation (how many earlier ops touch its row) sorts before its kind.
 */
export function plan(ops: WriteOp[]): WriteOp[] {
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

export interface WriteChain {
  /** Buffers a write (see `SchedulerStore.write`). */
  write(op: WriteOp): void;
  /** Resolves once every write buffered before the call is applied; rejects if its batch failed. */
  flush(): Promise<void>;
  /**
   * Runs `task` after every write buffered before the call and before every later one, outside any
   * batch; its result and its error go to the caller.
   */
  serial<T>(task: () => Promise<T>): Promise<T>;
  /** `reads` as functions that first wait for the writes buffered or running at the call. */
  seeingWrites<T extends Record<string, (...args: any[]) => Promise<unknown>>>(reads: T): T;
  /** Waits for everything buffered, ignoring failures (they are logged). */
  settle(): Promise<void>;
  /** When a batch last failed because the database was away, and whether one waits to try again now (`/healthz`). */
  trouble(): { lastFailedAt: number | null; retrying: boolean };
}

// setImmediate runs after the current I/O phase: every write made in this turn of the loop joins the batch.
const later: (fn: () => void) => void = typeof setImmediate === 'function' ? (fn) => void setImmediate(fn) : (fn) => void setTimeout(fn, 0);
const ignore = () => {};

/** Retry delays of a batch while the database is away: 100 ms doubling to 5 s. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5000;
/** How long a batch waits for the database before it is given up: an outage longer than this loses it. */
const OUTAGE_PATIENCE_MS = 5 * 60_000;

/**
 * Errors that say the database is away for now, not that the batch is wrong: PostgreSQL's connection
 * exceptions (SQLSTATE class 08), shutdowns and "cannot connect now" (57P01–57P03), too many connections
 * (53300), a deadlock or serialization failure (40P01, 40001: the transaction was rolled back whole), a
 * socket that failed, and SQLite's busy file.
 */
function isTransient(err: unknown): boolean {
  const e = err as { code?: unknown; message?: unknown } | null;
  const code = typeof e?.code === 'string' ? e.code : '';
  const message = typeof e?.message === 'string' ? e.message : '';
  return code.startsWith('08') || /^57P0[123]$/.test(code) || code === '53300' || code === '40P01' || code === '40001' ||
    ['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'SQLITE_BUSY'].includes(code) ||
    /Connection terminated|connection error|terminating connection/i.test(message);
}

/** `apply` gets each batch coalesced and planned, and must apply all of it or nothing. */
export function createWriteChain(apply: (ops: WriteOp[]) => Promise<void>, logger: Logger): WriteChain {
  let pending: WriteOp[] = [];
  /** Every batch and serial task, in order; never rejects. */
  let chain: Promise<void> = Promise.resolve();
  /** Batches and tasks queued on `chain` and not yet settled: reads wait only when this or `pending` is non-zero. */
  let busy = 0;
  /** The commit armed for this turn of the event loop, if any: every write until it runs joins it. */
  let armed: Promise<void> | undefined;
  /** For `trouble()`: the last transient failure of a batch, and whether a batch is waiting out the outage now. */
  let lastFailedAt: number | null = null;
  let retrying = false;

  function enqueue<T>(step: () => Promise<T>, onError: (err: unknown) => void): Promise<T> {
    busy++;
    const done = chain.then(step);
    chain = done.then(
      () => void busy--,
      (err: unknown) => {
        busy--;
        onError(err);
      },
    );
    return done;
  }

  function commit(): Promise<void> {
    armed = undefined;
    if (pending.length === 0) return chain;
    const ops = plan(coalesce(pending));
    pending = [];
    // Each transaction blocks the thread while SQLite works; consecutive batches of a burst are separated
    // by a turn of the event loop, so requests and timers get in between.
    return enqueue(
      () => new Promise<void>((r) => later(r)).then(() => applyRetrying(ops)),
      (err) => logger.error('a write batch failed', { ops: ops.length, error: err instanceof Error ? err.message : String(err) }),
    );
  }

  /**
   * Applies a batch, trying again while the database is away (a restart, a cut connection, a busy
   * file): the batch holds run states and events that must not be lost, and later batches wait behind
   * it, so the order of writes holds. After OUTAGE_PATIENCE_MS it gives up and the batch fails (logged).
   * A batch whose COMMIT was cut may have been applied; trying it again is then refused by its unique
   * keys and fails — rare, and logged.
   */
  async function applyRetrying(ops: WriteOp[]): Promise<void> {
    const started = Date.now();
    for (let delay = RETRY_FIRST_MS; ; delay = Math.min(delay * 2, RETRY_MAX_MS)) {
      try {
        await apply(ops);
        retrying = false;
        return;
      } catch (err) {
        retrying = false;
        if (!isTransient(err) || Date.now() - started > OUTAGE_PATIENCE_MS) throw err;
        lastFailedAt = Date.now();
        retrying = true;
        logger.warn('database unavailable; the write batch waits and tries again', { ops: ops.length, retryInMs: delay, error: err instanceof Error ? err.message : String(err) });
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  function arm(): Promise<void> {
    armed ??= new Promise<void>((resolve, reject) => later(() => commit().then(resolve, reject)));
    return armed;
  }

  // Waits for the batch of this turn (so concurrent callers share one commit), or what is in flight.
  const flush = () => (pending.length > 0 ? arm() : chain);

  return {
    write(op) {
      pending.push(op);
      // A burst (thousands of runs finishing in one turn) is cut into batches of bounded size: the
      // objects of a committed batch die young, where a single huge batch would age into the old
      // generation and make the garbage collector the bottleneck.
      if (pending.length >= MAX_BATCH_OPS) void commit().catch(ignore);
      else void arm().catch(ignore);
    },
    flush,
    serial(task) {
      // The writes buffered so far go first, as a batch of their own.
      if (pending.length > 0) void commit().catch(ignore);
      return enqueue(task, ignore);
    },
    seeingWrites(reads) {
      const out: Record<string, unknown> = {};
      for (const [name, read] of Object.entries(reads)) {
        out[name] = (...args: unknown[]) => (pending.length > 0 || busy > 0 ? flush().catch(ignore).then(() => read(...args)) : read(...args));
      }
      return out as typeof reads;
    },
    settle: () => flush().catch(ignore),
    trouble: () => ({ lastFailedAt, retrying }),
  };
}
