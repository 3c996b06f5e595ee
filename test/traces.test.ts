import { SpanKind, SpanStatusCode, trace } from '@opentelemetry/api';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor, type ReadableSpan } from '@opentelemetry/sdk-trace-base';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { StoredEvent } from '../src/schemas/events.ts';
import { startFakeOpenAI } from './fake-openai.ts';
import { recordEvents, startServer } from './harness.ts';

/**
 * A span per run through `@opentelemetry/api` (README "Traces"): with an SDK registered globally, as a host's
 * preload does, each run this instance runs is one `invoke_agent` span with the GenAI attribute names.
 */

// A fresh exporter per test: shutting a provider down shuts its exporter too.
let exporter: InMemorySpanExporter;
let provider: BasicTracerProvider;
beforeEach(() => {
  exporter = new InMemorySpanExporter();
  provider = new BasicTracerProvider({ spanProcessors: [new SimpleSpanProcessor(exporter)] });
  trace.setGlobalTracerProvider(provider);
});
afterEach(async () => {
  trace.disable();
  await provider.shutdown();
});

const of = (type: StoredEvent['type'], agentId: string) => (e: StoredEvent) => e.type === type && e.agentId === agentId;
const spansOf = (runId: string) => exporter.getFinishedSpans().filter((s) => s.attributes['scheduler.run.id'] === runId);
const ms = ([s, ns]: ReadableSpan['startTime']) => s * 1000 + ns / 1e6;

describe('traces', () => {
  it('a run is one invoke_agent span from its startedAt to its finishedAt, with the run’s attributes', async () => {
    await using s = await startServer();
    using log = recordEvents(s.app.scheduler.events);
    expect((await s.call('POST', '/api/agents', { body: { id: 'tracer-1', name: 'Nightly digest', handler: 'demo', config: { steps: 1, stepMs: 0 } } })).status).toBe(201);
    const { runId } = (await s.call('POST', '/api/agents/tracer-1/run')).body.data;
    await log.eventually(of('agent:completed', 'tracer-1'));
    const run = (await s.call('GET', `/api/runs/${runId}`)).body.data;

    const spans = spansOf(runId);
    expect(spans).toHaveLength(1);
    const span = spans[0]!;
    expect(span.name).toBe('invoke_agent Nightly digest');
    expect(span.kind).toBe(SpanKind.INTERNAL);
    expect(span.attributes).toMatchObject({
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.agent.id': 'tracer-1',
      'gen_ai.agent.name': 'Nightly digest',
      'scheduler.agent.handler': 'demo',
      'scheduler.run.id': runId,
      'scheduler.job.id': run.jobId,
      'scheduler.run.trigger': 'manual',
      'scheduler.run.attempt': 1,
      'scheduler.run.outcome': 'completed',
      'scheduler.run.will_retry': false,
    });
    expect(span.status.code).toBe(SpanStatusCode.UNSET);
    expect(ms(span.startTime)).toBe(Date.parse(run.startedAt));
    expect(ms(span.endTime)).toBe(Date.parse(run.finishedAt));
  });

  it('an llm run’s span carries the GenAI request and usage attributes, and no prompt, system text or key', async () => {
    const KEY = 'sk-trace-secret-0123456789';
    await using fake = await startFakeOpenAI({ tokens: 3, usage: { prompt_tokens: 42, completion_tokens: 3 } });
    await using s = await startServer({ env: { LLM_ALLOWED_HOSTS: '127.0.0.1', MY_KEY: KEY } });
    using log = recordEvents(s.app.scheduler.events);
    const config = { baseUrl: fake.baseUrl, model: 'fake-model', prompt: 'Secret plan for {{agentName}}', system: 'You are covert', maxTokens: 64, temperature: 0.2, apiKeyEnv: 'MY_KEY' };
    expect((await s.call('POST', '/api/agents', { body: { id: 'llm-1', name: 'Writer', handler: 'llm', config } })).status).toBe(201);
    const { runId } = (await s.call('POST', '/api/agents/llm-1/run')).body.data;
    await log.eventually(of('agent:completed', 'llm-1'));

    const [span] = spansOf(runId);
    expect(span?.name).toBe('invoke_agent Writer');
    expect(span!.attributes).toMatchObject({
      'gen_ai.operation.name': 'invoke_agent',
      'gen_ai.provider.name': 'openai',
      'gen_ai.system': 'openai',
      'gen_ai.request.model': 'fake-model',
      'gen_ai.request.max_tokens': 64,
      'gen_ai.request.temperature': 0.2,
      'gen_ai.response.model': 'fake-model',
      'gen_ai.usage.input_tokens': 42,
      'gen_ai.usage.output_tokens': 3,
      'server.address': '127.0.0.1',
      'server.port': Number(new URL(fake.baseUrl).port),
    });
    const values = JSON.stringify(Object.values(span!.attributes));
    for (const secret of [KEY, 'MY_KEY', 'Secret plan', 'You are covert']) expect(values).not.toContain(secret);
  });

  it('a failed run’s span has status ERROR with the error text; its retry is a span of its own', async () => {
    await using s = await startServer({ env: { RETRY_BASE_DELAY_MS: '20' } });
    using log = recordEvents(s.app.scheduler.events);
    expect((await s.call('POST', '/api/agents', { body: { id: 'flaky-2', name: 'Flaky', handler: 'demo', config: { steps: 1, stepMs: 0, failTimes: 1 } } })).status).toBe(201);
    const { runId } = (await s.call('POST', '/api/agents/flaky-2/run')).body.data;
    const retried = await log.eventually(of('agent:completed', 'flaky-2'));

    const [failed] = spansOf(runId);
    expect(failed!.status).toEqual({ code: SpanStatusCode.ERROR, message: 'demo failure (attempt 1)' });
    expect(failed!.attributes).toMatchObject({ 'scheduler.run.outcome': 'failed', 'scheduler.run.will_retry': true, 'scheduler.run.attempt': 1, 'error.type': '_OTHER' });
    const [retry] = spansOf((retried.data as { runId: string }).runId);
    expect(retry!.status.code).toBe(SpanStatusCode.UNSET);
    expect(retry!.attributes).toMatchObject({ 'scheduler.run.trigger': 'retry', 'scheduler.run.attempt': 2, 'scheduler.run.outcome': 'completed' });
  });
});
