import { z } from 'zod';
import { badRequest } from '../core/errors.ts';
import type { HandlerDefinition, ProgressUpdate } from '../core/handlers.ts';

/** The built-in `webhook` handler (README, "Concepts"): POST a signed JSON body; a 2xx answer completes the run. */
export const webhookConfig = z.strictObject({
  url: z.url({ protocol: /^https?$/, error: 'expected an http(s) URL' }),
  headers: z.record(z.string(), z.string()).optional(),
  timeoutMs: z.int().min(1).max(2 ** 31 - 1).optional(),
});
export type WebhookConfig = z.output<typeof webhookConfig>;

export interface WebhookOptions {
  /** Host names a webhook may call; `*.example.com` allows its subdomains. @default localhost,127.0.0.1,::1 */
  allowedHosts: readonly string[];
  /** HMAC-SHA256 key for `X-Signature-256`. */
  signingSecret: string;
}

export function isHostAllowed(url: string, allowed: readonly string[]): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase().replace(/^\[|\]$/g, '');
  } catch {
    return false;
  }
  return allowed.some((a) => a === host || (a.startsWith('*.') && host.endsWith(a.slice(1))));
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

/** Reads an NDJSON body line by line: progress lines report, an `{ "error" }` line fails the run. */
async function readNdjson(body: ReadableStream<Uint8Array>, onProgress: (p: ProgressUpdate) => void): Promise<void> {
  const decoder = new TextDecoder();
  let buffer = '';
  const handle = (line: string) => {
    if (!line.trim()) return;
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      throw new Error(`webhook sent a line that is not JSON: ${line.slice(0, 100)}`);
    }
    if (value && typeof value === 'object' && 'error' in value) throw new Error(String((value as { error: unknown }).error));
    const p = progressLine.safeParse(value);
    if (p.success) onProgress(p.data);
  };
  for await (const chunk of body as unknown as AsyncIterable<Uint8Array>) {
    buffer += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buffer.indexOf('\n')) >= 0) {
      handle(buffer.slice(0, nl));
      buffer = buffer.slice(nl + 1);
    }
  }
  handle(buffer + decoder.decode());
}

export function createWebhookHandler(options: WebhookOptions): HandlerDefinition<WebhookConfig> {
  const checkHost = (url: string) => {
    if (!isHostAllowed(url, options.allowedHosts)) {
      throw badRequest(`config.url: host "${new URL(url).hostname}" is not in WEBHOOK_ALLOWED_HOSTS`);
    }
  };
  return {
    name: 'webhook',
    config: webhookConfig,
    check: (config) => checkHost(config.url),
    async run(ctx) {
      // Re-checked at run time: the allowed list may have changed since the agent was saved.
      checkHost(ctx.config.url);
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
      let res: Response;
      try {
        res = await fetch(ctx.config.url, {
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
        if (ctx.signal.aborted) throw ctx.signal.reason;
        if (signal.aborted) throw new Error(`webhook timed out after ${ctx.config.timeoutMs} ms`);
        const cause = err instanceof Error && err.cause instanceof Error ? err.cause.message : err instanceof Error ? err.message : String(err);
        throw new Error(`webhook request failed: ${cause}`);
      }
      if (res.status < 200 || res.status > 299) {
        await res.body?.cancel().catch(() => {});
        throw new Error(`webhook answered ${res.status} ${res.statusText}`.trim());
      }
      try {
        if (res.body && (res.headers.get('content-type') ?? '').includes('application/x-ndjson')) await readNdjson(res.body, ctx.progress);
        else await res.body?.cancel().catch(() => {});
      } catch (err) {
        if (ctx.signal.aborted) throw ctx.signal.reason;
        if (signal.aborted) throw new Error(`webhook timed out after ${ctx.config.timeoutMs} ms`);
        throw err;
      }
    },
  };
}
