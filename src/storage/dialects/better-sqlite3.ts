import Database from 'better-sqlite3';
import { SqliteDialect, type Dialect, type SqliteDatabase } from 'kysely';
import { withStatementCache } from './statement-cache.ts';
import { SQLITE_PRAGMAS, sqlitePath } from './sqlite-pragmas.ts';

/** SQLite on Node through better-sqlite3. */
export function betterSqliteDialect(url: string): Dialect {
  const db = new Database(sqlitePath(url));
  for (const p of SQLITE_PRAGMAS) db.pragma(p);
  return new SqliteDialect({ database: withStatementCache(db as unknown as SqliteDatabase) });
}
