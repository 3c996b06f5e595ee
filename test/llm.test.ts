import { createServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createManualClock, type ManualClock } from '../src/core/clock.ts';
import { DomainError } from '../src/core/errors.ts';
import { createHandlerRegistry, HandlerError, type HandlerContext, type HandlerDefinition, type ProgressUpdate, type UsageReport } from '../src/core/handlers.ts';
import { silentLogger } from '../src/core/logger.ts';
import { createLlmHandler, llmConfig, type LlmConfig, type LlmOptions } from '../src/handlers/llm.ts';
import { startFakeOpenAI } from './fake-openai.ts';

const KEY = 'sk-test-0123456789abcdef';
const START = Date.parse('2026-03-01T08:00:00Z');
const SCHEDULED = Date.parse('2026-03-01T07:59:30Z');

function deferred<T = void>() {
  let resolve!: (v: T) => void;
  const promise = new Promise<T>((r) => (resolve = r));
  return { promise, resolve };
}

interface Setup {
  clock?: ManualClock;
  env?: Record<string, string | undefined>;
  allowedHosts?: string[];
  progressIntervalMs?: number;
  lastOutput?: string;
  /** Called inside each progress call, after it is recorded. */
  onProgress?: (u: ProgressUpdate) => void;
}

/** The handler and a hand-made context for one run, recording what the handler reports. */
function setup(config: Record<string, unknown>, s: Setup = {}) {
  const clock = s.clock ?? createManualClock(START);
  const options: LlmOptions = { allowedHosts: s.allowedHosts ?? ['127.0.0.1'], env: (name) => (s.env ?? { MY_KEY: KEY })[name], clock, progressIntervalMs: s.progressIntervalMs };
  const handler = createLlmHandler(options);
  const controller = new AbortController();
  const progress: ProgressUpdate[] = [];
  const usage: UsageReport[] = [];
  let lastOutputCalls = 0;
  const ctx: HandlerContext<LlmConfig> = {
    agentId: 'writer',
    agentName: 'Content Creator',
    jobId: 'writer',
    runId: 'run-42',
    attempt: 2,
    scheduledAt: SCHEDULED,
    config: llmConfig.parse({ model: 'fake-model', prompt: 'Say hi', ...config }),
    signal: controller.signal,
    progress: (u) => {
      progress.push(u);
      s.onProgress?.(u);
    },
    reportUsage: (u) => void usage.push(u),
    lastOutput: async () => {
      lastOutputCalls++;
      return s.lastOutput ?? 'the previous answer';
    },
    log: silentLogger,
  };
  return {
    handler,
    ctx,
    clock,
    controller,
    progress,
    usage,
    get lastOutputCalls() {
      return lastOutputCalls;
    },
    run: () => handler.run(ctx) as Promise<string>,
  };
}

/** The error a run rejects with (fails the test if it resolves). */
async function failure(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (err) {
    return err as Error;
  }
  throw new Error('expected the run to fail');
}

