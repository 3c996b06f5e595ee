import Database from 'better-sqlite3';
import { SqliteDialect, type Dialect, type SqliteDatabase } from 'kysely';
import { lockSqliteFile, ownerOnlyFile, releasingOnClose, type SqliteDialectOptions } from './sqlite-lock.ts';
import { withStatementCache } from './statement-cache.ts';
import { SQLITE_PRAGMAS, sqlitePath } from './sqlite-pragmas.ts';

/** SQLite on Node through better-sqlite3. */
export function betterSqliteDialect(url: string, options: SqliteDialectOptions = {}): Dialect {
  const path = sqlitePath(url);
  const lock = options.exclusive && path !== ':memory:' ? lockSqliteFile(path, openLockConnection, process.pid) : undefined;
  let db: Database.Database;
  try {
    ownerOnlyFile(path);
    db = new Database(path);
    for (const p of SQLITE_PRAGMAS) db.pragma(p);
  } catch (err) {
    lock?.release();
    throw err;
  }
  return new SqliteDialect({ database: withStatementCache(releasingOnClose(db as unknown as SqliteDatabase, lock)) });
}

function openLockConnection(file: string) {
  const db = new Database(file);
  return {
    exec: (sql: string) => void db.exec(sql),
    value: (sql: string) => db.prepare(sql).pluck().get(),
    close: () => db.close(),
  };
}
