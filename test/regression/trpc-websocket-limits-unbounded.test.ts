import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { startServer } from '../harness.ts';
import { trpcAnswer } from './trpc-ws.ts';

/**
 * Issue 12 §4, for tRPC WebSockets as for Socket.IO: a WebSocket that never sent a token was held open, and one
 * WebSocket could run any number of subscriptions. Now it is closed (4401) without a valid token within
 * SOCKET_AUTH_GRACE_MS, and past MAX_SUBSCRIPTIONS_PER_SOCKET a subscription is refused with TOO_MANY_REQUESTS.
 */

function open(url: string): Promise<WebSocket> {
  const ws = new WebSocket(`${url.replace('http', 'ws')}/trpc?connectionParams=1`);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

const subscribe = (ws: WebSocket, id: number) => trpcAnswer(ws, { id, method: 'subscription', params: { path: 'events.scheduler', input: { json: {} } } });

describe('tRPC WebSocket limits', () => {
  it('closes a WebSocket that sends no valid token within SOCKET_AUTH_GRACE_MS', async () => {
    await using s = await startServer({ env: { SOCKET_AUTH_GRACE_MS: '200' } });
    const silent = await open(s.url);
    const forged = await open(s.url);
    try {
      const closes = [silent, forged].map((ws) => new Promise<number>((resolve) => ws.once('close', (code) => resolve(code))));
      forged.send(JSON.stringify({ method: 'connectionParams', data: { token: 'not-a-token' } }));
      expect(await Promise.all(closes)).toEqual([4401, 4401]);
    } finally {
      silent.terminate();
      forged.terminate();
    }
  });

  it('keeps a WebSocket whose token is valid past the grace', async () => {
    await using s = await startServer({ env: { SOCKET_AUTH_GRACE_MS: '200' } });
    const ws = await open(s.url);
    ws.send(JSON.stringify({ method: 'connectionParams', data: { token: await s.token() } }));
    expect((await subscribe(ws, 1)).result?.type).toBe('started');
    // A silent socket opened after it is closed at its grace's end: by then this one's grace has ended too.
    const silent = await open(s.url);
    try {
      expect(await new Promise<number>((resolve) => silent.once('close', (code) => resolve(code)))).toBe(4401);
      expect((await subscribe(ws, 2)).result?.type).toBe('started');
      expect(ws.readyState).toBe(WebSocket.OPEN);
    } finally {
      ws.terminate();
      silent.terminate();
    }
  });

  it('refuses a subscription past MAX_SUBSCRIPTIONS_PER_SOCKET, and takes one again after another stops', async () => {
    await using s = await startServer({ env: { MAX_SUBSCRIPTIONS_PER_SOCKET: '2' } });
    const ws = await open(s.url);
    try {
      ws.send(JSON.stringify({ method: 'connectionParams', data: { token: await s.token() } }));
      expect((await subscribe(ws, 1)).result?.type).toBe('started');
      expect((await subscribe(ws, 2)).result?.type).toBe('started');
      const over = await trpcAnswer(ws, { id: 3, method: 'subscription', params: { path: 'events.scheduler', input: { json: {} } } }, (m) => m.error !== undefined);
      expect(over.error.json).toMatchObject({ data: { code: 'TOO_MANY_REQUESTS' }, message: expect.stringMatching(/MAX_SUBSCRIPTIONS_PER_SOCKET/) });
      // One stopped, a new one is taken and runs (its first event, the figures now, arrives).
      expect(await trpcAnswer(ws, { id: 1, method: 'subscription.stop' }, (m) => m.result?.type === 'stopped')).toBeDefined();
      const fourth = await trpcAnswer(ws, { id: 4, method: 'subscription', params: { path: 'events.scheduler', input: { json: {} } } }, (m) => m.result?.type !== 'started');
      expect(fourth.result).toMatchObject({ type: 'data' });
    } finally {
      ws.terminate();
    }
  });
});
