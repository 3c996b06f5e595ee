import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { applyWSSHandler } from '@trpc/server/adapters/ws';
import { WebSocketServer } from 'ws';
import { MAX_BODY_BYTES, TRPC_MAX_BATCH } from '../../core/limits.ts';
import { bearerToken } from '../../services/auth.ts';
import type { TrpcContext } from './init.ts';
import { appRouter } from './router.ts';
import { wsEncoder } from './wire.ts';

export type TrpcDeps = Omit<TrpcContext, 'token' | 'socket'> & {
  /** Calls in one batch, over HTTP or in one WebSocket message; more is a 400. @default TRPC_MAX_BATCH (50) */
  maxBatch?: number;
};

/**
 * `/trpc` over HTTP (batched) and WebSocket, on the shared server. Bodies and WebSocket messages past
 * `MAX_BODY_BYTES` are refused (413, or close code 1009), as REST and Socket.IO refuse them.
 */
export function createTrpcTransport({ maxBatch = TRPC_MAX_BATCH, ...deps }: TrpcDeps) {
  const http = createHTTPHandler({
    router: appRouter,
    basePath: '/trpc/',
    createContext: ({ req }): TrpcContext => ({ ...deps, token: bearerToken(req.headers.authorization) }),
    maxBodySize: MAX_BODY_BYTES,
    // An 800-call batch was served whole: one request must not cost the server 800 calls.
    maxBatchSize: maxBatch,
  });
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_BODY_BYTES });
  const handler = applyWSSHandler({
    wss,
    router: appRouter,
    createContext: ({ req, res, info }): TrpcContext => {
      const param = info.connectionParams?.['token'];
      return { ...deps, token: typeof param === 'string' ? param : bearerToken(req.headers.authorization), socket: res };
    },
    // Pings keep idle connections alive through proxies and find dead peers.
    keepAlive: { enabled: true, pingMs: 30_000, pongWaitMs: 5_000 },
    experimental_encoder: wsEncoder,
    maxBatchSize: maxBatch,
  });
  return {
    handle: (req: IncomingMessage, res: ServerResponse) => http(req, res),
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
