import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import { getErrorShape, getTRPCErrorFromUnknown, transformTRPCResponse, TRPCError, type AnyTRPCProcedure } from '@trpc/server';
import { createHTTPHandler } from '@trpc/server/adapters/standalone';
import { getHTTPStatusCode } from '@trpc/server/http';
import { applyWSSHandler } from '@trpc/server/adapters/ws';
import { WebSocketServer } from 'ws';
import { systemClock, type Clock } from '../../core/clock.ts';
import { MAX_BODY_BYTES, MAX_SUBSCRIPTIONS_PER_SOCKET, SOCKET_AUTH_GRACE_MS, TRPC_MAX_BATCH } from '../../core/limits.ts';
import { bearerToken } from '../../services/auth.ts';
import { atTime, tokenDeadline } from '../expiry.ts';
import type { TrpcConnection, TrpcContext } from './init.ts';
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

/** A batch's paths as the client sends them: procedure names (letters, digits, `_`, `.`) joined by commas. */
const PLAIN_PATHS = /^\/trpc\/([A-Za-z0-9_.]+(?:,[A-Za-z0-9_.]+)*)$/;
type Outcome = [error: TRPCError, result: undefined] | [error: undefined, result: { data: unknown }];

/**
 * The typed client's and the dashboard's reads, `GET /trpc/<query>[,<query>…]` with JSON input in the URL,
 * answered without the standalone adapter, which builds a fetch `Request` and `Response` and pipes a web
 * stream for every call (~300 µs of CPU each). The steps are tRPC's own for this case (resolveResponse), with
 * the same functions (the error shape, the status, the transformer), so an answer is the same bytes: status,
 * `content-type` and `vary`, and the body written as one chunk. Anything else — a mutation or subscription,
 * an unknown or encoded path, input that does not parse, an oversized batch, a streaming `accept`, a
 * content-type other than JSON's, connection params — returns false before any call runs, and the adapter serves it.
 */
function createQueryPath({ maxBatch, createContext }: { maxBatch: number; createContext: (req: IncomingMessage) => TrpcContext }) {
  const config = appRouter._def._config;
  // At run time the router keeps its procedures flat, by dotted path (its type shows them nested).
  const procedures = appRouter._def.procedures as unknown as Record<string, AnyTRPCProcedure>;
  const isObject = (v: unknown): v is Record<string, unknown> => !!v && !Array.isArray(v) && typeof v === 'object';
  const isPromise = (v: unknown) => (isObject(v) || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function' && typeof (v as { catch?: unknown }).catch === 'function';
  const isAsyncIterable = (v: unknown) => isObject(v) && Symbol.asyncIterator in v;
  const isDataStream = (v: unknown) => isObject(v) && (isAsyncIterable(v) || Object.values(v).some(isPromise) || Object.values(v).some(isAsyncIterable));
  const streamError = () => new TRPCError({ code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Cannot use stream-like response in non-streaming request - use httpBatchStreamLink' });

  return (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> | false => {
    const h = req.headers;
    // A content-type other than JSON's picks another of tRPC's parsers (or its error).
    const type = h['content-type'];
    if (req.method !== 'GET' || (type !== undefined && type.toLowerCase().split(';', 1)[0]!.trim() !== 'application/json')) return false;
    if (h['trpc-accept'] !== undefined || h.accept?.includes('application/jsonl')) return false;
    const match = PLAIN_PATHS.exec(url.pathname);
    if (!match || url.searchParams.has('connectionParams')) return false;
    const isBatch = url.searchParams.get('batch') === '1';
    const paths = isBatch ? match[1]!.split(',') : [match[1]!];
    if (paths.length > maxBatch) return false;
    for (const path of paths) if (!Object.hasOwn(procedures, path) || procedures[path]!._def.type !== 'query') return false;
    // The inputs, decoded as tRPC would; any failure is the adapter's to answer.
    const inputs: Record<number, unknown> = Object.create(null);
    try {
      const text = url.searchParams.get('input');
      const raw: unknown = text ? JSON.parse(text) : undefined;
      if (raw !== undefined && !isBatch) inputs[0] = config.transformer.input.deserialize(raw);
      else if (raw !== undefined) {
        if (!isObject(raw)) return false;
        paths.forEach((_, i) => raw[i] !== undefined && (inputs[i] = config.transformer.input.deserialize(raw[i])));
      }
    } catch {
      return false;
    }
    return answer(req, res, paths, inputs, isBatch);
  };

  async function answer(req: IncomingMessage, res: ServerResponse, paths: string[], inputs: Record<number, unknown>, isBatch: boolean): Promise<void> {
    const ctx = createContext(req);
    // tRPC reads a request's inputs once, for all its calls, when the first call asks; an error shape gets the input
    // only if some call read them.
    let read = false;
    const getRawInput = (i: number) => async () => {
      read = true;
      return inputs[i];
    };
    const outcomes = await Promise.all(paths.map(async (path, i): Promise<Outcome> => {
      try {
        return [undefined, { data: await procedures[path]!({ path, getRawInput: getRawInput(i), ctx, type: 'query', signal: undefined, batchIndex: i }) }];
      } catch (cause) {
        return [getTRPCErrorFromUnknown(cause), undefined];
      }
    }));
    const shape = (error: TRPCError, i: number | undefined) =>
      ({ error: getErrorShape({ config, ctx, error, input: i !== undefined && read ? inputs[i] : undefined, path: i !== undefined ? paths[i] : undefined, type: 'query' }) });
    let json: unknown[];
    let errors: (TRPCError | undefined)[];
    if (!isBatch) {
      const [error, result] = outcomes[0]!;
      if (result && isDataStream(result.data)) {
        // tRPC throws this one outside the call: its shape has no path and no input.
        const e = streamError();
        json = [shape(e, undefined)];
        errors = [e];
      } else {
        json = [error ? shape(error, 0) : { result: { data: result!.data } }];
        errors = error ? [error] : [];
      }
    } else {
      const checked = outcomes.map(([error, result]): Outcome => (result && isDataStream(result.data) ? [streamError(), undefined] : error ? [error, undefined] : [undefined, result!]));
      json = checked.map(([error, result], i) => (error ? shape(error, i) : { result: { data: result!.data } }));
      errors = checked.map(([error]) => error);
    }
    // A batch's list has a hole for each call that succeeded, as tRPC's has.
    const status = getHTTPStatusCode(json as Parameters<typeof getHTTPStatusCode>[0], errors as TRPCError[]);
    const body = JSON.stringify(transformTRPCResponse(config, (isBatch ? json : json[0]) as Parameters<typeof transformTRPCResponse>[1]));
    if (res.statusCode === 200) res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.setHeader('vary', 'trpc-accept, accept');
    // Written as the adapter writes it (one chunk, then the end), so the bytes on the wire are the same too.
    res.write(body);
    res.end();
  }
}
