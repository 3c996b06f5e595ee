import { sql, type Kysely, type RawBuilder } from 'kysely';
import type { Database } from './schema.ts';

/** Letting waiting runs go in SQL (promote.ts says when and why). */

/** Bound parameters per list: far under every dialect's limit. */
const CHUNK = 500;

/**
 * The UPDATE … RETURNING that lets go, for the agents of the runs `endedIds` (all agents when undefined,
 * the sweep a heartbeat makes), each one's oldest waiting run while the agent has no open run that is
 * not waiting. The same statement on SQLite and PostgreSQL; it reads the partial index runs_waiting, so
 * with nothing waiting it costs an empty index probe.
 */
export function promoteStatements(endedIds?: readonly string[]): RawBuilder<Record<string, unknown>>[] {
  const lists: (readonly string[] | undefined)[] = [];
  if (endedIds === undefined) lists.push(undefined);
  else for (let i = 0; i < endedIds.length; i += CHUNK) lists.push(endedIds.slice(i, i + CHUNK));
  return lists.map((ids) => {
    const scope = ids === undefined ? sql`` : sql` AND w."agent_id" IN (SELECT e."agent_id" FROM "runs" e WHERE e."id" IN (${sql.join(ids)}))`;
    return sql<Record<string, unknown>>`UPDATE "runs" SET "waiting" = 0 WHERE "id" IN (
      SELECT w."id" FROM "runs" w WHERE w."waiting" = 1 AND w."status" = 'queued'${scope}
        AND NOT EXISTS (SELECT 1 FROM "runs" o WHERE o."agent_id" = w."agent_id" AND o."status" IN ('queued', 'running') AND o."waiting" = 0)
        AND NOT EXISTS (SELECT 1 FROM "runs" b WHERE b."agent_id" = w."agent_id" AND b."waiting" = 1 AND b."status" = 'queued'
          AND (b."scheduled_at" < w."scheduled_at" OR (b."scheduled_at" = w."scheduled_at" AND b."id" < w."id")))
    ) RETURNING *`;
  });
}

/**
 * Whether any run waits at all: one probe of the partial index runs_waiting. Nearly every batch that ends
 * runs has none waiting, and the scoped UPDATE first reads the agent of every ended run to find out. The
 * condition is the index's own: with `status` in it too, SQLite scans the queued runs instead (runs_queue),
 * and a run waits only while queued anyway.
 */
const ANY_WAITING = sql<{ one: number }>`SELECT 1 AS "one" FROM "runs" WHERE "waiting" = 1 LIMIT 1`;

/** Runs the statements on `db` (a transaction, or the store's connection) and answers the rows let go. */
export async function promote(db: Kysely<Database>, endedIds?: readonly string[]): Promise<Record<string, unknown>[]> {
  if (endedIds !== undefined && endedIds.length === 0) return [];
  if ((await ANY_WAITING.execute(db)).rows.length === 0) return [];
  const rows: Record<string, unknown>[] = [];
  for (const statement of promoteStatements(endedIds)) rows.push(...(await statement.execute(db)).rows);
  return rows;
}
