// @ts-ignore -- node:sqlite has no types in @types/node 20; Deno (and Node >= 22.5) provide it.
import { DatabaseSync } from 'node:sqlite';
import { SqliteDialect, type Dialect, type SqliteDatabase, type SqliteStatement } from 'kysely';
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

export function nodeSqliteDialect(url: string): Dialect {
  const db = new DatabaseSync(sqlitePath(url)) as { exec(sql: string): void; prepare(sql: string): StatementSync; close(): void };
  for (const p of SQLITE_PRAGMAS) db.exec(`PRAGMA ${p}`);
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
  return new SqliteDialect({ database: withStatementCache(database) });
}
