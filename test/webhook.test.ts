import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import type { HandlerDefinition } from '../src/core/handlers.ts';
import { createWebhookHandler } from '../src/handlers/webhook.ts';
import { createHarness } from './harness.ts';

const SECRET = 'webhook-test-secret';

/** A local receiver: each request is answered by the next queued responder. */
async function receiver() {
  const requests: { headers: IncomingMessage['headers']; body: string }[] = [];
  const responders: ((req: IncomingMessage, res: ServerResponse) => void)[] = [];
  const server = createServer((req, res) => {
    let body = '';
    req.on('data', (c) => (body += c));
    req.on('end', () => {
      requests.push({ headers: req.headers, body });
      (responders.shift() ?? ((_q, r) => r.end('ok')))(req, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
  return {
    url,
    requests,
    respond: (...fns: ((req: IncomingMessage, res: ServerResponse) => void)[]) => responders.push(...fns),
    [Symbol.asyncDispose]: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

async function setup(allowedHosts = ['127.0.0.1']) {
  const webhook = createWebhookHandler({ allowedHosts, signingSecret: SECRET }) as HandlerDefinition<never>;
  return createHarness({ extraHandlers: [webhook] });
}

describe('webhook handler', () => {
  it('POSTs the signed body; a 2xx completes the run', async () => {
    await using rx = await receiver();
    await using h = await setup();
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: rx.url, headers: { 'x-team': 'blue' } } });
    const done = h.waitFor((e) => e.type === 'agent:completed');
    const run = await h.scheduler.runNow(agent);
    await done;
    const [req] = rx.requests;
    expect(JSON.parse(req!.body)).toEqual({ agentId: 'hook', jobId: 'hook', runId: run.id, attempt: 1, scheduledAt: new Date(run.scheduledAt).toISOString() });
    expect(req!.headers['content-type']).toBe('application/json');
    expect(req!.headers['x-team']).toBe('blue');
    expect(req!.headers['x-signature-256']).toBe(`sha256=${createHmac('sha256', SECRET).update(req!.body).digest('hex')}`);
  });

  it('turns NDJSON lines into progress events, in order', async () => {
    await using rx = await receiver();
    await using h = await setup();
    rx.respond((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.write('{"progress":25,"message":"fetching","currentStep":"1","totalSteps":4}\n');
      res.write('{"progress":50,"mess');
      res.write('age":"thinking","currentStep":2,"totalSteps":4}\n\n');
      res.end('{"progress":100}');
    });
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: rx.url } });
    await h.runUntil(agent, 'agent:completed');
    const progress = h.events.filter((e) => e.type === 'agent:progress').map((e) => e.data);
    expect(progress).toMatchObject([
      { progress: 25, message: 'fetching', currentStep: '1', totalSteps: 4 },
      { progress: 50, message: 'thinking', currentStep: '2', totalSteps: 4 },
      { progress: 100 },
    ]);
  });

  it('fails the run on an {"error"} line', async () => {
    await using rx = await receiver();
    await using h = await setup();
    rx.respond((_req, res) => {
      res.writeHead(200, { 'content-type': 'application/x-ndjson' });
      res.end('{"progress":10}\n{"error":"model overloaded"}\n');
    });
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: rx.url }, maxRetries: 0 });
    expect((await h.runUntil(agent, 'agent:failed')).data).toMatchObject({ error: 'model overloaded' });
  });

  it('retries a 500 answer, then completes', async () => {
    await using rx = await receiver();
    await using h = await setup();
    rx.respond((_req, res) => {
      res.statusCode = 500;
      res.end('down');
    });
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: rx.url } });
    expect((await h.runUntil(agent, 'agent:failed')).data).toMatchObject({ error: 'webhook answered 500 Internal Server Error', willRetry: true, attempt: 1 });
    const done = h.waitFor((e) => e.type === 'agent:completed');
    h.clock.advance(1000);
    expect((await done).data).toMatchObject({ attempt: 2 });
    expect(rx.requests.map((r) => JSON.parse(r.body).attempt)).toEqual([1, 2]);
  });

  it('fails on its own timeout when the receiver never answers', async () => {
    await using rx = await receiver();
    await using h = await setup();
    rx.respond(() => {}); // hold the request open
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: rx.url, timeoutMs: 100 }, maxRetries: 0 });
    expect((await h.runUntil(agent, 'agent:failed')).data).toMatchObject({ error: 'webhook timed out after 100 ms' });
  });

  it('names the cause of a network error', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await using h = await setup();
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: `http://127.0.0.1:${port}/hook` }, maxRetries: 0 });
    expect((await h.runUntil(agent, 'agent:failed')).data).toMatchObject({ error: expect.stringMatching(/^webhook request failed: .*ECONNREFUSED/) });
  });

  it('re-checks the allowed hosts at run time', async () => {
    await using rx = await receiver();
    await using h = await setup(['localhost']);
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: rx.url }, maxRetries: 0 });
    expect((await h.runUntil(agent, 'agent:failed')).data).toMatchObject({ error: 'config.url: host "127.0.0.1" is not in WEBHOOK_ALLOWED_HOSTS' });
    expect(rx.requests).toHaveLength(0);
  });
});