/** A one-off model server for answers the fake does not make: `answer` writes each reply. */
async function rawServer(answer: (res: ServerResponse) => void) {
  const server = createServer((req, res) => {
    req.resume();
    req.on('end', () => answer(res));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    baseUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`,
    [Symbol.asyncDispose]: () => new Promise<void>((r) => {
      server.closeAllConnections();
      server.close(() => r());
    }),
  };
}

const deltas = (progress: ProgressUpdate[]) => progress.map((p) => p.delta ?? '').join('');

describe('llm handler: the request', () => {
  it('POSTs to {baseUrl}/chat/completions with one slash, whether or not baseUrl ends in one', async () => {
    await using fake = await startFakeOpenAI({});
    await setup({ baseUrl: fake.baseUrl }).run();
    await setup({ baseUrl: `${fake.baseUrl}/` }).run();
    await setup({ baseUrl: `${fake.baseUrl}//` }).run();
    expect(fake.requests.map((r) => [r.method, r.url])).toEqual([
      ['POST', '/v1/chat/completions'],
      ['POST', '/v1/chat/completions'],
      ['POST', '/v1/chat/completions'],
    ]);
  });

  it('sends model, system then user messages with every template variable filled, streaming with usage', async () => {
    await using fake = await startFakeOpenAI({});
    const t = setup({
      baseUrl: fake.baseUrl,
      system: 'You are {{agentName}} ({{ agentId }}).',
      prompt: 'Run {{runId}} at {{scheduledAt}}, attempt {{attempt}}. Last time: {{lastOutput}}',
    });
    await t.run();
    expect(fake.requests[0]!.body).toEqual({
      model: 'fake-model',
      messages: [
        { role: 'system', content: 'You are Content Creator (writer).' },
        { role: 'user', content: 'Run run-42 at 2026-03-01T07:59:30.000Z, attempt 2. Last time: the previous answer' },
      ],
      stream: true,
      stream_options: { include_usage: true },
      max_tokens: 1024,
    });
    expect(t.lastOutputCalls).toBe(1);
  });

  it('sends only a user message without system, temperature only when set (0 included), max_tokens from maxTokens', async () => {
    await using fake = await startFakeOpenAI({});
    await setup({ baseUrl: fake.baseUrl, temperature: 0, maxTokens: 50 }).run();
    const body = fake.requests[0]!.body;
    expect(body.messages).toEqual([{ role: 'user', content: 'Say hi' }]);
    expect(body.temperature).toBe(0);
    expect(body.max_tokens).toBe(50);
    await setup({ baseUrl: fake.baseUrl }).run();
    expect('temperature' in fake.requests[1]!.body).toBe(false);
  });

  it('reads the last output only when a template uses it, and never expands a value again', async () => {
    await using fake = await startFakeOpenAI({});
    const plain = setup({ baseUrl: fake.baseUrl, prompt: 'no variables here' });
    await plain.run();
    expect(plain.lastOutputCalls).toBe(0);
    const quoting = setup({ baseUrl: fake.baseUrl, prompt: 'before: {{lastOutput}}' }, { lastOutput: 'it said {{runId}}' });
    await quoting.run();
    expect(fake.requests[1]!.body.messages[0].content).toBe('before: it said {{runId}}');
  });

  it('adds config headers, never lets them replace authorization or content-type, and sends the key as a bearer', async () => {
    await using fake = await startFakeOpenAI({});
    await setup({
      baseUrl: fake.baseUrl,
      apiKeyEnv: 'MY_KEY',
      headers: { 'x-team': 'blue', Authorization: 'Bearer not-the-key', 'Content-Type': 'text/plain' },
    }).run();
    const h = fake.requests[0]!.headers;
    expect(h['x-team']).toBe('blue');
    expect(h['authorization']).toBe(`Bearer ${KEY}`);
    expect(h['content-type']).toBe('application/json');
    expect(h['accept']).toBe('text/event-stream');
  });

  it('sends no authorization at all without apiKeyEnv, even when config headers carry one', async () => {
    await using fake = await startFakeOpenAI({});
    await setup({ baseUrl: fake.baseUrl, headers: { AUTHORIZATION: 'Bearer from-config', 'x-team': 'red' } }).run();
    const h = fake.requests[0]!.headers;
    expect(h['authorization']).toBeUndefined();
    expect(h['x-team']).toBe('red');
  });
});

