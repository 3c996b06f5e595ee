import type { Logger } from '../core/logger.ts';
import type { WriteOp } from '../core/store.ts';
import { ownCopy, prepare } from './batch-plan.ts';

/**
 * The write path both stores share: writes are buffered, folded and applied in order, many to one
 * transaction per turn of the event loop. It knows no SQL: each store passes the function that applies
 * a batch (compiled SQL in one transaction, or maps in memory), so both see a batch the same way.
 */

/** Ops buffered before a batch is committed without waiting for the end of the turn. */
const MAX_BATCH_OPS = 2048;
/** The fewest a budget cuts a batch to: below this the statements of a batch cost more than its rows. */
const MIN_BATCH_OPS = 128;
/**
 * How long the thread may be held by one batch of a store whose driver blocks it (SQLite): a burst's batches
 * are cut to what the last batches measured fits in it, so a request waits for at most one such batch.
 * Requests in a burst should be answered within 25 ms (p99); a slice of fires is 10 ms (core/timeline.ts).
 */
export const BLOCKING_BATCH_BUDGET_MS = 8;
/** Where a budgeted chain starts, before it has measured a batch: about a budget's worth on a quiet machine. */
const FIRST_BUDGETED_OPS = 512;
/** Longest a hold keeps batches from committing (see `hold`): a burst that outlasts it commits as it goes. */
const MAX_HOLD_MS = 500;

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
  /**
   * Holds back the commits until the answered function is called (or MAX_HOLD_MS passed): writes are still
   * taken, cut into batches and ordered, and commit afterwards, one batch per turn. While the scheduler slices
   * a burst of fires, its slices then follow one another with only I/O between them, not a transaction.
   */
  hold(): () => void;
}

export interface WriteChainOptions {
  /** Cut batches so that one takes about this long, as measured (BLOCKING_BATCH_BUDGET_MS for SQLite). @default none: MAX_BATCH_OPS */
  budgetMs?: number;
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
export function createWriteChain(apply: (ops: WriteOp[]) => Promise<void>, logger: Logger, options: WriteChainOptions = {}): WriteChain {
  let pending: WriteOp[] = [];
  /** Ops after which the batch is cut: MAX_BATCH_OPS, or what the budget allows at the time per op measured. */
  let maxOps = options.budgetMs === undefined ? MAX_BATCH_OPS : FIRST_BUDGETED_OPS;
  /** Milliseconds per op of the last batches (an average that follows them), for the budget. */
  let msPerOp: number | undefined;
  /** While held (see `hold`): resolves when the last hold ends. */
  let released: Promise<void> | undefined;
  let release: (() => void) | undefined;
  let holds = 0;
  const turn = () => new Promise<void>((r) => later(r));
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
    // Folded and ordered in the batch's own turn (its cost counts in the budget), not in the turn that cut it:
    // that turn is often a slice of fires.
    const written = pending;
    pending = [];
    // Each transaction blocks the thread while SQLite works; consecutive batches of a burst are separated
    // by a turn of the event loop, so requests and timers get in between.
    const count = written.length;
    return enqueue(
      async () => {
        await turn();
        while (released) {
          await released;
          await turn();
        }
        const started = performance.now();
        await applyRetrying(prepare(written));
        if (options.budgetMs !== undefined && !retrying) measured(performance.now() - started, count);
      },
      (err) => logger.error('a write batch failed', { ops: count, error: err instanceof Error ? err.message : String(err) }),
    );
  }

  /** A batch of `count` ops took `ms`: the cut follows what a batch costs now. */
  function measured(ms: number, count: number): void {
    if (count < 16) return; // too few to tell the cost of an op from the cost of a transaction
    const perOp = ms / count;
    msPerOp = msPerOp === undefined ? perOp : 0.7 * msPerOp + 0.3 * perOp;
    maxOps = Math.max(MIN_BATCH_OPS, Math.min(MAX_BATCH_OPS, Math.floor(options.budgetMs! / msPerOp)));
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

  /** Reads waiting for a turn of their own, oldest first; one is let go per turn. */
  const turns: (() => void)[] = [];
  function nextTurn(): void {
    turns.shift()!();
    if (turns.length > 0) later(nextTurn);
  }
  function ownTurn(): Promise<void> {
    return new Promise<void>((resolve) => {
      if (turns.push(resolve) === 1) later(nextTurn);
    });
  }

  function arm(): Promise<void> {
    armed ??= new Promise<void>((resolve, reject) => later(() => commit().then(resolve, reject)));
    return armed;
  }

  // Waits for the batch of this turn (so concurrent callers share one commit), or what is in flight.
  const flush = () => (pending.length > 0 ? arm() : chain);

  return {
    write(op) {
      pending.push(ownCopy(op));
      // A burst (thousands of runs finishing in one turn) is cut into batches of bounded size: the
      // objects of a committed batch die young, where a single huge batch would age into the old
      // generation and make the garbage collector the bottleneck.
      if (pending.length >= maxOps) void commit().catch(ignore);
      else if (!armed) void arm().catch(ignore); // once per turn: a promise per write would be garbage per write
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
        // A read that waited for writes runs in a turn of its own: the reads held up behind a burst's batches
        // would otherwise all run at once when the last one commits, holding the thread for as long as all of them.
        out[name] = (...args: unknown[]) => (pending.length > 0 || busy > 0 ? flush().catch(ignore).then(ownTurn).then(() => read(...args)) : read(...args));
      }
      return out as typeof reads;
    },
    settle: () => flush().catch(ignore),
    trouble: () => ({ lastFailedAt, retrying }),
    hold() {
      if (holds++ === 0) released = new Promise<void>((r) => (release = r));
      let ended = false;
      const end = () => {
        if (ended) return;
        ended = true;
        clearTimeout(timer);
        if (--holds > 0) return;
        const r = release;
        released = release = undefined;
        r?.();
      };
      const timer = setTimeout(end, MAX_HOLD_MS);
      (timer as { unref?: () => void }).unref?.(); // a hold never keeps a process alive
      return end;
    },
  };
}
