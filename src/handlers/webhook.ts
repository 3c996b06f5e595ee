import { z } from 'zod';
import { HandlerError, type HandlerDefinition, type ProgressUpdate, type UsageReport } from '../core/handlers.ts';
import { MAX_ANSWER_BYTES, OUTPUT_MAX_BYTES } from '../core/limits.ts';
import type { Logger } from '../core/logger.ts';
import { createGuardedFetch, refusalOf, type GuardOptions } from '../transport/guarded-fetch.ts';
import { checkHost, configHeaders, headersProblem, remoteMessage } from './outbound.ts';

export { isHostAllowed } from './outbound.ts';

/** Headers the webhook handler sets itself; `config.headers` may not name them, in any case. */
const OWN_HEADERS = ['content-type', 'x-signature-256'];
const webhookHeaders = configHeaders(OWN_HEADERS, 'webhook');

/**
 * The built-in `webhook` handler (README, "Concepts"; CONTRACT §9): POST a signed JSON body; a 2xx answer
 * completes the run, with the answer's `output` (a JSON field, or NDJSON `output` lines) as the run's output.
 */
export const webhookConfig = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
  headers: webhookHeaders.optional(),
  timeoutMs: z.int().min(1).max(2 ** 31 - 1).optional(),
});
export type WebhookConfig = z.output<typeof webhookConfig>;

export interface WebhookOptions {
  /** Host names a webhook may call; `*.example.com` allows its subdomains. @default localhost,127.0.0.1,::1 */
  allowedHosts: readonly string[];
  /** HMAC-SHA256 key for `X-Signature-256`. */
  signingSecret: string;
  /**
   * The port this server listens on (app.ts passes its HTTP server's): a webhook to it on this machine is
   * refused whatever the allow-list says. Undefined: nothing refused by port.
   */
  ownPort?: () => number | undefined;
  /** Largest `application/json` answer, and longest NDJSON line, read (WEBHOOK_MAX_ANSWER_BYTES). @default 4194304 */
  maxAnswerBytes?: number;
  /** How host names resolve, for tests (DNS is an input, like time). @default the system resolver */
  resolve?: GuardOptions['resolve'];
}

async function sign(secret: string, body: string): Promise<string> {
  const enc = new TextEncoder();
  const key = await crypto.subtle.importKey('raw', enc.encode(secret), { name: 'HMAC', hash: 'SHA-256' }, false, ['sign']);
  const mac = new Uint8Array(await crypto.subtle.sign('HMAC', key, enc.encode(body)));
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join('');
}

const progressLine = z.object({
  progress: z.number(),
  message: z.string().optional(),
  currentStep: z.union([z.string(), z.number()]).optional(),
  totalSteps: z.number().optional(),
});

/** A `{ "usage": { … } }` line (CONTRACT §9): what the webhook's work used, as `ctx.reportUsage` takes it. */
const usageReport = z.strictObject({
  model: z.string().min(1, 'expected a non-empty string'),
  inputTokens: z.int('expected a whole number').min(0, 'expected a whole number ≥ 0'),
  outputTokens: z.int('expected a whole number').min(0, 'expected a whole number ≥ 0'),
  costUsd: z.number('expected a number').min(0, 'expected a number ≥ 0').nullable().optional(),
}, 'expected an object { model, inputTokens, outputTokens, costUsd? }');

/**
 * Output text kept while NDJSON `output` lines arrive. The core keeps OUTPUT_MAX_BYTES of UTF-8 and flags the
 * rest (`outputTruncated`); once more UTF-16 units than that are held the text is already longer (each unit
 * is at least one byte of UTF-8), so later lines are dropped instead of held: a chatty webhook cannot grow
 * the process without bound, and the run is still flagged truncated.
 */
const MAX_HELD_OUTPUT_CHARS = OUTPUT_MAX_BYTES + 1;

function describe(value: unknown): string {
  const text = value === undefined ? 'nothing' : JSON.stringify(value);
  return text.length > 100 ? `${text.slice(0, 100)}…` : text;
}