describe('llm handler: the stream', () => {
  it('returns the text; progress deltas concatenate to it, with token counts and capped percentages', async () => {
    await using fake = await startFakeOpenAI({ tokens: 10 });
    const t = setup({ baseUrl: fake.baseUrl, maxTokens: 8 });
    const text = await t.run();
    expect(text).toBe(Array.from({ length: 10 }, (_, i) => `tok${i} `).join(''));
    expect(deltas(t.progress)).toBe(text);
    // The clock never moves: the first token goes out at once, the other nine wait for the last event.
    expect(t.progress).toEqual([
      { progress: 13, message: 'Generating: 1 tokens', delta: 'tok0 ' },
      { progress: 99, message: 'Generating: 10 tokens', delta: text.slice('tok0 '.length) },
    ]);
    expect(t.clock.pendingTimers()).toBe(0);
  });

  it('sends at most one progress per interval, arming a timer for the rest of it', async () => {
    // Real gaps between chunks; the manual clock moves 30 ms at each progress call, and whenever the handler
    // arms a timer the test lets it fire: each chunk then goes out on its own timer, 70 ms after the last.
    await using fake = await startFakeOpenAI({ chunks: ['a', 'b', 'c', 'd'], chunkDelayMs: 40 });
    const clock = createManualClock(START);
    const armed: number[] = [];
    const watched: ManualClock = {
      ...clock,
      setTimer(fn, ms) {
        armed.push(ms);
        setImmediate(() => clock.advance(ms));
        return clock.setTimer(fn, ms);
      },
    };
    const t = setup({ baseUrl: fake.baseUrl }, { clock: watched, onProgress: () => clock.advance(30) });
    expect(await t.run()).toBe('abcd');
    expect(t.progress.map((p) => p.delta)).toEqual(['a', 'b', 'c', 'd']);
    expect(armed).toEqual([70, 70, 70]);
  });

  it('honours progressIntervalMs: 0 sends every chunk at once, without timers', async () => {
    await using fake = await startFakeOpenAI({ chunks: ['x', 'y', 'z'] });
    const t = setup({ baseUrl: fake.baseUrl }, { progressIntervalMs: 0 });
    await t.run();
    expect(t.progress.map((p) => [p.delta, p.message])).toEqual([['x', 'Generating: 1 tokens'], ['y', 'Generating: 2 tokens'], ['z', 'Generating: 3 tokens']]);
  });

  it('reports the usage chunk, with the model the server names', async () => {
    await using fake = await startFakeOpenAI({ chunks: ['hi'], usage: { prompt_tokens: 12, completion_tokens: 3 } });
    const t = setup({ baseUrl: fake.baseUrl });
    await t.run();
    expect(t.usage).toEqual([{ model: 'fake-model', inputTokens: 12, outputTokens: 3 }]);
  });

  it('reports no usage when the server sends none', async () => {
    await using fake = await startFakeOpenAI({ chunks: ['hi'], usage: null });
    const t = setup({ baseUrl: fake.baseUrl });
    expect(await t.run()).toBe('hi');
    expect(t.usage).toEqual([]);
  });

  it('accepts a server that answers one application/json completion instead of a stream', async () => {
    await using server = await rawServer((res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ model: 'served-model-2026', choices: [{ message: { role: 'assistant', content: 'whole answer' } }], usage: { prompt_tokens: 4, completion_tokens: 2 } }));
    });
    const t = setup({ baseUrl: server.baseUrl, model: 'served-model' });
    expect(await t.run()).toBe('whole answer');
    expect(t.progress).toEqual([{ progress: 0, message: 'Generating: 2 tokens', delta: 'whole answer' }]);
    expect(t.usage).toEqual([{ model: 'served-model-2026', inputTokens: 4, outputTokens: 2 }]);
  });

  it('ends at [DONE] even when the server holds the stream open after it', async () => {
    await using server = await rawServer((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.write(`data: ${JSON.stringify({ choices: [{ delta: { content: 'held' } }] })}\n\ndata: [DONE]\n\n`);
    });
    expect(await setup({ baseUrl: server.baseUrl }).run()).toBe('held');
  });

  it('accepts a stream that ends without [DONE] after a finish_reason', async () => {
    await using server = await rawServer((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${JSON.stringify({ choices: [{ delta: { content: 'short' }, finish_reason: null }] })}\n\n`
        + `data: ${JSON.stringify({ choices: [{ delta: {}, finish_reason: 'stop' }] })}\n\n`);
    });
    expect(await setup({ baseUrl: server.baseUrl }).run()).toBe('short');
  });

  it('fails, to be retried, when the connection drops mid-stream', async () => {
    await using fake = await startFakeOpenAI({ tokens: 10, dropAfter: 3 });
    const err = await failure(setup({ baseUrl: fake.baseUrl }).run());
    expect(err).not.toBeInstanceOf(HandlerError);
    expect(err.message).toMatch(/^llm stream failed: /);
  });

  it('fails, to be retried, when the stream ends without [DONE] or a finish_reason', async () => {
    await using fake = await startFakeOpenAI({ tokens: 3, done: false });
    const err = await failure(setup({ baseUrl: fake.baseUrl }).run());
    expect(err).not.toBeInstanceOf(HandlerError);
    expect(err.message).toBe('llm stream ended before [DONE]');
  });
});

describe('llm handler: failed answers', () => {
  it('a 429 is retryable with Retry-After in seconds', async () => {
    await using fake = await startFakeOpenAI({ status: 429, headers: { 'retry-after': '7' }, body: '{"error":{"message":"slow down"}}' });
    const err = await failure(setup({ baseUrl: fake.baseUrl }).run());
    expect(err).toBeInstanceOf(HandlerError);
    expect(err).toMatchObject({ retryable: true, retryAfterMs: 7000, message: 'llm answered 429 Too Many Requests: slow down' });
  });

  it('a 429 with an HTTP-date Retry-After waits until that date on the injected clock', async () => {
    await using fake = await startFakeOpenAI({ status: 429, headers: { 'retry-after': new Date(START + 30_000).toUTCString() } });
    const err = await failure(setup({ baseUrl: fake.baseUrl }).run());
    expect(err).toMatchObject({ retryable: true, retryAfterMs: 30_000 });
  });

  it('a 429 with an unparsable Retry-After leaves the delay to the backoff', async () => {
    await using fake = await startFakeOpenAI({ status: 429, headers: { 'retry-after': 'soon' } });
    const err = await failure(setup({ baseUrl: fake.baseUrl }).run());
    expect(err).toBeInstanceOf(HandlerError);
    expect(err).toMatchObject({ retryable: true, retryAfterMs: undefined });
  });

  it('a 500 is a plain error, retried by the policy; a body that is not an API error is never quoted', async () => {
    await using fake = await startFakeOpenAI({ status: 500, body: 'upstream down' });
    const err = await failure(setup({ baseUrl: fake.baseUrl }).run());
    expect(err).not.toBeInstanceOf(HandlerError);
    expect(err.message).toBe('llm answered 500 Internal Server Error');
  });

  it("a 400 fails without retries, quoting the server's error message (Ollama's string or OpenAI's object), cut to 1,000 characters", async () => {
    for (const [body, quoted] of [
      [JSON.stringify({ error: 'model "x" not found' }), 'model "x" not found'],
      [JSON.stringify({ error: { message: 'y'.repeat(3000), type: 'invalid_request_error' } }), `${'y'.repeat(999)}…`],
      ['x'.repeat(300), undefined],
      [JSON.stringify({ detail: 'not the shape of an API error' }), undefined],
    ] as const) {
      await using fake = await startFakeOpenAI({ status: 400, body });
      const err = await failure(setup({ baseUrl: fake.baseUrl }).run());
      expect(err).toBeInstanceOf(HandlerError);
      expect(err).toMatchObject({ retryable: false, message: `llm answered 400 Bad Request${quoted === undefined ? '' : `: ${quoted}`}` });
    }
  });

  it('a network error is a plain error in generic words, naming no address, port or cause (issue 12 #7: no port oracle)', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', r));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const err = await failure(setup({ baseUrl: `http://127.0.0.1:${port}/v1` }).run());
    expect(err).not.toBeInstanceOf(HandlerError);
    expect(err.message).toBe('llm request failed: could not connect or the connection failed');
  });
});

