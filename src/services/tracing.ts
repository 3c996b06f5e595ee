import { SpanKind, SpanStatusCode, trace, type Attributes, type Span } from '@opentelemetry/api';
import type { RunObserver } from '../core/observer.ts';
import type { AgentRecord, RunRecord } from '../core/store.ts';

/**
 * A span per run (README "Traces") through `@opentelemetry/api`: a no-op until the host registers an SDK (a
 * preload such as `node --import ./otel.mjs`), so the scheduler carries no exporter and costs nothing by default.
 *
 * Spans follow the OpenTelemetry GenAI conventions for agents: an `invoke_agent {agent name}` span of kind
 * INTERNAL (the agent runs in this process), `gen_ai.agent.*`, and for `llm` agents the request and usage
 * attributes (`gen_ai.request.model`, `gen_ai.usage.input_tokens` …). What is the scheduler's own is under
 * `scheduler.*`. A run's span starts at its `startedAt` and ends at its `finishedAt`; a run that never started
 * (skipped, or cancelled while queued) has none.
 *
 * Nothing from an agent's config goes in beyond the model and its limits: no prompt, system text, headers or
 * key variable name, so no secret can reach a trace backend.
 */
export interface TracingOptions {
  /** The instrumentation scope the spans carry. @default 'agent-scheduler' */
  name?: string;
  /** @default undefined */
  version?: string;
}

/** What the `llm` handler speaks: OpenAI's chat completions API, whichever server answers it. */
const LLM_PROVIDER = 'openai';

const str = (v: unknown): string | undefined => (typeof v === 'string' && v !== '' ? v : undefined);
const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined);

/** The request attributes of an `llm` agent's run, from its saved (parsed) config; the URL's host and port only. */
function llmAttributes(agent: Readonly<AgentRecord>): Attributes {
  const c = agent.config;
  const attributes: Attributes = {
    'gen_ai.provider.name': LLM_PROVIDER,
    // The name before semantic conventions 1.37, still what many backends read.
    'gen_ai.system': LLM_PROVIDER,
    'gen_ai.request.model': str(c['model']),
    'gen_ai.request.max_tokens': num(c['maxTokens']),
    'gen_ai.request.temperature': num(c['temperature']),
  };
  try {
    const url = new URL(String(c['baseUrl']));
    attributes['server.address'] = url.hostname;
    attributes['server.port'] = url.port === '' ? (url.protocol === 'https:' ? 443 : 80) : Number(url.port);
  } catch {
    // A config saved before its URL was checked: no server attributes.
  }
  return attributes;
}

function startAttributes(run: Readonly<RunRecord>, agent: Readonly<AgentRecord>): Attributes {
  return {
    'gen_ai.operation.name': 'invoke_agent',
    'gen_ai.agent.id': agent.id,
    'gen_ai.agent.name': agent.name,
    'scheduler.agent.handler': agent.handler,
    'scheduler.run.id': run.id,
    'scheduler.job.id': run.jobId,
    'scheduler.run.trigger': run.trigger,
    'scheduler.run.attempt': run.attempt,
    ...(agent.handler === 'llm' && llmAttributes(agent)),
  };
}

export function createTracingObserver({ name = 'agent-scheduler', version }: TracingOptions = {}): RunObserver {
  /** Spans of the runs this instance is running, by run id. */
  const open = new Map<string, Span>();
  return {
    runStarted(run, agent) {
      // The tracer is asked for at each run: a provider the host registers (or replaces) later is used from then on.
      const tracer = trace.getTracer(name, version);
      const span = tracer.startSpan(`invoke_agent ${agent.name}`, {
        kind: SpanKind.INTERNAL,
        startTime: run.startedAt ?? undefined,
        attributes: startAttributes(run, agent),
      });
      open.set(run.id, span);
    },
    runEnded(run, _agent, retryAt) {
      const span = open.get(run.id);
      if (!span) return;
      open.delete(run.id);
      span.setAttributes({
        'scheduler.run.outcome': run.status,
        'scheduler.run.will_retry': retryAt !== null,
        ...(run.usageModel !== null && {
          'gen_ai.response.model': run.usageModel,
          'gen_ai.usage.input_tokens': run.inputTokens ?? undefined,
          'gen_ai.usage.output_tokens': run.outputTokens ?? undefined,
          'scheduler.usage.cost_usd': run.costUsd ?? undefined,
        }),
      });
      if (run.status === 'failed') {
        // `_OTHER`: the conventions' value when no low-cardinality error class is known; the text is in the status.
        span.setAttribute('error.type', '_OTHER');
        span.setStatus({ code: SpanStatusCode.ERROR, message: run.error ?? 'failed' });
      }
      span.end(run.finishedAt ?? undefined);
    },
  };
}
