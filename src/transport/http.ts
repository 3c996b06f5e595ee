import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { DomainError } from '../core/errors.ts';
import { SHUTDOWN_GRACE_MS } from '../core/limits.ts';
import type { Logger } from '../core/logger.ts';
import { sendError } from './rest/reply.ts';

/**
 * One plain `node:http` server for everything on the port: the route table (`/healthz`, `/api/*`),
 * the mounts (tRPC over HTTP), and the upgrade paths (tRPC and Socket.IO WebSockets). A framework
 * adapter would cost more per request than it gives here.
 */
export interface HttpDeps {
  /** Serves every request no mount claims, from the route table (404 and 405 included). */
  rest: (req: IncomingMessage, res: ServerResponse, url: URL) => Promise<void>;
  logger: Logger;
  /** Extra request handlers by path prefix (tRPC); the first that claims a request serves it. */
  mounts?: { prefix: string; handle: (req: IncomingMessage, res: ServerResponse, url: URL) => void | Promise<void> }[];
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

export function createHttpServer({ rest, logger, mounts = [], upgrades = [], foreignUpgrades = [] }: HttpDeps): HttpServer {
  const inFlight = new Set<ServerResponse>();
  const sockets = new Set<Socket>();
  let closing = false;
  let drained: (() => void) | undefined;

  const server = createServer((req, res) => {
    inFlight.add(res);
    res.on('close', () => {
      inFlight.delete(res);
      if (inFlight.size === 0) drained?.();
    });
    if (closing) res.setHeader('connection', 'close');
    let url: URL;
    try {
      url = new URL(req.url ?? '/', 'http://localhost');
    } catch {
      return sendError(res, new DomainError('BAD_REQUEST', 'Malformed request URL'), logger);
    }
    const path = url.pathname;
    for (const m of mounts) {
      if (path === m.prefix || path.startsWith(m.prefix.endsWith('/') ? m.prefix : `${m.prefix}/`)) {
        void Promise.resolve(m.handle(req, res, url)).catch((err) => sendError(res, err, logger));
        return;
      }
    }
    void rest(req, res, url);
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = (req.url ?? '/').split('?')[0]!;
    const match = (prefix: string) => path === prefix || path.startsWith(prefix.endsWith('/') ? prefix : `${prefix}/`);
    const own = upgrades.find((u) => match(u.prefix));
    if (own && !closing) return own.handle(req, socket, head);
    if (foreignUpgrades.some(match) && !closing) return;
    socket.destroy();
  });
  server.on('clientError', (_err, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
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
