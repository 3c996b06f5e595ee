import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { io } from 'socket.io-client';
import { describe, expect, it } from 'vitest';
import type { Logger } from '../../src/core/logger.ts';
import { createTrpcTransport } from '../../src/transport/trpc/adapter.ts';
import { GENERIC_MESSAGES } from '../../src/transport/trpc/init.ts';
import { startServer } from '../harness.ts';

/**
 * Issue 12 item 9: texts the runtime or a decoder wrote reached tRPC clients ("Maximum call stack size exceeded"
 * for a deeply nested input, "Cannot destructure property 'json' of 'payload' as it is null." for a `null` body).
 * They answer a generic message now, and the whole text is logged on the server.
 */
const deep = `{"json":${'['.repeat(20_000)}${']'.repeat(20_000)}}`;
const bodies: [path: string, body: string, leaked: RegExp][] = [
  ['agents.create', deep, /Maximum call stack/],
  ['runs.cancel', 'null', /Cannot destructure/],
  ['runs.cancel', '{"json":{"a":1},"meta":{"values":{"a":["map"]}}}', /is not iterable/],
];

describe('an input tRPC cannot decode', () => {
  it.each(bodies)('%s answers 400 with a generic message, not the runtime text (%#)', async (path, body, leaked) => {
    await using s = await startServer();
    const token = await s.token();
    const res = await fetch(`${s.url}/trpc/${path}`, { method: 'POST', body, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
    const text = await res.text();
    expect(res.status).toBe(400);
    expect(text).not.toMatch(leaked);
    expect((JSON.parse(text) as { error: { json: { message: string } } }).error.json.message).toBe(GENERIC_MESSAGES.input);
  });

  it('keeps the messages we wrote: the field zod names, a domain error, the batch cap', async () => {
    await using s = await startServer();
    const token = await s.token();
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const zod = await fetch(`${s.url}/trpc/runs.cancel`, { method: 'POST', body: '{"json":null}', headers });
    expect(JSON.stringify(await zod.json())).toMatch(/expected object/);
    const missing = await fetch(`${s.url}/trpc/runs.cancel`, { method: 'POST', body: '{"json":{"runId":"nope"}}', headers });
    expect(missing.status).toBe(404);
    expect(JSON.stringify(await missing.json())).not.toContain(GENERIC_MESSAGES.internal);
  });

  it('logs the whole text on the server, with the procedure path', async () => {
    await using s = await startServer();
    const lines: { level: string; message: string; fields: Record<string, unknown> | undefined }[] = [];
    const logger: Logger = {
      info: (message, fields) => lines.push({ level: 'info', message, fields }),
      warn: (message, fields) => lines.push({ level: 'warn', message, fields }),
      error: (message, fields) => lines.push({ level: 'error', message, fields }),
    };
    const trpc = createTrpcTransport({ auth: s.app.auth, services: s.app.services, logger });
    const server = createServer((req, res) => void trpc.handle(req, res));
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    try {
      const { port } = server.address() as AddressInfo;
      const token = await s.token();
      const res = await fetch(`http://127.0.0.1:${port}/trpc/runs.cancel`, { method: 'POST', body: 'null', headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
      expect(JSON.stringify(await res.json())).not.toMatch(/Cannot destructure/);
      expect(lines).toContainEqual(expect.objectContaining({ level: 'warn', fields: expect.objectContaining({ path: 'runs.cancel', error: expect.stringMatching(/Cannot destructure/) }) }));
    } finally {
      await trpc.close();
      await new Promise<void>((r) => server.close(() => r()));
    }
  });
});

/** The same rule on the other doors: a bug's text is logged, the client reads "Internal server error". */
describe('an unexpected error on REST and Socket.IO', () => {
  const bug = () => {
    throw new TypeError("Cannot destructure property 'owner' of 'undefined' as it is undefined.");
  };

  it('answers REST with 500 and a generic message, and logs the text', async () => {
    const logged: string[] = [];
    const logger: Logger = { info() {}, warn() {}, error: (m, f) => logged.push(`${m} ${JSON.stringify(f)}`) };
    await using s = await startServer({ logger });
    (s.app.services.agents as { list: unknown }).list = bug;
    const r = await s.call('GET', '/api/agents');
    expect(r.status).toBe(500);
    expect(r.body).toEqual({ success: false, error: GENERIC_MESSAGES.internal });
    expect(logged.join('\n')).toMatch(/Cannot destructure property 'owner'/);
    // tRPC: the same call answers INTERNAL_SERVER_ERROR with the generic message.
    const t = await fetch(`${s.url}/trpc/agents.list`, { headers: { authorization: `Bearer ${await s.token()}` } });
    expect(t.status).toBe(500);
    const text = await t.text();
    expect(text).not.toMatch(/destructure/);
    expect((JSON.parse(text) as { error: { json: { message: string } } }).error.json.message).toBe(GENERIC_MESSAGES.internal);
  });

  it('acks a Socket.IO subscribe with a generic message', async () => {
    await using s = await startServer();
    (s.app.services.events as { authorize: unknown }).authorize = bug;
    const socket = io(s.url, { auth: { token: await s.token() }, transports: ['websocket'] });
    try {
      const ack = (await socket.timeout(5000).emitWithAck('subscribe-agent-updates', 'some-agent')) as unknown;
      expect(ack).toEqual({ success: false, error: GENERIC_MESSAGES.internal });
    } finally {
      socket.disconnect();
    }
  });
});
