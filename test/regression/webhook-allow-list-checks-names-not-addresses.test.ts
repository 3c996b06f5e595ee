import { createServer, type IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/core/clock.ts';
import { HandlerError, type HandlerContext } from '../../src/core/handlers.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { createLlmHandler, llmConfig, type LlmConfig } from '../../src/handlers/llm.ts';
import { createWebhookHandler, type WebhookConfig } from '../../src/handlers/webhook.ts';
import { addressPolicy, canonicalAddress, specialAddress } from '../../src/transport/guarded-fetch.ts';
import { nextEvent, startServer } from '../harness.ts';

/**
 * Issue 12 #7: the webhook (and llm) allow-list checked names, never addresses. An allowed name whose DNS
 * answer is loopback or private was called; with the default list any user could reach any loopback port,
 * the scheduler's own included; run errors told open ports from closed ones (`ECONNREFUSED 127.0.0.1:65000`).
 * DNS is an input here (an injected resolver), as time is elsewhere: no test depends on a real name server.
 */

/** A local receiver counting the requests that reach it. */
async function receiver() {
  const requests: IncomingMessage[] = [];
  const server = createServer((req, res) => {
    requests.push(req);
    req.resume();
    req.on('end', () => res.end('ok'));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as AddressInfo).port;
  return {
    port,
    requests,
    [Symbol.asyncDispose]: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

const resolver = (answers: Record<string, string[]>) => async (host: string) =>
  (answers[host] ?? []).map((address) => ({ address, family: address.includes(':') ? 6 : 4 }));

function webhookCtx(url: string): HandlerContext<WebhookConfig> {
  return {
    agentId: 'hook', agentName: 'Hook', jobId: 'hook', runId: 'run-1', attempt: 1, scheduledAt: 0,
    config: { url }, signal: new AbortController().signal, log: silentLogger,
    progress: () => {}, reportUsage: () => {}, lastOutput: async () => '',
  };
}

const failure = (p: Promise<unknown>) => p.then(() => { throw new Error('expected the run to fail'); }, (e: unknown) => e as Error);

describe('regression: the allow-list checks the address each connection dials, not only the name', () => {
  it('refuses an allowed name whose DNS answer is loopback, private or link-local, before any byte is sent', async () => {
    await using rx = await receiver();
    const answers = {
      'hooks.example.com': ['127.0.0.1'], // rebinding to this machine
      'intranet.example.com': ['10.1.2.3'],
      'metadata.example.com': ['169.254.169.254'],
      'mixed.example.com': ['93.184.215.14', '127.0.0.1'], // one public answer does not launder the other
      'mapped.example.com': ['::ffff:127.0.0.1'],
    };
    const webhook = createWebhookHandler({ allowedHosts: ['*.example.com'], signingSecret: 's', resolve: resolver(answers) });
    for (const [host, [first]] of Object.entries(answers)) {
      const kind = host === 'mixed.example.com' ? 'loopback' : specialAddress(first!)!;
      const err = await failure(webhook.run(webhookCtx(`http://${host}:${rx.port}/hook`)));
      expect(err).toBeInstanceOf(HandlerError);
      expect(err).toMatchObject({
        retryable: false,
        message: `webhook request refused: "${host}" resolves to a ${kind} address, which WEBHOOK_ALLOWED_HOSTS does not list (loopback, private and link-local addresses must be listed as IPs)`,
      });
      expect(err.message).not.toContain(first!); // the run's error maps no internal DNS
    }
    expect(rx.requests).toHaveLength(0);
  });

  it('calls a loopback or private address when the list names that very IP, and localhost when it names localhost', async () => {
    await using rx = await receiver();
    const resolve = resolver({ 'hooks.example.com': ['127.0.0.1'], localhost: ['127.0.0.1'] });
    const byIp = createWebhookHandler({ allowedHosts: ['hooks.example.com', '127.0.0.1'], signingSecret: 's', resolve });
    await byIp.run(webhookCtx(`http://hooks.example.com:${rx.port}/hook`));
    await byIp.run(webhookCtx(`http://127.0.0.1:${rx.port}/hook`));
    const byLocalhost = createWebhookHandler({ allowedHosts: ['localhost'], signingSecret: 's', resolve });
    await byLocalhost.run(webhookCtx(`http://localhost:${rx.port}/hook`));
    expect(rx.requests).toHaveLength(3);
    expect(rx.requests[0]!.headers.host).toBe(`hooks.example.com:${rx.port}`); // pinned address, the name kept for Host
  });

  it('answers a closed port and an unreachable host with the same words, naming no address or port (no port oracle)', async () => {
    const port = await closedPort();
    const webhook = createWebhookHandler({ allowedHosts: ['127.0.0.1', 'gone.example.com'], signingSecret: 's', resolve: resolver({}) });
    const closed = await failure(webhook.run(webhookCtx(`http://127.0.0.1:${port}/hook`)));
    const unknown = await failure(webhook.run(webhookCtx(`http://gone.example.com:${port}/hook`)));
    expect(closed.message).toBe('webhook request failed: could not connect or the connection failed');
    expect(unknown.message).toBe(closed.message);
    expect(closed.message).not.toContain(String(port));
  });

  it("refuses the scheduler's own port, even with 127.0.0.1 on the list (the default list)", async () => {
    await using s = await startServer();
    const port = Number(new URL(s.url).port);
    for (const url of [`${s.url}/api/agents`, `http://localhost:${port}/api/agents`, `http://[::1]:${port}/api/agents`]) {
      await s.call('DELETE', '/api/agents/self');
      expect((await s.call('POST', '/api/agents', { body: { id: 'self', name: 'Self', handler: 'webhook', config: { url }, maxRetries: 0 } })).status).toBe(201);
      const failed = nextEvent(s.app, (e) => e.type === 'agent:failed' && e.agentId === 'self');
      expect((await s.call('POST', '/api/agents/self/run')).status).toBe(202);
      expect((await failed).data).toMatchObject({ error: `webhook request refused: port ${port} on this machine is this scheduler's own`, willRetry: false });
    }
  });

  it('holds the llm handler to the same rules: own port, private answers, generic connection errors', async () => {
    await using s = await startServer();
    const port = Number(new URL(s.url).port);
    const config = (baseUrl: string) => llmConfig.parse({ baseUrl, model: 'm', prompt: 'p' });
    const ctx = (baseUrl: string): HandlerContext<LlmConfig> => ({ ...webhookCtx(baseUrl), config: config(baseUrl) });
    const llm = createLlmHandler({
      allowedHosts: ['127.0.0.1', 'llm.example.com'], env: () => undefined, clock: createManualClock(0),
      ownPort: () => port, resolve: resolver({ 'llm.example.com': ['192.168.1.20'] }),
    });
    expect(await failure(llm.run(ctx(`${s.url}/v1`)))).toMatchObject({ retryable: false, message: `llm request refused: port ${port} on this machine is this scheduler's own` });
    expect(await failure(llm.run(ctx('http://llm.example.com/v1')))).toMatchObject({
      retryable: false,
      message: 'llm request refused: "llm.example.com" resolves to a private address, which LLM_ALLOWED_HOSTS does not list (loopback, private and link-local addresses must be listed as IPs)',
    });
    const closed = await closedPort();
    expect((await failure(llm.run(ctx(`http://127.0.0.1:${closed}/v1`)))).message).toBe('llm request failed: could not connect or the connection failed');
    // Through the app: its llm handler knows the port as well.
    expect((await s.call('POST', '/api/agents', { body: { id: 'self-llm', name: 'L', handler: 'llm', config: { baseUrl: `${s.url}/v1`, model: 'm', prompt: 'p' } } })).status).toBe(201);
    const failed = nextEvent(s.app, (e) => e.type === 'agent:failed' && e.agentId === 'self-llm');
    await s.call('POST', '/api/agents/self-llm/run');
    expect((await failed).data).toMatchObject({ error: `llm request refused: port ${port} on this machine is this scheduler's own`, willRetry: false });
  });
});

describe('the address classes', () => {
  it('knows loopback, private, link-local and their IPv6 spellings; public addresses are none', () => {
    const cases: [string, string | undefined][] = [
      ['127.0.0.1', 'loopback'], ['127.255.0.9', 'loopback'], ['::1', 'loopback'], ['0:0:0:0:0:0:0:1', 'loopback'],
      ['::ffff:127.0.0.1', 'loopback'], ['::ffff:7f00:1', 'loopback'], ['64:ff9b::7f00:1', 'loopback'], ['2002:7f00:1::', 'loopback'],
      ['0.0.0.0', 'unspecified'], ['::', 'unspecified'],
      ['10.0.0.1', 'private'], ['172.16.5.4', 'private'], ['172.31.255.255', 'private'], ['192.168.0.1', 'private'], ['100.64.0.1', 'private'],
      ['fc00::1', 'private'], ['fd12:3456::1', 'private'],
      ['169.254.169.254', 'link-local'], ['fe80::1', 'link-local'], ['fe80::1%eth0', 'link-local'],
      ['224.0.0.1', 'reserved'], ['255.255.255.255', 'reserved'], ['ff02::1', 'reserved'], ['not-an-ip', 'reserved'],
      ['93.184.215.14', undefined], ['172.32.0.1', undefined], ['8.8.8.8', undefined], ['2606:4700::1111', undefined],
    ];
    for (const [address, kind] of cases) expect([address, specialAddress(address)]).toEqual([address, kind]);
    expect(canonicalAddress('::FFFF:127.0.0.1')).toBe('127.0.0.1');
    expect(canonicalAddress('0:0::1')).toBe('0:0:0:0:0:0:0:1');
  });

  it('lets a listed IP through in any spelling, and the own port through nowhere local', () => {
    const policy = addressPolicy({ allowedHosts: ['::1', '10.0.0.7'], listName: 'L', ownPort: () => 5000 });
    expect(policy.problem('hooks', '0:0:0:0:0:0:0:1', 80)).toBeUndefined();
    expect(policy.problem('hooks', '10.0.0.7', 80)).toBeUndefined();
    expect(policy.problem('hooks', '10.0.0.8', 80)).toMatch(/private address/);
    expect(policy.problem('hooks', '::1', 5000)).toBe("port 5000 on this machine is this scheduler's own");
    expect(policy.problem('hooks', '0.0.0.0', 5000)).toBe("port 5000 on this machine is this scheduler's own");
    expect(policy.problem('hooks', '93.184.215.14', 5000)).toBeUndefined(); // another machine's port 5000 is not ours
  });
});
