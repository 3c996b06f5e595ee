import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Config } from '../config.ts';
import { DomainError, forbidden } from '../core/errors.ts';
import { HTTP_DEFAULTS, HTTP_TIMEOUT_CHECK_MS, REFUSED_CONNECTION_LINGER_MS, SHUTDOWN_GRACE_MS } from '../core/limits.ts';
import type { Logger } from '../core/logger.ts';
import { createCorsPolicy, isPreflight, registerCorsPolicy } from './cors.ts';
import { rawErrorResponse, sendError } from './rest/reply.ts';

/**
 * One plain `node:http` server for everything on the port: the route table (`/healthz`, `/api/*`),
 * the mounts (tRPC over HTTP), and the upgrade paths (tRPC and Socket.IO WebSockets). A framework
 * adapter would cost more per request than it gives here.
 *
 * Every connection is bounded (README "Errors and limits"): request heads and whole requests have a time limit
 * (then `408`), heads a size (`431`), idle keep-alive connections a lifetime, and the server a number of open
 * connections. A connection refused at this level is answered in the JSON envelope, then closed for good: its
 * FIN is followed by a destroy when the client does not close its side. One CORS policy (`cors.ts`) guards
 * every door before anything else runs.
 */
/** The configuration this layer reads; what is left out takes its default (`core/limits.ts`, same origin only). */
export type HttpConfig = Pick<
  Config,
  'CORS_ORIGINS' | 'HTTP_HEADERS_TIMEOUT_MS' | 'HTTP_REQUEST_TIMEOUT_MS' | 'HTTP_KEEP_ALIVE_TIMEOUT_MS' | 'HTTP_MAX_CONNECTIONS' | 'HTTP_MAX_HEADER_BYTES' | 'LOG_LEVEL'
>;

export interface HttpDeps {
  /** Serves every request no mount claims, from the route table (404 and 405 included). */
  rest: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;
  logger: Logger;
  /** @default HTTP_DEFAULTS, and CORS for the server's own origin only */
  config?: Partial<HttpConfig>;
  /** Extra request handlers by path prefix (tRPC); the first that claims a request serves it. `exact`: that path only (the dashboard's `/`). */
  mounts?: { prefix: string; exact?: boolean; handle: (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void> }[];
  /** WebSocket upgrades by path prefix. Paths listed in `foreignUpgrades` belong to a library that listens itself (Socket.IO). */
  upgrades?: { prefix: string; handle: (req: IncomingMessage, socket: Duplex, head: Buffer) => void }[];
  foreignUpgrades?: string[];
}

export interface HttpServer {
  server: Server;
  listen(port: number, host: string): Promise<{ port: number; host: string }>;
  /** Stops accepting, lets in-flight requests finish for up to `graceMs` (default `SHUTDOWN_GRACE_MS`), then cuts what is left. */
  close(graceMs?: number): Promise<void>;
}

/** The path of a request without its query string: a query may carry a token (Socket.IO's polling does). */
const pathOf = (req: IncomingMessage) => (req.url ?? '/').split('?')[0]!;

export function createHttpServer({ rest, logger, config = {}, mounts = [], upgrades = [], foreignUpgrades = [] }: HttpDeps): HttpServer {
  const settings: HttpConfig = { ...HTTP_DEFAULTS, CORS_ORIGINS: [], LOG_LEVEL: 'info', ...config };
  // A line per request and per upgrade at debug only; the listener is not even attached otherwise (the hot path).
  const logRequests = settings.LOG_LEVEL === 'debug' && logger.debug !== undefined;
  const cors = createCorsPolicy(settings.CORS_ORIGINS);
  const inFlight = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  /** The answer being written on a connection, while it is: a request refused mid-way cannot be answered twice. */
  const answering = new WeakMap<Duplex, ServerResponse>();
  /** Connections already refused (Node reports a broken request again on each chunk and each timeout check). */
  const refused = new WeakSet<Duplex>();
  let closing = false;
  let drained: (() => void) | undefined;

  function logRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = performance.now();
    res.once('close', () => logger.debug!('request', {
      method: req.method, path: pathOf(req), status: res.statusCode, durationMs: Math.round((performance.now() - started) * 10) / 10,
    }));
  }

