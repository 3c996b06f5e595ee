import type { IncomingMessage, ServerResponse } from 'node:http';
import { z } from 'zod';
import { procedures, type CallProcedure, type CallProcedureName, type InputOf, type Procedures } from '../../services/procedures.ts';
import { serveDocs } from './docs.ts';
import { openApiDocument } from './openapi.ts';
import { sendJson } from './reply.ts';
import { errorText } from '../../core/errors.ts';
import type { Services } from '../../services/services.ts';

/**
 * Every route of the HTTP server, one row each. A procedure row names its procedure
 * (`services/procedures.ts`: schemas, access, service call) and adds only what is HTTP's: method,
 * path, success status and message, and which input fields come from the query string (path
 * parameters are the path's `:name` segments; the JSON body holds the other fields). A raw row
 * serves a public page itself. The HTTP handler and the OpenAPI document are both driven by this table.
 */
export type Method = 'GET' | 'HEAD' | 'POST' | 'PATCH' | 'DELETE';

export interface ProcedureRoute {
  kind: 'procedure';
  method: Method;
  path: string;
  name: CallProcedureName;
  procedure: CallProcedure;
  /** The parts of the procedure's input, each validated on its own so that errors name `query.x` or `body.x`. */
  params?: z.ZodType;
  query?: z.ZodType;
  body?: z.ZodType;
  /** Input fields read from request headers: the schema of those fields, and each field's header name. */
  headers?: { schema: z.ZodType; names: Readonly<Record<string, string>> };
  /** Every success status the route answers, the usual one first (for the OpenAPI document). */
  statuses: readonly number[];
  status(answer: unknown): number;
  message?(input: unknown, answer: unknown): string;
}

export interface RawRoute {
  kind: 'raw';
  method: Method;
  path: string;
  summary: string;
  /** `services`: for a public page that reports on the server (`/healthz`). */
  handle(req: IncomingMessage, res: ServerResponse, url: URL, services: Services): void;
}

export type Route = ProcedureRoute | RawRoute;

type AnswerOf<N extends CallProcedureName> = Procedures[N] extends CallProcedure<any, any, any, infer A, any> ? A : never;
type InputFor<N extends CallProcedureName> = InputOf<Procedures[N]['input']>;

interface RestOptions<N extends CallProcedureName> {
  /** Input fields read from the query string. */
  query?: readonly (keyof InputFor<N> & string)[];
  /** Input fields read from request headers, by header name (`Idempotency-Key`). */
  headers?: Partial<Record<keyof InputFor<N> & string, string>>;
  /** A fixed status, or one picked from the answer with every status it can pick. @default 200 */
  status?: number | { of(answer: AnswerOf<N>): number; documented: readonly number[] };
  message?: string | ((input: InputFor<N>, answer: AnswerOf<N>) => string);
}

// Keys are checked against the shape before these run; zod's key-typed masks cannot see that.
const mask = (keys: readonly string[]) => Object.fromEntries(keys.map((k) => [k, true])) as never;
const pick = (o: z.ZodObject, keys: readonly string[]): z.ZodType => o.pick(mask(keys));
const omit = (o: z.ZodObject, keys: readonly string[]): z.ZodType => o.omit(mask(keys));

/** Splits a procedure's input schema into path, query and body schemas; a row that cannot be served fails at load. */
function parts(method: Method, path: string, name: string, input: z.ZodType | undefined, queryKeys: readonly string[], headerNames: Readonly<Record<string, string>> = {}) {
  const headerKeys = Object.keys(headerNames);
  const pathKeys = path.split('/').filter((s) => s.startsWith(':')).map((s) => s.slice(1));
  if (!input) {
    if (pathKeys.length + queryKeys.length > 0) throw new Error(`${method} ${path}: ${name} takes no input`);
    return {};
  }
  if (!(input instanceof z.ZodObject)) throw new Error(`${method} ${path}: ${name} needs an object input to map onto HTTP`);
  const keys = Object.keys(input.shape);
  for (const k of [...pathKeys, ...queryKeys, ...headerKeys]) if (!keys.includes(k)) throw new Error(`${method} ${path}: ${name} has no input field "${k}"`);
  const bodyKeys = keys.filter((k) => !pathKeys.includes(k) && !queryKeys.includes(k) && !headerKeys.includes(k));
  if (bodyKeys.length > 0 && (method === 'GET' || method === 'DELETE')) throw new Error(`${method} ${path}: ${name} needs a body (${bodyKeys.join(', ')})`);
  return {
    ...(pathKeys.length > 0 && { params: pick(input, pathKeys) }),
    ...(queryKeys.length > 0 && { query: pick(input, queryKeys) }),
    ...(bodyKeys.length > 0 && { body: bodyKeys.length === keys.length ? input : omit(input, [...pathKeys, ...queryKeys, ...headerKeys]) }),
    ...(headerKeys.length > 0 && { headers: { schema: pick(input, headerKeys), names: headerNames } }),
  };
}

