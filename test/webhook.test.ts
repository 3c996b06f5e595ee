import { createHmac } from 'node:crypto';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { HandlerError, type HandlerContext, type HandlerDefinition, type ProgressUpdate, type UsageReport } from '../src/core/handlers.ts';
import { silentLogger } from '../src/core/logger.ts';
import { createWebhookHandler, type WebhookConfig } from '../src/handlers/webhook.ts';
import { createHarness, nextEvent, startServer } from './harness.ts';

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

  it('fails a network error with generic words, naming no address, port or cause (issue 12 #7: no port oracle)', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    await using h = await setup();
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: `http://127.0.0.1:${port}/hook` }, maxRetries: 0 });
    expect((await h.runUntil(agent, 'agent:failed')).data).toMatchObject({ error: 'webhook request failed: could not connect or the connection failed', willRetry: false });
  });

  it('re-checks the allowed hosts at run time', async () => {
    await using rx = await receiver();
    await using h = await setup(['localhost']);
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: rx.url }, maxRetries: 0 });
    expect((await h.runUntil(agent, 'agent:failed')).data).toMatchObject({ error: 'config.url: host "127.0.0.1" is not in WEBHOOK_ALLOWED_HOSTS' });
    expect(rx.requests).toHaveLength(0);
  });
});

/** The handler called directly with a hand-made context: what `run` resolves to, and what it reported. */
function direct(url: string) {
  const webhook = createWebhookHandler({ allowedHosts: ['127.0.0.1'], signingSecret: SECRET });
  const progress: ProgressUpdate[] = [];
  const usage: UsageReport[] = [];
  const ctx: HandlerContext<WebhookConfig> = {
    agentId: 'hook', agentName: 'Hook', jobId: 'hook', runId: 'run-1', attempt: 1, scheduledAt: Date.parse('2026-01-01T00:00:00Z'),
    config: { url }, signal: new AbortController().signal, log: silentLogger,
    progress: (u) => progress.push(u),
    reportUsage: (u) => usage.push(u),
    lastOutput: async () => '',
  };
  return { run: () => webhook.run(ctx), progress, usage };
}

const ndjson = (...lines: string[]) => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': 'application/x-ndjson' });
  for (const line of lines) res.write(line);
  res.end();
};
const json = (body: string, type = 'application/json') => (_req: IncomingMessage, res: ServerResponse) => {
  res.writeHead(200, { 'content-type': type });
  res.end(body);
};

