import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';

/**
 * WAL checkpoints on a thread of their own, for a SQLite file on better-sqlite3. SQLite checkpoints from
 * the committing connection once the WAL passes 1,000 pages: it copies them into the database file inside
 * that COMMIT, on the event loop's thread, and a burst's commits paid 10–30 ms each time (and about a fifth
 * of SQLite's time). Here a second connection, on a worker thread, runs a PASSIVE checkpoint every
 * CHECKPOINT_EVERY_MS: it never waits for the writer, and the writer never waits for it. The writer keeps a
 * checkpoint of its own past BACKSTOP_PAGES, should this thread ever fall behind or stop.
 */

/** How often the thread checkpoints; at the rate of a burst the WAL grows by a few MB in that time. */
const CHECKPOINT_EVERY_MS = 200;
/** The writer's own automatic checkpoint, in pages (4 KiB): 10x SQLite's default, reached only if the thread falls behind. */
export const BACKSTOP_PAGES = 10_000;

/** How long closing waits for the thread to close its connection (it answers within a checkpoint's time). */
const STOP_WAIT_MS = 5_000;

// `closed` (one Int32) turns 1 once the thread holds no connection: after its close, or when it could not open.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const closed = new Int32Array(workerData.closed);
const gone = () => { Atomics.store(closed, 0, 1); Atomics.notify(closed, 0); };
let db;
try {
  db = new (require(workerData.driver))(workerData.path);
  db.pragma('busy_timeout = 5000');
} catch {
  gone();
  db = undefined;
}
const timer = db && setInterval(() => {
  try {
    db.pragma('wal_checkpoint(PASSIVE)');
  } catch {
    // Busy or gone: the next interval tries again, and the writer's backstop checkpoint still holds.
  }
}, workerData.everyMs);
parentPort.once('message', () => {
  clearInterval(timer);
  try {
    db?.close();
  } finally {
    gone();
    parentPort.close();
  }
});
`;

export interface Checkpointer {
  /**
   * Stops the thread and waits (blocking, at most STOP_WAIT_MS) until its connection is closed: a database
   * closed by its owner is then closed for good, its WAL folded in and its files removed, before close returns.
   */
  stop(): void;
}

/** Starts checkpointing `path` (a WAL-mode database file) beside the process's own connection. */
export function startCheckpointer(path: string): Checkpointer {
  const driver = createRequire(import.meta.url).resolve('better-sqlite3');
  const closed = new SharedArrayBuffer(4);
  const worker = new Worker(WORKER, { eval: true, workerData: { path, driver, everyMs: CHECKPOINT_EVERY_MS, closed } });
  worker.unref(); // it never keeps a process alive
  worker.on('error', () => {}); // a thread that fails leaves the backstop checkpoint to the writer
  let stopped = false;
  return {
    stop() {
      if (stopped) return;
      stopped = true;
      worker.postMessage('stop');
      // Blocks this thread briefly, as better-sqlite3's own close does; the worker runs on its own thread.
      Atomics.wait(new Int32Array(closed), 0, 0, STOP_WAIT_MS);
    },
  };
}
