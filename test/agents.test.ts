import { describe, expect, it } from 'vitest';
import { startServer } from './harness.ts';

describe('agents API', () => {
  it('creates, lists, gets, patches and deletes', async () => {
    await using s = await startServer();
    const created = await s.call('POST', '/api/agents', { body: { id: 'writer', name: 'Writer', handler: 'demo', config: { steps: 2 }, description: 'writes' } });
    expect(created.status).toBe(201);
    expect(created.body).toEqual({
      success: true,
      data: expect.objectContaining({
        id: 'writer', name: 'Writer', handler: 'demo', config: { steps: 2, stepMs: 250, failTimes: 0 }, description: 'writes',
        status: 'IDLE', scheduleExpression: null, scheduleEnabled: false, nextRunAt: null, lastRunAt: null, lastError: null, owner: 'alice',
      }),
    });

    const generated = await s.call('POST', '/api/agents', { body: { name: 'No id', handler: 'demo' } });
    expect(generated.status).toBe(201);
    expect(generated.body.data.id).toMatch(/^[A-Za-z0-9_-]{1,64}$/);

    const list = await s.call('GET', '/api/agents');
    expect(list.status).toBe(200);
    expect(list.body.data.map((a: { id: string }) => a.id)).toEqual(['writer', generated.body.data.id]);

    const got = await s.call('GET', '/api/agents/writer');
    expect(got.body.data.name).toBe('Writer');

    const patched = await s.call('PATCH', '/api/agents/writer', { body: { name: 'Writer 2', timeoutMs: 5000, maxRetries: 1, config: { steps: 3 } } });
    expect(patched.status).toBe(200);
    expect(patched.body.data).toMatchObject({ name: 'Writer 2', timeoutMs: 5000, maxRetries: 1, config: { steps: 3 } });
    expect((await s.call('GET', '/api/agents/writer')).body.data.name).toBe('Writer 2');

    const del = await s.call('DELETE', '/api/agents/writer');
    expect(del.status).toBe(200);
    expect(del.body.success).toBe(true);
    expect((await s.call('GET', '/api/agents/writer')).status).toBe(404);
  });

  it('names the field in validation errors and writes nothing', async () => {
    await using s = await startServer();
    const cases: [unknown, RegExp][] = [
      [{ handler: 'demo' }, /body\.name: /],
      [{ name: 'x', handler: 'demo', id: 'bad id!' }, /body\.id: expected 1 to 64 characters/],
      [{ name: 'x', handler: 'demo', timeoutMs: 'soon' }, /body\.timeoutMs: /],
      [{ name: 'x', handler: 'demo', maxRetries: -1 }, /body\.maxRetries: /],
      [{ name: 'x', handler: 'demo', config: { steps: 0 } }, /config\.steps: /],
      [{ name: 'x', handler: 'demo', extra: 1 }, /body: unknown field "extra"/],
      [[1, 2], /body: /],
    ];
    for (const [body, message] of cases) {
      const r = await s.call('POST', '/api/agents', { body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body.success).toBe(false);
      expect(r.body.error, JSON.stringify(body)).toMatch(message);
    }
    expect((await s.call('GET', '/api/agents')).body.data).toEqual([]);
    const patch = await s.call('POST', '/api/agents', { body: { id: 'a', name: 'A', handler: 'demo' } });
    expect(patch.status).toBe(201);
    const bad = await s.call('PATCH', '/api/agents/a', { body: { name: '' } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/body\.name/);
    expect((await s.call('GET', '/api/agents/a')).body.data.name).toBe('A');
  });

  it('answers 409 for a taken id, whoever owns it', async () => {
    await using s = await startServer();
    expect((await s.call('POST', '/api/agents', { body: { id: 'dup', name: 'A', handler: 'demo' } })).status).toBe(201);
    const again = await s.call('POST', '/api/agents', { body: { id: 'dup', name: 'B', handler: 'demo' } });
    expect(again.status).toBe(409);
    expect(again.body.error).toMatch(/dup/);
    const bob = await s.token('bob');
    expect((await s.call('POST', '/api/agents', { token: bob, body: { id: 'dup', name: 'C', handler: 'demo' } })).status).toBe(409);
  });

  it('refuses an unknown handler and a webhook host that is not allowed', async () => {
    await using s = await startServer();
    const unknown = await s.call('POST', '/api/agents', { body: { name: 'x', handler: 'nope' } });
    expect(unknown.status).toBe(400);
    expect(unknown.body.error).toMatch(/handler: unknown handler "nope"/);
    const host = await s.call('POST', '/api/agents', { body: { id: 'w', name: 'x', handler: 'webhook', config: { url: 'http://evil.example.com/hook' } } });
    expect(host.status).toBe(400);
    expect(host.body.error).toMatch(/config\.url: host "evil\.example\.com" is not in WEBHOOK_ALLOWED_HOSTS/);
    const notUrl = await s.call('POST', '/api/agents', { body: { name: 'x', handler: 'webhook', config: { url: 'ftp://localhost/x' } } });
    expect(notUrl.status).toBe(400);
    expect(notUrl.body.error).toMatch(/config\.url/);
    const ok = await s.call('POST', '/api/agents', { body: { id: 'w', name: 'x', handler: 'webhook', config: { url: 'http://127.0.0.1:9/hook' } } });
    expect(ok.status).toBe(201);
    const patch = await s.call('PATCH', '/api/agents/w', { body: { config: { url: 'https://evil.example.com/' } } });
    expect(patch.status).toBe(400);
    expect((await s.call('GET', '/api/agents/w')).body.data.config.url).toBe('http://127.0.0.1:9/hook');
  });

  it("answers another owner's agent exactly like a missing one on every route; admin sees all", async () => {
    await using s = await startServer();
    const bob = await s.token('bob');
    const admin = await s.token('root', 'admin');
    expect((await s.call('POST', '/api/agents', { body: { id: 'alices', name: 'A', handler: 'demo' } })).status).toBe(201);
    expect((await s.call('POST', '/api/agents', { token: bob, body: { id: 'bobs', name: 'B', handler: 'demo' } })).status).toBe(201);

    const routes: [string, string, unknown?][] = [
      ['GET', '/api/agents/alices'],
      ['PATCH', '/api/agents/alices', { name: 'stolen' }],
      ['DELETE', '/api/agents/alices'],
      ['POST', '/api/agents/alices/run'],
      ['GET', '/api/agents/alices/runs'],
      ['POST', '/api/agents/alices/schedule', { cronExpression: '* * * * *' }],
      ['GET', '/api/agents/alices/schedule'],
      ['DELETE', '/api/agents/alices/schedule'],
      ['PATCH', '/api/agents/alices/schedule/alices/pause'],
      ['PATCH', '/api/agents/alices/schedule/alices/resume'],
    ];
    for (const [method, path, body] of routes) {
      const theirs = await s.call(method, path, { token: bob, body });
      const missing = await s.call(method, path.replace(/alices/g, 'nobody'), { token: bob, body });
      expect(theirs.status, `${method} ${path}`).toBe(404);
      expect(theirs.body.error, `${method} ${path}`).toBe(missing.body.error.replace(/nobody/g, 'alices'));
    }
    expect((await s.call('GET', '/api/agents', { token: bob })).body.data.map((a: { id: string }) => a.id)).toEqual(['bobs']);
    expect((await s.call('GET', '/api/agents')).body.data.map((a: { id: string }) => a.id)).toEqual(['alices']);
    expect((await s.call('GET', '/api/agents', { token: admin })).body.data.map((a: { id: string }) => a.id)).toEqual(['alices', 'bobs']);
    expect((await s.call('PATCH', '/api/agents/bobs', { token: admin, body: { name: 'by admin' } })).status).toBe(200);
    expect((await s.call('GET', '/api/agents/alices')).body.data.name).toBe('A');
  });
});
