import { describe, expect, it } from 'vitest';
import type { Logger } from '../src/core/logger.ts';
import type { StoredEvent } from '../src/schemas/events.ts';
import { startFakeOpenAI, type FakeReply } from './fake-openai.ts';
import { recordEvents, startServer, type TestServer } from './harness.ts';

/**
 * The `llm` handler through the whole app (CONTRACT §9): agents created over REST, runs streamed from the fake
 * model server, outputs, usage and cost read back, and the retry policy's answers to 429, 5xx and 4xx.
 */

const KEY = 'sk-live-abcdef0123456789';
const PRICES = '{"fake-model":{"inputPerMTok":2.5,"outputPerMTok":10}}';
const ENV = { LLM_PRICES: PRICES, MY_KEY: KEY, LLM_ALLOWED_HOSTS: '127.0.0.1', RETRY_BASE_DELAY_MS: '20' };

const llmAgent = (id: string, baseUrl: string, config: Record<string, unknown> = {}, extra: Record<string, unknown> = {}) => ({
  id,
  name: `Agent ${id}`,
  handler: 'llm',
  config: { baseUrl, model: 'fake-model', prompt: 'Write about {{agentName}}, attempt {{attempt}}', apiKeyEnv: 'MY_KEY', ...config },
  ...extra,
});

/** Every answer body the test saw, so the key can be looked for in all of them. */
function watchAnswers(s: TestServer) {
  const bodies: string[] = [];
  const call: TestServer['call'] = async (...args) => {
    const answer = await s.call(...args);
    bodies.push(JSON.stringify(answer.body));
    return answer;
  };
  return { call, bodies };
}

const costOf = (inputTokens: number, outputTokens: number) => (inputTokens * 2.5 + outputTokens * 10) / 1e6;
const of = (type: StoredEvent['type'], agentId: string) => (e: StoredEvent) => e.type === type && e.agentId === agentId;