describe('llm handler: the API key', () => {
  it('a missing or empty variable fails without retries, naming it, before any request', async () => {
    await using fake = await startFakeOpenAI({});
    for (const env of [{}, { MY_KEY: '' }]) {
      const err = await failure(setup({ baseUrl: fake.baseUrl, apiKeyEnv: 'MY_KEY' }, { env }).run());
      expect(err).toBeInstanceOf(HandlerError);
      expect(err).toMatchObject({ retryable: false, message: 'environment variable MY_KEY is not set (config.apiKeyEnv)' });
    }
    expect(fake.requests).toHaveLength(0);
  });

  it('never appears in an error, even when the server echoes it', async () => {
    for (const status of [400, 429, 500]) {
      await using fake = await startFakeOpenAI((req) => ({ status, body: JSON.stringify({ error: { message: `bad header: ${String(req.headers['authorization'])} (${KEY})` } }) }));
      const err = await failure(setup({ baseUrl: fake.baseUrl, apiKeyEnv: 'MY_KEY' }).run());
      expect(fake.requests[0]!.headers['authorization']).toBe(`Bearer ${KEY}`);
      expect(err.message).not.toContain(KEY);
      expect(err.message).toContain('bad header: Bearer [redacted] ([redacted])');
    }
  });

  it('never appears in progress or the output, even split across chunks', async () => {
    await using fake = await startFakeOpenAI({ chunks: ['your key is ', KEY.slice(0, 5), KEY.slice(5, 12), `${KEY.slice(12)}, and `, 'sk-', 'not it'] });
    const t = setup({ baseUrl: fake.baseUrl, apiKeyEnv: 'MY_KEY' }, { progressIntervalMs: 0 });
    const text = await t.run();
    expect(text).toBe('your key is [redacted], and sk-not it');
    expect(deltas(t.progress)).toBe(text);
    for (const p of t.progress) expect(JSON.stringify(p)).not.toContain(KEY.slice(0, 5) + KEY.slice(5, 12));
  });

  it('never appears in a mid-stream error event', async () => {
    await using server = await rawServer((res) => {
      res.writeHead(200, { 'content-type': 'text/event-stream' });
      res.end(`data: ${JSON.stringify({ error: { message: `key ${KEY} is over quota` } })}\n\n`);
    });
    const err = await failure(setup({ baseUrl: server.baseUrl, apiKeyEnv: 'MY_KEY' }).run());
    expect(err.message).toBe('llm stream error: key [redacted] is over quota');
  });
});

