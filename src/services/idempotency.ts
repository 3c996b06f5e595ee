import { conflict } from '../core/errors.ts';
import { IDEMPOTENCY_KEY_STALE_MS, IDEMPOTENCY_KEY_TTL_MS, IDEMPOTENCY_WAIT_MS } from '../core/limits.ts';
import type { Store } from '../core/store.ts';

/** Expired keys are deleted at most this often, by whichever request comes then (one indexed delete). */
const PRUNE_EVERY_MS = 60 * 60_000;

export interface IdempotentRunsDeps {
  store: Pick<Store, 'reserveIdempotencyKey' | 'setIdempotencyRun' | 'releaseIdempotencyKey' | 'pruneIdempotencyKeys'>;
  now: () => number;
  /** @default setTimeout */
  wait?: (ms: number) => Promise<void>;
}

/**
 * Manual runs under an `Idempotency-Key` (CONTRACT §11): the same key for the same agent answers the same run
 * for 24 h, however often and however concurrently it is sent, on any instance. The key is taken in the database
 * before the run is made, so of two requests racing only one makes a run; the other waits for its id. A run that
 * could not be made (a 429, the agent deleted) frees the key again, so a retry of the request can succeed.
 */
export function createIdempotentRuns({ store, now, wait = (ms) => new Promise((r) => setTimeout(r, ms)) }: IdempotentRunsDeps) {
  let prunedAt = -Infinity;
  return async function once(agentId: string, key: string, make: () => Promise<string>): Promise<string> {
    const started = now();
    if (started - prunedAt >= PRUNE_EVERY_MS) {
      prunedAt = started;
      await store.pruneIdempotencyKeys(started - IDEMPOTENCY_KEY_TTL_MS);
    }
    for (let delay = 10; ; delay = Math.min(delay * 2, 200)) {
      const t = now();
      const found = await store.reserveIdempotencyKey(agentId, key, t, t - IDEMPOTENCY_KEY_TTL_MS, t - IDEMPOTENCY_KEY_STALE_MS);
      if (found.reserved) {
        let runId: string;
        try {
          runId = await make();
        } catch (err) {
          await store.releaseIdempotencyKey(agentId, key);
          throw err;
        }
        await store.setIdempotencyRun(agentId, key, runId);
        return runId;
      }
      if (found.runId !== null) return found.runId;
      // Another request holds the key and is making its run right now.
      if (now() - started >= IDEMPOTENCY_WAIT_MS) throw conflict(`Idempotency-Key "${key}": a request with this key is still in progress; try again`);
      await wait(delay);
    }
  };
}
