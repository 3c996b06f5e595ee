import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { createLogger, CENSOR } from '../src/runtime/logger.ts';
import { startFakeOpenAI } from './fake-openai.ts';
import { nextEvent, startServer } from './harness.ts';

/**
 * Structured logs (CONTRACT §10 "Logs"): pino JSON lines (or readable ones), LOG_LEVEL, a line at each run's start
 * and end with agentId, runId, attempt and the outcome, requests at debug, and no token, key or secret in any line.
 */
function capture(options: Partial<Parameters<typeof createLogger>[0]> = {}) {
  const lines: string[] = [];
  const logger = createLogger({ write: (l) => lines.push(l), ...options });
  return { lines, logger, parsed: () => lines.map((l) => JSON.parse(l) as Record<string, unknown>) };
}

describe('logs', () => {
  it('are one JSON object per line with the time, the level as a word and the message; LOG_LEVEL filters', () => {
    const { logger, parsed } = capture({ level: 'warn' });
    logger.debug!('not shown', {});
    logger.info('not shown either');
    logger.warn('disk nearly full', { freeMb: 12 });
    logger.error('gave up');
    const [warn, error] = parsed();
    expect(parsed()).toHaveLength(2);
    expect(warn).toMatchObject({ level: 'warn', message: 'disk nearly full', freeMb: 12 });
    expect(Date.parse(warn!['time'] as string)).not.toBeNaN();
    expect(error).toMatchObject({ level: 'error', message: 'gave up' });
  });

  it('are readable lines in the pretty format', () => {
    const { logger, lines } = capture({ format: 'pretty' });
    logger.info('agent scheduler listening', { url: 'http://127.0.0.1:5000' });
    expect(lines).toHaveLength(1);
    expect(() => JSON.parse(lines[0]!)).toThrow();
    expect(lines[0]).toMatch(/^\[\d\d:\d\d:\d\d\.\d{3}\] INFO: agent scheduler listening/);
    expect(lines[0]).toContain('url: "http://127.0.0.1:5000"');
  });

  it('redact secret-bearing keys wherever a caller passes them', () => {
    const { logger, lines, parsed } = capture();
    logger.info('careless', {
      token: 'tok-1', authorization: 'Bearer tok-2', apiKey: 'key-3', nested: { secret: 'sec-4', password: 'pw-5' },
      config: { url: 'https://example.com', headers: { 'x-api-key': 'hdr-6' } }, deep: { one: { key: 'key-7' } },
    });
    for (const secret of ['tok-1', 'tok-2', 'key-3', 'sec-4', 'pw-5', 'hdr-6', 'key-7']) expect(lines[0]).not.toContain(secret);
    expect(parsed()[0]).toMatchObject({ token: CENSOR, apiKey: CENSOR, config: { url: 'https://example.com', headers: CENSOR } });
  });

  it("log each run's start and end, requests at debug, and never a token, key or webhook secret", async () => {
    const KEY = 'sk-live-logs-0123456789abcdef';
    const HOOK_SECRET = 'Bearer hook-secret-0123456789';
    await using fake = await startFakeOpenAI({ chunks: ['fine'], usage: { prompt_tokens: 5, completion_tokens: 1 } });
    const hook = createServer((_req, res) => res.end('ok'));
    await new Promise<void>((r) => hook.listen(0, '127.0.0.1', r));
    const { lines, parsed, logger } = capture({ level: 'debug' });
    try {
      await using s = await startServer({ env: { LOG_LEVEL: 'debug', LLM_ALLOWED_HOSTS: '127.0.0.1', LLM_KEY: KEY }, logger });
      const token = await s.token('alice');
      await s.call('POST', '/api/agents', { token, body: { id: 'writer', name: 'Writer', handler: 'llm', config: { baseUrl: fake.baseUrl, model: 'fake-model', prompt: 'hi', apiKeyEnv: 'LLM_KEY' } } });
      await s.call('POST', '/api/agents', { token, body: { id: 'hook', name: 'Hook', handler: 'webhook', config: { url: `http://127.0.0.1:${(hook.address() as AddressInfo).port}/x`, headers: { authorization: HOOK_SECRET } } } });
      for (const id of ['writer', 'hook']) {
        const done = nextEvent(s.app, (e) => e.type === 'agent:completed' && e.agentId === id);
        await s.call('POST', `/api/agents/${id}/run`, { token });
        await done;
      }
      await s.call('GET', '/api/agents/hook', { token });
      await s.call('GET', `/api/agents?token=${token}`, { token });

      const logs = parsed();
      const started = logs.filter((l) => l['message'] === 'run started');
      const ended = logs.filter((l) => l['message'] === 'run ended');
      expect(started.map((l) => l['agentId']).sort()).toEqual(['hook', 'writer']);
      expect(ended.find((l) => l['agentId'] === 'writer')).toMatchObject({ level: 'info', runId: expect.stringMatching(/^run_/), attempt: 1, outcome: 'completed', durationMs: expect.any(Number), usage: { model: 'fake-model', inputTokens: 5, outputTokens: 1 } });
      expect(ended.find((l) => l['agentId'] === 'hook')).toMatchObject({ outcome: 'completed', attempt: 1 });
      expect(started.find((l) => l['agentId'] === 'hook')!['runId']).toBe(ended.find((l) => l['agentId'] === 'hook')!['runId']);
      // A line per request, without its query string.
      expect(logs.filter((l) => l['message'] === 'request' && l['path'] === '/api/agents/hook')).toMatchObject([{ level: 'debug', method: 'GET', status: 200 }]);
      expect(logs.some((l) => l['message'] === 'request' && l['path'] === '/api/agents')).toBe(true);

      for (const line of lines) {
        expect(line).not.toContain(KEY);
        expect(line).not.toContain('hook-secret');
        expect(line).not.toContain(token);
      }
    } finally {
      await new Promise<void>((r) => hook.close(() => r()));
    }
  });

  it('write no request lines at info', async () => {
    const { parsed, logger } = capture();
    await using s = await startServer({ logger });
    await s.call('GET', '/api/agents');
    expect(parsed().filter((l) => l['message'] === 'request')).toEqual([]);
  });
});