/** `usage.inputTokens: expected a whole number ≥ 0, got -3`: the field, the expected and the actual value. */
function usageProblem(error: z.ZodError, usage: unknown): string {
  const issue = error.issues[0]!;
  if (issue.code === 'unrecognized_keys') return `usage: unknown field ${issue.keys.map((k) => `"${k}"`).join(', ')} (expected model, inputTokens, outputTokens, costUsd)`;
  let actual: unknown = usage;
  for (const key of issue.path) actual = actual !== null && typeof actual === 'object' ? (actual as Record<PropertyKey, unknown>)[key] : undefined;
  const message = issue.code === 'invalid_type' && actual === undefined ? 'is required' : issue.message;
  return `${['usage', ...issue.path.map(String)].join('.')}: ${message}, got ${describe(actual)}`;
}

/** Collects `output` values in order: one value is the output as it is, several are joined as text. */
function outputCollector() {
  const values: unknown[] = [];
  let held = 0;
  return {
    add(value: unknown) {
      if (value === undefined || value === null || held >= MAX_HELD_OUTPUT_CHARS) return;
      values.push(value);
      held += typeof value === 'string' ? value.length : (JSON.stringify(value)?.length ?? 0);
    },
    result(): unknown {
      if (values.length <= 1) return values[0];
      return values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v))).join('');
    },
  };
}

interface NdjsonSink {
  progress(update: ProgressUpdate): void;
  reportUsage(usage: UsageReport): void;
}

/**
 * Reads an NDJSON body line by line (CONTRACT §9): progress lines report, `{ "output" }` lines add to the
 * output, a `{ "usage" }` line reports usage (a malformed one fails the run without retries: the same answer
 * would come again), an `{ "error" }` line fails the run. Resolves to the output, `undefined` when none came.
 * A line longer than `maxLineBytes` fails the run before it is held whole; the stream as a whole is not
 * capped (progress may stream for as long as the run's timeout allows), as only a line is ever held.
 * Nothing of the answer is quoted in an error but the `{ "error" }` line's own message (cut to
 * REMOTE_ERROR_MAX_CHARS): the body of an answer is the called server's, not the caller's to read.
 */
async function readNdjson(body: ReadableStream<Uint8Array>, sink: NdjsonSink, maxLineBytes: number): Promise<unknown> {
  const decoder = new TextDecoder();
  const output = outputCollector();
  let buffer = '';
  /** Bytes of the line being read (since the last newline): UTF-8 never has 0x0A inside a character. */
  let lineBytes = 0;
  let lineNo = 0;
  const handle = (line: string) => {
    lineNo++;
    if (!line.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`webhook sent a line that is not JSON (line ${lineNo}, ${new TextEncoder().encode(line).length} bytes)`);
    }
    if (!value || typeof value !== 'object') return;
    if ('error' in value) {
      const error = (value as { error: unknown }).error;
      throw new Error(remoteMessage(typeof error === 'string' ? error : (JSON.stringify(error) ?? String(error))));
    }
    if ('usage' in value) {
      const usage = usageReport.safeParse(value.usage);
      if (!usage.success) throw new HandlerError(`webhook sent a malformed usage line: ${usageProblem(usage.error, value.usage)}`, { retryable: false });
      sink.reportUsage(usage.data);
    }
    if ('output' in value) output.add(value.output);
    const p = progressLine.safeParse(value);
    if (p.success) sink.progress(p.data);
  };
  const tooLong = () => new Error(`webhook sent an NDJSON line longer than ${maxLineBytes} bytes, the most one line may be`);
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    let from = 0;
    for (let nl = chunk.indexOf(0x0a); nl >= 0; nl = chunk.indexOf(0x0a, from)) {
      if (lineBytes + nl - from > maxLineBytes) throw tooLong();
      lineBytes = 0;
      from = nl + 1;
    }
    lineBytes += chunk.byteLength - from;
    if (lineBytes > maxLineBytes) throw tooLong();
    buffer += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      handle(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  }
  handle(buffer + decoder.decode());
  return output.result();
}

const tooLarge = (max: number) => new Error(`webhook answer is larger than ${max} bytes, the most a JSON answer may be`);

/** Reads an `application/json` answer: its `output` field is the run's output (non-JSON or no field: none). */
async function readJsonAnswer(res: Response, log: Logger, max: number): Promise<unknown> {
  const declared = Number(res.headers.get('content-length'));
  if (declared > max) {
    await res.body?.cancel().catch(() => {});
    throw tooLarge(max);
  }
  if (!res.body) return undefined;
  const decoder = new TextDecoder();
  let text = '';
  let size = 0;
  for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength;
    if (size > max) {
      await res.body.cancel().catch(() => {});
      throw tooLarge(max);
    }
    text += decoder.decode(chunk, { stream: true });
  }
  text += decoder.decode();
  if (!text.trim()) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    // A 2xx completes the run whatever its body (README, "Concepts"); the run just has no output.
    log.warn('webhook answered application/json that is not JSON; the run has no output', { bytes: size });
    return undefined;
  }
  return value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as { output?: unknown }).output : undefined;
}

