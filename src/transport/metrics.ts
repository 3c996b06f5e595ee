import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import { DomainError, notFound } from '../core/errors.ts';
import { MAX_METRIC_MODEL_CHARS, MAX_METRIC_MODELS } from '../core/limits.ts';
import type { Logger } from '../core/logger.ts';
import type { RunObserver } from '../core/observer.ts';
import type { RunRecord } from '../core/store.ts';
import { RUN_TRIGGERS } from '../schemas/common.ts';
import type { SchedulerStats } from '../schemas/schedule.ts';
import { bearerToken } from '../services/auth.ts';
import { sendError } from './rest/reply.ts';

/**
 * `GET /metrics` (README "Metrics"): this instance's figures in the Prometheus text format, with prom-client.
 * Counts and histograms are fed by a RunObserver (core/observer.ts), which hears only this instance's own runs,
 * so a shared database never counts a run once per instance; gauges are read at scrape time.
 *
 * Each app has its own Registry (several apps run in one test process; prom-client's global one would mix them).
 * No label holds an agent id: agents are unbounded and chosen by callers. Model names are bounded instead
 * (MAX_METRIC_MODELS, then `other`).
 */
export interface MetricsOptions {
  /** This instance's scheduler figures (`scheduler.stats()`), read at each scrape. */
  stats: () => SchedulerStats;
  /** Live event connections by transport, read at each scrape. @default none (both 0) */
  subscribers?: () => { socketio: number; trpc: number };
  /** METRICS_TOKEN: when set, a scrape must send `Authorization: Bearer <token>`. @default open, like /healthz */
  token?: string | undefined;
  logger: Logger;
  /** @default MAX_METRIC_MODELS */
  maxModels?: number;
}

export type Metrics = ReturnType<typeof createMetrics>;

/** Agent runs last from a blink (a demo step) to the 15-minute default timeout and beyond: 50 ms … 1 h. */
const DURATION_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 900, 1800, 3600];
/** A healthy fire starts within milliseconds of its time; a backlog behind the concurrency limit, seconds: 1 ms … 60 s. */
const LATENESS_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];
const OUTCOMES = ['completed', 'failed', 'cancelled', 'skipped'] as const;
/**
 * Triggers whose `scheduledAt` is a promised time: a fire's slot, a catch-up's missed slot, a retry's due time.
 * A manual run's `scheduledAt` is when it was asked for, so its wait is queueing behind the concurrency limit
 * (seen in `scheduler_runs_queued`), not lateness; counting it would blur the figure operators alert on.
 */
const LATENESS_TRIGGERS: ReadonlySet<string> = new Set(['schedule', 'catchup', 'retry']);

/**
 * The process's own figures (CPU, memory, event loop, GC) are the same for every app in a process: they are
 * collected once, in a registry of their own, rather than once per app (each collection adds a GC observer
 * and an event-loop monitor that live as long as the process). Created at the first scrape.
 */
let processRegistry: Registry | undefined;
function processMetrics(logger: Logger): Registry {
  if (processRegistry) return processRegistry;
  processRegistry = new Registry();
  try {
    collectDefaultMetrics({ register: processRegistry });
  } catch (err) {
    // A runtime without some of Node's process APIs (Deno's compatibility layer) keeps the scheduler's own metrics.
    logger.warn('process metrics are unavailable on this runtime', { error: err instanceof Error ? err.message : String(err) });
  }
  return processRegistry;
}

const digest = (s: string) => createHash('sha256').update(s).digest();

