/**
 * The CLI's REST calls: plain `fetch` against `/api`, unwrapping the `{ success, data }` envelope
 * (CONTRACT §7). Every failure becomes a `CliError` whose exit code says whose fault it was.
 */

/** Exit codes (CONTRACT §10): 1 the server refused or could not be reached, 2 a usage error. */
export const EXIT = { ok: 0, refused: 1, usage: 2 } as const;

/** A failure told in one line on stderr, then the process exits with `exitCode`. */
export class CliError extends Error {
  override name = 'CliError';
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

export const usageError = (message: string) => new CliError(message, EXIT.usage);

export interface RestOptions {
  /** The server's base URL, e.g. `http://127.0.0.1:5000`. */
  url: string;
  /** A JWT; undefined when none was given (a call then fails as a usage error, before any request). */
  token: string | undefined;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

export interface RestAnswer<T = unknown> {
  status: number;
  data: T;
  /** The envelope's `message`, where the route has one (`Agent deleted successfully` …). */
  message?: string;
}

export interface RestCall {
  method: 'GET' | 'POST' | 'PATCH' | 'DELETE';
  /** Under the base URL, path segments already encoded (see `seg`). */
  path: string;
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** Extra request headers (an `Idempotency-Key`). */
  headers?: Record<string, string | undefined>;
}

/** One path segment, encoded: an id a user types may hold anything. */
export const seg = (s: string) => encodeURIComponent(s);

export type Rest = <T = unknown>(call: RestCall) => Promise<RestAnswer<T>>;

export function createRest({ url, token, fetch: fetchImpl = globalThis.fetch }: RestOptions): Rest {
  const base = url.replace(/\/+$/, '');
  return async <T>({ method, path, query, body, headers: extra }: RestCall): Promise<RestAnswer<T>> => {
    if (!token) throw usageError('No token: pass --token or set SCHEDULER_TOKEN (e.g. export SCHEDULER_TOKEN=$(agent-scheduler token --sub admin --role admin))');
    const target = new URL(base + path);
    for (const [k, v] of Object.entries(query ?? {})) if (v !== undefined) target.searchParams.set(k, String(v));
    const headers: Record<string, string> = { authorization: `Bearer ${token}`, accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    for (const [k, v] of Object.entries(extra ?? {})) if (v !== undefined) headers[k] = v;
    let res: Response;
    try {
      res = await fetchImpl(target, { method, headers, ...(body !== undefined && { body: JSON.stringify(body) }) });
    } catch (err) {
      throw new CliError(`Cannot reach the server at ${base}: ${reason(err)}`, EXIT.refused);
    }
    const text = await res.text().catch(() => '');
    let envelope: { success?: boolean; data?: T; message?: string; error?: string } | undefined;
    try {
      envelope = JSON.parse(text) as typeof envelope;
    } catch {
      envelope = undefined;
    }
    if (!res.ok || envelope?.success !== true) {
      const why = envelope?.error ?? (text.trim().slice(0, 200) || res.statusText);
      throw new CliError(`The server refused: ${res.status} ${why}`, EXIT.refused);
    }
    return { status: res.status, data: envelope.data as T, ...(envelope.message !== undefined && { message: envelope.message }) };
  };
}

/** Why a fetch failed, in words: undici hides the system error (ECONNREFUSED …) in `cause`. */
function reason(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } } | undefined)?.cause;
  if (cause?.code) return cause.message ? `${cause.code} (${cause.message})` : cause.code;
  if (cause?.message) return cause.message;
  return err instanceof Error ? err.message : String(err);
}