describe('webhook outputs and usage (CONTRACT §9)', () => {
  it("takes a JSON answer's `output` field as the output, a non-string one as it is", async () => {
    await using rx = await receiver();
    const { run } = direct(rx.url);
    rx.respond(
      json('{"output":"Three headlines, summarised.","other":1}'),
      json('{"output":{"summary":"ok","score":0.9}}', 'application/json; charset=utf-8'),
      json('{"status":"done"}'),
      json('not json'),
      json('{"output":"plain text answers have none"}', 'text/plain'),
      (_req, res) => res.end(),
    );
    expect(await run()).toBe('Three headlines, summarised.');
    expect(await run()).toEqual({ summary: 'ok', score: 0.9 });
    expect(await run()).toBeUndefined();
    expect(await run()).toBeUndefined(); // a 2xx completes the run whatever its body
    expect(await run()).toBeUndefined();
    expect(await run()).toBeUndefined();
  });

  it('concatenates NDJSON output lines in order, between progress lines that still report', async () => {
    await using rx = await receiver();
    const { run, progress, usage } = direct(rx.url);
    rx.respond(ndjson('{"progress":10,"message":"reading"}\n', '{"output":"Hello, "}\n{"outp', 'ut":"wörld"}\n', '{"progress":100}\n', '{"output":"!"}'));
    expect(await run()).toBe('Hello, wörld!');
    expect(progress).toEqual([{ progress: 10, message: 'reading' }, { progress: 100 }]);
    expect(usage).toEqual([]);
  });

  it('answers no output when no NDJSON line carries one, and one non-string output as it is', async () => {
    await using rx = await receiver();
    const { run } = direct(rx.url);
    rx.respond(ndjson('{"progress":50}\n{"progress":100}\n'), ndjson('{"output":{"items":[1,2]}}\n'), ndjson('{"output":"n = "}\n{"output":2}\n'));
    expect(await run()).toBeUndefined();
    expect(await run()).toEqual({ items: [1, 2] });
    expect(await run()).toBe('n = 2');
  });

  it('reports an NDJSON usage line through ctx.reportUsage, costUsd optional', async () => {
    await using rx = await receiver();
    const { run, usage } = direct(rx.url);
    rx.respond(
      ndjson('{"output":"done"}\n{"usage":{"model":"gpt-4o-mini","inputTokens":120,"outputTokens":45,"costUsd":0.0012}}\n'),
      ndjson('{"usage":{"model":"llama3.2","inputTokens":7,"outputTokens":0}}'),
    );
    expect(await run()).toBe('done');
    expect(await run()).toBeUndefined();
    expect(usage).toEqual([
      { model: 'gpt-4o-mini', inputTokens: 120, outputTokens: 45, costUsd: 0.0012 },
      { model: 'llama3.2', inputTokens: 7, outputTokens: 0 },
    ]);
  });

  it('fails on a malformed usage line, naming the field, the expected and the actual value, without retries', async () => {
    await using rx = await receiver();
    const { run, usage } = direct(rx.url);
    const cases: [string, string][] = [
      ['{"model":"m","inputTokens":-3,"outputTokens":1}', 'usage.inputTokens: expected a whole number ≥ 0, got -3'],
      ['{"model":"m","inputTokens":1.5,"outputTokens":1}', 'usage.inputTokens: expected a whole number, got 1.5'],
      ['{"inputTokens":1,"outputTokens":1}', 'usage.model: is required, got nothing'],
      ['{"model":"m","inputTokens":1,"outputTokens":"12"}', 'usage.outputTokens: expected a whole number, got "12"'],
      ['{"model":"m","inputTokens":1,"outputTokens":1,"costUsd":"free"}', 'usage.costUsd: expected a number, got "free"'],
      ['{"model":"m","inputTokens":1,"outputTokens":1,"tokens":2}', 'usage: unknown field "tokens" (expected model, inputTokens, outputTokens, costUsd)'],
      ['"lots"', 'usage: expected an object { model, inputTokens, outputTokens, costUsd? }, got "lots"'],
    ];
    for (const [line, message] of cases) {
      rx.respond(ndjson(`{"usage":${line}}\n`));
      const err = await run().then(() => undefined, (e: unknown) => e);
      expect(err).toBeInstanceOf(HandlerError);
      expect(err).toMatchObject({ message: `webhook sent a malformed usage line: ${message}`, retryable: false });
    }
    expect(usage).toEqual([]);
  });

  it('through the scheduler: the run keeps the output and usage; agent:completed carries the usage', async () => {
    await using rx = await receiver();
    await using h = await setup();
    rx.respond(ndjson('{"progress":50}\n', '{"output":"All "}\n{"output":"done."}\n', '{"usage":{"model":"m","inputTokens":10,"outputTokens":2,"costUsd":0.5}}\n'));
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: rx.url } });
    expect((await h.runUntil(agent, 'agent:completed')).data).toMatchObject({ usage: { model: 'm', inputTokens: 10, outputTokens: 2, costUsd: 0.5 } });
    expect((await h.runs('hook'))[0]).toMatchObject({ status: 'completed', output: 'All done.', outputTruncated: false, usageModel: 'm', inputTokens: 10, outputTokens: 2, costUsd: 0.5 });
  });

  it('through the scheduler: NDJSON output past 256 KiB is kept to 256 KiB and flagged', async () => {
    await using rx = await receiver();
    await using h = await setup();
    const line = `{"output":"${'a'.repeat(1023)}\\n"}\n`; // 1 KiB of output a line
    rx.respond(ndjson(...Array.from({ length: 300 }, () => line)));
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: rx.url } });
    const done = await h.runUntil(agent, 'agent:completed');
    const run = await h.repo.getRun((done.data as { runId: string }).runId);
    expect(run!.outputTruncated).toBe(true);
    expect(run!.output!.length).toBe(256 * 1024);
    expect(run!.output).toBe(`${'a'.repeat(1023)}\n`.repeat(256));
  });

  it('through the scheduler: a malformed usage line fails the run without retries', async () => {
    await using rx = await receiver();
    await using h = await setup();
    rx.respond(ndjson('{"output":"half"}\n{"usage":{"model":"m","inputTokens":-1,"outputTokens":0}}\n'));
    const agent = await h.addAgent('hook', { handler: 'webhook', config: { url: rx.url } });
    expect((await h.runUntil(agent, 'agent:failed')).data).toMatchObject({
      error: 'webhook sent a malformed usage line: usage.inputTokens: expected a whole number ≥ 0, got -1',
      willRetry: false,
      attempt: 1,
    });
  });

  it('refuses a JSON answer larger than it reads', async () => {
    await using rx = await receiver();
    const { run } = direct(rx.url);
    const big = `{"output":"${'x'.repeat(4 * 1024 * 1024)}"}`;
    rx.respond(json(big), (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(big) });
      res.end(big);
    });
    // Streamed (chunked), then with a content-length that says so before any of it is read.
    for (let i = 0; i < 2; i++) await expect(run()).rejects.toThrow('webhook answer is larger than 4194304 bytes, the most a JSON answer may be');
  });
});

