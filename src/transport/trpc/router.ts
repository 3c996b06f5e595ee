import { tracked } from '@trpc/server';
import { z } from 'zod';
import { notFound } from '../../core/errors.ts';
import { streamEvents } from '../../services/events.ts';
import { agentCreateInput, agentUpdateInput } from '../../schemas/agent.ts';
import { agentIdParam, idSchema, jobParams, runIdParam } from '../../schemas/common.ts';
import { runsQuery } from '../../schemas/run.ts';
import { scheduleInput } from '../../schemas/schedule.ts';
import { authedProcedure as authed, t, toTrpcError } from './init.ts';

/**
 * The tRPC router: CONTRACT §6's names over the same services and zod schemas as REST.
 * Inputs are the REST body fields plus agentId/jobId/runId; outputs are the REST `data` objects.
 */

/** Past this many bytes waiting in a subscriber's socket, it is dropped; it resumes from its last id. */
const MAX_SOCKET_BUFFER_BYTES = 8 * 1024 * 1024;

const lastEventId = z
  .union([z.number(), z.string()])
  .transform((v) => Number(v))
  .pipe(z.number().int().min(0, { error: 'expected an event id' }))
  .nullish();

async function* subscribe(ctx: { repo: Parameters<typeof streamEvents>[0]; bus: Parameters<typeof streamEvents>[1]; socket?: { bufferedAmount: number; close(code?: number, reason?: string): void } }, agentId: string | null, after: number | null | undefined, signal: AbortSignal | undefined) {
  try {
    for await (const event of streamEvents(ctx.repo, ctx.bus, { agentId, after: after ?? undefined, signal })) {
      if (ctx.socket && ctx.socket.bufferedAmount > MAX_SOCKET_BUFFER_BYTES) {
        ctx.socket.close(1013, 'subscriber too slow: reconnect with the last event id');
        return;
      }
      yield tracked(String(event.id), event);
    }
  } catch (err) {
    throw toTrpcError(err);
  }
}

export const appRouter = t.router({
  agents: t.router({
    create: authed.input(agentCreateInput).mutation(({ ctx, input }) => ctx.services.agents.create(ctx.principal, input)),
    list: authed.query(({ ctx }) => ctx.services.agents.list(ctx.principal)),
    get: authed.input(agentIdParam).query(({ ctx, input }) => ctx.services.agents.get(ctx.principal, input.agentId)),
    update: authed.input(agentUpdateInput.extend(agentIdParam.shape)).mutation(({ ctx, input }) => {
      const { agentId, ...patch } = input;
      return ctx.services.agents.update(ctx.principal, agentId, patch);
    }),
    delete: authed.input(agentIdParam).mutation(({ ctx, input }) => ctx.services.agents.remove(ctx.principal, input.agentId)),
    run: authed.input(agentIdParam).mutation(({ ctx, input }) => ctx.services.agents.run(ctx.principal, input.agentId)),
    runs: authed
      .input(agentIdParam.extend({ limit: runsQuery.shape.limit }))
      .query(({ ctx, input }) => ctx.services.agents.runs(ctx.principal, input.agentId, input.limit)),
  }),
  schedule: t.router({
    set: authed.input(scheduleInput.extend(agentIdParam.shape)).mutation(async ({ ctx, input }) => {
      const { agentId, ...body } = input;
      return (await ctx.services.schedule.set(ctx.principal, agentId, body)).data;
    }),
    get: authed.input(agentIdParam).query(({ ctx, input }) => ctx.services.schedule.get(ctx.principal, input.agentId)),
    remove: authed.input(agentIdParam).mutation(async ({ ctx, input }) => {
      await ctx.services.schedule.remove(ctx.principal, input.agentId);
      return { agentId: input.agentId };
    }),
    pause: authed.input(jobParams).mutation(({ ctx, input }) => ctx.services.schedule.pause(ctx.principal, input.agentId, input.jobId)),
    resume: authed.input(jobParams).mutation(({ ctx, input }) => ctx.services.schedule.resume(ctx.principal, input.agentId, input.jobId)),
  }),
  scheduler: t.router({
    status: authed.query(({ ctx }) => ctx.services.scheduler.status()),
    paused: authed.query(({ ctx }) => ctx.services.scheduler.paused(ctx.principal)),
  }),
  runs: t.router({
    cancel: authed.input(runIdParam).mutation(({ ctx, input }) => ctx.services.runs.cancel(ctx.principal, input.runId)),
  }),
  events: t.router({
    /** One agent's events; reconnecting clients pass their last id (wsLink does so itself). */
    agent: authed.input(z.object({ agentId: idSchema, lastEventId })).subscription(async function* ({ ctx, input, signal }) {
      try {
        await ctx.services.agents.get(ctx.principal, input.agentId);
      } catch (err) {
        throw toTrpcError(err instanceof Error ? err : notFound(`Agent ${input.agentId} not found`));
      }
      yield* subscribe(ctx, input.agentId, input.lastEventId, signal);
    }),
    /** Scheduler-wide figures (`scheduler:status`): the current ones first (as Socket.IO does), then every change. */
    scheduler: authed.input(z.object({ lastEventId }).optional()).subscription(async function* ({ ctx, input, signal }) {
      let after = input?.lastEventId;
      if (after == null) {
        const now = ctx.services.scheduler.snapshot();
        after = now.id;
        yield tracked(String(now.id), now);
      }
      yield* subscribe(ctx, null, after, signal);
    }),
  }),
});

export type AppRouter = typeof appRouter;
