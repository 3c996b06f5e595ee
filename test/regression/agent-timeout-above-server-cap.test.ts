import { describe, expect, it } from 'vitest';
import { startServer } from '../harness.ts';

describe("a non-admin agent's timeoutMs could exceed AGENT_TIMEOUT_MS", () => {
  it('is a 400 naming timeoutMs on create and update; an admin may set more', async () => {
    await using s = await startServer({ env: { AGENT_TIMEOUT_MS: '60000' } });
    const over = await s.call('POST', '/api/agents', { body: { id: 'long', name: 'long', handler: 'demo', timeoutMs: 60001 } });
    expect(over.status).toBe(400);
    expect(over.body.error).toMatch(/^timeoutMs: expected at most 60000.*got 60001/);
    expect((await s.call('POST', '/api/agents', { body: { id: 'ok', name: 'ok', handler: 'demo', timeoutMs: 60000 } })).status).toBe(201);
    const patch = await s.call('PATCH', '/api/agents/ok', { body: { timeoutMs: 2 ** 31 - 1 } });
    expect(patch.status).toBe(400);
    expect(patch.body.error).toMatch(/^timeoutMs:/);
    const admin = await s.token('ops', 'admin');
    expect((await s.call('POST', '/api/agents', { token: admin, body: { id: 'adm', name: 'adm', handler: 'demo', timeoutMs: 86_400_000 } })).status).toBe(201);
  });
});
