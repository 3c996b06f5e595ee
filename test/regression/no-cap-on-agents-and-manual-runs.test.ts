import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/core/clock.ts';
import { at, startServer } from '../harness.ts';

describe('no cap on agents per owner or manual runs per minute', () => {
  it('MAX_AGENTS_PER_OWNER: one more agent is a 409 for that owner only, and deleting one makes room', async () => {
    await using s = await startServer({ env: { MAX_AGENTS_PER_OWNER: '3' } });
    const made = await Promise.all([1, 2, 3, 4].map((i) => s.call('POST', '/api/agents', { body: { id: `a${i}`, name: 'a', handler: 'demo' } })));
    expect(made.map((r) => r.status).sort()).toEqual([201, 201, 201, 409]);
    const refused = made.find((r) => r.status === 409)!;
    expect(refused.body).toEqual({ success: false, error: expect.stringMatching(/at most 3 \(MAX_AGENTS_PER_OWNER\)/) });
    const bob = await s.token('bob');
    expect((await s.call('POST', '/api/agents', { token: bob, body: { id: 'b1', name: 'b', handler: 'demo' } })).status).toBe(201);
    const mine = (await s.call('GET', '/api/agents')).body.data as { id: string }[];
    expect((await s.call('DELETE', `/api/agents/${mine[0]!.id}`)).status).toBe(200);
    expect((await s.call('POST', '/api/agents', { body: { id: 'a5', name: 'a', handler: 'demo' } })).status).toBe(201);
  });

  it('MANUAL_RUNS_PER_MINUTE: counted from the runs table over any 60 s; one more is a 429 in the envelope', async () => {
    const clock = createManualClock(at('2026-01-01T00:00:00Z'));
    await using s = await startServer({ env: { MANUAL_RUNS_PER_MINUTE: '3' }, clock });
    await s.call('POST', '/api/agents', { body: { id: 'r', name: 'r', handler: 'demo', config: { steps: 1, stepMs: 0 } } });
    await s.call('POST', '/api/agents', { body: { id: 'other', name: 'o', handler: 'demo', config: { steps: 1, stepMs: 0 } } });
    const asked = await Promise.all([1, 2, 3, 4].map(() => s.call('POST', '/api/agents/r/run')));
    expect(asked.map((r) => r.status).sort()).toEqual([202, 202, 202, 429]);
    expect(asked.find((r) => r.status === 429)!.body).toEqual({ success: false, error: expect.stringMatching(/at most 3 in any 60 s \(MANUAL_RUNS_PER_MINUTE\)/) });
    expect((await s.call('POST', '/api/agents/other/run')).status).toBe(202); // per agent
    clock.advance(59_999);
    expect((await s.call('POST', '/api/agents/r/run')).status).toBe(429);
    clock.advance(1);
    expect((await s.call('POST', '/api/agents/r/run')).status).toBe(202);
  });
});
