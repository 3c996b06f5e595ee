import { z } from 'zod';
import { agentCreateInput, agentDeleted, agentOutput, agentUpdateInput } from '../schemas/agent.ts';
import { agentIdParam, idSchema, jobParams, runIdParam } from '../schemas/common.ts';
import { instanceOutput } from '../schemas/instance.ts';
import { cancelResult, idempotencyKey, runAccepted, runDetail, runOutput, runsQuery, usageQuery, usageReport } from '../schemas/run.ts';
import { backfillInput, backfillResult, ledgerEntry, ledgerQuery, pausedJob, pauseInput, pauseResult, previewFire, previewQuery, resumeResult, scheduleInfo, scheduleInput, scheduleSetResult, schedulerStats, unscheduled } from '../schemas/schedule.ts';
import { lastEventId } from '../schemas/events.ts';
import type { Access, Principal } from './auth.ts';
import type { StreamEvent } from './events.ts';
import type { Services } from './services.ts';

/**
 * Every use case once, under its tRPC name (the README's "Three doors into one house"): its kind, who
 * may call it, its input and output schemas and the service call. The tRPC router and the REST routes
 * are built from this table (`transport/trpc/router.ts`, `transport/rest/routes.ts`); a REST row adds
 * only its method, path, status and message. Outputs are not validated at run time (that would cost
 * every call); the compiler checks that each call answers what its output schema describes.
 */
export interface CallContext {
  principal: Principal;
  services: Services;
}

type MaybePromise<T> = T | Promise<T>;
/** A procedure's input once parsed; `undefined` for a procedure that takes none. */
export type InputOf<I> = I extends z.ZodType ? z.output<I> : undefined;

interface Common<I extends z.ZodType | undefined> {
  access: Access;
  /** One line for the OpenAPI document. */
  summary: string;
  input: I;
}

/**
 * A query or mutation. `A` is what the service answers and `R` what the caller gets: they differ only
 * where a service says more than the output (schedule.set also says whether it created the schedule).
 */
export interface CallProcedure<K extends 'query' | 'mutation' = 'query' | 'mutation', I extends z.ZodType | undefined = z.ZodType | undefined, O extends z.ZodType = z.ZodType, A = unknown, R = unknown>
  extends Common<I> {
  kind: K;
  output: O;
  call(ctx: CallContext, input: InputOf<I>): MaybePromise<A>;
  /** The output from the service's answer. @default the answer itself */
  reply?(answer: A): R;
}

/** A stream of events; each transport numbers and frames them its own way. */
export interface SubscriptionProcedure<I extends z.ZodType | undefined = z.ZodType | undefined> extends Common<I> {
  kind: 'subscription';
  call(ctx: CallContext, input: InputOf<I>, signal: AbortSignal | undefined): AsyncIterable<StreamEvent>;
}

export type AnyProcedure = CallProcedure<'query' | 'mutation', any, any, any, any> | SubscriptionProcedure<any>;

type Def<I extends z.ZodType | undefined, O extends z.ZodType, R> = { access?: Access; summary: string; input?: I; output: O; call(ctx: CallContext, input: InputOf<I>): MaybePromise<R> };
type DefWithReply<I extends z.ZodType | undefined, O extends z.ZodType, A, R> = Omit<Def<I, O, A>, 'call'> & { call(ctx: CallContext, input: InputOf<I>): MaybePromise<A>; reply(answer: A): R };

/** `query` and `mutation`: the second overload is the common row, the first one with a `reply`. */
function callKind<K extends 'query' | 'mutation'>(kind: K) {
  function make<O extends z.ZodType, A, R extends z.output<O>, I extends z.ZodType | undefined = undefined>(def: DefWithReply<I, O, A, R>): CallProcedure<K, I, O, A, R>;
  function make<O extends z.ZodType, R extends z.output<O>, I extends z.ZodType | undefined = undefined>(def: Def<I, O, R>): CallProcedure<K, I, O, R, R>;
  function make(def: Def<any, z.ZodType, unknown> & { reply?: (a: unknown) => unknown }) {
    return { kind, access: def.access ?? 'authed', summary: def.summary, input: def.input, output: def.output, call: def.call, ...(def.reply && { reply: def.reply }) };
  }
  return make;
}
const query = callKind('query');
const mutation = callKind('mutation');
function subscription<I extends z.ZodType | undefined = undefined>(def: Omit<SubscriptionProcedure<I>, 'kind' | 'access' | 'input'> & { access?: Access; input?: I }): SubscriptionProcedure<I> {
  return { kind: 'subscription', access: def.access ?? 'authed', summary: def.summary, input: def.input as I, call: def.call };
}