  const server = createServer({
    headersTimeout: settings.HTTP_HEADERS_TIMEOUT_MS,
    requestTimeout: settings.HTTP_REQUEST_TIMEOUT_MS,
    maxHeaderSize: settings.HTTP_MAX_HEADER_BYTES,
    connectionsCheckingInterval: Math.max(1, Math.min(HTTP_TIMEOUT_CHECK_MS, Math.floor(settings.HTTP_HEADERS_TIMEOUT_MS / 4))),
  }, (req, res) => {
    inFlight.add(res);
    answering.set(req.socket, res);
    if (logRequests) logRequest(req, res);
    res.on('finish', () => answering.get(req.socket) === res && answering.delete(req.socket));
    res.on('close', () => {
      inFlight.delete(res);
      if (inFlight.size === 0) drained?.();
    });
    if (closing) res.setHeader('connection', 'close');
    const origin = cors.check(req.headers);
    if (origin.kind === 'refused') return sendError(res, forbidden(origin.message), logger);
    if (origin.kind === 'allowed') {
      if (isPreflight(req.method, req.headers)) {
        res.writeHead(204, cors.preflightHeaders(origin.origin, req.headers));
        return void res.end();
      }
      for (const [name, value] of Object.entries(cors.headers(origin.origin))) res.setHeader(name, value);
    }
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return sendError(res, new DomainError('BAD_REQUEST', 'Malformed request URL'), logger);
    }
    const path = url.pathname;
    for (const m of mounts) {
      if (path === m.prefix || (!m.exact && path.startsWith(m.prefix.endsWith('/') ? m.prefix : `${m.prefix}/`))) {
        void Promise.resolve(m.handle(req, res, url)).catch((err) => sendError(res, err, logger));
        return;
      }
    }
    void rest(req, res, url);
  });
  server.keepAliveTimeout = settings.HTTP_KEEP_ALIVE_TIMEOUT_MS;
  server.maxConnections = settings.HTTP_MAX_CONNECTIONS;
  registerCorsPolicy(server, cors);

  // Past HTTP_MAX_CONNECTIONS Node closes a new connection at accept: no answer can be sent before a request is
  // read. Said once each time the limit is reached, not once per connection.
  let atLimit = false;
  server.on('drop', () => {
    if (atLimit) return;
    atLimit = true;
    logger.warn('connection limit reached: new connections are closed until some end', { limit: settings.HTTP_MAX_CONNECTIONS });
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => {
      sockets.delete(s);
      if (sockets.size < settings.HTTP_MAX_CONNECTIONS) atLimit = false;
    });
  });

  /**
   * Answers a connection at the socket level and closes it for good: the answer and a FIN, then a destroy when
   * the client closes its side or after REFUSED_CONNECTION_LINGER_MS, whichever is first. Until then what the client
   * still sends is read and dropped, so the close does not reset the connection under an answer not yet read.
   */
  function refuse(socket: Duplex, response: string | undefined): void {
    refused.add(socket);
    socket.on('error', () => {}); // the client may be gone already: there is no one to tell
    if (response === undefined || !socket.writable) return void socket.destroy();
    const linger = setTimeout(() => socket.destroy(), REFUSED_CONNECTION_LINGER_MS);
    socket.once('close', () => clearTimeout(linger));
    socket.end(response);
  }
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0]!;
    if (logRequests) logger.debug!('upgrade', { path });
    const match = (prefix: string) => path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`);
    const own = upgrades.find((u) => match(u.prefix));
    if (own && !closing) {
      // Browsers apply no CORS to WebSockets: the server refuses another origin's page itself (Socket.IO does
      // the same through its `cors` option).
      const origin = cors.check(req.headers);
      if (origin.kind === 'refused') return refuse(socket, rawErrorResponse(403, origin.message));
      return own.handle(req, socket, head);
    }
    if (foreignUpgrades.some(match) && !closing) return;
    socket.destroy();
  });
  server.on('clientError', (err: Error & { code?: string }, socket: Duplex) => {
    if (refused.has(socket)) return;
    const res = answering.get(socket);
    // Half an answer already went out: nothing sensible can follow it on this connection.
    if (res?.headersSent || err.code === 'ECONNRESET' || err.code === 'EPIPE') return refuse(socket, undefined);
    const [status, message] =
      err.code === 'HPE_HEADER_OVERFLOW'
        ? [431, `Request headers are larger than ${settings.HTTP_MAX_HEADER_BYTES} bytes (HTTP_MAX_HEADER_BYTES)`]
        : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
          ? res
            ? [408, `The request was not received within ${settings.HTTP_REQUEST_TIMEOUT_MS} ms (HTTP_REQUEST_TIMEOUT_MS)`]
            : [408, `The request headers were not received within ${settings.HTTP_HEADERS_TIMEOUT_MS} ms (HTTP_HEADERS_TIMEOUT_MS)`]
          : [400, 'Malformed HTTP request'];
    // The route still waiting for this request's body ends with the connection (its late answer is never sent).
    refuse(socket, rawErrorResponse(status, message));
  });

  return {
    server,
    listen(port, host) {
      return new Promise((resolve, reject) => {
        server.once('error', reject);
        server.listen(port, host, () => {
          server.off('error', reject);
          const addr = server.address();
          resolve({ port: typeof addr === 'object' && addr ? addr.port : port, host });
        });
      });
    },
    async close(graceMs = SHUTDOWN_GRACE_MS) {
      closing = true;
      const closed = new Promise<void>((r) => server.close(() => r()));
      server.closeIdleConnections();
      if (inFlight.size > 0) {
        let t: ReturnType<typeof setTimeout> | undefined;
        await Promise.race([
          new Promise<void>((r) => (drained = r)),
          new Promise<void>((r) => (t = setTimeout(r, graceMs))),
        ]);
        clearTimeout(t);
      }
      server.closeAllConnections();
      for (const s of sockets) s.destroy();
      await closed;
    },
  };
}
