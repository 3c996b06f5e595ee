import { io as connect } from 'socket.io-client';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { MAX_SUBSCRIPTIONS_PER_SOCKET } from '../../src/core/limits.ts';
import { startServer } from '../harness.ts';

/** Issue 12 item 4: 2,000 subscriptions were accepted on one socket; unauthenticated Engine.IO sessions were held open. */
describe('socket limits', () => {
  it('refuses an agent subscription past MAX_SUBSCRIPTIONS_PER_SOCKET', async () => {
    await using s = await startServer();
    for (let i = 0; i <= MAX_SUBSCRIPTIONS_PER_SOCKET; i++) {
      expect((await s.call('POST', '/api/agents', { body: { id: `a${i}`, name: 'A', handler: 'demo' } })).status).toBe(201);
    }
    const sock = connect(s.url, { auth: { token: await s.token() }, transports: ['websocket'], reconnection: false });
    try {
      await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
      for (let i = 0; i < MAX_SUBSCRIPTIONS_PER_SOCKET; i++) {
        expect(await sock.emitWithAck('subscribe-agent-updates', `a${i}`)).toEqual({ success: true });
      }
      expect(await sock.emitWithAck('subscribe-agent-updates', 'a0')).toEqual({ success: true }); // already in: no new room
      const over = await sock.emitWithAck('subscribe-agent-updates', `a${MAX_SUBSCRIPTIONS_PER_SOCKET}`);
      expect(over).toMatchObject({ success: false, error: expect.stringMatching(/MAX_SUBSCRIPTIONS_PER_SOCKET/) });
      expect(await sock.emitWithAck('unsubscribe-agent-updates', 'a0')).toEqual({ success: true });
      expect(await sock.emitWithAck('subscribe-agent-updates', `a${MAX_SUBSCRIPTIONS_PER_SOCKET}`)).toEqual({ success: true });
    } finally {
      sock.close();
    }
  });

  it('closes an Engine.IO session that never authenticates', async () => {
    await using s = await startServer();
    // A bare Engine.IO session that never sends the Socket.IO CONNECT packet (no token at all): the server closes it.
    const ws = new WebSocket(`${s.url.replace('http', 'ws')}/socket.io/?EIO=4&transport=websocket`);
    try {
      const closed = new Promise<void>((resolve) => ws.once('close', () => resolve()));
      await new Promise<void>((resolve) => ws.once('open', () => resolve()));
      await closed;
      expect(ws.readyState).toBe(WebSocket.CLOSED);
    } finally {
      ws.terminate();
    }
  });
});
