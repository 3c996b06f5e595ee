import { z } from 'zod';
import { routes, type Route } from './routes.ts';

/**
 * The OpenAPI 3.1 document, generated from the route table and the same zod schemas that validate
 * requests: nothing here is described twice.
 */
const errorEnvelope = {
  type: 'object',
  required: ['success', 'error'],
  properties: { success: { const: false }, error: { type: 'string' } },
} as const;

const ERROR_STATUSES: Record<number, string> = {
  400: 'Invalid input: the message names the field',
  401: 'Missing or invalid bearer token',
  404: 'Agent, job or run not found (or not yours)',
  405: 'Method not allowed on this path',
  409: 'Conflicts with the current state',
  413: 'Body over 1 MiB',
};

const jsonSchema = (schema: z.ZodType, io: 'input' | 'output') => {
  const { $schema: _s, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Record<string, unknown>;
  return rest;
};

function parameters(route: Route) {
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

function operation(route: Route) {
  const statuses = new Set([route.status]);
  if (route.procedure === 'schedule.set') statuses.add(200);
  const success = {
    type: 'object',
    required: ['success', 'data'],
    properties: { success: { const: true }, data: jsonSchema(route.output, 'output'), message: { type: 'string' } },
  };
  const responses: Record<string, unknown> = {};
  for (const s of statuses) responses[String(s)] = { description: s === 201 ? 'Created' : s === 202 ? 'Accepted' : 'OK', content: { 'application/json': { schema: success } } };
  const errors = [400, ...(route.auth === false ? [] : [401]), 404, 405, ...(route.method !== 'GET' ? [409, 413] : [])];
  for (const code of errors) responses[String(code)] = { description: ERROR_STATUSES[code], content: { 'application/json': { schema: errorEnvelope } } };
  return {
    operationId: route.procedure,
    summary: route.summary,
    tags: [route.procedure.split('.')[0]],
    parameters: parameters(route),
    ...(route.body && { requestBody: { required: true, content: { 'application/json': { schema: jsonSchema(route.body, 'input') } } } }),
    responses,
    ...(route.auth !== false && { security: [{ bearerAuth: [] }] }),
  };
}

export const openApiPath = (path: string) => path.replace(/:([A-Za-z]+)/g, '{$1}');

let cached: unknown;

export function openApiDocument(): unknown {
  if (cached) return cached;
  const paths: Record<string, Record<string, unknown>> = {};
  for (const route of routes) {
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