describe('webhook outputs and usage through the app: GET /api/runs/:runId', () => {
  /** Creates a webhook agent on `s`, runs it, and answers the run as GET /api/runs/:runId has it. */
  async function runOnce(s: Awaited<ReturnType<typeof startServer>>, url: string) {
    expect((await s.call('POST', '/api/agents', { body: { id: 'hook', name: 'Hook', handler: 'webhook', config: { url } } })).status).toBe(201);
    const finished = nextEvent(s.app, (e) => e.type === 'agent:completed' || e.type === 'agent:failed');
    const { runId } = (await s.call('POST', '/api/agents/hook/run')).body.data as { runId: string };
    const event = await finished;
    const run = await s.call('GET', `/api/runs/${runId}`);
    expect(run.status).toBe(200);
    return { event, run: run.body.data };
  }

  it('answers the NDJSON output and the usage, priced from LLM_PRICES when the line gives no cost', async () => {
    await using rx = await receiver();
    await using s = await startServer({ env: { LLM_PRICES: JSON.stringify({ 'my-model': { inputPerMTok: 2, outputPerMTok: 8 } }) } });
    rx.respond(ndjson('{"progress":40,"message":"drafting"}\n', '{"output":"Draft: "}\n', '{"output":"three points."}\n', '{"usage":{"model":"my-model","inputTokens":1000,"outputTokens":250}}\n'));
    const { event, run } = await runOnce(s, rx.url);
    const usage = { model: 'my-model', inputTokens: 1000, outputTokens: 250, costUsd: 0.004 }; // 1000 × 2 + 250 × 8 per million
    expect(event.data).toMatchObject({ status: 'completed', usage });
    expect(run).toMatchObject({ status: 'completed', output: 'Draft: three points.', outputPreview: 'Draft: three points.', outputTruncated: false, usage });
  });

  it("answers a JSON answer's non-string output JSON-serialised, and no usage", async () => {
    await using rx = await receiver();
    await using s = await startServer();
    rx.respond(json('{"output":{"sentiment":"positive","score":0.92}}'));
    const { run } = await runOnce(s, rx.url);
    expect(run).toMatchObject({ status: 'completed', output: '{"sentiment":"positive","score":0.92}', outputTruncated: false, usage: null });
  });

  it('answers a run without output as null', async () => {
    await using rx = await receiver();
    await using s = await startServer();
    const { run } = await runOnce(s, rx.url); // the receiver's default answer: text/plain "ok"
    expect(run).toMatchObject({ status: 'completed', output: null, outputPreview: null, usage: null });
  });

  it('answers a run a malformed usage line failed: its message, no retry (the agent allows retries), no usage', async () => {
    await using rx = await receiver();
    await using s = await startServer();
    rx.respond(ndjson('{"usage":{"model":"m","inputTokens":3}}\n'));
    const { event, run } = await runOnce(s, rx.url);
    expect(event.data).toMatchObject({ status: 'failed', willRetry: false, usage: null });
    expect(run).toMatchObject({ status: 'failed', error: 'webhook sent a malformed usage line: usage.outputTokens: is required, got nothing', usage: null });
  });
});
