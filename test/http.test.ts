import { request } from 'node:http';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { startServer } from './harness.ts';

describe('HTTP', () => {
  it('wraps success and errors in the envelope', async () => {
    await using s = await startServer();
    const ok = await s.call('GET', '/api/agents');
    expect(ok.headers.get('content-type')).toMatch(/application\/json/);
    expect(ok.body).toEqual({ success: true, data: [] });
    const missing = await s.call('GET', '/api/agents/ghost');
    expect(missing.status).toBe(404);
    expect(missing.body).toEqual({ success: false, error: 'Agent ghost not found' });
  });

  it('answers 404 for an unknown route and 405 for a wrong method', async () => {
    await using s = await startServer();
    const unknown = await s.call('GET', '/api/nothing/here');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ success: false, error: expect.stringMatching(/No route/) });
    expect((await s.call('GET', '/elsewhere')).status).toBe(404);
    const wrong = await s.call('PUT', '/api/agents');
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get('allow')).toBe('POST, GET');
    expect(wrong.body.success).toBe(false);
    expect((await s.call('POST', '/healthz')).status).toBe(405);
  });

  it('answers 413 for a body over 1 MiB', async () => {
    await using s = await startServer();
    const big = JSON.stringify({ name: 'x'.repeat(1024 * 1024 + 10), handler: 'demo' });
    const r = await s.call('POST', '/api/agents', { raw: big, headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(413);
    expect(r.body).toMatchObject({ success: false });
    expect((await s.call('GET', '/api/agents')).body.data).toEqual([]);
  });

  it('answers 400 naming the problem for malformed JSON', async () => {
    await using s = await startServer();
    const r = await s.call('POST', '/api/agents', { raw: '{"name": ', headers: { 'content-type': 'application/json' } });
    expect(r.status).toBe(400);
    expect(r.body.error).toMatch(/^Malformed JSON body: /);
  });

  it('never answers 500 or a stack for odd input', async () => {
    await using s = await startServer();
    const odd: [string, string, string?][] = [
      ['POST', '/api/agents', 'null'],
      ['POST', '/api/agents', '"text"'],
      ['POST', '/api/agents', '{"name":{"$gt":1},"handler":"demo"}'],
      ['POST', '/api/agents', '{"name":"x","handler":"demo","config":[]}'],
      ['POST', '/api/agents', '{"name":"x","handler":"demo","config":{"steps":1e309}}'],
      ['GET', '/api/agents/%E0%A4%A'],
      ['GET', `/api/agents/${'a'.repeat(5000)}`],
      ['GET', '/api/agents/x/runs?limit=abc'],
      ['GET', '/api/agents/x/runs?limit=0'],
      ['POST', '/api/agents/x/schedule', '{"cronExpression":5}'],
      ['PATCH', '/api/agents/x', '{"__proto__":{"admin":true}}'],
      ['POST', '/api/runs/nothing/cancel', ''],
    ];
    for (const [method, path, raw] of odd) {
      const r = await s.call(method, path, { raw, headers: { 'content-type': 'application/json' } });
      expect(r.status, `${method} ${path} ${raw}`).toBeGreaterThanOrEqual(400);
      expect(r.status, `${method} ${path} ${raw}`).toBeLessThan(500);
      expect(JSON.stringify(r.body)).not.toMatch(/at .*\.ts:\d+/);
    }
  });

  it('finishes an in-flight request on close and then refuses connections', async () => {
    await using s = await startServer(); // closed by the test; disposing it after frees its database (a PostgreSQL schema)
    const body = JSON.stringify({ id: 'late', name: 'Late', handler: 'demo' });
    const arrived = new Promise((r) => s.app.server.once('request', r));
    const req = request(`${s.url}/api/agents`, {
      method: 'POST',
      headers: { authorization: `Bearer ${await s.token()}`, 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
    });
    const status = new Promise<number>((resolve, reject) => {
      req.on('response', (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
    });
    req.write(body.slice(0, 10));
    await arrived;
    const closing = s.app.close(5000);
    req.end(body.slice(10));
    expect(await status).toBe(201);
    await closing;
    await expect(fetch(`${s.url}/healthz`)).rejects.toThrow();
  });

  it('sets its connection limits from the configuration', async () => {
    await using s = await startServer({ env: { HTTP_HEADERS_TIMEOUT_MS: '2000', HTTP_REQUEST_TIMEOUT_MS: '4000', HTTP_KEEP_ALIVE_TIMEOUT_MS: '3000', HTTP_MAX_CONNECTIONS: '50' } });
    const server = s.app.server;
    expect([server.headersTimeout, server.requestTimeout, server.keepAliveTimeout, server.maxConnections]).toEqual([2000, 4000, 3000, 50]);
    await using d = await startServer();
    expect([d.app.server.headersTimeout, d.app.server.requestTimeout, d.app.server.keepAliveTimeout, d.app.server.maxConnections]).toEqual([10_000, 30_000, 5_000, 10_000]);
  });

  it('refuses a bad CORS_ORIGINS entry and a request timeout under the headers timeout, naming them', () => {
    expect(() => loadConfig({ CORS_ORIGINS: 'http://ok.test, https://a.test/path' })).toThrow(/^Invalid environment variable CORS_ORIGINS: .*"https:\/\/a.test\/path" is not one/);
    expect(loadConfig({ CORS_ORIGINS: 'HTTP://App.Test:80/, *' }).CORS_ORIGINS).toEqual(['*']);
    expect(loadConfig({ CORS_ORIGINS: 'HTTP://App.Test:80/' }).CORS_ORIGINS).toEqual(['http://app.test']);
    expect(() => loadConfig({ HTTP_HEADERS_TIMEOUT_MS: '5000', HTTP_REQUEST_TIMEOUT_MS: '1000' })).toThrow(/HTTP_REQUEST_TIMEOUT_MS: expected at least HTTP_HEADERS_TIMEOUT_MS/);
  });
});
