/**
 * The `llm` handler's reading side (split out of llm.ts): how a streamed answer's text becomes throttled
 * progress events, and the helpers that read an answer's body, its error message and its `Retry-After`.
 */
import type { TimerHandle } from '../core/clock.ts';
import type { HandlerContext } from '../core/handlers.ts';
import type { LlmConfig, LlmOptions } from './llm.ts';
import { remoteMessage } from './outbound.ts';

/** CONTRACT §9: at most one `agent:progress` per 100 ms per run, so a fast stream does not flood the event log. */
const DEFAULT_PROGRESS_INTERVAL_MS = 100;
/** Until done, progress stays below 100: the server may stop before maxTokens, and 100 means finished. */
const MAX_PROGRESS_WHILE_STREAMING = 99;

/**
 * The server's own error message in an error answer or event, when it gives one in the shape the
 * OpenAI-compatible APIs use (`{ "error": { "message" } }`, Ollama's `{ "error": "…" }`), cut to
 * REMOTE_ERROR_MAX_CHARS; otherwise nothing. The raw body is never quoted: an HTML error page, or whatever
 * else the host answers, is not the run's to show (the same rule as the webhook handler's).
 */
export function serverMessage(value: unknown): string | undefined {
  if (value === null || typeof value !== 'object') return undefined;
  const error = (value as { error?: unknown }).error;
  const text = typeof error === 'string' ? error : error !== null && typeof error === 'object' ? (error as { message?: unknown }).message : undefined;
  return typeof text === 'string' && text.trim() !== '' ? remoteMessage(text.trim()) : undefined;
}

/** Reads a whole body as text, failing with `tooLarge()` once it passes `maxBytes` (a JSON answer is parsed whole). */
export async function readAll(body: ReadableStream<Uint8Array> | null, maxBytes: number, tooLarge: () => Error): Promise<string> {
  if (!body) return '';
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    bytes += chunk.byteLength;
    if (bytes > maxBytes) {
      await body.cancel().catch(() => {});
      throw tooLarge();
    }
    text += decoder.decode(chunk, { stream: true });
  }
  return text + decoder.decode();
}

/** `Retry-After` as milliseconds from now: delta-seconds or an HTTP date (RFC 9110 §10.2.3); undefined when unparsable. */
export function parseRetryAfter(value: string | null, now: number): number | undefined {
  if (value === null) return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const at = Date.parse(v);
  return Number.isFinite(at) ? Math.max(0, at - now) : undefined;
}

/** Reads at most `maxBytes` of a body as text and drops the rest (an error page may be large, or endless). */
export async function readPrefix(body: ReadableStream<Uint8Array> | null, maxBytes: number): Promise<string> {
  if (!body) return '';
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = '';
  let bytes = 0;
  try {
    while (bytes < maxBytes) {
      const { done, value } = await reader.read();
      if (done) break;
      bytes += value.byteLength;
      text += decoder.decode(value, { stream: true });
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return text + decoder.decode();
}

export interface ChatChunk {
  model?: unknown;
  choices?: { delta?: { content?: unknown }; message?: { content?: unknown }; finish_reason?: unknown }[];
  usage?: { prompt_tokens?: unknown; completion_tokens?: unknown } | null;
  error?: unknown;
}

/** Streamed text, throttled into progress updates whose deltas, in order, concatenate to the output. */
export function createProgressStream(ctx: HandlerContext<LlmConfig>, options: LlmOptions, redact: (s: string) => string, key: string | undefined) {
  const interval = options.progressIntervalMs ?? DEFAULT_PROGRESS_INTERVAL_MS;
  const { clock } = options;
  let tokens = 0;
  /** Text received but not yet in a progress update (it may end in a held-back tail, see `safeEnd`). */
  let pending = '';
  let output = '';
  let lastSentAt = -Infinity;
  let timer: TimerHandle | undefined;

  /**
   * Where `text` may be cut without splitting a possible API key: a tail that is the start of the key is held
   * back until the next text shows whether it is the key (then redacted) or not. The first, so the longest, such tail.
   */
  const safeEnd = (text: string): number => {
    if (!key) return text.length;
    for (let i = Math.max(0, text.length - key.length + 1); i < text.length; i++) {
      if (text.charCodeAt(i) === key.charCodeAt(0) && key.startsWith(text.slice(i))) return i;
    }
    return text.length;
  };

  const send = (final: boolean) => {
    timer?.cancel();
    timer = undefined;
    const text = redact(pending);
    const end = final ? text.length : safeEnd(text);
    const delta = text.slice(0, end);
    pending = text.slice(end);
    if (delta === '' && !final) return;
    lastSentAt = clock.now();
    output += delta;
    const progress = Math.min(MAX_PROGRESS_WHILE_STREAMING, Math.round((100 * tokens) / ctx.config.maxTokens));
    ctx.progress({ progress, message: `Generating: ${tokens} tokens`, delta });
  };

  return {
    /** One content chunk: a token, by the count the progress shows. */
    add(text: string, count = 1) {
      pending += text;
      tokens += count;
      if (timer) return; // the armed timer sends it
      const wait = lastSentAt + interval - clock.now();
      if (wait <= 0) send(false);
      else timer = clock.setTimer(() => send(false), wait);
    },
    /** Sends what is left (if anything) and answers the whole output. */
    finish(): string {
      if (pending !== '' || timer) send(true);
      return output;
    },
    stop() {
      timer?.cancel();
      timer = undefined;
    },
  };
}