// Every row is `authed` (any verified token) unless it says otherwise; inputs are the REST body
// fields plus the path's agentId/jobId/runId, outputs the REST `data` objects.
export const procedures = {
  'agents.create': mutation({
    summary: 'Create an agent', input: agentCreateInput, output: agentOutput,
    call: ({ principal, services }, input) => services.agents.create(principal, input),
  }),
  'agents.list': query({
    summary: "List the caller's agents", output: z.array(agentOutput),
    call: ({ principal, services }) => services.agents.list(principal),
  }),
  'agents.get': query({
    summary: 'Get an agent', input: agentIdParam, output: agentOutput,
    call: ({ principal, services }, { agentId }) => services.agents.get(principal, agentId),
  }),
  'agents.update': mutation({
    summary: 'Update an agent', input: agentUpdateInput.extend(agentIdParam.shape), output: agentOutput,
    call: ({ principal, services }, { agentId, ...patch }) => services.agents.update(principal, agentId, patch),
  }),
  'agents.delete': mutation({
    summary: 'Delete an agent, its schedule and its runs', input: agentIdParam, output: agentDeleted,
    call: ({ principal, services }, { agentId }) => services.agents.remove(principal, agentId),
  }),
  'agents.run': mutation({
    summary: 'Run an agent now (with an idempotency key: the run that key made in the last 24 h, or a new one)',
    input: agentIdParam.extend({ idempotencyKey: idempotencyKey.optional() }), output: runAccepted,
    call: ({ principal, services }, { agentId, idempotencyKey }) => services.agents.run(principal, agentId, idempotencyKey),
  }),
  'agents.runs': query({
    summary: "An agent's runs, newest first", input: agentIdParam.extend({ limit: runsQuery.shape.limit }), output: z.array(runOutput),
    call: ({ principal, services }, { agentId, limit }) => services.agents.runs(principal, agentId, limit),
  }),
  'agents.usage': query({
    summary: "An agent's tokens and cost by UTC day (default: the last 30 days)", input: agentIdParam.extend(usageQuery.shape), output: usageReport,
    call: ({ principal, services }, { agentId, from, to }) => services.agents.usage(principal, agentId, { from, to }),
  }),
  'schedule.set': mutation({
    summary: 'Schedule an agent (create or replace)', input: scheduleInput.extend(agentIdParam.shape), output: scheduleSetResult,
    call: ({ principal, services }, { agentId, ...body }) => services.schedule.set(principal, agentId, body),
    reply: (answer) => answer.schedule,
  }),
  'schedule.get': query({
    summary: "An agent's schedule", input: agentIdParam, output: scheduleInfo,
    call: ({ principal, services }, { agentId }) => services.schedule.get(principal, agentId),
  }),
  'schedule.remove': mutation({
    summary: 'Unschedule an agent', input: agentIdParam, output: unscheduled,
    call: ({ principal, services }, { agentId }) => services.schedule.remove(principal, agentId),
  }),
  'schedule.pause': mutation({
    summary: 'Pause a scheduled job, with an optional note and a time it resumes by itself', input: z.strictObject({ ...jobParams.shape, ...pauseInput.shape }), output: pauseResult,
    call: ({ principal, services }, { agentId, jobId, ...how }) => services.schedule.pause(principal, agentId, jobId, how),
  }),
  'schedule.resume': mutation({
    summary: 'Resume a paused job', input: jobParams, output: resumeResult,
    call: ({ principal, services }, { agentId, jobId }) => services.schedule.resume(principal, agentId, jobId),
  }),
  'schedule.preview': query({
    summary: "The next fire times of an agent's schedule, or of an unsaved cronExpression and timezone, with DST notes",
    input: agentIdParam.extend(previewQuery.shape), output: z.array(previewFire),
    call: ({ principal, services }, { agentId, ...q }) => services.schedule.preview(principal, agentId, q),
  }),
  'schedule.ledger': query({
    summary: "What became of each slot of an agent's schedule in [from, to) (at most 1,000 slots): ran, skipped, paused, missed, caught up, pending",
    input: agentIdParam.extend(ledgerQuery.shape), output: z.array(ledgerEntry),
    call: ({ principal, services }, { agentId, from, to }) => services.schedule.ledger(principal, agentId, from, to),
  }),
  'schedule.backfill': mutation({
    summary: "Queue one run per slot of an agent's schedule in [from, to) (at most 1,000 slots); slots that have a run are left alone",
    input: backfillInput.extend(agentIdParam.shape), output: backfillResult,
    call: ({ principal, services }, { agentId, from, to }) => services.schedule.backfill(principal, agentId, from, to),
  }),
  'scheduler.status': query({
    summary: 'Global scheduler statistics', output: schedulerStats,
    call: ({ services }) => services.scheduler.status(),
  }),
  'scheduler.paused': query({
    summary: "The caller's paused jobs", output: z.array(pausedJob),
    call: ({ principal, services }) => services.scheduler.paused(principal),
  }),
  'instances.list': query({
    access: 'admin',
    summary: 'The live instances sharing the database (admin only)', output: z.array(instanceOutput),
    call: ({ services }) => services.instances.list(),
  }),
  'runs.get': query({
    summary: 'One run with its whole output and usage', input: runIdParam, output: runDetail,
    call: ({ principal, services }, { runId }) => services.runs.get(principal, runId),
  }),
  'runs.cancel': mutation({
    summary: 'Cancel a queued or running run', input: runIdParam, output: cancelResult,
    call: ({ principal, services }, { runId }) => services.runs.cancel(principal, runId),
  }),
  'events.agent': subscription({
    summary: "One agent's events; a reconnecting client passes its last id",
    input: z.object({ agentId: idSchema, lastEventId }),
    call: ({ principal, services }, { agentId, lastEventId: after }, signal) => services.events.watchAgent(principal, agentId, { after, signal }),
  }),
  'events.scheduler': subscription({
    summary: 'Scheduler-wide figures: the current ones first, then every change',
    input: z.object({ lastEventId }).optional(),
    call: ({ services }, input, signal) => services.events.watchScheduler({ after: input?.lastEventId, signal }),
  }),
};
// Checked here rather than with `satisfies`: a contextual type would leak `any` into the rows' inferred input types.
procedures satisfies Record<string, AnyProcedure>;

export type Procedures = typeof procedures;
export type ProcedureName = keyof Procedures;
/** The rows REST can serve: queries and mutations (subscriptions are tRPC's and Socket.IO's). */
export type CallProcedureName = { [N in ProcedureName]: Procedures[N] extends CallProcedure ? N : never }[ProcedureName];