describe('llm handler: cancel and timeout', () => {
  it('an abort of ctx.signal mid-stream rejects with its reason and closes the connection', async () => {
    await using fake = await startFakeOpenAI({ tokens: 1000, chunkDelayMs: 20 });
    const first = deferred();
    const t = setup({ baseUrl: fake.baseUrl }, { onProgress: () => first.resolve() });
    const running = t.run();
    await first.promise;
    const reason = new Error('cancelled by the test');
    t.controller.abort(reason);
    expect(await failure(running)).toBe(reason);
    await fake.clientClosed(1);
  });

  it('timeoutMs aborts a server that sends nothing, on the injected clock', async () => {
    const received = deferred();
    await using fake = await startFakeOpenAI(() => {
      received.resolve();
      return { hang: true };
    });
    const t = setup({ baseUrl: fake.baseUrl, timeoutMs: 5000 });
    const running = t.run();
    await received.promise;
    t.clock.advance(4999);
    t.clock.advance(1);
    const err = await failure(running);
    expect(err).not.toBeInstanceOf(HandlerError);
    expect(err.message).toBe('llm timed out after 5000 ms');
    await fake.clientClosed(1);
  });

  it('a run that ends in time leaves no timer behind', async () => {
    await using fake = await startFakeOpenAI({ tokens: 5 });
    const t = setup({ baseUrl: fake.baseUrl, timeoutMs: 5000 });
    await t.run();
    expect(t.clock.pendingTimers()).toBe(0);
  });
});

describe('llm handler: config', () => {
  const registry = (allowedHosts = ['127.0.0.1', 'localhost']) =>
    createHandlerRegistry([createLlmHandler({ allowedHosts, env: () => undefined, clock: createManualClock(0) }) as HandlerDefinition<never>]);
  const parseError = (config: Record<string, unknown>, allowedHosts?: string[]) => {
    try {
      registry(allowedHosts).parseConfig('llm', { baseUrl: 'http://127.0.0.1:1/v1', model: 'm', prompt: 'p', ...config });
    } catch (err) {
      expect(err).toBeInstanceOf(DomainError);
      expect((err as DomainError).code).toBe('BAD_REQUEST');
      return (err as DomainError).message;
    }
    return undefined;
  };

  it('refuses on save a host not in LLM_ALLOWED_HOSTS', () => {
    expect(parseError({ baseUrl: 'https://api.example.com/v1' })).toBe('config.baseUrl: host "api.example.com" is not in LLM_ALLOWED_HOSTS');
    expect(parseError({ baseUrl: 'https://api.example.com/v1' }, ['*.example.com'])).toBeUndefined();
  });

  it('re-checks the host at run time: a list changed since the save fails the run without retries or a request', async () => {
    await using fake = await startFakeOpenAI({});
    expect(parseError({ baseUrl: fake.baseUrl }, ['127.0.0.1'])).toBeUndefined();
    const err = await failure(setup({ baseUrl: fake.baseUrl }, { allowedHosts: ['localhost'] }).run());
    expect(err).toBeInstanceOf(HandlerError);
    expect(err).toMatchObject({ retryable: false, message: 'config.baseUrl: host "127.0.0.1" is not in LLM_ALLOWED_HOSTS' });
    expect(fake.requests).toHaveLength(0);
  });

  it('refuses an unknown template variable, naming the field', () => {
    const expected = '(expected one of {{agentId}}, {{agentName}}, {{runId}}, {{scheduledAt}}, {{attempt}}, {{lastOutput}})';
    expect(parseError({ prompt: 'Hello {{ user }}' })).toBe(`config.prompt: unknown template variable "{{user}}" ${expected}`);
    expect(parseError({ system: 'You are {{role}}' })).toBe(`config.system: unknown template variable "{{role}}" ${expected}`);
    expect(parseError({ prompt: '{{agentId}} {{ agentName }} {{runId}} {{scheduledAt}} {{attempt}} {{lastOutput}}', system: '{{ agentId}}' })).toBeUndefined();
  });

  it('validates the fields, naming them, and defaults maxTokens to 1024', () => {
    expect(parseError({ apiKeyEnv: '1BAD' })).toMatch(/^config\.apiKeyEnv: /);
    expect(parseError({ temperature: 2.5 })).toMatch(/^config\.temperature: /);
    expect(parseError({ maxTokens: 0 })).toMatch(/^config\.maxTokens: /);
    expect(parseError({ timeoutMs: 1.5 })).toMatch(/^config\.timeoutMs: /);
    expect(parseError({ baseUrl: 'ftp://127.0.0.1/v1' })).toMatch(/^config\.baseUrl: /);
    expect(parseError({ extra: true })).toMatch(/extra/);
    expect(registry().parseConfig('llm', { baseUrl: 'http://localhost/v1', model: 'm', prompt: 'p' })).toMatchObject({ maxTokens: 1024 });
  });
});

