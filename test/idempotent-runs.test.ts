import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createSchedulerClient } from '../client/index.ts';
import { createManualClock } from '../src/core/clock.ts';
import { at, startServer } from './harness.ts';

/**
 * Idempotent manual runs (CONTRACT §11): `POST /api/agents/:agentId/run` with an `Idempotency-Key` header (tRPC
 * input `idempotencyKey`) answers the same runId for the same key and agent within 24 h, however often and however
 * concurrently it is sent. The key is taken in the database first, so racing requests make one run.
 */
const DEMO = { id: 'idem', name: 'Idempotent', handler: 'demo', config: { steps: 1, stepMs: 1 } };

describe('idempotent manual runs', () => {
  it('answers the same run for the same key, another run for another key or no key, per agent', async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: DEMO });
    await s.call('POST', '/api/agents', { body: { ...DEMO, id: 'other' } });
    const run = (agentId: string, key?: string) =>
      s.call('POST', `/api/agents/${agentId}/run`, key === undefined ? {} : { headers: { 'Idempotency-Key': key } });
    const first = await run('idem', 'k-1');
    expect(first.status).toBe(202);
    const again = await run('idem', 'k-1');
    expect(again.status).toBe(202);
    expect(again.body.data.runId).toBe(first.body.data.runId);
    const otherKey = await run('idem', 'k-2');
    expect(otherKey.body.data.runId).not.toBe(first.body.data.runId);
    const noKey = await run('idem');
    expect(noKey.body.data.runId).not.toBe(first.body.data.runId);
    // The key is the agent's: the same key on another agent makes that agent's run.
    const otherAgent = await run('other', 'k-1');
    expect(otherAgent.body.data.runId).not.toBe(first.body.data.runId);
    const runs = (await s.call('GET', '/api/agents/idem/runs')).body.data as { id: string }[];
    expect(runs).toHaveLength(3);
  });

  it('makes one run for twenty concurrent requests with one key', async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: DEMO });
    const answers = await Promise.all(Array.from({ length: 20 }, () => s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': 'burst' } })));
    expect(answers.map((a) => a.status)).toEqual(Array(20).fill(202));
    expect(new Set(answers.map((a) => a.body.data.runId)).size).toBe(1);
    expect((await s.call('GET', '/api/agents/idem/runs')).body.data).toHaveLength(1);
  });

  it('shares keys between REST and the typed client', async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: DEMO });
    await using client = createSchedulerClient({ url: s.url, token: await s.token(), WebSocket: WebSocket as never });
    const viaTrpc = await client.agents.run.mutate({ agentId: 'idem', idempotencyKey: 'shared' });
    const viaRest = await s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': 'shared' } });
    expect(viaRest.body.data.runId).toBe(viaTrpc.runId);
    expect((await client.agents.run.mutate({ agentId: 'idem', idempotencyKey: 'shared' })).runId).toBe(viaTrpc.runId);
  });

  it('forgets a key after 24 h', async () => {
    const clock = createManualClock(at('2026-01-01T00:00:00Z'));
    await using s = await startServer({ clock });
    await s.call('POST', '/api/agents', { body: DEMO });
    const first = await s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': 'daily' } });
    clock.advance(24 * 60 * 60_000 - 1);
    expect((await s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': 'daily' } })).body.data.runId).toBe(first.body.data.runId);
    clock.advance(2);
    const later = await s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': 'daily' } });
    expect(later.status).toBe(202);
    expect(later.body.data.runId).not.toBe(first.body.data.runId);
  });

  it('frees a key whose run was refused, so the request can be sent again', async () => {
    const clock = createManualClock(at('2026-01-01T00:00:00Z'));
    await using s = await startServer({ clock, env: { MANUAL_RUNS_PER_MINUTE: '1' } });
    await s.call('POST', '/api/agents', { body: DEMO });
    expect((await s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': 'a' } })).status).toBe(202);
    expect((await s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': 'b' } })).status).toBe(429);
    clock.advance(61_000);
    const retried = await s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': 'b' } });
    expect(retried.status).toBe(202);
    // A replay of a key that made its run is not a new run: the limit does not apply to it.
    expect((await s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': 'b' } })).body.data.runId).toBe(retried.body.data.runId);
  });

  it('refuses a key that is empty, too long or holds control characters, naming the header', async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: DEMO });
    for (const key of ['x'.repeat(201), 'tab\there']) {
      const bad = await s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': key } });
      expect(bad.status, key).toBe(400);
      expect(bad.body.error).toMatch(/^header Idempotency-Key: expected 1 to 200 visible ASCII characters/);
    }
    const empty = await s.call('POST', '/api/agents/idem/run', { headers: { 'Idempotency-Key': '' } });
    expect(empty.status).toBe(400);
    expect((await s.call('GET', '/api/agents/idem/runs')).body.data).toHaveLength(0);
  });
});
