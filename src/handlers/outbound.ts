import { z } from 'zod';
import { badRequest } from '../core/errors.ts';
import { MAX_CONFIG_HEADER_CHARS, MAX_CONFIG_HEADERS, REMOTE_ERROR_MAX_CHARS } from '../core/limits.ts';

/**
 * What the `webhook` and `llm` handlers share about calling out (README, "Security"): the allow-list by
 * name, the rules for `config.headers`, and how much of what a remote server says reaches a run's error.
 * The check by address is in transport/guarded-fetch.ts, which may touch the network stack.
 */

export function isHostAllowed(url: string, allowed: readonly string[]): boolean {
  let host: string;
  try {
    host = new URL(url).hostname.toLowerCase().replace(/^\[|\]$/g, '');
  } catch {
    return false;
  }
  return allowed.some((a) => a === host || (a.startsWith('*.') && host.endsWith(a.slice(1))));
}

/**
 * Headers no agent sets, whatever the handler: they frame the message (a `Content-Length: 0` beside the real
 * body made the receiver wait for a request that never came) or belong to one hop only (RFC 9110 §7.6.1).
 */
const FRAMING_HEADERS = ['host', 'content-length', 'transfer-encoding', 'connection', 'keep-alive', 'upgrade', 'te', 'trailer', 'expect', 'proxy-connection'];

/** RFC 9110 §5.6.2 `token`: what a field name may be. */
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,256}$/;
/** RFC 9110 §5.5 field-value: visible characters, space, tab and obs-text; never CR, LF or NUL (no header injection). */
const HEADER_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * `config.headers`: at most MAX_CONFIG_HEADERS, names that are HTTP tokens, values without CR/LF/NUL, and
 * none of `own` (the handler's own headers) or of the framing headers, all compared case-insensitively
 * (`x-signature-256` is the same header as `X-Signature-256`); a name given twice in different cases is refused.
 */
export function configHeaders(own: readonly string[], handler: string) {
  const reserved = new Set([...own, ...FRAMING_HEADERS]);
  return z.record(z.string(), z.string('expected a string')).superRefine((headers, ctx) => {
    const names = Object.keys(headers);
    if (names.length > MAX_CONFIG_HEADERS) {
      ctx.addIssue({ code: 'custom', message: `expected at most ${MAX_CONFIG_HEADERS} headers, got ${names.length}` });
      return;
    }
    const seen = new Map<string, string>();
    for (const name of names) {
      const value = headers[name]!;
      const lower = name.toLowerCase();
      const problem = !HEADER_NAME.test(name)
        ? `expected a header name (letters, digits and !#$%&'*+-.^_\`|~, at most 256), got ${JSON.stringify(name.slice(0, 100))}`
        : reserved.has(lower)
          ? `is set by the ${handler} handler itself and cannot be given (header names are compared case-insensitively)`
          : seen.has(lower)
            ? `is the same header as "${seen.get(lower)}" (header names are compared case-insensitively)`
            : value.length > MAX_CONFIG_HEADER_CHARS
              ? `expected a value of at most ${MAX_CONFIG_HEADER_CHARS} characters, got ${value.length}`
              : !HEADER_VALUE.test(value)
                ? 'expected a header value without line breaks or control characters (CR, LF, NUL …)'
                : undefined;
      if (problem) ctx.addIssue({ code: 'custom', path: [name], message: problem });
      seen.set(lower, name);
    }
  });
}

/** The first problem of `headers` under `schema` as `config.headers.X: …`, or undefined (for the run-time re-check). */
export function headersProblem(schema: z.ZodType, headers: unknown): string | undefined {
  if (headers === undefined) return undefined;
  const parsed = schema.safeParse(headers);
  if (parsed.success) return undefined;
  const issue = parsed.error.issues[0]!;
  return `${['config', 'headers', ...issue.path.map(String)].join('.')}: ${issue.message}`;
}

/** Refuses a URL whose host is not allowed, as a 400 naming the field. */
export function checkHost(field: string, url: string, allowed: readonly string[], listName: string): void {
  if (!isHostAllowed(url, allowed)) throw badRequest(`${field}: host "${new URL(url).hostname}" is not in ${listName}`);
}

/**
 * A remote server's own error message as a run keeps it: at most REMOTE_ERROR_MAX_CHARS characters (a
 * 200,000-character message was stored and broadcast whole), cut on a code point and marked with `…`.
 */
export function remoteMessage(text: string): string {
  if (text.length <= REMOTE_ERROR_MAX_CHARS) return text;
  let end = REMOTE_ERROR_MAX_CHARS - 1;
  if (/[\uD800-\uDBFF]/.test(text[end - 1]!)) end--;
  return `${text.slice(0, end)}…`;
}
