import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { openApiDocument } from '../../src/transport/rest/openapi.ts';
import { routes } from '../../src/transport/rest/routes.ts';

/**
 * Issue 12, "First contact": the OpenAPI document inlined every schema (no `$ref`, so openapi-typescript made no
 * named types), had no examples, answered `priority` as a bare string and times as strings without a format.
 */
type Json = Record<string, any>;
const doc = openApiDocument(routes) as Json;
const schemas = doc.components.schemas as Record<string, Json>;
const data = (method: string, path: string, status = '200') => doc.paths[path][method].responses[status].content['application/json'].schema.properties.data;

function refs(node: unknown, into = new Set<string>()): Set<string> {
  if (Array.isArray(node)) node.forEach((n) => refs(n, into));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === '$ref') into.add(v as string);
      else refs(v, into);
    }
  }
  return into;
}

describe('the OpenAPI document gives generated clients real types', () => {
  it('names the schemas and references them by $ref', () => {
    expect(Object.keys(schemas)).toEqual(expect.arrayContaining(['Agent', 'AgentCreate', 'Run', 'RunDetail', 'ScheduleInfo', 'ScheduleSet', 'SchedulerStats', 'Priority', 'AgentStatus', 'RunStatus', 'ErrorEnvelope']));
    expect(data('get', '/api/agents/{agentId}')).toEqual({ $ref: '#/components/schemas/Agent' });
    expect(data('get', '/api/agents')).toEqual({ type: 'array', items: { $ref: '#/components/schemas/Agent' } });
    expect(doc.paths['/api/agents'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/AgentCreate' });
    expect(doc.paths['/api/agents/{agentId}'].get.responses['404'].content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ErrorEnvelope' });
    // Every reference resolves, and none points at zod's local `$defs`.
    for (const ref of refs(doc)) {
      expect(ref).toMatch(/^#\/components\/schemas\//);
      expect(schemas[ref.slice('#/components/schemas/'.length)], ref).toBeDefined();
    }
  });

  it('answers the priority by its enum and times with format: date-time', () => {
    expect(schemas.ScheduleSet!.properties.priority).toEqual({ $ref: '#/components/schemas/Priority' });
    expect(schemas.Priority!.enum).toEqual(['LOW', 'NORMAL', 'HIGH', 'CRITICAL']);
    expect(schemas.Agent!.properties.createdAt.format).toBe('date-time');
    expect(schemas.Agent!.properties.nextRunAt.anyOf).toContainEqual(expect.objectContaining({ type: 'string', format: 'date-time' }));
    expect(schemas.Run!.properties.scheduledAt.format).toBe('date-time');
    expect(schemas.Instance!.properties.heartbeatAt.format).toBe('date-time');
  });

  it('carries examples that the schemas themselves accept', () => {
    const withExamples = Object.entries(schemas).filter(([, s]) => Array.isArray(s.examples));
    expect(withExamples.map(([n]) => n)).toEqual(expect.arrayContaining(['Agent', 'AgentCreate', 'Run', 'ScheduleInfo', 'ScheduleSet', 'SchedulerStats', 'ErrorEnvelope']));
    // Each named zod schema parses its own examples, so an example never drifts from the shape it shows.
    let checked = 0;
    for (const [schema, meta] of globalIds()) {
      for (const example of (meta.examples ?? []) as unknown[]) {
        expect(schema.safeParse(example).success, `${meta.id} example`).toBe(true);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(7);
    expect(doc.paths['/api/agents/{agentId}/schedule'].post.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ScheduleSetBody' });
  });
});

/** The schemas registered with an id (zod's global registry), with their metadata. */
function* globalIds(): Generator<[z.ZodType, Json]> {
  const map = (z.globalRegistry as unknown as { _idmap: Map<string, z.ZodType> })._idmap;
  for (const schema of map.values()) yield [schema, z.globalRegistry.get(schema) as Json];
}
