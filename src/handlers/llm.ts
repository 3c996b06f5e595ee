import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { z } from 'zod';
import type { Clock } from '../core/clock.ts';
import { HandlerError, type HandlerDefinition, type UsageReport } from '../core/handlers.ts';
import { MAX_ANSWER_BYTES } from '../core/limits.ts';
import { createGuardedFetch, refusalOf, type GuardOptions } from '../transport/guarded-fetch.ts';
import { createProgressStream, parseRetryAfter, readAll, readPrefix, serverMessage, type ChatChunk } from './llm-stream.ts';
import { checkHost, configHeaders, headersProblem } from './outbound.ts';
import { checkTemplate, fillTemplate, usesVariable } from './template.ts';

/**
 * Our own headers, which `config.headers` never replace (names compared case-insensitively). CONTRACT §9
 * words it so ("added but never replace `Authorization` or `Content-Type`"), so a config naming them is
 * accepted and they are left out of the request, as before; the other rules (names, CR/LF, framing headers
 * such as `Content-Length`) are the webhook's, refused on save.
 */
const OWN_HEADERS = new Set(['authorization', 'content-type', 'accept']);
const llmHeaders = configHeaders([], 'llm');

// Moved to llm-stream.ts; still exported here, where it always was.
export { parseRetryAfter } from './llm-stream.ts';

/**
 * The built-in `llm` handler (CONTRACT §9): one streamed chat completion from an OpenAI-compatible server
 * (OpenAI, Ollama, vLLM, llama.cpp, most gateways), its text the run's output, its usage the run's usage.
 */
export const llmConfig = z.strictObject({
  baseUrl: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
  model: z.string().min(1),
  prompt: z.string().min(1),
  system: z.string().optional(),
  maxTokens: z.int().min(1).default(1024),
  temperature: z.number().min(0).max(2).optional(),
  apiKeyEnv: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, 'expected an environment variable name (letters, digits, _; not starting with a digit)').optional(),
  headers: llmHeaders.optional(),
  timeoutMs: z.int().min(1).max(2 ** 31 - 1).optional(),
});
export type LlmConfig = z.output<typeof llmConfig>;

export interface LlmOptions {
  /** LLM_ALLOWED_HOSTS, same rules as WEBHOOK_ALLOWED_HOSTS. */
  allowedHosts: readonly string[];
  /** Reads an environment variable at run time (the API key); src/app.ts hands it the process env. */
  env(name: string): string | undefined;
  clock: Pick<Clock, 'now' | 'setTimer'>;
  /** Least time between two progress events of one run. @default 100 */
  progressIntervalMs?: number;
  /** The port this server listens on: refused on this machine whatever the allow-list says (see webhook.ts). */
  ownPort?: () => number | undefined;
  /** Largest JSON answer, and longest server-sent event, read (LLM_MAX_ANSWER_BYTES). @default 4194304 */
  maxAnswerBytes?: number;
  /** How host names resolve, for tests (DNS is an input, like time). @default the system resolver */
  resolve?: GuardOptions['resolve'];
}

/** How much of a failed answer's body is read, to find its `error.message` (the rest is dropped unread). */
const ERROR_BODY_READ_BYTES = 16 * 1024;

const REDACTED = '[redacted]';

/** The text of a thrown value with the API key taken out: errors end up in run rows, events and logs. */
const redactor = (key: string | undefined) => (text: string) => (key ? text.replaceAll(key, REDACTED) : text);

function causeText(err: unknown): string {
  if (err instanceof Error && err.cause instanceof Error) return err.cause.message;
  return err instanceof Error ? err.message : String(err);
}

