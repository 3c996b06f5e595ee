import type { z } from 'zod';
import { badRequest } from './errors.ts';
import type { Logger } from './logger.ts';

/** What a handler reports while it works; becomes an `agent:progress` event and the run's `progress`. */
export interface ProgressUpdate {
  /** 0–100. */
  progress: number;
  message?: string;
  currentStep?: string | number;
  totalSteps?: number;
  /** The text added since the previous update (an `llm` run's streamed tokens): carried on the event as `delta`. */
  delta?: string;
}

/** What a run used, as a handler reports it (`ctx.reportUsage`); `costUsd` left out is priced from LLM_PRICES. */
export interface UsageReport {
  model: string;
  inputTokens: number;
  outputTokens: number;
  /** @default computed from LLM_PRICES for `model`, else null */
  costUsd?: number | null;
}

/**
 * A failure that tells the retry policy what to do with it (CONTRACT §9): `retryable: false` fails the run
 * without retries while its schedule goes on (a `400` from a model server, a missing key); `retryAfterMs`
 * makes the next retry wait at least that long (a `429`'s `Retry-After`), never past RETRY_MAX_DELAY_MS.
 * Any other error a handler throws is retried by the policy.
 */
export class HandlerError extends Error {
  override name = 'HandlerError';
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  constructor(message: string, options: { retryable?: boolean; retryAfterMs?: number } = {}) {
    super(message);
    this.retryable = options.retryable ?? true;
    this.retryAfterMs = options.retryAfterMs;
  }
}

export interface HandlerContext<Config = Record<string, unknown>> {
  agentId: string;
  agentName: string;
  jobId: string;
  runId: string;
  /** 1 for the first try, 2 for the first retry, … */
  attempt: number;
  /** The run's scheduled instant (ms since epoch). */
  scheduledAt: number;
  config: Config;
  /** Fires on timeout, cancel, agent deletion and shutdown; `signal.reason` says which. */
  signal: AbortSignal;
  progress(update: ProgressUpdate): void;
  /** Records what the run used (the last report wins); priced from LLM_PRICES when `costUsd` is left out. */
  reportUsage(usage: UsageReport): void;
  /** The output of the agent's last completed run, or `''` (read only when asked: the `{{lastOutput}}` of templates). */
  lastOutput(): Promise<string>;
  log: Logger;
}

export interface HandlerDefinition<Config = Record<string, unknown>> {
  name: string;
  /** Validates an agent's `config` at create/update time; parse errors become a 400 naming the field. */
  config: z.ZodType<Config>;
  /** Extra checks beyond the schema (for example allowed webhook hosts); throw a DomainError to refuse. */
  check?(config: Config): void;
  /**
   * Does the work. What it resolves to is the run's `output`: a string as it is, anything else but
   * `undefined`/`null` JSON-serialised (at most 256 KiB of UTF-8 kept, `outputTruncated` beyond).
   */
  run(ctx: HandlerContext<Config>): Promise<unknown>;
}

/**
 * Declares a handler with its config type inferred from the schema, so `ctx.config` is typed in `run`:
 * `defineHandler({ name: 'summarise', config: z.object({ feed: z.url() }), run: async (ctx) => … })`.
 */
export function defineHandler<C>(def: HandlerDefinition<C>): HandlerDefinition<never> {
  return def as unknown as HandlerDefinition<never>;
}

export interface HandlerRegistry {
  register<C>(def: HandlerDefinition<C>): void;
  get(name: string): HandlerDefinition<unknown> | undefined;
  names(): string[];
  /** Validates `config` for `handler`; throws BAD_REQUEST naming `handler` or the config field. */
  parseConfig(handler: string, config: unknown): Record<string, unknown>;
}

export function createHandlerRegistry(defs: HandlerDefinition<never>[] = []): HandlerRegistry {
  const byName = new Map<string, HandlerDefinition<unknown>>();
  const registry: HandlerRegistry = {
    register(def) {
      if (!/^[A-Za-z0-9_.:-]{1,100}$/.test(def.name)) throw new Error(`handler name "${def.name}" is not valid`);
      byName.set(def.name, def as HandlerDefinition<unknown>);
    },
    get: (name) => byName.get(name),
    names: () => [...byName.keys()],
    parseConfig(handler, config) {
      const def = byName.get(handler);
      if (!def) throw badRequest(`handler: unknown handler "${handler}" (expected one of ${[...byName.keys()].map((n) => `"${n}"`).join(', ')})`);
      const parsed = def.config.safeParse(config ?? {});
      if (!parsed.success) {
        const issue = parsed.error.issues[0]!;
        const path = ['config', ...issue.path.map(String)].join('.');
        throw badRequest(`${path}: ${issue.message}`);
      }
      def.check?.(parsed.data);
      return parsed.data as Record<string, unknown>;
    },
  };
  for (const def of defs) registry.register(def as HandlerDefinition<unknown>);
  return registry;
}
