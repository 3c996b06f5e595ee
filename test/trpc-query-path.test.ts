import superjson from 'superjson';
import { describe, expect, it } from 'vitest';
import { startServer, type TestServer } from './harness.ts';

/**
 * The typed client's reads (`GET /trpc/<query>,…?batch=1`) are answered by the transport's own query path, not
 * tRPC's standalone adapter (adapter.ts says why). Its answers must be the adapter's, byte for byte. The
 * adapter decodes a batch's paths (`%2E` is `.`) and the query path does not take encoded paths, so the same
 * call with its dot encoded is the adapter's answer to compare with.
 */
async function get(s: TestServer, path: string, inputs: unknown[] | undefined, token: string | undefined) {
  const input = inputs && encodeURIComponent(JSON.stringify(Object.fromEntries(inputs.map((v, i) => [i, superjson.serialize(v)]))));
  const res = await fetch(`${s.url}/trpc/${path}?batch=1${input ? `&input=${input}` : ''}`, { headers: token ? { authorization: `Bearer ${token}` } : {} });
  return { status: res.status, type: res.headers.get('content-type'), vary: res.headers.get('vary'), body: await res.text() };
}

describe('tRPC query path', () => {
  it('answers every kind of read exactly as the tRPC adapter does', async () => {
    await using s = await startServer();
    const token = await s.token();
    expect((await s.call('POST', '/api/agents', { body: { id: 'reader', name: 'Reader', handler: 'demo' } })).status).toBe(201);
    const cases: { paths: string[]; inputs?: unknown[]; token?: string }[] = [
      { paths: ['scheduler.status'], token },
      { paths: ['agents.list'], token },
      { paths: ['agents.get'], inputs: [{ agentId: 'missing' }], token }, // NOT_FOUND
      { paths: ['agents.get'], inputs: [{ agentId: 42 }], token }, // BAD_REQUEST, names the field
      { paths: ['scheduler.status'], token: undefined }, // UNAUTHORIZED
      { paths: ['scheduler.status'], token: 'not-a-token' },
      { paths: ['scheduler.status', 'agents.get', 'agents.list'], inputs: [undefined, { agentId: 'missing' }, undefined], token }, // a mixed batch: 207
    ];
    for (const c of cases) {
      const fast = await get(s, c.paths.join(','), c.inputs, c.token);
      const adapter = await get(s, c.paths.map((p) => p.replace('.', '%2E')).join(','), c.inputs, c.token);
      expect(fast, c.paths.join(',')).toEqual(adapter);
    }
    // The answers are what a caller relies on, not merely equal.
    const ok = await get(s, 'scheduler.status', undefined, token);
    expect(ok.status).toBe(200);
    expect(superjson.deserialize((JSON.parse(ok.body) as { result: { data: never } }[])[0]!.result.data)).toMatchObject({ isRunning: expect.any(Boolean) });
    expect((await get(s, 'agents.get', [{ agentId: 'missing' }], token)).status).toBe(404);
    expect((await get(s, 'scheduler.status', undefined, undefined)).status).toBe(401);
    const bad = await get(s, 'agents.get', [{ agentId: 42 }], token);
    expect(bad.status).toBe(400);
    expect(bad.body).toContain('agentId');
  });

  it('leaves mutations, unknown paths and streaming reads to the adapter', async () => {
    await using s = await startServer();
    const token = await s.token();
    // A mutation over GET is refused by tRPC itself (405), never run.
    const create = await fetch(`${s.url}/trpc/agents.create?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: superjson.serialize({ id: 'x', name: 'X', handler: 'demo' }) }))}`, { headers: { authorization: `Bearer ${token}` } });
    expect(create.status).toBe(405);
    expect((await s.call('GET', '/api/agents')).body).toMatchObject({ data: [] });
    expect((await fetch(`${s.url}/trpc/nope.nothing?batch=1`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(404);
    const streamed = await fetch(`${s.url}/trpc/scheduler.status?batch=1`, { headers: { authorization: `Bearer ${token}`, 'trpc-accept': 'application/jsonl' } });
    expect(streamed.status).toBe(200);
    expect(await streamed.text()).toContain('"isRunning"');
  });
});
