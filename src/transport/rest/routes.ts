import { z } from 'zod';
import type { Principal } from '../../services/auth.ts';
import type { Services } from '../../services/services.ts';
import { agentCreateInput, agentOutput, agentUpdateInput } from '../../schemas/agent.ts';
import { agentIdParam, jobParams, runIdParam } from '../../schemas/common.ts';
import { cancelResult, runAccepted, runOutput, runsQuery } from '../../schemas/run.ts';
import { pausedJob, pauseResult, resumeResult, scheduleInfo, scheduleInput, scheduleSummary, schedulerStats } from '../../schemas/schedule.ts';

/**
 * Every REST route, one row each: method, path, schemas, success status and the service call.
 * The HTTP handler and the OpenAPI document are both driven by this table.
 */
export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export interface RouteInput<P, Q, B> {
  params: P;
  query: Q;
  body: B;
}

export interface RouteResult<D> {
  data: D;
  message?: string;
  /** Overrides the row's success status (schedule: 201 when created, 200 when replaced). */
  status?: number;
}

export interface Route<P extends z.ZodType = z.ZodType, Q extends z.ZodType = z.ZodType, B extends z.ZodType = z.ZodType, O extends z.ZodType = z.ZodType> {
  method: Method;
  path: string;
  /** The tRPC procedure this route mirrors (CONTRACT §6). */
  procedure: string;
  summary: string;
  /** false only for routes CONTRACT §2 opens to everyone. @default true */
  auth?: boolean;
  params?: P;
  query?: Q;
  body?: B;
  output: O;
  status: number;
  handle(ctx: { principal: Principal; services: Services }, input: RouteInput<z.output<P>, z.output<Q>, z.output<B>>): Promise<RouteResult<z.output<O>>>;
}

/** Keeps each row's types tied together while the table holds rows of different types. */
function route<P extends z.ZodType, Q extends z.ZodType, B extends z.ZodType, O extends z.ZodType>(r: Route<P, Q, B, O>): Route {
  return r as unknown as Route;
}

const deleted = z.object({ id: z.string(), deleted: z.literal(true) });
const unscheduled = z.object({ agentId: z.string() });
const scheduleSetOutput = scheduleSummary.extend({ jobId: z.string(), priority: z.string(), timezone: z.string() });

