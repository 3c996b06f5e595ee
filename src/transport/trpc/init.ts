import { initTRPC, TRPCError } from '@trpc/server';
import { z } from 'zod';
import { DomainError, toDomainError } from '../../core/errors.ts';
import type { Logger } from '../../core/logger.ts';
import { principalFor, type Access, type Auth } from '../../services/auth.ts';
import type { Services } from '../../services/services.ts';
import { ERROR_MAP } from '../errors.ts';
import { describeZodError } from '../validation.ts';
import { transformer } from './wire.ts';

/** What every procedure can reach. The token is verified per call, so an expired one stops working on a live socket too. */
export interface TrpcContext {
  token: string | null;
  auth: Auth;
  services: Services;
  /** The WebSocket carrying the call, when there is one (to drop a subscriber that cannot keep up). */
  socket?: { bufferedAmount: number; close(code?: number, reason?: string): void };
  /** Where an unexpected error is logged in full (its client sees only a generic message). */
  logger?: Logger;
  /** The WebSocket's own limits (adapter.ts), when the call came over one. */
  connection?: TrpcConnection;
}

/** One tRPC WebSocket's count of running subscriptions, against its cap (MAX_SUBSCRIPTIONS_PER_SOCKET). */
export interface TrpcConnection {
  subscriptions: number;
  readonly maxSubscriptions: number;
}

/** What a client reads instead of a thrown text we did not write (a decoder's or the runtime's). */
export const GENERIC_MESSAGES = {
  /** The input could not be decoded at all: "Maximum call stack size exceeded", "Cannot destructure property …". */
  input: 'input: could not be decoded (malformed, or nested too deeply)',
  internal: 'Internal server error',
} as const;

/**
 * The message a client may see. Ours: zod's (naming the field), a DomainError's, or a TRPCError made with its own
 * text and no cause (tRPC's "Batch call exceeds maximum size", our 4401s). Anything else is a text the runtime or a
 * library wrote, which may hold internals: it is replaced by a generic message and reported as `leaked`.
 */
function clientMessage(error: TRPCError, message: string): { message: string; leaked: boolean } {
  const cause: unknown = error.cause;
  if (cause === undefined || cause instanceof DomainError) return { message, leaked: false };
  if (error.code === 'BAD_REQUEST' || error.code === 'PARSE_ERROR') return { message: GENERIC_MESSAGES.input, leaked: true };
  return { message: GENERIC_MESSAGES.internal, leaked: true };
}

export const t = initTRPC.context<TrpcContext>().create({
  transformer,
  // Domain errors keep their message; input errors name the field, like REST. Any other text (a decoder's
  // "Cannot destructure property …", "Maximum call stack size exceeded", a bug's TypeError) is logged in full
  // here and the client reads a generic message, as on REST and Socket.IO. Stacks never leave the server.
  errorFormatter: ({ shape, error, input, ctx, path, type }) => {
    let message = shape.message;
    if (error.cause instanceof z.ZodError) message = describeZodError(error.cause, input);
    else {
      const answer = clientMessage(error, shape.message);
      message = answer.message;
      if (answer.leaked) {
        const cause = error.cause;
        const fields = { path: path ?? null, type, code: error.code, error: cause?.message ?? String(cause), stack: cause?.stack ?? null };
        if (error.code === 'INTERNAL_SERVER_ERROR') ctx?.logger?.error('trpc call failed', fields);
        else ctx?.logger?.warn('trpc input could not be decoded', fields);
      }
    }
    const { stack: _stack, ...data } = shape.data;
    return { ...shape, message, data };
  },
});

/** Every `catch` in tRPC land ends here: domain codes map to tRPC codes through the one table. */
export function toTrpcError(err: unknown): TRPCError {
  if (err instanceof TRPCError) return err;
  const e = toDomainError(err);
  return new TRPCError({ code: ERROR_MAP[e.code].trpc, message: e.message, cause: e });
}

/**
 * A procedure builder per access level; each adds the caller (`principal`) to the context, and maps a domain error
 * thrown below it to its tRPC code. One middleware, not two: each tRPC middleware step copies the call's options
 * and context (~10 µs a call on these machines).
 */
function withPrincipal(access: Access) {
  return t.procedure.use(async ({ ctx, next }) => {
    let principal;
    try {
      principal = await principalFor(ctx.auth, access, ctx.token);
    } catch (err) {
      throw toTrpcError(err);
    }
    // Only the new key: tRPC merges it into the context itself, and redefining every key it has already is slow.
    const result = await next({ ctx: { principal } });
    if (!result.ok && result.error.cause instanceof DomainError) throw toTrpcError(result.error.cause);
    return result;
  });
}

export const procedureFor = { public: withPrincipal('public'), authed: withPrincipal('authed'), admin: withPrincipal('admin') } satisfies Record<Access, unknown>;
