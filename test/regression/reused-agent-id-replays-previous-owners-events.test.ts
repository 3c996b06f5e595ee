import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { createSchedulerClient } from '../../client/index.ts';
import { deferred, nextEvent, startServer } from '../harness.ts';

/**
 * Issue 12 §1: Alice ran agent `R` and deleted it; Bob created `R` and subscribed from `lastEventId: 0`, and
 * Alice's stored events replayed to him. Deleting an agent now deletes its events with it.
 */
describe('an agent id taken again after a delete', () => {
  it("replays none of the previous agent's events to its new owner", async () => {
    await using s = await startServer();
    const alice = await s.token('alice');
    const bob = await s.token('bob');
    await s.call('POST', '/api/agents', { token: alice, body: { id: 'R', name: 'Alice R', handler: 'demo', config: { steps: 2, stepMs: 0 } } });
    const done = nextEvent(s.app, (e) => e.type === 'agent:completed' && e.agentId === 'R');
    await s.call('POST', '/api/agents/R/run', { token: alice });
    await done;
    expect((await s.call('DELETE', '/api/agents/R', { token: alice })).status).toBe(200);
    expect((await s.call('POST', '/api/agents', { token: bob, body: { id: 'R', name: 'Bob R', handler: 'demo', config: { steps: 1, stepMs: 0 } } })).status).toBe(201);

    await using c = createSchedulerClient({ url: s.url, token: bob, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket });
    const seen: { type: string; runId?: unknown }[] = [];
    const bobsRun = deferred<string>();
    const sub = c.events.agent.subscribe({ agentId: 'R', lastEventId: 0 }, {
      onData: (e) => {
        seen.push({ type: e.data.type, runId: (e.data.data as { runId?: unknown }).runId });
        if (e.data.type === 'agent:completed') bobsRun.resolve(String((e.data.data as { runId: string }).runId));
      },
      onError: (err) => bobsRun.reject(err),
    });
    try {
      // Bob's own run: its events are the first (and only) ones he sees.
      const accepted = await s.call('POST', '/api/agents/R/run', { token: bob });
      const runId = accepted.body.data.runId as string;
      expect(await bobsRun.promise).toBe(runId);
      expect(seen.filter((e) => e.runId !== undefined && e.runId !== runId)).toEqual([]);
      expect(seen[0]).toEqual({ type: 'agent:started', runId });
    } finally {
      sub.unsubscribe();
    }
  });
});
