import { SignJWT } from 'jose';
import { describe, expect, it } from 'vitest';
import { createAuth } from '../../src/services/auth.ts';
import { startServer, TEST_SECRET } from '../harness.ts';

/** Issue 12 item 2: a token with `exp` a century away was accepted; JWT_MAX_TTL (default 30 days) bounds it. */
describe('JWT_MAX_TTL', () => {
  const key = new TextEncoder().encode(TEST_SECRET);
  const nowS = () => Math.floor(Date.now() / 1000);

  it('refuses a token living longer than 30 days with 401 naming the reason', async () => {
    await using s = await startServer();
    const century = await new SignJWT({ sub: 'alice' }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().setExpirationTime(nowS() + 100 * 365 * 86400).sign(key);
    const r = await s.call('GET', '/api/agents', { token: century });
    expect(r.status).toBe(401);
    expect(r.body.error).toMatch(/JWT_MAX_TTL/);
    // Without iat, the lifetime counts from now.
    const noIat = await new SignJWT({ sub: 'alice', exp: nowS() + 31 * 86400 }).setProtectedHeader({ alg: 'HS256' }).sign(key);
    expect((await s.call('GET', '/api/agents', { token: noIat })).status).toBe(401);
    const month = await new SignJWT({ sub: 'alice', exp: nowS() + 29 * 86400 }).setProtectedHeader({ alg: 'HS256' }).setIssuedAt().sign(key);
    expect((await s.call('GET', '/api/agents', { token: month })).status).toBe(200);
  });

  it('takes its bound from the maxTtlS option', async () => {
    const auth = createAuth({ secret: TEST_SECRET, maxTtlS: 3600 });
    await expect(auth.verify(await auth.sign({ sub: 'a' }, '2h'))).rejects.toThrow(/JWT_MAX_TTL \(3600 s\)/);
    await expect(auth.verify(await auth.sign({ sub: 'a' }, '1h'))).resolves.toMatchObject({ sub: 'a' });
  });
});
