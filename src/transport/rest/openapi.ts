import { z } from 'zod';
import { MAX_BODY_BYTES } from '../../core/limits.ts';
import type { ProcedureRoute, Route } from './routes.ts';

/**
 * The OpenAPI 3.1 document, generated from the procedure rows of the route table and the same zod
 * schemas that validate requests: nothing here is described twice.
 */
const errorEnvelope = {
  type: 'object',
  required: ['success', 'error'],
  properties: { success: { const: false }, error: { type: 'string' } },
} as const;

const ERROR_STATUSES: Record<number, string> = {
  400: 'Invalid input: the message names the field',
  401: 'Missing or invalid bearer token',
  403: 'The token is valid but this call is for admins (role "admin") only',
  404: 'Agent, job or run not found (or not yours)',
  405: 'Method not allowed on this path',
  409: 'Conflicts with the current state',
  413: `Body over ${MAX_BODY_BYTES / 1024 / 1024} MiB`,
};

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _s, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return rest;
};

function parameters(route: ProcedureRoute) {
  const out: unknown[] = [];
  for (const [where, schema] of [['path', route.params], ['query', route.query]] as const) {
    if (!schema) continue;
    const js = jsonSchema(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
    for (const [name, s] of Object.entries(js.properties ?? {})) {
      out.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: s });
    }
  }
  return out;
}

function operation(route: ProcedureRoute) {
  const { procedure } = route;
  const open = procedure.access === 'public';
  const success = {
    type: 'object',
    required: ['success', 'data'],
    properties: { success: { const: true }, data: jsonSchema(procedure.output, 'output'), message: { type: 'string' } },
  };
  const responses: Record<string, unknown> = {};
  for (const s of route.statuses) responses[String(s)] = { description: s === 201 ? 'Created' : s === 202 ? 'Accepted' : 'OK', content: { 'application/json': { schema: success } } };
  const errors = [400, ...(open ? [] : [401]), ...(procedure.access === 'admin' ? [403] : []), 404, 405, ...(route.method !== 'GET' ? [409, 413] : [])];
  for (const code of errors) responses[String(code)] = { description: ERROR_STATUSES[code], content: { 'application/json': { schema: errorEnvelope } } };
  return {
    operationId: route.name,
    summary: procedure.summary,
    tags: [route.name.split('.')[0]],
    parameters: parameters(route),
    ...(route.body && { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } } }),
    responses,
    ...(!open && { security: [{ bearerAuth: [] }] }),
  };
}

export const openApiPath = (path: string) => path.replace(/:([A-Za-z]+)/g, '{$1}');

let cached: unknown;

/** Built on first request and kept: the table does not change while the process runs. */
export function openApiDocument(routes: readonly Route[]): unknown {
  if (cached) return cached;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
    if (route.kind !== 'procedure') continue;
    const p = (paths[openApiPath(route.path)] ??= {});
    p[route.method.toLowerCase()] = operation(route);
  }
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'Agent Scheduler API',
      version: '0.1.0',
      description: 'Schedule AI agents on cron expressions with priorities, retries, pause/resume and live progress. Every success is `{ success: true, data }`; every error `{ success: false, error }`.',
    },
    servers: [{ url: '/' }],
    components: { securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    paths,
  };
  return cached;
}
