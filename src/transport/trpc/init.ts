import { initTRPC, TRPCError } from '@trpc/server';
import { z } from 'zod';
import { DomainError, toDomainError } from '../../core/errors.ts';
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
}

export const t = initTRPC.context<TrpcContext>().create({
  transformer,
  // Domain errors keep their message; anything else was already logged and says only "Internal server error".
  // Input errors name the field, like REST; stacks never leave the server.
  errorFormatter: ({ shape, error, input }) => {
    const message = error.cause instanceof z.ZodError ? describeZodError(error.cause, input) : shape.message;
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

const mapErrors = t.middleware(async ({ next }) => {
  const result = await next();
  if (!result.ok && result.error.cause instanceof DomainError) throw toTrpcError(result.error.cause);
  return result;
});

const publicProcedure = t.procedure.use(mapErrors);

/** A procedure builder per access level; each adds the caller (`principal`) to the context. */
function withPrincipal(access: Access) {
  return publicProcedure.use(async ({ ctx, next }) => {
    let principal;
    try {
      principal = await principalFor(ctx.auth, access, ctx.token);
    } catch (err) {
      throw toTrpcError(err);
    }
    return next({ ctx: { ...ctx, principal } });
  });
}

export const procedureFor = { public: withPrincipal('public'), authed: withPrincipal('authed'), admin: withPrincipal('admin') } satisfies Record<Access, unknown>;
