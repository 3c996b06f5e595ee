import { io as connect } from 'socket.io-client';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import type { StoredEvent } from '../src/schemas/events.ts';
import { startFakeOpenAI } from './fake-openai.ts';
import { createMetrics } from '../src/transport/metrics.ts';
import { silentLogger } from '../src/core/logger.ts';
import type { RunRecord } from '../src/core/store.ts';
import { recordEvents, startServer, testConfig, type TestServer } from './harness.ts';

/**
 * `GET /metrics` (CONTRACT §10, README "Metrics"): the Prometheus text format, read by a strict parser below;
 * counters and histograms that move with this instance's runs; gauges read at scrape time; METRICS_TOKEN; and
 * no label value that is an agent id.
 */

interface Sample { name: string; labels: Record<string, string>; value: number }
interface Family { type: string; help: string; samples: Sample[] }

const NAME = '[a-zA-Z_:][a-zA-Z0-9_:]*';
const LABEL = `[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\\\\n]|\\\\["\\\\n])*"`;
const VALUE = '[+-]?(?:[Ii][Nn][Ff]|[Nn][Aa][Nn]|[0-9]*\\.?[0-9]+(?:[eE][+-]?[0-9]+)?)';
const SAMPLE = new RegExp(`^(${NAME})(?:\\{((?:${LABEL})(?:,${LABEL})*)?,?\\})? (${VALUE})(?: -?[0-9]+)?$`);
const SUFFIXES: Record<string, string[]> = { histogram: ['_bucket', '_sum', '_count'], summary: ['', '_sum', '_count'], counter: [''], gauge: [''], untyped: [''] };

/**
 * The text exposition format, strictly: every line is a HELP, a TYPE or a sample; HELP and TYPE come once per
 * family and before its samples; each sample belongs to the family declared last (with the type's suffixes).
 */
