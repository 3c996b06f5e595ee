// @ts-ignore -- node:sqlite has no types in @types/node 20; Deno (and Node >= 22.5) provide it.
import { DatabaseSync } from 'node:sqlite';
import { SqliteDialect, type Dialect, type SqliteDatabase, type SqliteStatement } from 'kysely';
import { lockSqliteFile, ownerOnlyFile, releasingOnClose, type SqliteDialectOptions } from './sqlite-lock.ts';
import { SQLITE_PRAGMAS, sqlitePath } from './sqlite-pragmas.ts';
import { withStatementCache } from './statement-cache.ts';

/**
 * SQLite on Deno through `node:sqlite`, which better-sqlite3 cannot replace there (it is not a
 * Node-API addon). This adapts DatabaseSync to the slice of better-sqlite3 that Kysely's SqliteDialect uses.
 */
interface StatementSync {
  all(...params: unknown[]): unknown[];
  run(...params: unknown[]): { changes: number | bigint; lastInsertRowid: number | bigint };
  iterate(...params: unknown[]): IterableIterator<unknown>;
}

/** Statements that return rows: SELECT/WITH/PRAGMA/VALUES, or anything with RETURNING. */
const READER = /^\s*(select|with|pragma|values|explain)\b|\breturning\b/i;

type Connection = { exec(sql: string): void; prepare(sql: string): StatementSync & { get(...params: unknown[]): unknown }; close(): void };

/** `exclusive`: take the file for this process alone first, as `betterSqliteDialect` does (sqlite-lock.ts). */
export function nodeSqliteDialect(url: string, options: SqliteDialectOptions = {}): Dialect {
  const path = sqlitePath(url);
  const lock = options.exclusive && path !== ':memory:' ? lockSqliteFile(path, openLockConnection, process.pid) : undefined;
  let db: Connection;
  try {
    ownerOnlyFile(path);
    db = new DatabaseSync(path) as Connection;
    for (const p of SQLITE_PRAGMAS) db.exec(`PRAGMA ${p}`);
  } catch (err) {
    lock?.release();
    throw err;
  }
  const database: SqliteDatabase = {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      const stmt = db.prepare(sql);
      return {
        reader: READER.test(sql),
        all: (params) => stmt.all(...params),
        run: (params) => stmt.run(...params),
        iterate: (params) => stmt.iterate(...params),
      };
    },
  };
  return new SqliteDialect({ database: withStatementCache(releasingOnClose(database, lock)) });
}

function openLockConnection(file: string) {
  const db = new DatabaseSync(file) as Connection;
  return {
    exec: (sql: string) => db.exec(sql),
    value(sql: string) {
      const row = db.prepare(sql).get() as Record<string, unknown> | undefined;
      return row ? Object.values(row)[0] : undefined;
    },
    close: () => db.close(),
  };
}