function rest<N extends CallProcedureName>(method: Method, path: string, name: N, options: RestOptions<N> = {}): ProcedureRoute {
  const procedure = procedures[name] as CallProcedure;
  const { status = 200, message } = options;
  return {
    kind: 'procedure',
    method,
    path,
    name,
    procedure,
    ...parts(method, path, name, procedure.input, options.query ?? [], options.headers as Record<string, string> | undefined),
    statuses: typeof status === 'number' ? [status] : status.documented,
    status: typeof status === 'number' ? () => status : (status.of as (answer: unknown) => number),
    ...(message !== undefined && { message: typeof message === 'string' ? () => message : (message as (input: unknown, answer: unknown) => string) }),
  };
}

const raw = (method: Method, path: string, summary: string, handle: RawRoute['handle']): RawRoute => ({ kind: 'raw', method, path, summary, handle });

// 200 even when degraded (services/health.ts says why): `{ ok: true }`, or `{ ok: true, degraded: true, reason }`.
const health: RawRoute['handle'] = (_req, res, _url, services) =>
  void services.health().then(
    (answer) => sendJson(res, 200, answer),
    (err: unknown) => sendJson(res, 200, { ok: true, degraded: true, reason: `the health check failed: ${errorText(err)}` }),
  );
const docs: RawRoute['handle'] = (req, res, url) => serveDocs(req, res, url.pathname);

export const routes: Route[] = [
  // Static paths first: `/api/agents/schedule/status` must not be read as an agent id.
  rest('GET', '/api/agents/schedule/status', 'scheduler.status'),
  rest('GET', '/api/agents/schedule/paused', 'scheduler.paused'),
  rest('POST', '/api/agents', 'agents.create', { status: 201 }),
  rest('GET', '/api/agents', 'agents.list'),
  rest('GET', '/api/agents/:agentId', 'agents.get'),
  rest('PATCH', '/api/agents/:agentId', 'agents.update'),
  rest('DELETE', '/api/agents/:agentId', 'agents.delete', { message: 'Agent deleted successfully' }),
  rest('POST', '/api/agents/:agentId/run', 'agents.run', { status: 202, headers: { idempotencyKey: 'Idempotency-Key' } }),
  rest('GET', '/api/agents/:agentId/runs', 'agents.runs', { query: ['limit'] }),
  rest('GET', '/api/agents/:agentId/usage', 'agents.usage', { query: ['from', 'to'] }),
  rest('POST', '/api/agents/:agentId/schedule', 'schedule.set', {
    status: { of: (answer) => (answer.created ? 201 : 200), documented: [201, 200] },
    message: (_input, answer) => (answer.created ? 'Agent scheduled successfully' : 'Agent schedule updated successfully'),
  }),
  rest('GET', '/api/agents/:agentId/schedule', 'schedule.get'),
  rest('GET', '/api/agents/:agentId/schedule/preview', 'schedule.preview', { query: ['count', 'cronExpression', 'timezone'] }),
  rest('GET', '/api/agents/:agentId/ledger', 'schedule.ledger', { query: ['from', 'to'] }),
  rest('POST', '/api/agents/:agentId/backfill', 'schedule.backfill', { status: 202 }),
  rest('DELETE', '/api/agents/:agentId/schedule', 'schedule.remove', { message: 'Agent unscheduled successfully' }),
  rest('PATCH', '/api/agents/:agentId/schedule/:jobId/pause', 'schedule.pause', { message: ({ jobId }) => `Job ${jobId} paused successfully` }),
  rest('PATCH', '/api/agents/:agentId/schedule/:jobId/resume', 'schedule.resume', { message: ({ jobId }) => `Job ${jobId} resumed successfully` }),
  rest('GET', '/api/runs/:runId', 'runs.get'),
  rest('POST', '/api/runs/:runId/cancel', 'runs.cancel', { message: 'Run cancelled' }),
  rest('GET', '/api/instances', 'instances.list'),
  // Public pages: no token, not in the OpenAPI document (they are not part of the API they describe).
  raw('GET', '/healthz', 'Liveness check', health),
  raw('HEAD', '/healthz', 'Liveness check', health),
  raw('GET', '/api/openapi.json', 'This API as an OpenAPI 3.1 document', (_req, res) => sendJson(res, 200, openApiDocument(routes))),
  raw('GET', '/api/docs', 'Swagger UI over /api/openapi.json', docs),
  raw('GET', '/api/docs/:file', 'Swagger UI files', docs),
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
