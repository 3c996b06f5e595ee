import { io as connect } from 'socket.io-client';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { startServer, type TestServer } from '../harness.ts';

/**
 * Issue 12, first contact: REST answered a CORS preflight with `405`, so a browser app on another origin (a Vite
 * dev server) could not call it, while Socket.IO accepted every origin, with credentials. Now one policy,
 * CORS_ORIGINS (default: the server's own origin only), holds at every door: REST, tRPC over HTTP, the tRPC
 * WebSocket and Socket.IO (polling and WebSocket). These are the server's answers; test/cors-browser.test.ts
 * checks what a real browser makes of them.
 */

const APP = 'http://app.example.test:5173';
const EVIL = 'http://evil.example.test';

const preflight = (s: TestServer, path: string, origin: string, method = 'POST') =>
  fetch(s.url + path, {
    method: 'OPTIONS',
    headers: { origin, 'access-control-request-method': method, 'access-control-request-headers': 'authorization,content-type' },
  });

/** Resolves with 'connected' or the connect error's message; a WebSocket from Node may set any Origin. */
function socketIo(s: TestServer, token: string, origin: string, transport: 'polling' | 'websocket'): Promise<string> {
  const sock = connect(s.url, { auth: { token }, transports: [transport], reconnection: false, extraHeaders: { origin } });
  return new Promise<string>((resolve) => {
    sock.once('connect', () => resolve('connected'));
    sock.once('connect_error', (err) => resolve(err.message));
  }).finally(() => sock.close());
}

function trpcSocket(s: TestServer, origin: string): Promise<number | 'open'> {
  const ws = new WebSocket(`${s.url.replace('http', 'ws')}/trpc`, { origin });
  return new Promise<number | 'open'>((resolve) => {
    ws.once('open', () => resolve('open'));
    ws.once('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
    ws.once('error', () => {});
  }).finally(() => ws.terminate());
}

describe('one CORS policy for every door', () => {
  it('answers a preflight from a listed origin with 204 and the CORS headers, REST and tRPC alike', async () => {
    await using s = await startServer({ env: { CORS_ORIGINS: APP } });
    for (const path of ['/api/agents', '/trpc/agents.create']) {
      const r = await preflight(s, path, APP);
      expect(r.status, path).toBe(204); // was 405 on REST
      expect(r.headers.get('access-control-allow-origin')).toBe(APP);
      expect(r.headers.get('access-control-allow-methods')).toMatch(/POST/);
      expect(r.headers.get('access-control-allow-headers')).toBe('authorization,content-type');
      expect(r.headers.get('access-control-allow-credentials')).toBeNull();
    }
    const listed = await s.call('GET', '/api/agents', { headers: { origin: APP } });
    expect(listed.status).toBe(200);
    expect(listed.headers.get('access-control-allow-origin')).toBe(APP);
    expect(listed.headers.get('vary')).toMatch(/Origin/);
    const trpc = await fetch(`${s.url}/trpc/agents.list`, { headers: { origin: APP, authorization: `Bearer ${await s.token()}` } });
    expect(trpc.status).toBe(200);
    expect(trpc.headers.get('access-control-allow-origin')).toBe(APP);
  });

  it('refuses any other origin with 403 in the envelope, before any route runs', async () => {
    await using s = await startServer({ env: { CORS_ORIGINS: APP } });
    const r = await preflight(s, '/api/agents', EVIL);
    expect(r.status).toBe(403);
    expect(r.headers.get('access-control-allow-origin')).toBeNull();
    expect(await r.json()).toEqual({ success: false, error: `Origin ${EVIL} is not allowed: add it to CORS_ORIGINS to call this server from that page` });
    // A "simple" cross-origin POST needs no preflight: the server itself refuses it, and nothing is created.
    const post = await s.call('POST', '/api/agents', { headers: { origin: EVIL }, body: { id: 'x', name: 'X', handler: 'demo' } });
    expect(post.status).toBe(403);
    expect((await s.call('GET', '/api/agents')).body.data).toEqual([]);
    const trpc = await fetch(`${s.url}/trpc/agents.list`, { headers: { origin: EVIL, authorization: `Bearer ${await s.token()}` } });
    expect(trpc.status).toBe(403);
  });

  it('by default serves the server’s own origin and requests without one, and refuses every other', async () => {
    await using s = await startServer();
    expect((await s.call('GET', '/api/agents')).status).toBe(200); // curl, SDKs: no Origin
    expect((await s.call('GET', '/api/agents', { headers: { origin: s.url } })).status).toBe(200);
    expect((await s.call('POST', '/api/agents', { headers: { origin: s.url }, body: { name: 'Own', handler: 'demo' } })).status).toBe(201);
    expect((await s.call('GET', '/api/agents', { headers: { origin: APP } })).status).toBe(403);
    expect((await preflight(s, '/api/agents', APP)).status).toBe(403);
    expect((await s.call('GET', '/api/agents', { headers: { origin: 'null' } })).status).toBe(403);
  });

  it('refuses a Socket.IO session from another origin, polling and WebSocket, and accepts a listed one', async () => {
    await using s = await startServer({ env: { CORS_ORIGINS: APP } });
    const token = await s.token();
    for (const transport of ['polling', 'websocket'] as const) {
      expect(await socketIo(s, token, EVIL, transport), transport).not.toBe('connected'); // accepted before
      expect(await socketIo(s, token, APP, transport), transport).toBe('connected');
      expect(await socketIo(s, token, s.url, transport), transport).toBe('connected');
    }
    const poll = await fetch(`${s.url}/socket.io/?EIO=4&transport=polling`, { headers: { origin: APP } });
    expect(poll.headers.get('access-control-allow-origin')).toBe(APP);
    expect(poll.headers.get('access-control-allow-credentials')).toBeNull(); // was `true` for every origin
    await poll.text();
  });

  it('refuses a tRPC WebSocket from another origin with 403', async () => {
    await using s = await startServer({ env: { CORS_ORIGINS: APP } });
    expect(await trpcSocket(s, EVIL)).toBe(403);
    expect(await trpcSocket(s, APP)).toBe('open');
  });
});
