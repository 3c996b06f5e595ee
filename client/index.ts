import { createTRPCClient, createWSClient, httpBatchLink, splitLink, wsLink, type TRPCClient } from '@trpc/client';
import superjson from 'superjson';
import type { AppRouter } from '../src/transport/trpc/router.ts';
import type { HandlerMap, SchedulerRouter } from './typed-router.ts';

/** Any class constructed as `new WebSocket(url, protocols)`: the DOM's, Deno's, or `ws`'s. */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => unknown;

/**
 * The typed client: queries and mutations over HTTP (batched), subscriptions over one WebSocket,
 * superjson on both. The WebSocket opens on the first subscription and reconnects by itself; event
 * subscriptions resume from the last event id they saw (tRPC's `tracked` ids).
 */
export interface SchedulerClientOptions {
  /** The server's base URL, e.g. `http://localhost:5000`. */
  url: string;
  /** A JWT, or a function returning the current one (called per request and per WebSocket connect). */
  token: string | (() => string | Promise<string>);
  /**
   * A WebSocket implementation. Browsers, Deno and Node ≥ 22 have one; on Node 20 pass `WebSocket` from `ws`
   * (accepted as it is: its types differ from the DOM's, its behaviour does not).
   * @default globalThis.WebSocket
   */
  WebSocket?: typeof globalThis.WebSocket | WebSocketConstructor;
  /** Delay before reconnect attempt n (0-based). @default 250 ms doubling, capped at 10 s */
  retryDelayMs?: (attempt: number) => number;
}

/**
 * The client for a server whose handlers are the built-in ones plus `H` (name → config type): `agents.create`
 * accepts only those names, each with its own config type. `SchedulerClient<AnyHandlers>` accepts any name.
 */
export type SchedulerClient<H extends HandlerMap<H> = Record<never, never>> = TRPCClient<SchedulerRouter<H>> & {
  /** Closes the WebSocket (subscriptions end). */
  close(): Promise<void>;
  /** `await using client = createSchedulerClient(…)` closes it at the end of the scope. */
  [Symbol.asyncDispose](): Promise<void>;
};

export type { AppRouter };
export type { AgentCreateInput, AgentUpdateInput, AnyHandlers, BuiltInHandlers, HandlerMap, KnownHandlers, SchedulerRouter } from './typed-router.ts';

export function createSchedulerClient<H extends HandlerMap<H> = Record<never, never>>(options: SchedulerClientOptions): SchedulerClient<H> {
  const base = options.url.replace(/\/+$/, '');
  const token = async () => (typeof options.token === 'function' ? await options.token() : options.token);
  const WebSocketImpl = (options.WebSocket ?? (globalThis as { WebSocket?: typeof globalThis.WebSocket }).WebSocket) as typeof globalThis.WebSocket | undefined;
  let wsClient: ReturnType<typeof createWSClient> | undefined;
  const ws = () => {
    if (!WebSocketImpl) throw new Error('No WebSocket implementation: on Node 20 pass `WebSocket` from the "ws" package to createSchedulerClient');
    wsClient ??= createWSClient({
      url: `${base.replace(/^http/, 'ws')}/trpc`,
      WebSocket: WebSocketImpl,
      connectionParams: async () => ({ token: await token() }),
      // An idle socket stays open 10 s, so unsubscribing and subscribing again reuses it.
      lazy: { enabled: true, closeMs: 10_000 },
      retryDelayMs: options.retryDelayMs ?? ((n) => Math.min(250 * 2 ** n, 10_000)),
    });
    return wsClient;
  };
  const client = createTRPCClient<AppRouter>({
    links: [
      splitLink({
        condition: (op) => op.type === 'subscription',
        // Built on the first subscription, so an HTTP-only client never needs a WebSocket.
        true: (runtime) => {
          let link: ReturnType<ReturnType<typeof wsLink<AppRouter>>> | undefined;
          return (op) => (link ??= wsLink<AppRouter>({ client: ws(), transformer: superjson })(runtime))(op);
        },
        false: httpBatchLink({
          url: `${base}/trpc`,
          transformer: superjson,
          headers: async () => ({ authorization: `Bearer ${await token()}` }),
        }),
      }),
    ],
  });
  const close = async () => {
    await wsClient?.close();
  };
  // tRPC's client is a proxy that reads every property as a procedure path: `close` is added in front of it.
  return new Proxy(client, {
    get: (target, prop, receiver) => (prop === 'close' || prop === Symbol.asyncDispose ? close : Reflect.get(target, prop, receiver)),
  }) as unknown as SchedulerClient<H>;
}
