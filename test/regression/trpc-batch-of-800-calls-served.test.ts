import { describe, expect, it } from 'vitest';
import { TRPC_MAX_BATCH } from '../../src/core/limits.ts';
import { startServer } from '../harness.ts';

/** Issue 12 item 9: a tRPC batch of 800 calls was served whole. */
describe('a tRPC batch over TRPC_MAX_BATCH', () => {
  it('is refused with 400, while a batch at the limit is served', async () => {
    await using s = await startServer();
    const token = await s.token();
    const batch = (n: number) => {
      // A mutation batch goes in a POST body (a GET of 800 paths would pass the header limit first).
      const paths = Array.from({ length: n }, () => 'runs.cancel').join(',');
      const body = JSON.stringify(Object.fromEntries(Array.from({ length: n }, (_, i) => [i, { json: { runId: `missing-${i}` } }])));
      return fetch(`${s.url}/trpc/${paths}?batch=1`, { method: 'POST', body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
    };
    const atLimit = await batch(TRPC_MAX_BATCH);
    const answers = (await atLimit.json()) as unknown[];
    expect(answers).toHaveLength(TRPC_MAX_BATCH); // every call answered (each one NOT_FOUND)
    const big = await batch(800);
    expect(big.status).toBe(400);
    expect(JSON.stringify(await big.json())).toMatch(/Batch call exceeds maximum size/);
  });
});
