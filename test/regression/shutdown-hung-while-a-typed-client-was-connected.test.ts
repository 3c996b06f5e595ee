import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createSchedulerClient } from '../../client/index.ts';
import { startServer } from '../harness.ts';

/**
 * Found by the CLI's `watch`: SIGTERM logged "shutting down" and then waited for as long as a typed client stayed
 * connected. Socket.IO's `io.close()` closes the HTTP server too and waits for every connection on it — the tRPC
 * WebSocket included, whose client reconnects at once — so `app.close()` never got past its first step. The server
 * now closes Socket.IO's engine only and lets http.ts close the server, with its grace period and then a cut.
 */
describe('a shutdown while a typed client is subscribed', () => {
  it('ends: close() resolves and the client is cut', async () => {
    const s = await startServer();
    const client = createSchedulerClient({ url: s.url, token: await s.token(), WebSocket: WebSocket as never });
    try {
      await new Promise<void>((resolve) => client.events.scheduler.subscribe(undefined, { onStarted: () => resolve(), onData: () => {} }));
      // Hung here before the fix (the test then fails on its timeout).
      await s.app.close(1000);
      expect(s.app.trpcSockets().size).toBe(0);
    } finally {
      await client.close();
      await s[Symbol.asyncDispose]();
    }
  });
});
