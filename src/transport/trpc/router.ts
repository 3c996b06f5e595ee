import { tracked, TRPCError, type TRPCMutationProcedure, type TRPCQueryProcedure, type TRPCSubscriptionProcedure } from '@trpc/server';
import type { z } from 'zod';
import { MAX_SOCKET_BUFFER_BYTES } from '../../core/limits.ts';
import type { StreamEvent } from '../../services/events.ts';
import { procedures, type AnyProcedure, type CallContext, type CallProcedure, type Procedures, type SubscriptionProcedure } from '../../services/procedures.ts';
import { procedureFor, t, toTrpcError, type TrpcContext } from './init.ts';

/**
 * The tRPC router, built from the one table of procedures (`services/procedures.ts`): `agents.create`
 * there is `agents.create` here. The mapped types below give each built procedure the input and output
 * types of its row, so the typed client (`client/`) infers every call end to end.
 */
type Root = typeof t._config.$types;
type Def<I, O> = { input: I; output: O; meta: Root['meta']; errorShape: Root['errorShape'] };
/** What a client sends: the schema's input type, or nothing. */
type ClientInput<I> = I extends z.ZodType ? z.input<I> : void;
/** What a subscriber receives: each event with its id (`tracked`), so a reconnect resumes after it. */
type EventStream = AsyncIterable<{ id: string; data: StreamEvent }, void, unknown>;

type Built<P> =
  P extends CallProcedure<infer K, infer I, z.ZodType, unknown, infer R>
    ? K extends 'query'
      ? TRPCQueryProcedure<Def<ClientInput<I>, R>>
      : TRPCMutationProcedure<Def<ClientInput<I>, R>>
    : P extends SubscriptionProcedure<infer I>
      ? TRPCSubscriptionProcedure<Def<ClientInput<I>, EventStream>>
      : never;

type Group<N> = N extends `${infer G}.${string}` ? G : never;
/** `{ 'agents.get': row }` → `{ agents: { get: procedure } }`, the nesting tRPC turns into paths. */
type Nested<T> = { [G in Group<keyof T>]: { [N in keyof T as N extends `${G}.${infer L}` ? L : never]: Built<T[N]> } };

/**
 * The builder as `build` uses it. Each row's types are restored by `Nested` above; here one code path
 * serves every row, so the builder is seen through this loose view.
 */
interface Builder {
  input(schema: z.ZodType): Builder;
  query(resolve: (opts: Resolved) => unknown): unknown;
  mutation(resolve: (opts: Resolved) => unknown): unknown;
  subscription(resolve: (opts: Resolved) => AsyncIterable<unknown>): unknown;
}
interface Resolved {
  ctx: CallContext & Pick<TrpcContext, 'socket' | 'connection'>;
  input: any;
  signal: AbortSignal | undefined;
}

function build(p: AnyProcedure): unknown {
  const base = procedureFor[p.access] as unknown as Builder;
  const b = p.input ? base.input(p.input) : base;
  if (p.kind === 'subscription') return b.subscription(({ ctx, input, signal }) => liveEvents(ctx, () => p.call(ctx, input, signal)));
  // The context holds `principal` and `services`: it is the call context as it is, nothing is copied.
  const row = p;
  const resolve = row.reply
    ? async ({ ctx, input }: Resolved) => row.reply!(await row.call(ctx, input))
    : ({ ctx, input }: Resolved) => row.call(ctx, input);
  return row.kind === 'query' ? b.query(resolve) : b.mutation(resolve);
}

/**
 * The `tracked` envelope of the event every subscriber is being given: one for all of them (tRPC only reads it), kept
 * for the last event only, as they all receive the same one in turn.
 */
let lastEvent: StreamEvent | undefined;
let lastTracked: ReturnType<typeof tracked<StreamEvent>> | undefined;
function trackedOnce(event: StreamEvent) {
  if (event !== lastEvent || !lastTracked) {
    lastTracked = tracked(String(event.id), event);
    lastEvent = event;
  }
  return lastTracked;
}

/**
 * A subscription's events as tRPC iterates them: each event `tracked` by its id. Written as an iterator, not an
 * async generator: an event goes to every subscriber, and a generator's `yield` costs each delivery a few more
 * promise turns. As a generator would, it starts (the cap check, the count) on the first `next()`, and it ends
 * the source and releases the count once, whichever comes first: the end, an error, a too-slow socket or `return()`.
 */
function liveEvents(ctx: Resolved['ctx'], open: () => AsyncIterable<StreamEvent>): AsyncIterableIterator<ReturnType<typeof tracked<StreamEvent>>> {
  const conn = ctx.connection;
  let source: AsyncIterator<StreamEvent> | undefined;
  let counted = false;
  let ended = false;
  const end = async () => {
    ended = true;
    try {
      await source?.return?.();
    } finally {
      if (counted) conn!.subscriptions--;
      counted = false;
    }
  };
  const done = { done: true, value: undefined } as const;
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (ended) return done;
      if (!source) {
        if (conn && conn.subscriptions >= conn.maxSubscriptions) {
          ended = true;
          throw new TRPCError({ code: 'TOO_MANY_REQUESTS', message: `Too many subscriptions: at most ${conn.maxSubscriptions} per WebSocket (MAX_SUBSCRIPTIONS_PER_SOCKET); stop one first` });
        }
        if (conn) conn.subscriptions++;
        counted = conn !== undefined;
        try {
          source = open()[Symbol.asyncIterator]();
        } catch (err) {
          await end();
          throw toTrpcError(err);
        }
      }
      let r: IteratorResult<StreamEvent>;
      try {
        r = await source.next();
      } catch (err) {
        source = undefined; // a source that threw is over: nothing to end
        await end();
        throw toTrpcError(err);
      }
      if (r.done) {
        source = undefined;
        await end();
        return done;
      }
      // A subscriber whose socket cannot drain is dropped; its client reconnects from its last id.
      if (ctx.socket && ctx.socket.bufferedAmount > MAX_SOCKET_BUFFER_BYTES) {
        ctx.socket.close(1013, 'subscriber too slow: reconnect with the last event id');
        await end();
        return done;
      }
      return { done: false, value: trackedOnce(r.value) };
    },
    async return() {
      if (!ended) await end();
      return done;
    },
  };
}

function nest(table: Record<string, AnyProcedure>) {
  const record: Record<string, Record<string, unknown>> = {};
  for (const [name, p] of Object.entries(table)) {
    const [group, leaf] = name.split('.') as [string, string];
    (record[group] ??= {})[leaf] = build(p);
  }
  return record;
}

export const appRouter = t.router(nest(procedures) as unknown as Nested<Procedures>);

export type AppRouter = typeof appRouter;
