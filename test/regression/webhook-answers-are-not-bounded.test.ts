import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/core/clock.ts';
import type { HandlerContext } from '../../src/core/handlers.ts';
import { REMOTE_ERROR_MAX_CHARS } from '../../src/core/limits.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { createLlmHandler, llmConfig, type LlmConfig } from '../../src/handlers/llm.ts';
import { createWebhookHandler, type WebhookConfig } from '../../src/handlers/webhook.ts';
import { nextEvent, startServer } from '../harness.ts';

/**
 * Issue 12 #8: webhook answers were not bounded. A 40 MB NDJSON line took the server from 166 to 579 MB; a
 * 200,000-character `{ "error" }` was stored and broadcast whole; a line that is not JSON put part of the
 * answer body into the run's error (and the llm handler quoted 200 characters of any error body). Now one
 * line (or event, or JSON answer) is capped, a remote's error message is cut to REMOTE_ERROR_MAX_CHARS, and
 * no answer body is quoted: only the message field the protocol defines for a failure.
 */

type Answer = (req: IncomingMessage, res: ServerResponse) => void;

/** A server answering each request with the next answer. */
async function server(...answers: Answer[]) {
  const s = createServer((req, res) => {
    req.resume();
    req.on('end', () => answers.shift()!(req, res));
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(s.address() as AddressInfo).port}`,
    [Symbol.asyncDispose]: () => new Promise<void>((r) => {
      s.closeAllConnections();
      s.close(() => r());
    }),
  };
}

const ndjsonStart = (res: ServerResponse) => res.writeHead(200, { 'content-type': 'application/x-ndjson' });

function ctx<C>(config: C): HandlerContext<C> {
  return {
    agentId: 'a', agentName: 'A', jobId: 'a', runId: 'r', attempt: 1, scheduledAt: 0, config,
    signal: new AbortController().signal, log: silentLogger, progress: () => {}, reportUsage: () => {}, lastOutput: async () => '',
  };
}
const failure = (p: Promise<unknown>) => p.then(() => { throw new Error('expected the run to fail'); }, (e: unknown) => e as Error);

describe('regression: webhook answers are bounded and never echoed', () => {
  it('fails on an NDJSON line past the cap while it arrives, without waiting for its end', async () => {
    const MiB = 'x'.repeat(1024 * 1024);
    // The line never ends: the run fails once the cap is passed, not when the server stops.
    await using rx = await server((_req, res) => {
      ndjsonStart(res);
      res.write('{"progress":1}\n{"output":"');
      for (let i = 0; i < 6; i++) res.write(MiB);
    });
    const webhook = createWebhookHandler({ allowedHosts: ['127.0.0.1'], signingSecret: 's' });
    const err = await failure(webhook.run(ctx<WebhookConfig>({ url: `${rx.url}/hook` })));
    expect(err.message).toBe('webhook sent an NDJSON line longer than 4194304 bytes, the most one line may be');
  });

  it('takes the line cap from WEBHOOK_MAX_ANSWER_BYTES, for NDJSON lines and JSON answers alike', async () => {
    const big = `{"output":"${'y'.repeat(70_000)}"}`;
    await using rx = await server(
      (_req, res) => {
        ndjsonStart(res);
        res.end(`${big}\n`);
      },
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(big);
      },
    );
    await using s = await startServer({ env: { WEBHOOK_MAX_ANSWER_BYTES: '65536' } });
    expect((await s.call('POST', '/api/agents', { body: { id: 'big', name: 'Big', handler: 'webhook', config: { url: `${rx.url}/hook` }, maxRetries: 0 } })).status).toBe(201);
    for (const message of ['webhook sent an NDJSON line longer than 65536 bytes, the most one line may be', 'webhook answer is larger than 65536 bytes, the most a JSON answer may be']) {
      const failed = nextEvent(s.app, (e) => e.type === 'agent:failed');
      await s.call('POST', '/api/agents/big/run');
      expect((await failed).data).toMatchObject({ error: message });
    }
  });

  it("cuts a 200,000-character { error } line to REMOTE_ERROR_MAX_CHARS, in the run's stored error and its event", async () => {
    const reason = 'z'.repeat(200_000);
    await using rx = await server((_req, res) => {
      ndjsonStart(res);
      res.end(`${JSON.stringify({ error: reason })}\n`);
    });
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: { id: 'loud', name: 'Loud', handler: 'webhook', config: { url: `${rx.url}/hook` }, maxRetries: 0 } });
    const failed = nextEvent(s.app, (e) => e.type === 'agent:failed');
    const { runId } = (await s.call('POST', '/api/agents/loud/run')).body.data as { runId: string };
    const cut = `${'z'.repeat(REMOTE_ERROR_MAX_CHARS - 1)}…`;
    expect((await failed).data).toMatchObject({ error: cut });
    expect((await s.call('GET', `/api/runs/${runId}`)).body.data).toMatchObject({ error: cut });
    expect(cut).toHaveLength(1000);
  });

  it('names a line that is not JSON by number and size, never by its content', async () => {
    await using rx = await server((_req, res) => {
      ndjsonStart(res);
      res.end('{"progress":5}\n<html>internal admin: token=abc123</html>\n');
    });
    const webhook = createWebhookHandler({ allowedHosts: ['127.0.0.1'], signingSecret: 's' });
    const err = await failure(webhook.run(ctx<WebhookConfig>({ url: `${rx.url}/hook` })));
    expect(err.message).toBe('webhook sent a line that is not JSON (line 2, 41 bytes)');
  });
});

describe('regression: llm answers are bounded and never echoed', () => {
  const llm = (maxAnswerBytes?: number) => createLlmHandler({ allowedHosts: ['127.0.0.1'], env: () => undefined, clock: createManualClock(0), maxAnswerBytes });
  const run = (handler: ReturnType<typeof llm>, baseUrl: string) => handler.run(ctx<LlmConfig>(llmConfig.parse({ baseUrl, model: 'm', prompt: 'p' })));

  it('quotes no error body that is not an API error message', async () => {
    await using rx = await server((_req, res) => {
      res.writeHead(404, { 'content-type': 'text/html' });
      res.end('<h1>Not found</h1><p>internal-build 4.2.1 on host db-7</p>');
    });
    expect((await failure(run(llm(), `${rx.url}/v1`))).message).toBe('llm answered 404 Not Found');
  });

  it('names an event that is not JSON by its size only, and fails on an event past the cap', async () => {
    await using rx = await server(
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.end('data: secret stuff, not json\n\n');
      },
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'text/event-stream' });
        res.write(`data: ${'q'.repeat(200_000)}`); // never ends
      },
      (_req, res) => {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(JSON.stringify({ choices: [{ message: { content: 'w'.repeat(200_000) } }] }));
      },
    );
    const handler = llm(65_536);
    expect((await failure(run(handler, `${rx.url}/v1`))).message).toBe('llm sent an event that is not JSON (22 bytes)');
    expect((await failure(run(handler, `${rx.url}/v1`))).message).toBe('llm sent an event longer than 65536 characters, the most one event may be');
    expect((await failure(run(handler, `${rx.url}/v1`))).message).toBe('llm answer is larger than 65536 bytes, the most a JSON answer may be');
  });

  it("cuts a mid-stream error event's message to REMOTE_ERROR_MAX_CHARS", async () => {
    await using rx = await server((_req, res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${JSON.stringify({ error: { message: 'e'.repeat(50_000) } })}\n\n`);
    });
    expect((await failure(run(llm(), `${rx.url}/v1`))).message).toBe(`llm stream error: ${'e'.repeat(REMOTE_ERROR_MAX_CHARS - 1)}…`);
  });
});