describe('llm agents through the API', () => {
  it('refuses on create a host not in LLM_ALLOWED_HOSTS and an unknown template variable (400)', async () => {
    await using s = await startServer({ env: ENV });
    const host = await s.call('POST', '/api/agents', { body: llmAgent('a', 'http://localhost:1/v1') });
    expect(host.status).toBe(400);
    expect(host.body.error).toBe('config.baseUrl: host "localhost" is not in LLM_ALLOWED_HOSTS');
    const variable = await s.call('POST', '/api/agents', { body: llmAgent('a', 'http://127.0.0.1:1/v1', { prompt: 'Hi {{user}}' }) });
    expect(variable.status).toBe(400);
    expect(variable.body.error).toMatch(/^config\.prompt: unknown template variable "\{\{user\}\}" \(expected one of /);
    expect((await s.call('GET', '/api/agents')).body.data).toEqual([]);
  });

  it('runs: progress deltas concatenate to the output, and the run and its completed event carry usage and cost', async () => {
    await using fake = await startFakeOpenAI({ tokens: 50, usage: { prompt_tokens: 1200, completion_tokens: 50 } });
    await using s = await startServer({ env: ENV });
    using log = recordEvents(s.app.scheduler.events);
    expect((await s.call('POST', '/api/agents', { body: llmAgent('writer', fake.baseUrl) })).status).toBe(201);
    const started = await s.call('POST', '/api/agents/writer/run');
    expect(started.status).toBe(202);
    const { runId } = started.body.data;
    const completed = await log.eventually(of('agent:completed', 'writer'));

    const expected = Array.from({ length: 50 }, (_, i) => `tok${i} `).join('');
    const progress = log.events.filter(of('agent:progress', 'writer'));
    expect(progress.length).toBeGreaterThan(0);
    expect(progress.map((e) => (e.data as { delta?: string }).delta ?? '').join('')).toBe(expected);
    expect(progress.at(-1)!.data).toMatchObject({ message: 'Generating: 50 tokens', progress: 5 });

    const usage = { model: 'fake-model', inputTokens: 1200, outputTokens: 50, costUsd: costOf(1200, 50) };
    expect(completed.data).toMatchObject({ runId, attempt: 1, usage: { ...usage, costUsd: expect.closeTo(usage.costUsd, 12) } });
    const run = await s.call('GET', `/api/runs/${runId}`);
    expect(run.status).toBe(200);
    expect(run.body.data).toMatchObject({ id: runId, status: 'completed', output: expected, outputTruncated: false, usage: { ...usage, costUsd: expect.closeTo(usage.costUsd, 12) } });

    // The request carried the filled template and the key, read from the server's environment.
    expect(fake.requests[0]!.body.messages).toEqual([{ role: 'user', content: 'Write about Agent writer, attempt 1' }]);
    expect(fake.requests[0]!.headers['authorization']).toBe(`Bearer ${KEY}`);
  });

  it('a slow stream sends several throttled progress events whose deltas still make the output', async () => {
    await using fake = await startFakeOpenAI({ tokens: 30, chunkDelayMs: 15 });
    await using s = await startServer({ env: ENV });
    using log = recordEvents(s.app.scheduler.events);
    await s.call('POST', '/api/agents', { body: llmAgent('slow', fake.baseUrl, { maxTokens: 30 }) });
    await s.call('POST', '/api/agents/slow/run');
    const completed = await log.eventually(of('agent:completed', 'slow'));
    const progress = log.events.filter(of('agent:progress', 'slow')).map((e) => e.data as { delta?: string; progress: number });
    // ~450 ms of stream at one event per 100 ms at most: more than the first and the last, far fewer than 30.
    expect(progress.length).toBeGreaterThan(2);
    expect(progress.length).toBeLessThan(15);
    expect(progress.every((p) => p.progress <= 99)).toBe(true);
    const run = await s.call('GET', `/api/runs/${(completed.data as { runId: string }).runId}`);
    expect(progress.map((p) => p.delta ?? '').join('')).toBe(run.body.data.output);
    expect(run.body.data.output).toBe(Array.from({ length: 30 }, (_, i) => `tok${i} `).join(''));
  });

  it('cancelling a run mid-stream closes the connection to the model server', async () => {
    await using fake = await startFakeOpenAI({ tokens: 1000, chunkDelayMs: 20 });
    await using s = await startServer({ env: ENV });
    using log = recordEvents(s.app.scheduler.events);
    await s.call('POST', '/api/agents', { body: llmAgent('stop', fake.baseUrl) });
    const { runId } = (await s.call('POST', '/api/agents/stop/run')).body.data;
    await log.eventually(of('agent:progress', 'stop'));
    expect((await s.call('POST', `/api/runs/${runId}/cancel`)).status).toBe(200);
    await log.eventually(of('agent:cancelled', 'stop'));
    await fake.clientClosed(1);
    expect(fake.requests).toHaveLength(1);
  });

  it('feeds {{lastOutput}} the previous completed run', async () => {
    await using fake = await startFakeOpenAI((_req, n) => ({ chunks: [`answer ${n}`] }));
    await using s = await startServer({ env: ENV });
    using log = recordEvents(s.app.scheduler.events);
    await s.call('POST', '/api/agents', { body: llmAgent('chain', fake.baseUrl, { prompt: 'Go on from: {{lastOutput}}' }) });
    await s.call('POST', '/api/agents/chain/run');
    await log.waitFor(of('agent:completed', 'chain'));
    await s.call('POST', '/api/agents/chain/run');
    await log.waitFor(of('agent:completed', 'chain'));
    expect(fake.requests.map((r) => r.body.messages[0].content)).toEqual(['Go on from: ', 'Go on from: answer 1']);
  });

  it('a 429 is retried no sooner than its Retry-After, then completes', async () => {
    const replies: FakeReply[] = [{ status: 429, headers: { 'retry-after': '1' }, body: '{"error":{"message":"rate limited"}}' }, { chunks: ['late ', 'but fine'] }];
    await using fake = await startFakeOpenAI((_req, n) => replies[n - 1] ?? {});
    await using s = await startServer({ env: ENV });
    using log = recordEvents(s.app.scheduler.events);
    await s.call('POST', '/api/agents', { body: llmAgent('busy', fake.baseUrl) });
    await s.call('POST', '/api/agents/busy/run');
    const failed = await log.eventually(of('agent:failed', 'busy'));
    const f = failed.data as { willRetry: boolean; nextRetryAt: string; timestamp: string; error: string; attempt: number };
    expect(f).toMatchObject({ attempt: 1, willRetry: true, error: 'llm answered 429 Too Many Requests: rate limited' });
    // RETRY_BASE_DELAY_MS is 20: only the Retry-After can make the wait a second.
    expect(Date.parse(f.nextRetryAt) - Date.parse(f.timestamp)).toBeGreaterThanOrEqual(1000);
    const done = await log.eventually(of('agent:completed', 'busy'));
    expect(done.data).toMatchObject({ attempt: 2 });
    expect(fake.requests).toHaveLength(2);
  });

  it('a 500 is retried by the policy', async () => {
    await using fake = await startFakeOpenAI((_req, n) => (n === 1 ? { status: 500, body: 'overloaded' } : { chunks: ['ok'] }));
    await using s = await startServer({ env: ENV });
    using log = recordEvents(s.app.scheduler.events);
    await s.call('POST', '/api/agents', { body: llmAgent('flaky', fake.baseUrl) });
    await s.call('POST', '/api/agents/flaky/run');
    expect((await log.eventually(of('agent:failed', 'flaky'))).data).toMatchObject({ attempt: 1, willRetry: true, error: 'llm answered 500 Internal Server Error' }); // a plain-text body is never quoted
    expect((await log.eventually(of('agent:completed', 'flaky'))).data).toMatchObject({ attempt: 2 });
    expect(fake.requests.map((r) => r.body.messages[0].content)).toEqual(['Write about Agent flaky, attempt 1', 'Write about Agent flaky, attempt 2']);
  });

  it('a 400 fails the run without retries, and the schedule goes on', async () => {
    await using fake = await startFakeOpenAI({ status: 400, body: '{"error":{"message":"unknown model"}}' });
    await using s = await startServer({ env: ENV });
    using log = recordEvents(s.app.scheduler.events);
    await s.call('POST', '/api/agents', { body: llmAgent('wrong', fake.baseUrl) });
    expect((await s.call('POST', '/api/agents/wrong/schedule', { body: { cronExpression: '0 0 1 1 *' } })).status).toBe(201);
    await s.call('POST', '/api/agents/wrong/run');
    const failed = await log.eventually(of('agent:failed', 'wrong'));
    expect(failed.data).toMatchObject({ attempt: 1, willRetry: false, nextRetryAt: null, error: 'llm answered 400 Bad Request: unknown model' });
    const schedule = await s.call('GET', '/api/agents/wrong/schedule');
    expect(schedule.body.data).toMatchObject({ scheduleEnabled: true, nextRunAt: expect.any(String), taskDetails: { isPaused: false } });
    const runs = await s.call('GET', '/api/agents/wrong/runs');
    expect(runs.body.data).toHaveLength(1);
    expect(fake.requests).toHaveLength(1);
  });

  it('a missing key variable fails the run naming it, without retries or a request', async () => {
    await using fake = await startFakeOpenAI({});
    await using s = await startServer({ env: ENV });
    using log = recordEvents(s.app.scheduler.events);
    await s.call('POST', '/api/agents', { body: llmAgent('nokey', fake.baseUrl, { apiKeyEnv: 'NOT_SET_ANYWHERE' }) });
    await s.call('POST', '/api/agents/nokey/run');
    expect((await log.eventually(of('agent:failed', 'nokey'))).data).toMatchObject({
      willRetry: false,
      error: 'environment variable NOT_SET_ANYWHERE is not set (config.apiKeyEnv)',
    });
    expect(fake.requests).toHaveLength(0);
  });

  it('never shows the key: not in any answer, event or log line, even when the server echoes it', async () => {
    // The first attempt's error body and the second attempt's text both quote the key.
    await using fake = await startFakeOpenAI((req, n) =>
      n === 1
        ? { status: 500, body: JSON.stringify({ error: { message: `bad gateway for ${String(req.headers['authorization'])}` } }) }
        : { chunks: ['you sent ', KEY.slice(0, 8), KEY.slice(8), ' as your key'] });
    const lines: string[] = [];
    const line = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push(`${level} ${message} ${JSON.stringify(fields ?? {})}`);
    const logger: Logger = { info: line('info'), warn: line('warn'), error: line('error') };
    await using s = await startServer({ env: ENV, logger });
    const { call, bodies } = watchAnswers(s);
    using log = recordEvents(s.app.scheduler.events);
    await call('POST', '/api/agents', { body: llmAgent('leaky', fake.baseUrl) });
    await call('POST', '/api/agents/leaky/run');
    const failed = await log.eventually(of('agent:failed', 'leaky'));
    expect(failed.data).toMatchObject({ willRetry: true, error: 'llm answered 500 Internal Server Error: bad gateway for Bearer [redacted]' });
    const completed = await log.eventually(of('agent:completed', 'leaky'));
    const run = await call('GET', `/api/runs/${(completed.data as { runId: string }).runId}`);
    expect(run.body.data.output).toBe('you sent [redacted] as your key');
    await call('GET', `/api/runs/${(failed.data as { runId: string }).runId}`);
    await call('GET', '/api/agents/leaky/runs');
    await call('GET', '/api/agents/leaky');
    await call('GET', '/api/agents');

    expect(fake.requests.map((r) => r.headers['authorization'])).toEqual([`Bearer ${KEY}`, `Bearer ${KEY}`]);
    expect(log.events.some((e) => e.type === 'agent:progress')).toBe(true);
    for (const b of bodies) expect(b).not.toContain(KEY);
    for (const e of log.events) expect(JSON.stringify(e)).not.toContain(KEY);
    for (const l of lines) expect(l).not.toContain(KEY);
  });

  it('keeps the key out of answers when it is read back through the REST API', async () => {
    await using fake = await startFakeOpenAI({ status: 401, body: JSON.stringify({ error: { message: `invalid key ${KEY}` } }) });
    await using s = await startServer({ env: ENV });
    const { call, bodies } = watchAnswers(s);
    using log = recordEvents(s.app.scheduler.events);
    await call('POST', '/api/agents', { body: llmAgent('denied', fake.baseUrl) });
    const { runId } = (await call('POST', '/api/agents/denied/run')).body.data;
    expect((await log.eventually(of('agent:failed', 'denied'))).data).toMatchObject({ willRetry: false, error: 'llm answered 401 Unauthorized: invalid key [redacted]' });
    await call('GET', `/api/runs/${runId}`);
    await call('GET', '/api/agents/denied/runs');
    await call('GET', '/api/agents/denied');
    for (const b of bodies) expect(b).not.toContain(KEY);
  });
});