export function createWebhookHandler(options: WebhookOptions): HandlerDefinition<WebhookConfig> {
  const maxAnswerBytes = options.maxAnswerBytes ?? MAX_ANSWER_BYTES;
  const guardedFetch = createGuardedFetch({ allowedHosts: options.allowedHosts, listName: 'WEBHOOK_ALLOWED_HOSTS', ownPort: options.ownPort, resolve: options.resolve });
  const check = (url: string) => checkHost('config.url', url, options.allowedHosts, 'WEBHOOK_ALLOWED_HOSTS');
  return {
    name: 'webhook',
    config: webhookConfig,
    check: (config) => check(config.url),
    async run(ctx) {
      // Re-checked at run time: the allowed list may have changed since the agent was saved, and an agent
      // saved before headers were checked may hold ones no longer accepted. Retrying cannot help either.
      try {
        check(ctx.config.url);
      } catch (err) {
        throw new HandlerError((err as Error).message, { retryable: false });
      }
      const badHeaders = headersProblem(webhookHeaders, ctx.config.headers);
      if (badHeaders) throw new HandlerError(badHeaders, { retryable: false });
      const body = JSON.stringify({
        agentId: ctx.agentId,
        jobId: ctx.jobId,
        runId: ctx.runId,
        attempt: ctx.attempt,
        scheduledAt: new Date(ctx.scheduledAt).toISOString(),
      });
      const signals = [ctx.signal];
      if (ctx.config.timeoutMs) signals.push(AbortSignal.timeout(ctx.config.timeoutMs));
      const signal = AbortSignal.any(signals);
      const aborted = () => {
        if (ctx.signal.aborted) return ctx.signal.reason as unknown;
        if (signal.aborted) return new Error(`webhook timed out after ${ctx.config.timeoutMs} ms`);
        return undefined;
      };
      let call: Awaited<ReturnType<typeof guardedFetch>>;
      try {
        call = await guardedFetch(ctx.config.url, {
          method: 'POST',
          headers: {
            ...ctx.config.headers,
            'content-type': 'application/json',
            'x-signature-256': `sha256=${await sign(options.signingSecret, body)}`,
          },
          body,
          signal,
          redirect: 'manual',
        });
      } catch (err) {
        const abort = aborted();
        if (abort) throw abort;
        const refused = refusalOf(err);
        if (refused) throw new HandlerError(`webhook request refused: ${refused.message}`, { retryable: false });
        // One message for every way a connection fails (refused, unreachable, reset, TLS, DNS): the cause
        // (`ECONNREFUSED 127.0.0.1:65000`) told a caller which ports are open. The log keeps it.
        ctx.log.warn('webhook request failed', { cause: causeText(err) });
        throw new Error('webhook request failed: could not connect or the connection failed');
      }
      await using _call = call;
      const res = call.response;
      if (res.status < 200 || res.status > 299) {
        await res.body?.cancel().catch(() => {});
        throw new Error(`webhook answered ${res.status} ${res.statusText}`.trim());
      }
      const type = (res.headers.get('content-type') ?? '').split(';')[0]!.trim().toLowerCase();
      try {
        if (res.body && type === 'application/x-ndjson') return await readNdjson(res.body, ctx, maxAnswerBytes);
        if (type === 'application/json') return await readJsonAnswer(res, ctx.log, maxAnswerBytes);
        await res.body?.cancel().catch(() => {});
        return undefined;
      } catch (err) {
        const abort = aborted();
        if (abort) throw abort;
        if (err instanceof TypeError || (err instanceof Error && err.name === 'SocketError')) {
          // The connection broke while the answer was read: the same generic words as above.
          ctx.log.warn('webhook answer broke off', { cause: causeText(err) });
          throw new Error('webhook request failed: the connection broke off while the answer was read');
        }
        throw err;
      }
    },
  };
}

function causeText(err: unknown): string {
  if (err instanceof Error && err.cause instanceof Error) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}
