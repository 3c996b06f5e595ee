import type { Store } from '../core/store.ts';

type IdempotencyMethods = Pick<Store, 'reserveIdempotencyKey' | 'setIdempotencyRun' | 'releaseIdempotencyKey' | 'pruneIdempotencyKeys'>;

/** Manual runs' idempotency keys (idempotency-sql.ts) in the memory store's map: the same answers, in one process. */
export function createMemoryIdempotency(): IdempotencyMethods & { deleteAgent(agentId: string): void } {
  const keys = new Map<string, { agentId: string; runId: string | null; createdAt: number }>();
  const id = (agentId: string, key: string) => `${agentId}\u0000${key}`;
  return {
    async reserveIdempotencyKey(agentId, key, now, expiredBefore, staleBefore) {
      const found = keys.get(id(agentId, key));
      if (!found || found.createdAt < expiredBefore || (found.runId === null && found.createdAt < staleBefore)) {
        keys.set(id(agentId, key), { agentId, runId: null, createdAt: now });
        return { reserved: true };
      }
      return { reserved: false, runId: found.runId };
    },
    async setIdempotencyRun(agentId, key, runId) {
      const found = keys.get(id(agentId, key));
      if (found) found.runId = runId;
    },
    async releaseIdempotencyKey(agentId, key) {
      if (keys.get(id(agentId, key))?.runId === null) keys.delete(id(agentId, key));
    },
    async pruneIdempotencyKeys(before) {
      for (const [k, v] of keys) if (v.createdAt < before) keys.delete(k);
    },
    deleteAgent(agentId) {
      for (const [k, v] of keys) if (v.agentId === agentId) keys.delete(k);
    },
  };
}