export const routes: Route[] = [
  // Static paths first: `/api/agents/schedule/status` must not be read as an agent id.
  route({
    method: 'GET', path: '/api/agents/schedule/status', procedure: 'scheduler.status', summary: 'Global scheduler statistics',
    output: schedulerStats, status: 200,
    handle: async ({ services }) => ({ data: services.scheduler.status() }),
  }),
  route({
    method: 'GET', path: '/api/agents/schedule/paused', procedure: 'scheduler.paused', summary: "The caller's paused jobs",
    output: z.array(pausedJob), status: 200,
    handle: async ({ principal, services }) => ({ data: await services.scheduler.paused(principal) }),
  }),
  route({
    method: 'POST', path: '/api/agents', procedure: 'agents.create', summary: 'Create an agent',
    body: agentCreateInput, output: agentOutput, status: 201,
    handle: async ({ principal, services }, { body }) => ({ data: await services.agents.create(principal, body) }),
  }),
  route({
    method: 'GET', path: '/api/agents', procedure: 'agents.list', summary: "List the caller's agents",
    output: z.array(agentOutput), status: 200,
    handle: async ({ principal, services }) => ({ data: await services.agents.list(principal) }),
  }),
  route({
    method: 'GET', path: '/api/agents/:agentId', procedure: 'agents.get', summary: 'Get an agent',
    params: agentIdParam, output: agentOutput, status: 200,
    handle: async ({ principal, services }, { params }) => ({ data: await services.agents.get(principal, params.agentId) }),
  }),
  route({
    method: 'PATCH', path: '/api/agents/:agentId', procedure: 'agents.update', summary: 'Update an agent',
    params: agentIdParam, body: agentUpdateInput, output: agentOutput, status: 200,
    handle: async ({ principal, services }, { params, body }) => ({ data: await services.agents.update(principal, params.agentId, body) }),
  }),
  route({
    method: 'DELETE', path: '/api/agents/:agentId', procedure: 'agents.delete', summary: 'Delete an agent, its schedule and its runs',
    params: agentIdParam, output: deleted, status: 200,
    handle: async ({ principal, services }, { params }) => ({ data: await services.agents.remove(principal, params.agentId), message: 'Agent deleted successfully' }),
  }),
  route({
    method: 'POST', path: '/api/agents/:agentId/run', procedure: 'agents.run', summary: 'Run an agent now',
    params: agentIdParam, output: runAccepted, status: 202,
    handle: async ({ principal, services }, { params }) => ({ data: await services.agents.run(principal, params.agentId) }),
  }),
  route({
    method: 'GET', path: '/api/agents/:agentId/runs', procedure: 'agents.runs', summary: "An agent's runs, newest first",
    params: agentIdParam, query: runsQuery, output: z.array(runOutput), status: 200,
    handle: async ({ principal, services }, { params, query }) => ({ data: await services.agents.runs(principal, params.agentId, query.limit) }),
  }),
  route({
    method: 'POST', path: '/api/agents/:agentId/schedule', procedure: 'schedule.set', summary: 'Schedule an agent (create or replace)',
    params: agentIdParam, body: scheduleInput, output: scheduleSetOutput, status: 201,
    handle: async ({ principal, services }, { params, body }) => {
      const { created, data } = await services.schedule.set(principal, params.agentId, body);
      return { data, status: created ? 201 : 200, message: created ? 'Agent scheduled successfully' : 'Agent schedule updated successfully' };
    },
  }),
  route({
    method: 'GET', path: '/api/agents/:agentId/schedule', procedure: 'schedule.get', summary: "An agent's schedule",
    params: agentIdParam, output: scheduleInfo, status: 200,
    handle: async ({ principal, services }, { params }) => ({ data: await services.schedule.get(principal, params.agentId) }),
  }),
  route({
    method: 'DELETE', path: '/api/agents/:agentId/schedule', procedure: 'schedule.remove', summary: 'Unschedule an agent',
    params: agentIdParam, output: unscheduled, status: 200,
    handle: async ({ principal, services }, { params }) => {
      await services.schedule.remove(principal, params.agentId);
      return { data: { agentId: params.agentId }, message: 'Agent unscheduled successfully' };
    },
  }),
  route({
    method: 'PATCH', path: '/api/agents/:agentId/schedule/:jobId/pause', procedure: 'schedule.pause', summary: 'Pause a scheduled job',
    params: jobParams, output: pauseResult, status: 200,
    handle: async ({ principal, services }, { params }) => ({
      data: await services.schedule.pause(principal, params.agentId, params.jobId),
      message: `Job ${params.jobId} paused successfully`,
    }),
  }),
  route({
    method: 'PATCH', path: '/api/agents/:agentId/schedule/:jobId/resume', procedure: 'schedule.resume', summary: 'Resume a paused job',
    params: jobParams, output: resumeResult, status: 200,
    handle: async ({ principal, services }, { params }) => ({
      data: await services.schedule.resume(principal, params.agentId, params.jobId),
      message: `Job ${params.jobId} resumed successfully`,
    }),
  }),
  route({
    method: 'POST', path: '/api/runs/:runId/cancel', procedure: 'runs.cancel', summary: 'Cancel a queued or running run',
    params: runIdParam, output: cancelResult, status: 200,
    handle: async ({ principal, services }, { params }) => ({ data: await services.runs.cancel(principal, params.runId), message: 'Run cancelled' }),
  }),
];

export interface MatchedRoute {
  route: Route;
  params: Record<string, string>;
}

function split(path: string): string[] {
  return path.split('/').filter(Boolean);
}

const compiled = routes.map((r) => ({ route: r, parts: split(r.path) }));

/** Finds the row for a request: `{ route }`, `{ allowed }` when the path exists under other methods (405), or null (404). */
export function matchRoute(method: string, path: string): MatchedRoute | { allowed: Method[] } | null {
  const parts = split(path);
  const allowed: Method[] = [];
  for (const { route: r, parts: pattern } of compiled) {
    if (pattern.length !== parts.length) continue;
    const params: Record<string, string> = {};
    let ok = true;
    for (let i = 0; i < pattern.length; i++) {
      const seg = pattern[i]!;
      const got = parts[i]!;
      if (seg.startsWith(':')) {
        try {
          params[seg.slice(1)] = decodeURIComponent(got);
        } catch {
          ok = false;
        }
      } else if (seg !== got) ok = false;
      if (!ok) break;
    }
    if (!ok) continue;
    if (r.method === method) return { route: r, params };
    allowed.push(r.method);
  }
  return allowed.length > 0 ? { allowed } : null;
}