function parseExposition(text: string): Map<string, Family> {
  const families = new Map<string, Family>();
  let current: string | undefined;
  expect(text.endsWith('\n'), 'the text ends with a line feed').toBe(true);
  for (const line of text.slice(0, -1).split('\n')) {
    if (line === '') continue;
    const meta = /^# (HELP|TYPE) (\S+) (.*)$/.exec(line);
    if (meta) {
      const [, kind, name, rest] = meta as unknown as [string, 'HELP' | 'TYPE', string, string];
      expect(name, line).toMatch(new RegExp(`^${NAME}$`));
      const f = families.get(name) ?? { type: 'untyped', help: '', samples: [] };
      if (kind === 'TYPE') {
        expect(rest, line).toMatch(/^(counter|gauge|histogram|summary|untyped)$/);
        expect(f.samples, `TYPE of ${name} before its samples`).toEqual([]);
        f.type = rest;
      } else f.help = rest;
      families.set(name, f);
      current = name;
      continue;
    }
    expect(line.startsWith('#'), `no other comment lines: ${line}`).toBe(false);
    const m = SAMPLE.exec(line);
    expect(m, `a sample line: ${line}`).not.toBeNull();
    const [, name, labelText = '', value] = m!;
    const family = current === undefined ? undefined : families.get(current);
    expect(family && SUFFIXES[family.type]!.some((s) => `${current}${s}` === name), `${name} belongs to ${current}`).toBe(true);
    const labels: Record<string, string> = {};
    for (const [, k, v] of labelText.matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[k!] = v!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
    family!.samples.push({ name: name!, labels, value: Number(value!.replace(/inf/i, 'Infinity').replace(/nan/i, 'NaN')) });
  }
  return families;
}

async function scrape(s: TestServer, headers: Record<string, string> = {}) {
  const res = await fetch(`${s.url}/metrics`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parseExposition(await res.text());
}

/** The value of the one sample of `name` whose labels include `labels`. */
function value(families: Map<string, Family>, name: string, labels: Record<string, string> = {}): number {
  const family = [...families.entries()].find(([n, f]) => f.samples.some((x) => x.name === name) && name.startsWith(n))?.[1];
  const found = (family?.samples ?? []).filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
  expect(found, `${name}${JSON.stringify(labels)}`).toHaveLength(1);
  return found[0]!.value;
}

const of = (type: StoredEvent['type'], agentId: string) => (e: StoredEvent) => e.type === type && e.agentId === agentId;
const demo = (id: string, config: Record<string, unknown>) => ({ id, name: `Agent ${id}`, handler: 'demo', config });

describe('GET /metrics', () => {
  it('is Prometheus text with every metric CONTRACT §10 names, the process defaults, and zeroed run counters', async () => {
    await using s = await startServer();
    const families = await scrape(s);
    const expected: Record<string, string> = {
      scheduler_runs_total: 'counter', scheduler_run_duration_seconds: 'histogram', scheduler_fire_lateness_seconds: 'histogram',
      scheduler_runs_running: 'gauge', scheduler_runs_queued: 'gauge', scheduler_schedules: 'gauge', scheduler_paused_jobs: 'gauge',
      scheduler_retries_total: 'counter', scheduler_missed_fires_total: 'counter', scheduler_llm_tokens_total: 'counter',
      scheduler_llm_cost_usd_total: 'counter', scheduler_event_subscribers: 'gauge',
      process_cpu_user_seconds_total: 'counter', process_resident_memory_bytes: 'gauge', nodejs_heap_size_used_bytes: 'gauge',
    };
    for (const [name, type] of Object.entries(expected)) expect(families.get(name)?.type, name).toBe(type);
    expect(value(families, 'scheduler_runs_total', { trigger: 'schedule', outcome: 'completed' })).toBe(0);
    expect(value(families, 'scheduler_event_subscribers', { transport: 'socketio' })).toBe(0);
    expect(value(families, 'scheduler_event_subscribers', { transport: 'trpc' })).toBe(0);
    // A HEAD answers the headers only; another method is a 405 in the JSON envelope.
    expect((await fetch(`${s.url}/metrics`, { method: 'HEAD' })).status).toBe(200);
    const post = await fetch(`${s.url}/metrics`, { method: 'POST' });
    expect(post.status).toBe(405);
    expect(await post.json()).toEqual({ success: false, error: 'Method POST is not allowed on /metrics (allowed: GET, HEAD)' });
  });

  it('counts completed, failed-then-retried, cancelled and skipped runs, with durations and lateness; no label is an agent id', async () => {
    await using s = await startServer({ env: { RETRY_BASE_DELAY_MS: '20' } });
    using log = recordEvents(s.app.scheduler.events);
    const ids = ['quick-one', 'flaky-one', 'slow-one'];
    expect((await s.call('POST', '/api/agents', { body: demo('quick-one', { steps: 1, stepMs: 0 }) })).status).toBe(201);
    expect((await s.call('POST', '/api/agents', { body: demo('flaky-one', { steps: 1, stepMs: 0, failTimes: 1 }) })).status).toBe(201);
    expect((await s.call('POST', '/api/agents', { body: demo('slow-one', { steps: 1, stepMs: 600_000 }) })).status).toBe(201);

    expect((await s.call('POST', '/api/agents/quick-one/run')).status).toBe(202);
    await log.eventually(of('agent:completed', 'quick-one'));
    expect((await s.call('POST', '/api/agents/flaky-one/run')).status).toBe(202);
    await log.eventually(of('agent:completed', 'flaky-one')); // its retry
    const slow = await s.call('POST', '/api/agents/slow-one/run');
    await log.eventually(of('agent:started', 'slow-one'));
    // A second manual run while the first goes is recorded skipped.
    const busy = await s.call('POST', '/api/agents/slow-one/run');
    expect((await s.call('GET', `/api/runs/${busy.body.data.runId}`)).body.data.status).toBe('skipped');

    const during = await scrape(s);
    expect(value(during, 'scheduler_runs_running')).toBe(1);
    expect(value(during, 'scheduler_runs_queued')).toBe(0);

    expect((await s.call('POST', `/api/runs/${slow.body.data.runId}/cancel`)).status).toBe(200);
    await log.eventually(of('agent:cancelled', 'slow-one'));

    const f = await scrape(s);
    expect(value(f, 'scheduler_runs_total', { trigger: 'manual', outcome: 'completed' })).toBe(1);
    expect(value(f, 'scheduler_runs_total', { trigger: 'manual', outcome: 'failed' })).toBe(1);
    expect(value(f, 'scheduler_runs_total', { trigger: 'retry', outcome: 'completed' })).toBe(1);
    expect(value(f, 'scheduler_runs_total', { trigger: 'manual', outcome: 'cancelled' })).toBe(1);
    expect(value(f, 'scheduler_runs_total', { trigger: 'manual', outcome: 'skipped' })).toBe(1);
    expect(value(f, 'scheduler_retries_total')).toBe(1);
    expect(value(f, 'scheduler_runs_running')).toBe(0);
    // Four runs ran (the skipped one never did): each has a duration, by its outcome.
    expect(value(f, 'scheduler_run_duration_seconds_count', { outcome: 'completed' })).toBe(2);
    expect(value(f, 'scheduler_run_duration_seconds_count', { outcome: 'failed' })).toBe(1);
    expect(value(f, 'scheduler_run_duration_seconds_count', { outcome: 'cancelled' })).toBe(1);
    expect(value(f, 'scheduler_run_duration_seconds_bucket', { outcome: 'completed', le: '+Inf' })).toBe(2);
    // Lateness counts the retry (a promised time), not the manual runs (their wait is queueing).
    expect(value(f, 'scheduler_fire_lateness_seconds_count', { trigger: 'retry' })).toBe(1);
    expect(f.get('scheduler_fire_lateness_seconds')!.samples.some((x) => x.labels['trigger'] === 'manual')).toBe(false);

    const labelValues = [...f.values()].flatMap((fam) => fam.samples.flatMap((x) => Object.values(x.labels)));
    for (const id of ids) expect(labelValues).not.toContain(id);
  });

  it('reads the schedule and pause gauges from the scheduler at scrape time', async () => {
    await using s = await startServer();
    const jobs: Record<string, string> = {};
    for (const id of ['cron-a', 'cron-b']) {
      expect((await s.call('POST', '/api/agents', { body: demo(id, { steps: 1, stepMs: 0 }) })).status).toBe(201);
      const set = await s.call('POST', `/api/agents/${id}/schedule`, { body: { cronExpression: '0 0 1 1 *' } });
      expect(set.status).toBe(201);
      jobs[id] = set.body.data.jobId;
    }
    const before = await scrape(s);
    expect(value(before, 'scheduler_schedules')).toBe(2);
    expect(value(before, 'scheduler_paused_jobs')).toBe(0);
    expect((await s.call('PATCH', `/api/agents/cron-b/schedule/${jobs['cron-b']}/pause`)).status).toBe(200);
    expect((await s.call('DELETE', '/api/agents/cron-a/schedule')).status).toBe(200);
    const after = await scrape(s);
    expect(value(after, 'scheduler_paused_jobs')).toBe(1);
    expect(value(after, 'scheduler_schedules')).toBe(s.app.scheduler.stats().scheduledTasksCount);
    expect(value(after, 'scheduler_schedules')).toBeLessThan(2);
  });

  it('counts an llm run’s tokens by type and its cost by model', async () => {
    await using fake = await startFakeOpenAI({ tokens: 5, usage: { prompt_tokens: 1200, completion_tokens: 50 } });
    await using s = await startServer({ env: { LLM_PRICES: '{"fake-model":{"inputPerMTok":2.5,"outputPerMTok":10}}', LLM_ALLOWED_HOSTS: '127.0.0.1' } });
    using log = recordEvents(s.app.scheduler.events);
    const agent = { id: 'writer-x', name: 'Writer', handler: 'llm', config: { baseUrl: fake.baseUrl, model: 'fake-model', prompt: 'Hi' } };
    expect((await s.call('POST', '/api/agents', { body: agent })).status).toBe(201);
    expect((await s.call('POST', '/api/agents/writer-x/run')).status).toBe(202);
    await log.eventually(of('agent:completed', 'writer-x'));
    const f = await scrape(s);
    expect(value(f, 'scheduler_llm_tokens_total', { model: 'fake-model', type: 'input' })).toBe(1200);
    expect(value(f, 'scheduler_llm_tokens_total', { model: 'fake-model', type: 'output' })).toBe(50);
    expect(value(f, 'scheduler_llm_cost_usd_total', { model: 'fake-model' })).toBeCloseTo((1200 * 2.5 + 50 * 10) / 1e6, 12);
  });

  it('with METRICS_TOKEN answers only that bearer token: none, a wrong one or an API token is a 401', async () => {
    const token = 'metrics-token-0123456789';
    await using s = await startServer({ env: { METRICS_TOKEN: token } });
    const refused = async (headers: Record<string, string>) => {
      const res = await fetch(`${s.url}/metrics`, { headers });
      expect(res.status).toBe(401);
      expect(res.headers.get('www-authenticate')).toBe('Bearer');
      expect(await res.json()).toEqual({ success: false, error: 'Missing or invalid metrics token: send Authorization: Bearer <METRICS_TOKEN>' });
    };
    await refused({});
    await refused({ authorization: `Bearer ${await s.token('admin', 'admin')}` });
    await refused({ authorization: `Bearer ${token}x` });
    await refused({ authorization: token });
    const f = await scrape(s, { authorization: `Bearer ${token}` });
    expect(f.get('scheduler_runs_total')?.type).toBe('counter');
  });

  it('counts the open Socket.IO and tRPC WebSocket connections', async () => {
    await using s = await startServer();
    const socket = connect(s.url, { auth: { token: await s.token() }, transports: ['websocket'], reconnection: false });
    const connected = new Promise<void>((resolve, reject) => socket.on('connect', resolve).on('connect_error', reject));
    const ws = new WebSocket(`${s.url.replace(/^http/, 'ws')}/trpc`);
    const opened = new Promise<void>((resolve, reject) => ws.on('open', resolve).on('error', reject));
    try {
      // The server counts each connection before its handshake answer leaves, so both count once open here.
      await Promise.all([connected, opened]);
      const f = await scrape(s);
      expect(value(f, 'scheduler_event_subscribers', { transport: 'socketio' })).toBe(1);
      expect(value(f, 'scheduler_event_subscribers', { transport: 'trpc' })).toBe(1);
    } finally {
      socket.close();
      ws.close();
    }
  });
  it('refuses a short METRICS_TOKEN at start without echoing it', () => {
    expect(() => testConfig({ METRICS_TOKEN: 'short secret' })).toThrow(
      'Invalid environment variable METRICS_TOKEN: expected at least 16 characters, without spaces, got a value of 12 bytes',
    );
  });

  it('labels at most maxModels distinct models; usage of any further model is counted as "other"', async () => {
    const idle = { isRunning: true, scheduledTasksCount: 0, runningAgentsCount: 0, queuedTasksCount: 0, maxConcurrentAgents: 1, pausedJobsCount: 0 };
    const metrics = createMetrics({ stats: () => idle, logger: silentLogger, maxModels: 2 });
    const run = (model: string) => ({ id: `r-${model}`, trigger: 'manual', status: 'completed', durationMs: 5, usageModel: model, inputTokens: 10, outputTokens: 1, costUsd: null }) as RunRecord;
    for (const model of ['m-1', 'm-2', 'm-3', 'm-4', 'm-1']) metrics.observer.runEnded!(run(model), undefined, null);
    const tokens = (await metrics.registry.getSingleMetric('scheduler_llm_tokens_total')!.get()).values.filter((v) => v.labels['type'] === 'input');
    expect(Object.fromEntries(tokens.map((v) => [v.labels['model'], v.value]))).toEqual({ 'm-1': 20, 'm-2': 10, other: 20 });
  });
});