export function createLlmHandler(options: LlmOptions): HandlerDefinition<LlmConfig> {
  const maxAnswerBytes = options.maxAnswerBytes ?? MAX_ANSWER_BYTES;
  const guardedFetch = createGuardedFetch({ allowedHosts: options.allowedHosts, listName: 'LLM_ALLOWED_HOSTS', ownPort: options.ownPort, resolve: options.resolve });
  const check = (url: string) => checkHost('config.baseUrl', url, options.allowedHosts, 'LLM_ALLOWED_HOSTS');
  return {
    name: 'llm',
    config: llmConfig,
    check(config) {
      check(config.baseUrl);
      checkTemplate('config.prompt', config.prompt);
      if (config.system !== undefined) checkTemplate('config.system', config.system);
    },
    async run(ctx) {
      const { config } = ctx;
      // Re-checked at run time: the allowed list may have changed since the agent was saved. Retrying cannot help.
      try {
        check(config.baseUrl);
      } catch (err) {
        throw new HandlerError((err as Error).message, { retryable: false });
      }
      // An agent saved before headers were checked may hold ones no longer accepted.
      const badHeaders = headersProblem(llmHeaders, config.headers);
      if (badHeaders) throw new HandlerError(badHeaders, { retryable: false });
      let key: string | undefined;
      if (config.apiKeyEnv !== undefined) {
        key = options.env(config.apiKeyEnv);
        if (!key) throw new HandlerError(`environment variable ${config.apiKeyEnv} is not set (config.apiKeyEnv)`, { retryable: false });
      }
      const redact = redactor(key);

      const wantsLast = usesVariable(config.prompt, 'lastOutput') || (config.system !== undefined && usesVariable(config.system, 'lastOutput'));
      const values = {
        agentId: ctx.agentId,
        agentName: ctx.agentName,
        runId: ctx.runId,
        scheduledAt: new Date(ctx.scheduledAt).toISOString(),
        attempt: String(ctx.attempt),
        lastOutput: wantsLast ? await ctx.lastOutput() : '',
      };
      const messages = [
        ...(config.system !== undefined ? [{ role: 'system', content: fillTemplate(config.system, values) }] : []),
        { role: 'user', content: fillTemplate(config.prompt, values) },
      ];
      const body = JSON.stringify({
        model: config.model,
        messages,
        stream: true,
        stream_options: { include_usage: true },
        max_tokens: config.maxTokens,
        ...(config.temperature !== undefined && { temperature: config.temperature }),
      });
      const headers: Record<string, string> = {};
      for (const [name, value] of Object.entries(config.headers ?? {})) if (!OWN_HEADERS.has(name.toLowerCase())) headers[name] = value;
      headers['content-type'] = 'application/json';
      headers['accept'] = 'text/event-stream';
      if (key) headers['authorization'] = `Bearer ${key}`;

      // The timeout runs on the injected clock, like the scheduler's own run timeout.
      const timeout = new AbortController();
      const timeoutTimer = config.timeoutMs !== undefined ? options.clock.setTimer(() => timeout.abort(), config.timeoutMs) : undefined;
      const signal = AbortSignal.any([ctx.signal, timeout.signal]);
      /** Errors this run made itself (already worded and redacted), passed through `failure` unchanged. */
      const ours = new WeakSet<Error>();
      const own = (message: string) => {
        const err = new Error(message);
        ours.add(err);
        return err;
      };
      /** The error for a failure while the request or the stream was going: an abort says why it came. */
      const failure = (what: string, err: unknown): unknown => {
        if (ctx.signal.aborted) return ctx.signal.reason;
        if (timeout.signal.aborted) return new Error(`llm timed out after ${config.timeoutMs} ms`);
        if (err instanceof HandlerError || ours.has(err as Error)) return err;
        const refused = refusalOf(err);
        if (refused) return new HandlerError(`llm request refused: ${refused.message}`, { retryable: false });
        // One message for every way a connection fails: the cause (`ECONNREFUSED 127.0.0.1:65000`) told a
        // caller which ports are open. The log keeps it (redacted).
        ctx.log.warn(`llm ${what}`, { cause: redact(causeText(err)) });
        return new Error(what === 'request failed' ? 'llm request failed: could not connect or the connection failed' : 'llm stream failed: the connection broke off while the answer was read');
      };

      const stream = createProgressStream(ctx, options, redact, key);
      let call: Awaited<ReturnType<typeof guardedFetch>> | undefined;
      try {
        try {
          const url = `${config.baseUrl.replace(/\/+$/, '')}/chat/completions`;
          // Redirects are not followed: the key must reach no host but the allowed one.
          call = await guardedFetch(url, { method: 'POST', headers, body, signal, redirect: 'manual' });
        } catch (err) {
          throw failure('request failed', err);
        }
        const res = call.response;

        if (res.status < 200 || res.status > 299) {
          let text: string | undefined;
          try {
            text = serverMessage(JSON.parse(await readPrefix(res.body, ERROR_BODY_READ_BYTES)));
          } catch (err) {
            if (signal.aborted) throw failure('request failed', err);
            // Not JSON, or the body could not be read: the status alone says what happened.
          }
          const message = redact(`llm answered ${res.status} ${res.statusText}`.trim() + (text ? `: ${text}` : ''));
          if (res.status === 429) throw new HandlerError(message, { retryAfterMs: parseRetryAfter(res.headers.get('retry-after'), options.clock.now()) });
          if (res.status >= 500) throw own(message);
          // Any other answer (a 4xx, or a redirect not followed) is the same on every try.
          throw new HandlerError(message, { retryable: false });
        }

        let usage: UsageReport | undefined;
        const takeUsage = (chunk: ChatChunk) => {
          const u = chunk.usage;
          if (!u || typeof u.prompt_tokens !== 'number' || typeof u.completion_tokens !== 'number') return;
          usage = {
            model: redact(typeof chunk.model === 'string' && chunk.model ? chunk.model : config.model),
            inputTokens: u.prompt_tokens,
            outputTokens: u.completion_tokens,
          };
        };
        const serverError = (chunk: ChatChunk) => {
          if (chunk.error === undefined || chunk.error === null) return;
          const text = serverMessage(chunk);
          // Mid-stream errors (OpenAI sends them as an event) are most often overload: retried.
          throw own(redact(text ? `llm stream error: ${text}` : 'llm stream error (the server gave no message)'));
        };

        try {
          if ((res.headers.get('content-type') ?? '').includes('application/json')) {
            // A server that does not stream answers one completion, read up to maxAnswerBytes.
            let chunk: ChatChunk;
            try {
              chunk = JSON.parse(await readAll(res.body, maxAnswerBytes, () => own(`llm answer is larger than ${maxAnswerBytes} bytes, the most a JSON answer may be`))) as ChatChunk;
            } catch (err) {
              if (err instanceof SyntaxError) throw own('llm answered application/json that is not JSON');
              throw err;
            }
            serverError(chunk);
            const content = chunk.choices?.[0]?.message?.content;
            const completion = typeof chunk.usage?.completion_tokens === 'number' ? chunk.usage.completion_tokens : 1;
            if (typeof content === 'string' && content !== '') stream.add(content, completion);
            takeUsage(chunk);
          } else {
            let done = false;
            let finished = false;
            let oversized = false;
            const parser = createParser({
              // One event held at most maxAnswerBytes characters: a 40 MB `data:` line is refused, not buffered.
              maxBufferSize: maxAnswerBytes,
              onError(error) {
                if (error.type === 'max-buffer-size-exceeded') oversized = true;
              },
              onEvent(event: EventSourceMessage) {
                if (done) return;
                if (event.data === '[DONE]') {
                  done = true;
                  return;
                }
                let chunk: ChatChunk;
                try {
                  chunk = JSON.parse(event.data) as ChatChunk;
                } catch {
                  throw own(`llm sent an event that is not JSON (${new TextEncoder().encode(event.data).length} bytes)`);
                }
                if (!chunk || typeof chunk !== 'object') return;
                serverError(chunk);
                const choice = chunk.choices?.[0];
                const content = choice?.delta?.content;
                if (typeof content === 'string' && content !== '') stream.add(content);
                if (choice?.finish_reason !== undefined && choice.finish_reason !== null) finished = true;
                takeUsage(chunk);
              },
            });
            if (res.body) {
              const text = res.body.pipeThrough(new TextDecoderStream());
              // Breaking out at [DONE] cancels the body: a server that keeps the stream open does not hold the run.
              for await (const piece of text as unknown as AsyncIterable<string>) {
                parser.feed(piece);
                if (oversized) throw own(`llm sent an event longer than ${maxAnswerBytes} characters, the most one event may be`);
                if (done) break;
              }
            }
            if (signal.aborted) throw signal.reason;
            if (!done && !finished) throw own('llm stream ended before [DONE]');
          }
        } catch (err) {
          throw failure('stream failed', err);
        }

        const output = stream.finish();
        if (usage) ctx.reportUsage(usage);
        return output;
      } finally {
        stream.stop();
        timeoutTimer?.cancel();
        await call?.[Symbol.asyncDispose]();
      }
    },
  };
}
