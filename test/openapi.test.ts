import { Validator } from '@seriousme/openapi-schema-validator';
import { describe, expect, it } from 'vitest';
import { openApiPath } from '../src/transport/rest/openapi.ts';
import { routes } from '../src/transport/rest/routes.ts';
import { startServer } from './harness.ts';

describe('OpenAPI', () => {
  it('serves a valid OpenAPI 3.1 document without a token', async () => {
    await using s = await startServer();
    const r = await s.call('GET', '/api/openapi.json', { token: null });
    expect(r.status).toBe(200);
    expect(r.body.openapi).toBe('3.1.0');
    const result = await new Validator().validate(r.body);
    expect(result.errors ?? []).toEqual([]);
    expect(result.valid).toBe(true);
  });

  it('has every route, and every path in it is a route', async () => {
    await using s = await startServer();
    const doc = (await s.call('GET', '/api/openapi.json', { token: null })).body as { paths: Record<string, Record<string, { operationId: string }>> };
    const documented = Object.entries(doc.paths).flatMap(([path, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${path}`)).sort();
    // Procedure rows are the API; raw rows (health, this document, the docs page) are public pages beside it.
    const table = routes.filter((r) => r.kind === 'procedure').map((r) => `${r.method} ${openApiPath(r.path)}`).sort();
    expect(documented).toEqual(table);
    // Every documented operation answers (not 404/405) on the live server.
    for (const line of documented) {
      const [method, path] = line.split(' ') as [string, string];
      const concrete = path.replace(/\{[^}]+\}/g, 'x');
      const res = await s.call(method, concrete, { body: method === 'GET' || method === 'DELETE' ? undefined : {} });
      expect(res.status, line).not.toBe(405);
      if (res.status === 404) expect(res.body.error, line).not.toMatch(/^No route/);
    }
  });

  it('describes inputs from the same schemas that validate them', async () => {
    await using s = await startServer();
    const doc = (await s.call('GET', '/api/openapi.json', { token: null })).body;
    const schedule = doc.paths['/api/agents/{agentId}/schedule'].post;
    expect(schedule.requestBody.content['application/json'].schema).toEqual({ $ref: '#/components/schemas/ScheduleSetBody' });
    const body = doc.components.schemas.ScheduleSetBody;
    expect(body.required).toEqual(['cronExpression']);
    expect(body.properties.priority).toEqual({ default: 'NORMAL', $ref: '#/components/schemas/Priority' });
    expect(doc.components.schemas.Priority.enum).toEqual(['LOW', 'NORMAL', 'HIGH', 'CRITICAL']);
    expect(schedule.parameters).toEqual([expect.objectContaining({ name: 'agentId', in: 'path', required: true })]);
    expect(Object.keys(schedule.responses)).toEqual(expect.arrayContaining(['200', '201', '400', '401', '404']));
    const status = doc.paths['/api/agents/schedule/status'].get.responses['200'].content['application/json'].schema;
    expect(status.properties.data).toEqual({ $ref: '#/components/schemas/SchedulerStats' });
    expect(doc.components.schemas.SchedulerStats.required).toEqual(['isRunning', 'scheduledTasksCount', 'runningAgentsCount', 'queuedTasksCount', 'maxConcurrentAgents', 'pausedJobsCount']);
  });

  it('renders the docs page from local files', async () => {
    await using s = await startServer();
    const page = await fetch(`${s.url}/api/docs`);
    expect(page.status).toBe(200);
    const html = await page.text();
    expect(html).toContain('/api/docs/swagger-ui-bundle.js');
    expect(html).not.toMatch(/https?:\/\//);
    const bundle = await fetch(`${s.url}/api/docs/swagger-ui-bundle.js`);
    expect(bundle.status).toBe(200);
    expect(bundle.headers.get('content-type')).toMatch(/javascript/);
    expect((await bundle.arrayBuffer()).byteLength).toBeGreaterThan(100_000);
    expect((await fetch(`${s.url}/api/docs/init.js`)).status).toBe(200);
    expect((await fetch(`${s.url}/api/docs/../../etc/passwd`)).status).toBe(404);
    expect((await fetch(`${s.url}/api/docs/package.json`)).status).toBe(404);
  });
});
