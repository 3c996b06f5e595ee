import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { applyWSSHandler } from '@trpc/server/adapters/ws';
import { WebSocketServer } from 'ws';
import { systemClock, type Clock } from '../../core/clock.ts';
import { MAX_BODY_BYTES, MAX_SUBSCRIPTIONS_PER_SOCKET, SOCKET_AUTH_GRACE_MS, TRPC_MAX_BATCH } from '../../core/limits.ts';
import { bearerToken } from '../../services/auth.ts';
import { atTime, tokenDeadline } from '../expiry.ts';
import type { TrpcConnection, TrpcContext } from './init.ts';
import { createQueryPath } from './query-path.ts';
import { appRouter } from './router.ts';
import { wsEncoder } from './wire.ts';

export type TrpcDeps = Omit<TrpcContext, 'token' | 'socket' | 'connection'> & {
  /** Calls in one batch, over HTTP or in one WebSocket message; more is a 400. @default TRPC_MAX_BATCH (50) */
  maxBatch?: number;
  /** A WebSocket that has not presented a valid token (connectionParams or Authorization) by then is closed, code 4401. @default SOCKET_AUTH_GRACE_MS (5000) */
  authGraceMs?: number;
  /** Subscriptions running at once on one WebSocket; one more is a TOO_MANY_REQUESTS error. @default MAX_SUBSCRIPTIONS_PER_SOCKET (100) */
  maxSubscriptions?: number;
  /** What the token's `exp` is read against: a WebSocket is closed (4401) when its token expires. @default systemClock */
  clock?: Clock;
};

/** Close codes a client can act on: 4401 is "connect again with a (fresh) token", as HTTP's 401. */
export const WS_UNAUTHORIZED = 4401;

/**
 * `/trpc` over HTTP (batched) and WebSocket, on the shared server. Bodies and WebSocket messages past
 * `MAX_BODY_BYTES` are refused (413, or close code 1009), as REST and Socket.IO refuse them.
 */
export function createTrpcTransport({ maxBatch = TRPC_MAX_BATCH, authGraceMs = SOCKET_AUTH_GRACE_MS, maxSubscriptions = MAX_SUBSCRIPTIONS_PER_SOCKET, clock = systemClock, ...deps }: TrpcDeps) {
  const http = createHTTPHandler({
    router: appRouter,
    basePath: '/trpc/',
    createContext: ({ req }): TrpcContext => ({ ...deps, token: bearerToken(req.headers.authorization) }),
    maxBodySize: MAX_BODY_BYTES,
    // An 800-call batch was served whole: one request must not cost the server 800 calls.
    maxBatchSize: maxBatch,
  });
  const queries = createQueryPath({ maxBatch, createContext: (req) => ({ ...deps, token: bearerToken(req.headers.authorization) }) });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });
  /** Each WebSocket's limits and timers, from its 'connection' (before tRPC reads its connectionParams) to its close. */
  const connections = new WeakMap<object, TrpcConnection & { authenticated: boolean; cancelExpiry(): void }>();
  wss.on('connection', (ws) => {
    const c = { subscriptions: 0, maxSubscriptions, authenticated: false, cancelExpiry: () => {} };
    connections.set(ws, c);
    // Unauthenticated sockets cost a file descriptor each for as long as the client likes: closed after the grace.
    const grace = setTimeout(() => c.authenticated || ws.close(WS_UNAUTHORIZED, 'Unauthorized: no valid token within SOCKET_AUTH_GRACE_MS'), authGraceMs);
    grace.unref();
    ws.once('close', () => {
      clearTimeout(grace);
      c.cancelExpiry();
    });
  });
  const handler = applyWSSHandler({
    wss,
    router: appRouter,
    // Once per WebSocket, when its connectionParams arrive (or at once without them). A valid token ends the grace and
    // arms the close at its `exp` (+ CLOCK_TOLERANCE_S); an invalid one is refused per call as before, until the grace ends.
    createContext: async ({ req, res, info }): Promise<TrpcContext> => {
      const param = info.connectionParams?.['token'];
      const token = typeof param === 'string' ? param : bearerToken(req.headers.authorization);
      const c = connections.get(res);
      if (c && token !== null && !c.authenticated) {
        const valid = await deps.auth.verify(token).then(() => true, () => false);
        if (valid) {
          c.authenticated = true;
          const deadline = tokenDeadline(token);
          if (deadline !== null) c.cancelExpiry = atTime(clock, deadline, () => res.close(WS_UNAUTHORIZED, 'Unauthorized: token expired'));
        }
      }
      return { ...deps, token, socket: res, ...(c && { connection: c }) };
    },
    // Pings keep idle connections alive through proxies and find dead peers.
    keepAlive: { enabled: true, pingMs: 30_000, pongWaitMs: 5_000 },
    experimental_encoder: wsEncoder,
    maxBatchSize: maxBatch,
  });
  return {
    /** `url` is the request's, parsed by the server already. */
    handle: (req: IncomingMessage, res: ServerResponse, url?: URL) => (url && queries(req, res, url)) || http(req, res),
    upgrade(req: IncomingMessage, socket: Duplex, head: Buffer) {
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
    },
    async close() {
      handler.broadcastReconnectNotification();
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((r) => wss.close(() => r()));
    },
    /** Open tRPC WebSockets (tests cut them to check reconnects). */
    clients: () => wss.clients,
  };
}
