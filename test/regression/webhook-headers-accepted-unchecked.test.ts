import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { HandlerDefinition } from '../../src/core/handlers.ts';
import { createWebhookHandler } from '../../src/handlers/webhook.ts';
import { createHarness, startServer } from '../harness.ts';

/**
 * Issue 12 #9 (webhook part): `config.headers` were accepted with CR/LF and invalid names, reserved names
 * could be overridden by case (`x-signature-256` was merged with the real one), and `Content-Length: 0`
 * beside the real body made the receiver wait for a request that never came, so the run hung. Headers are
 * now validated on save (a 400 naming the header), reserved names compared case-insensitively, and an
 * agent stored before this with such headers fails its run at once, without retries and without a request.
 */

async function receiver() {
  const requests: { headers: IncomingMessage['headers']; body: string }[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests.push({ headers: req.headers, body });
      res.end('ok');
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`,
    requests,
    [Symbol.asyncDispose]: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

const reserved = (handler: string) => `is set by the ${handler} handler itself and cannot be given (header names are compared case-insensitively)`;

describe('regression: webhook and llm headers are checked on save', () => {
  it('refuses bad names, CR/LF in values, reserved names in any case and framing headers, naming the header', async () => {
    await using s = await startServer();
    const cases: [Record<string, string>, string][] = [
      [{ 'x-ok': 'fine\r\nx-injected: 1' }, 'config.headers.x-ok: expected a header value without line breaks or control characters (CR, LF, NUL …)'],
      [{ 'x-ok': 'a\nb' }, 'config.headers.x-ok: expected a header value without line breaks or control characters (CR, LF, NUL …)'],
      [{ 'x-ok': 'nul\u0000' }, 'config.headers.x-ok: expected a header value without line breaks or control characters (CR, LF, NUL …)'],
      [{ 'bad name': 'v' }, `config.headers.bad name: expected a header name (letters, digits and !#$%&'*+-.^_\`|~, at most 256), got "bad name"`],
      [{ 'x-a:b': 'v' }, `config.headers.x-a:b: expected a header name (letters, digits and !#$%&'*+-.^_\`|~, at most 256), got "x-a:b"`],
      [{ 'x-signature-256': 'sha256=forged' }, `config.headers.x-signature-256: ${reserved('webhook')}`],
      [{ 'X-SIGNATURE-256': 'sha256=forged' }, `config.headers.X-SIGNATURE-256: ${reserved('webhook')}`],
      [{ 'Content-Type': 'text/plain' }, `config.headers.Content-Type: ${reserved('webhook')}`],
      [{ 'Content-Length': '0' }, `config.headers.Content-Length: ${reserved('webhook')}`],
      [{ 'transfer-encoding': 'chunked' }, `config.headers.transfer-encoding: ${reserved('webhook')}`],
      [{ Host: 'internal.example' }, `config.headers.Host: ${reserved('webhook')}`],
      [{ 'X-Team': 'a', 'x-team': 'b' }, 'config.headers.x-team: is the same header as "X-Team" (header names are compared case-insensitively)'],
      [{ 'x-long': 'v'.repeat(8193) }, 'config.headers.x-long: expected a value of at most 8192 characters, got 8193'],
      [Object.fromEntries(Array.from({ length: 51 }, (_, i) => [`x-h${i}`, 'v'])), 'config.headers: expected at most 50 headers, got 51'],
    ];
    for (const [headers, error] of cases) {
      const res = await s.call('POST', '/api/agents', { body: { name: 'Hook', handler: 'webhook', config: { url: 'http://127.0.0.1:9/hook', headers } } });
      expect([res.status, res.body]).toEqual([400, { success: false, error }]);
    }
    // PATCH is held to the same rules.
    expect((await s.call('POST', '/api/agents', { body: { id: 'hook', name: 'Hook', handler: 'webhook', config: { url: 'http://127.0.0.1:9/hook', headers: { 'x-team': 'blue' } } } })).status).toBe(201);
    const patched = await s.call('PATCH', '/api/agents/hook', { body: { config: { url: 'http://127.0.0.1:9/hook', headers: { 'X-Signature-256': 'x' } } } });
    expect([patched.status, patched.body.error]).toEqual([400, `config.headers.X-Signature-256: ${reserved('webhook')}`]);
  });

  it('holds the llm handler to the same rules; its own headers are left out of the request, as CONTRACT §9 words it', async () => {
    await using s = await startServer();
    for (const [headers, error] of [
      [{ 'content-length': '0' }, `config.headers.content-length: ${reserved('llm')}`],
      [{ 'Transfer-Encoding': 'chunked' }, `config.headers.Transfer-Encoding: ${reserved('llm')}`],
      [{ 'x-org': 'a\r\nb' }, 'config.headers.x-org: expected a header value without line breaks or control characters (CR, LF, NUL …)'],
      [{ 'x org': 'a' }, `config.headers.x org: expected a header name (letters, digits and !#$%&'*+-.^_\`|~, at most 256), got "x org"`],
    ] as const) {
      const res = await s.call('POST', '/api/agents', { body: { name: 'L', handler: 'llm', config: { baseUrl: 'http://127.0.0.1:9/v1', model: 'm', prompt: 'p', headers } } });
      expect([res.status, res.body]).toEqual([400, { success: false, error }]);
    }
    // "added but never replace Authorization or Content-Type": accepted, and not sent (test/llm.test.ts checks the request).
    const ok = await s.call('POST', '/api/agents', { body: { name: 'L', handler: 'llm', config: { baseUrl: 'http://127.0.0.1:9/v1', model: 'm', prompt: 'p', headers: { Authorization: 'Bearer x', 'x-org': 'o' } } } });
    expect(ok.status).toBe(201);
  });

  it('fails, at once and without retries, a run of an agent stored with such headers before they were checked', async () => {
    await using rx = await receiver();
    await using h = await createHarness({ extraHandlers: [createWebhookHandler({ allowedHosts: ['127.0.0.1'], signingSecret: 'k' }) as HandlerDefinition<never>] });
    for (const [headers, error] of [
      [{ 'Content-Length': '0' }, `config.headers.Content-Length: ${reserved('webhook')}`], // this one hung the run
      [{ 'x-signature-256': 'sha256=forged' }, `config.headers.x-signature-256: ${reserved('webhook')}`],
      [{ 'x-a': 'b\r\nx-c: d' }, 'config.headers.x-a: expected a header value without line breaks or control characters (CR, LF, NUL …)'],
    ] as const) {
      const agent = await h.addAgent(`old-${rx.requests.length}-${error.length}`, { handler: 'webhook', config: { url: rx.url, headers } });
      expect((await h.runUntil(agent, 'agent:failed')).data).toMatchObject({ error, willRetry: false });
    }
    expect(rx.requests).toHaveLength(0);
  });

  it('still sends allowed headers beside exactly one signature, its own', async () => {
    await using rx = await receiver();
    await using h = await createHarness({ extraHandlers: [createWebhookHandler({ allowedHosts: ['127.0.0.1'], signingSecret: 'k' }) as HandlerDefinition<never>] });
    const agent = await h.addAgent('fine', { handler: 'webhook', config: { url: rx.url, headers: { 'X-Team': 'blue', Authorization: 'Bearer for-the-receiver' } } });
    await h.runUntil(agent, 'agent:completed');
    const [req] = rx.requests;
    expect(req!.headers['x-team']).toBe('blue');
    expect(req!.headers['authorization']).toBe('Bearer for-the-receiver');
    expect(req!.headers['x-signature-256']).toBe(`sha256=${createHmac('sha256', 'k').update(req!.body).digest('hex')}`);
  });
});
