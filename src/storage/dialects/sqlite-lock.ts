import { chmodSync, closeSync, existsSync, openSync } from 'node:fs';
import type { SqliteDatabase } from 'kysely';

/**
 * One owner per SQLite file (README, "Running several instances"): a server takes `<file>.lock` before
 * it opens the database, and a second server on the same file refuses to start before touching any data.
 *
 * The lock is SQLite's own file lock on a small side database, held by a write transaction that stays
 * open for the life of the process: the operating system drops it when the process ends, however it
 * ends, so a `kill -9` never leaves a stale lock behind (a lock file with a pid in it would). SQLite
 * also keeps two connections of one process apart, so the rule holds inside one process too.
 *
 * The side database holds the owner's pid, for the refusal message. Readers can read what is committed
 * while a writer holds its RESERVED lock (rollback-journal mode), so the owner commits its pid first
 * and then opens the transaction it keeps; if another process slips in between, it becomes the owner and
 * this one reports it — either way exactly one holds the lock.
 */

/**
 * Makes a SQLite file readable by its owner only (0600), creating it empty if it does not exist yet, before a
 * driver opens it: the database holds webhook header secrets and was created 0644 (issue 12 item 9). SQLite
 * gives the `-wal`, `-shm` and `-journal` files it creates the database file's mode; ones left by an older
 * start are narrowed here too. No-op for `:memory:` (and where the OS has no such modes).
 */
export function ownerOnlyFile(path: string): void {
  if (path === ':memory:' || path === '') return;
  if (!existsSync(path)) closeSync(openSync(path, 'a', 0o600));
  for (const file of [path, `${path}-wal`, `${path}-shm`, `${path}-journal`]) {
    if (existsSync(file)) chmodSync(file, 0o600);
  }
}

/** The options of both SQLite dialects (better-sqlite3.ts, node-sqlite.ts). */
export interface SqliteDialectOptions {
  /**
   * Take the file for this process alone before opening it (sqlite-lock.ts): a second process on the
   * same file gets `DatabaseInUseError` and touches nothing. The server's entry sets it; tests that
   * reopen a file a simulated dead process still holds leave it off. Ignored for `:memory:`.
   * @default false
   */
  exclusive?: boolean;
}

/** The slice of a synchronous SQLite driver (better-sqlite3, node:sqlite) the lock needs. */
export interface LockConnection {
  exec(sql: string): void;
  /** The first column of the first row, or undefined. */
  value(sql: string): unknown;
  close(): void;
}

/** What the process prints when the file is taken: one line, then exit code 1. */
export class DatabaseInUseError extends Error {
  override name = 'DatabaseInUseError';
  constructor(
    readonly path: string,
    readonly ownerPid: number | undefined,
  ) {
    super(`Another agent-scheduler${ownerPid === undefined ? '' : ` (pid ${ownerPid})`} is using ${path}; stop it or set DATABASE_URL`);
  }
}

/**
 * How long a start waits for the lock before it refuses. The owner holds it for good, so this only
 * covers the instant in which another starting process holds it to write its pid. @default 1000
 */
const LOCK_WAIT_MS = 1000;

export interface SqliteLock {
  /** Lets the file go (the database is being closed); the process ending does the same. */
  release(): void;
}

/**
 * Takes `<path>.lock` for this process, or throws `DatabaseInUseError` naming the owner's pid.
 * `open` opens a connection to the side database with the driver at hand.
 */
export function lockSqliteFile(path: string, open: (file: string) => LockConnection, pid: number): SqliteLock {
  ownerOnlyFile(`${path}.lock`);
  const conn = open(`${path}.lock`);
  const refuse = (err: unknown): never => {
    let owner: number | undefined;
    try {
      const v = conn.value('SELECT pid FROM owner');
      if (typeof v === 'number' || typeof v === 'bigint') owner = Number(v);
    } catch {
      // No owner row yet (its first owner has not committed it): the message goes without a pid.
    }
    conn.close();
    if (!isBusy(err)) throw err;
    throw new DatabaseInUseError(path, owner);
  };
  try {
    // The side database stays in SQLite's default rollback-journal mode, where the owner row can be read while the lock is held.
    conn.exec(`PRAGMA busy_timeout = ${LOCK_WAIT_MS}`);
    conn.exec('BEGIN IMMEDIATE');
  } catch (err) {
    return refuse(err);
  }
  try {
    conn.exec('CREATE TABLE IF NOT EXISTS owner (pid INTEGER NOT NULL, since INTEGER NOT NULL)');
    conn.exec('DELETE FROM owner');
    conn.exec(`INSERT INTO owner (pid, since) VALUES (${Math.trunc(pid)}, ${Date.now()})`);
    conn.exec('COMMIT');
    conn.exec('BEGIN IMMEDIATE');
  } catch (err) {
    return refuse(err);
  }
  let released = false;
  return {
    release() {
      if (released) return;
      released = true;
      try {
        conn.exec('ROLLBACK');
      } finally {
        conn.close();
      }
    },
  };
}

/** SQLITE_BUSY (or SQLITE_LOCKED): another connection holds the file. */
function isBusy(err: unknown): boolean {
  const e = err as { code?: unknown; errcode?: unknown; message?: unknown } | null;
  const code = String(e?.code ?? '');
  return code.startsWith('SQLITE_BUSY') || code.startsWith('SQLITE_LOCKED') || e?.errcode === 5 || e?.errcode === 6 || /database is locked|database is busy/i.test(String(e?.message ?? ''));
}

/** The database as Kysely sees it, whose close (Kysely's `destroy`) also lets the file's lock go. */
export function releasingOnClose(db: SqliteDatabase, lock: SqliteLock | undefined): SqliteDatabase {
  if (!lock) return db;
  return {
    prepare: (sql) => db.prepare(sql),
    close() {
      try {
        db.close();
      } finally {
        lock.release();
      }
    },
  };
}