export function createMetrics({ stats, subscribers, token, logger, maxModels = MAX_METRIC_MODELS }: MetricsOptions) {
  const registry = new Registry();
  const registers = [registry];

  const runs = new Counter({ name: 'scheduler_runs_total', help: 'Runs this instance ended, by trigger and outcome.', labelNames: ['trigger', 'outcome'] as const, registers });
  // Every series exists from the start, so rate() and absent-series alerts work before the first run.
  for (const trigger of RUN_TRIGGERS) for (const outcome of OUTCOMES) runs.inc({ trigger, outcome }, 0);
  const duration = new Histogram({
    name: 'scheduler_run_duration_seconds', help: 'How long runs took, from start to end, by outcome.',
    labelNames: ['outcome'] as const, buckets: DURATION_BUCKETS, registers,
  });
  const lateness = new Histogram({
    name: 'scheduler_fire_lateness_seconds', help: 'Start time minus scheduled time of scheduled, catch-up and retry runs.',
    labelNames: ['trigger'] as const, buckets: LATENESS_BUCKETS, registers,
  });
  const retries = new Counter({ name: 'scheduler_retries_total', help: 'Failed runs this instance planned a retry for.', registers });
  const missed = new Counter({ name: 'scheduler_missed_fires_total', help: 'Fires found missed at start-up while no instance ran them.', registers });
  const tokens = new Counter({ name: 'scheduler_llm_tokens_total', help: 'Tokens runs reported using, by model and type (input|output).', labelNames: ['model', 'type'] as const, registers });
  const cost = new Counter({ name: 'scheduler_llm_cost_usd_total', help: 'USD runs reported or were priced at (LLM_PRICES), by model.', labelNames: ['model'] as const, registers });

  const gauge = (name: string, help: string, read: (s: SchedulerStats) => number) =>
    new Gauge({ name, help, registers, collect() { this.set(read(stats())); } });
  gauge('scheduler_runs_running', 'Runs this instance is running now.', (s) => s.runningAgentsCount);
  gauge('scheduler_runs_queued', 'Runs this instance holds waiting for a free slot or their due time.', (s) => s.queuedTasksCount);
  gauge('scheduler_schedules', 'Enabled schedules.', (s) => s.scheduledTasksCount);
  gauge('scheduler_paused_jobs', 'Paused schedules.', (s) => s.pausedJobsCount);
  new Gauge({
    name: 'scheduler_event_subscribers', help: 'Open event connections to this instance, by transport (socketio, trpc).',
    labelNames: ['transport'] as const, registers,
    collect() {
      const n = subscribers?.() ?? { socketio: 0, trpc: 0 };
      this.set({ transport: 'socketio' }, n.socketio);
      this.set({ transport: 'trpc' }, n.trpc);
    },
  });

  const models = new Set<string>();
  /** The label for a model: its name (cut to MAX_METRIC_MODEL_CHARS) for the first `maxModels` seen, then `other`. */
  function modelLabel(model: string): string {
    const name = model.slice(0, MAX_METRIC_MODEL_CHARS);
    if (models.has(name)) return name;
    if (models.size >= maxModels) return 'other';
    models.add(name);
    return name;
  }

  function countUsage(run: Readonly<RunRecord>): void {
    if (run.usageModel === null) return;
    const model = modelLabel(run.usageModel);
    if (run.inputTokens !== null) tokens.inc({ model, type: 'input' }, run.inputTokens);
    if (run.outputTokens !== null) tokens.inc({ model, type: 'output' }, run.outputTokens);
    if (run.costUsd !== null) cost.inc({ model }, run.costUsd);
  }

  const observer: RunObserver = {
    runStarted(run) {
      if (run.startedAt !== null && LATENESS_TRIGGERS.has(run.trigger)) {
        // A run taken a hair before its time (clock skew between instances) is on time, not early.
        lateness.observe({ trigger: run.trigger }, Math.max(0, run.startedAt - run.scheduledAt) / 1000);
      }
    },
    runEnded(run, _agent, retryAt) {
      runs.inc({ trigger: run.trigger, outcome: run.status });
      if (run.durationMs !== null) duration.observe({ outcome: run.status }, run.durationMs / 1000);
      if (retryAt !== null) retries.inc();
      countUsage(run);
    },
    runSkipped(run) {
      runs.inc({ trigger: run.trigger, outcome: 'skipped' });
    },
    firesMissed(_agentId, count) {
      missed.inc(count);
    },
  };

  const expected = token === undefined ? undefined : digest(token);
  /** Compares digests, so the time taken says nothing about the token's length or its first differing byte. */
  const authorized = (header: string | undefined) => {
    if (!expected) return true;
    const given = bearerToken(header);
    return given !== null && timingSafeEqual(digest(given), expected);
  };

  let processFailed = false;
  /** The process's figures; one that cannot be read on this runtime leaves them out instead of failing the scrape. */
  const processText = () => processMetrics(logger).metrics().catch((err: unknown) => {
    if (!processFailed) logger.warn('process metrics could not be read; /metrics leaves them out', { error: err instanceof Error ? err.message : String(err) });
    processFailed = true;
    return '';
  });

  /** The `/metrics` mount: GET or HEAD of exactly `/metrics`. */
  async function handle(req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> {
    try {
      if (url.pathname !== '/metrics') throw notFound(`No route for ${req.method} ${url.pathname}`);
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.setHeader('allow', 'GET, HEAD');
        throw new DomainError('METHOD_NOT_ALLOWED', `Method ${req.method} is not allowed on /metrics (allowed: GET, HEAD)`);
      }
      if (!authorized(req.headers.authorization)) {
        throw new DomainError('UNAUTHORIZED', 'Missing or invalid metrics token: send Authorization: Bearer <METRICS_TOKEN>');
      }
      const [own, proc] = await Promise.all([registry.metrics(), processText()]);
      const body = `${own.trimEnd()}\n\n${proc.trimEnd()}\n`;
      res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : body);
    } catch (err) {
      sendError(res, err, logger);
    }
  }

  return { registry, observer, handle };
}
