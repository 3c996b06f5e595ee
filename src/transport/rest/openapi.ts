import { z } from 'zod';
import { MAX_BODY_BYTES } from '../../core/limits.ts';
import type { ProcedureRoute, Route } from './routes.ts';

/**
 * The OpenAPI 3.1 document, generated from the procedure rows of the route table and the same zod
 * schemas that validate requests: nothing here is described twice.
 */
const errorEnvelope = {
  type: 'object',
  examples: [{ success: false, error: 'cronExpression: expected a cron expression' }],
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

/**
 * Named schemas (those with a `.meta({ id })` in `schemas/`) go to `components.schemas` and are referenced by
 * `$ref`, so generated clients get one named type each. zod puts them in the converted schema's `$defs`; they
 * are hoisted here. One id must describe one thing whether read as input or as output: a schema whose input
 * and output forms differ (defaults, transforms) gets no id, and a clash fails the document's build.
 */
type Json = Record<string, unknown>;
const REF_PREFIX = '#/components/schemas/';

function rewriteRefs(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(rewriteRefs);
  if (!node || typeof node !== 'object') return node;
  const out: Json = {};
  for (const [k, v] of Object.entries(node)) out[k] = k === '$ref' && typeof v === 'string' ? v.replace(/^#\/\$defs\//, REF_PREFIX) : rewriteRefs(v);
  return out;
}

function createSchemaSet() {
  const components: Record<string, unknown> = {};
  const add = (name: string, schema: unknown) => {
    const existing = components[name];
    if (existing !== undefined && JSON.stringify(existing) !== JSON.stringify(schema)) {
      throw new Error(`OpenAPI: schema id "${name}" describes two different schemas (input and output forms differ?)`);
    }
    components[name] = schema;
  };
  const convert = (schema: z.ZodType, io: 'input' | 'output'): Json => {
    const { $schema: _s, $defs, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any', target: 'draft-2020-12' }) as Json;
    for (const [name, def] of Object.entries(($defs ?? {}) as Json)) add(name, rewriteRefs(def));
    return rewriteRefs(rest) as Json;
  };
  /** A schema that is not named itself becomes one under `fallbackName` (request bodies: `AgentsUpdateBody`). */
  const named = (schema: z.ZodType, io: 'input' | 'output', fallbackName: string): Json => {
    const js = convert(schema, io);
    if (typeof js.$ref === 'string' && Object.keys(js).length === 1) return js;
    add(fallbackName, js);
    return { $ref: REF_PREFIX + fallbackName };
  };
  return { components, add, convert, named };
}
type SchemaSet = ReturnType<typeof createSchemaSet>;

const pascal = (name: string) => name.split('.').map((p) => p[0]!.toUpperCase() + p.slice(1)).join('');

function parameters(route: ProcedureRoute, set: SchemaSet) {
  const out: unknown[] = [];
  for (const [where, schema] of [['path', route.params], ['query', route.query]] as const) {
    if (!schema) continue;
    const js = set.convert(schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
    for (const [name, s] of Object.entries(js.properties ?? {})) {
      out.push({ name, in: where, required: where === 'path' || (js.required ?? []).includes(name), schema: s });
    }
  }
  if (route.headers) {
    const js = set.convert(route.headers.schema, 'input') as { properties?: Record<string, unknown>; required?: string[] };
    for (const [field, s] of Object.entries(js.properties ?? {})) {
      out.push({ name: route.headers.names[field], in: 'header', required: (js.required ?? []).includes(field), schema: s });
    }
  }
  return out;
}

function operation(route: ProcedureRoute, set: SchemaSet) {
  const { procedure } = route;
  const open = procedure.access === 'public';
  const success = {
    type: 'object',
    required: ['success', 'data'],
    properties: { success: { const: true }, data: set.convert(procedure.output, 'output'), message: { type: 'string' } },
  };
  const responses: Record<string, unknown> = {};
  for (const s of route.statuses) responses[String(s)] = { description: s === 201 ? 'Created' : s === 202 ? 'Accepted' : 'OK', content: { 'application/json': { schema: success } } };
  const errors = [400, ...(open ? [] : [401]), ...(procedure.access === 'admin' ? [403] : []), 404, 405, ...(route.method !== 'GET' ? [409, 413] : [])];
  for (const code of errors) responses[String(code)] = { description: ERROR_STATUSES[code], content: { 'application/json': { schema: { $ref: `${REF_PREFIX}ErrorEnvelope` } } } };
  return {
    operationId: route.name,
    summary: procedure.summary,
    tags: [route.name.split('.')[0]],
    parameters: parameters(route, set),
    ...(route.body && { requestBody: { required: true, content: { 'application/json': { schema: set.named(route.body, 'input', `${pascal(route.name)}Body`) } } } }),
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
  const set = createSchemaSet();
  set.add('ErrorEnvelope', errorEnvelope);
  for (const route of routes) {
    if (route.kind !== 'procedure') continue;
    const p = (paths[openApiPath(route.path)] ??= {});
    p[route.method.toLowerCase()] = operation(route, set);
  }
  const schemas = Object.fromEntries(Object.entries(set.components).sort(([a], [b]) => a.localeCompare(b)));
  cached = {
    openapi: '3.1.0',
    info: {
      title: 'Agent Scheduler API',
      version: '0.1.0',
      description: 'Schedule AI agents on cron expressions with priorities, retries, pause/resume and live progress. Every success is `{ success: true, data }`; every error `{ success: false, error }`.',
    },
    servers: [{ url: '/' }],
    components: { schemas, securitySchemes: { bearerAuth: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' } } },
    paths,
  };
  return cached;
}
