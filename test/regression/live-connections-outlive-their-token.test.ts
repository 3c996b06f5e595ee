import { io as connect } from 'socket.io-client';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/core/clock.ts';
import { CLOCK_TOLERANCE_S } from '../../src/core/limits.ts';
import { startServer } from '../harness.ts';
import { trpcAnswer } from './trpc-ws.ts';

/**
 * Issue 12 §2: a Socket.IO connection and a running tRPC subscription kept delivering after their token's `exp`.
 * Now each is closed at `exp` + CLOCK_TOLERANCE_S, read on the app's clock (a manual one here): a tRPC WebSocket
 * with close code 4401, a Socket.IO socket after an `unauthorized` event saying why.
 */

/** A token living 60 s, and how far the clock must move for it to be past `exp` + the tolerance. */
const TTL_S = 60;
const PAST_EXPIRY_MS = (TTL_S + CLOCK_TOLERANCE_S) * 1000 + 1000;

describe('a live connection whose token expires', () => {
  it('is closed with 4401 on a tRPC WebSocket, its subscription with it', async () => {
    const clock = createManualClock(Date.now());
    await using s = await startServer({ clock });
    const token = await s.app.auth.sign({ sub: 'alice' }, `${TTL_S}s`);
    const ws = new WebSocket(`${s.url.replace('http', 'ws')}/trpc?connectionParams=1`);
    try {
      await new Promise<void>((resolve) => ws.once('open', () => resolve()));
      const closed = new Promise<{ code: number; reason: string }>((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
      ws.send(JSON.stringify({ method: 'connectionParams', data: { token } }));
      // The subscription runs: its first event (the figures now) has arrived.
      const started = await trpcAnswer(ws, { id: 1, method: 'subscription', params: { path: 'events.scheduler', input: { json: {} } } });
      expect(started.result?.type).toBe('started');
      // Short of the deadline the socket still serves: a second subscription starts.
      clock.advance(PAST_EXPIRY_MS - 2000);
      expect((await trpcAnswer(ws, { id: 2, method: 'subscription', params: { path: 'events.scheduler', input: { json: {} } } })).result?.type).toBe('started');
      clock.advance(2000);
      expect(await closed).toEqual({ code: 4401, reason: expect.stringMatching(/token expired/i) });
    } finally {
      ws.terminate();
    }
  });

  it('is told on Socket.IO why, then disconnected', async () => {
    const clock = createManualClock(Date.now());
    await using s = await startServer({ clock });
    const token = await s.app.auth.sign({ sub: 'alice' }, `${TTL_S}s`);
    const sock = connect(s.url, { auth: { token }, transports: ['websocket'], reconnection: false });
    try {
      await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
      expect(await sock.emitWithAck('subscribe-scheduler-updates')).toEqual({ success: true });
      const told = new Promise<unknown>((resolve) => sock.once('unauthorized', resolve));
      const gone = new Promise<string>((resolve) => sock.once('disconnect', resolve));
      clock.advance(PAST_EXPIRY_MS);
      expect(await told).toEqual({ code: 'UNAUTHORIZED', message: 'Token expired' });
      expect(await gone).toBe('io server disconnect');
    } finally {
      sock.close();
    }
  });
});
