import type { SqliteDatabase, SqliteStatement } from 'kysely';

/**
 * Kysely's SQLite driver prepares every query anew. Our batched writes repeat a few large statements
 * (500-row INSERTs, multi-row UPDATEs) whose parsing costs more than running them, so prepared
 * statements are kept by SQL text, the least recently used dropped past `limit` (a batch's statements come in a
 * few dozen shapes per kind of write, storage/statements.ts).
 */
export function withStatementCache(db: SqliteDatabase, limit = 400): SqliteDatabase {
  const cache = new Map<string, SqliteStatement>();
  return {
    close: () => db.close(),
    prepare(sql: string): SqliteStatement {
      let stmt = cache.get(sql);
      if (stmt) {
        cache.delete(sql);
      } else {
        stmt = db.prepare(sql);
        if (cache.size >= limit) cache.delete(cache.keys().next().value!);
      }
      cache.set(sql, stmt);
      return stmt;
    },
  };
}
