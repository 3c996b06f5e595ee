import Database from 'better-sqlite3';
import { SqliteDialect, type Dialect, type SqliteDatabase } from 'kysely';
import { lockSqliteFile, ownerOnlyFile, releasingOnClose, type SqliteDialectOptions } from './sqlite-lock.ts';
import { withStatementCache } from './statement-cache.ts';
import { SQLITE_PRAGMAS, sqlitePath } from './sqlite-pragmas.ts';
import { BACKSTOP_PAGES, startCheckpointer, type Checkpointer } from './sqlite-checkpointer.ts';

/** SQLite on Node through better-sqlite3. */
export function betterSqliteDialect(url: string, options: SqliteDialectOptions = {}): Dialect {
  const path = sqlitePath(url);
  const lock = options.exclusive && path !== ':memory:' ? lockSqliteFile(path, openLockConnection, process.pid) : undefined;
  let db: Database.Database;
  let checkpointer: Checkpointer | undefined;
  try {
    ownerOnlyFile(path);
    db = new Database(path);
    for (const p of SQLITE_PRAGMAS) db.pragma(p);
    if (path !== ':memory:' && path !== '') {
      // Checkpoints move off the event loop's thread (sqlite-checkpointer.ts); the writer's own is the backstop.
      db.pragma(`wal_autocheckpoint = ${BACKSTOP_PAGES}`);
      checkpointer = startCheckpointer(path);
    }
  } catch (err) {
    lock?.release();
    throw err;
  }
  const database = releasingOnClose(db as unknown as SqliteDatabase, lock);
  return new SqliteDialect({
    database: withStatementCache(
      checkpointer
        ? {
            prepare: (sql) => database.prepare(sql),
            close() {
              checkpointer.stop();
              database.close();
            },
          }
        : database,
    ),
  });
}

function openLockConnection(file: string) {
  const db = new Database(file);
  return {
    exec: (sql: string) => void db.exec(sql),
    value: (sql: string) => db.prepare(sql).pluck().get(),
    close: () => db.close(),
  };
}
