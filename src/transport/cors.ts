import type { IncomingHttpHeaders, Server } from 'node:http';
import { CORS_MAX_AGE_S } from '../core/limits.ts';

/**
 * One CORS policy for every door on the port (README "Security"): REST and tRPC over HTTP are checked in
 * `http.ts` before any route, the tRPC WebSocket at its upgrade, Socket.IO (polling and WebSocket) through
 * its `cors` option. A request's `Origin` is
 * - absent: not a cross-origin browser request (curl, SDKs, a same-origin GET): served as always;
 * - the server's own (its host is the request's `Host`, or `X-Forwarded-Host` behind a proxy): served;
 * - listed in CORS_ORIGINS, or CORS_ORIGINS is `*`: served, with `Access-Control-Allow-Origin`;
 * - anything else: refused with `403` before it reaches a route, whatever the method.
 * Refusing, not just leaving the header out, matters because a browser enforces CORS only on what a page may
 * read: a WebSocket, or a "simple" POST, reaches the server from any page unless the server itself says no.
 * Tokens travel in `Authorization` (never cookies), so no answer allows credentials.
 */
export type CorsVerdict =
  | { kind: 'none' }
  | { kind: 'allowed'; origin: string }
  | { kind: 'refused'; origin: string; message: string };

export interface CorsPolicy {
  check(headers: IncomingHttpHeaders): CorsVerdict;
  /** The headers of an answer to an allowed cross-origin request (besides a preflight's). */
  headers(origin: string): Record<string, string>;
  /** The headers of the answer to an allowed preflight (`OPTIONS` with `Access-Control-Request-Method`). */
  preflightHeaders(origin: string, requested: IncomingHttpHeaders): Record<string, string>;
}

const METHODS = 'GET, HEAD, POST, PUT, PATCH, DELETE';
/** Headers a page may read from an answer, beyond the CORS-safelisted ones. */
const EXPOSED = 'WWW-Authenticate, Retry-After, Allow';
/** A header name (RFC 9110 token): what a preflight's `Access-Control-Request-Headers` may echo back. */
const TOKEN_LIST = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+(\s*,\s*[!#$%&'*+.^_`|~0-9A-Za-z-]+)*$/;

const first = (value: string | string[] | undefined): string | undefined => (Array.isArray(value) ? value[0] : value)?.split(',')[0]?.trim();

/** Whether `origin` names the host the request was sent to (same scheme default port rules as the browser's). */
function sameOrigin(origin: URL, headers: IncomingHttpHeaders): boolean {
  for (const host of [headers.host, first(headers['x-forwarded-host'])]) {
    if (!host) continue;
    try {
      if (new URL(`${origin.protocol}//${host}`).host === origin.host) return true;
    } catch {
      // a Host that is no host names no origin
    }
  }
  return false;
}

/**
 * @param origins CORS_ORIGINS as `loadConfig` leaves it: `['*']`, or origins in their `Origin` form.
 * @default [] (the server's own origin only)
 */
export function createCorsPolicy(origins: readonly string[] = []): CorsPolicy {
  const any = origins.includes('*');
  const listed = new Set(origins);
  return {
    check(headers) {
      const origin = headers.origin;
      if (origin === undefined) return { kind: 'none' };
      if (any || listed.has(origin)) return { kind: 'allowed', origin };
      let url: URL | undefined;
      try {
        url = new URL(origin);
      } catch {
        // `null` (a sandboxed frame, a file: page) or garbage: never the server's own
      }
      if (url && url.origin === origin && sameOrigin(url, headers)) return { kind: 'allowed', origin };
      return {
        kind: 'refused',
        origin,
        message: `Origin ${origin.slice(0, 200)} is not allowed: add it to CORS_ORIGINS to call this server from that page`,
      };
    },
    headers(origin) {
      return { 'access-control-allow-origin': origin, 'access-control-expose-headers': EXPOSED, vary: 'Origin' };
    },
    preflightHeaders(origin, requested) {
      const raw = requested['access-control-request-headers'];
      const asked = (Array.isArray(raw) ? raw.join(', ') : raw)?.trim();
      return {
        'access-control-allow-origin': origin,
        'access-control-allow-methods': METHODS,
        // The origin is trusted: it may send whatever headers it asks for (Authorization, Content-Type, Idempotency-Key …).
        ...(asked && TOKEN_LIST.test(asked) && { 'access-control-allow-headers': asked }),
        'access-control-max-age': String(CORS_MAX_AGE_S),
        vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
      };
    },
  };
}

/** A CORS preflight: `OPTIONS` naming the method it asks for. A bare `OPTIONS` is an ordinary request (405). */
export const isPreflight = (method: string | undefined, headers: IncomingHttpHeaders): boolean =>
  method === 'OPTIONS' && headers.origin !== undefined && headers['access-control-request-method'] !== undefined;

// ---------- Socket.IO ----------

/** Each HTTP server's policy, registered by `createHttpServer`, so Socket.IO on that server follows the same one. */
const policies = new WeakMap<Server, CorsPolicy>();

export function registerCorsPolicy(server: Server, policy: CorsPolicy): void {
  policies.set(server, policy);
}

/** What the `cors` package (Socket.IO's `cors` option) takes: options per request, or an error that refuses it. */
type CorsDelegate = (
  req: { headers: IncomingHttpHeaders },
  callback: (err: Error | null, options?: { origin: string | false; methods: string[]; maxAge: number }) => void,
) => void;

/**
 * Socket.IO's `cors` option for the server its HTTP server was made with: an allowed origin gets the CORS
 * headers, a request without `Origin` none, and a refused one an error, which Engine.IO answers with `400`
 * (polling and WebSocket upgrade alike: its middlewares run on both), so the page never gets a session.
 * The policy is looked up per request: it may be registered after Socket.IO is attached.
 */
export function socketIoCors(server: Server): CorsDelegate {
  return (req, callback) => {
    const verdict = (policies.get(server) ?? createCorsPolicy()).check(req.headers);
    if (verdict.kind === 'refused') return callback(new Error(verdict.message));
    callback(null, { origin: verdict.kind === 'allowed' ? verdict.origin : false, methods: ['GET', 'POST'], maxAge: CORS_MAX_AGE_S });
  };
}
