import { sql, type Kysely } from 'kysely';
import type { Store } from '../core/store.ts';
import type { Database } from './schema.ts';

export type IdempotencyMethods = Pick<Store, 'reserveIdempotencyKey' | 'setIdempotencyRun' | 'releaseIdempotencyKey' | 'pruneIdempotencyKeys'>;

/**
 * Manual runs' idempotency keys (CONTRACT §11), straight to the database beside the write chain: a key is
 * taken by one statement, so two requests with the same key — on one instance or two — cannot both make a run.
 * The same SQL serves SQLite and PostgreSQL (both have `ON CONFLICT … DO UPDATE … WHERE` and `RETURNING`).
 */
export function createIdempotencyMethods(db: Kysely<Database>): IdempotencyMethods {
  return {
    async reserveIdempotencyKey(agentId, key, now, expiredBefore, staleBefore) {
      // A row comes back only when this statement inserted the key or took over an expired or abandoned one.
      const taken = await sql<{ agent_id: string }>`
        INSERT INTO idempotency_keys (agent_id, key, run_id, created_at) VALUES (${agentId}, ${key}, NULL, ${now})
        ON CONFLICT (agent_id, key) DO UPDATE SET run_id = NULL, created_at = excluded.created_at
        WHERE idempotency_keys.created_at < ${expiredBefore}
           OR (idempotency_keys.run_id IS NULL AND idempotency_keys.created_at < ${staleBefore})
        RETURNING agent_id`.execute(db);
      if (taken.rows.length > 0) return { reserved: true };
      const row = await db.selectFrom('idempotency_keys').select('run_id').where('agent_id', '=', agentId).where('key', '=', key).executeTakeFirst();
      return { reserved: false, runId: row?.run_id ?? null };
    },
    async setIdempotencyRun(agentId, key, runId) {
      await db.updateTable('idempotency_keys').set({ run_id: runId }).where('agent_id', '=', agentId).where('key', '=', key).execute();
    },
    async releaseIdempotencyKey(agentId, key) {
      await db.deleteFrom('idempotency_keys').where('agent_id', '=', agentId).where('key', '=', key).where('run_id', 'is', null).execute();
    },
    async pruneIdempotencyKeys(before) {
      await db.deleteFrom('idempotency_keys').where('created_at', '<', before).execute();
    },
  };
}
