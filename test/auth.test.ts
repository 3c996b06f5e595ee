import { SignJWT, UnsecuredJWT, generateKeyPair } from 'jose';
import { describe, expect, it } from 'vitest';
import { createAuth } from '../src/services/auth.ts';
import { startServer, TEST_SECRET } from './harness.ts';

const key = new TextEncoder().encode(TEST_SECRET);
const sign = (claims: Record<string, unknown>, setup: (j: SignJWT) => SignJWT = (j) => j) =>
  setup(new SignJWT(claims).setProtectedHeader({ alg: 'HS256' })).sign(key);
const inAnHour = () => Math.floor(Date.now() / 1000) + 3600;

describe('auth', () => {
  it('accepts a good token and rejects every bad kind with 401 and WWW-Authenticate: Bearer', async () => {
    await using s = await startServer();
    const good = await sign({ sub: 'alice', exp: inAnHour() });
    expect((await s.call('GET', '/api/agents', { token: good })).status).toBe(200);

    const { privateKey } = await generateKeyPair('RS256');
    const cases: [string, string | null][] = [
      ['no token', null],
      ['garbage', 'not.a.jwt'],
      ['wrong secret', await new SignJWT({ sub: 'alice', exp: inAnHour() }).setProtectedHeader({ alg: 'HS256' }).sign(new TextEncoder().encode('another-secret-of-at-least-32-bytes!!'))],
      ['alg none', new UnsecuredJWT({ sub: 'alice', exp: inAnHour() }).encode()],
      ['RS256', await new SignJWT({ sub: 'alice', exp: inAnHour() }).setProtectedHeader({ alg: 'RS256' }).sign(privateKey)],
      ['expired beyond the tolerance', await sign({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 120 })],
      ['no sub', await sign({ exp: inAnHour() })],
      ['no exp', await sign({ sub: 'alice' })],
    ];
    for (const [name, token] of cases) {
      const r = await s.call('GET', '/api/agents', { token });
      expect(r.status, name).toBe(401);
      expect(r.headers.get('www-authenticate'), name).toBe('Bearer');
      expect(r.body, name).toMatchObject({ success: false, error: expect.any(String) });
    }
    const noBearer = await fetch(`${s.url}/api/agents`, { headers: { authorization: `Basic ${good}` } });
    expect(noBearer.status).toBe(401);
  });

  it('forgives 30 s of clock skew on exp', async () => {
    await using s = await startServer();
    const token = await sign({ sub: 'alice', exp: Math.floor(Date.now() / 1000) - 10 });
    expect((await s.call('GET', '/api/agents', { token })).status).toBe(200);
  });

  it('checks iss and aud when they are configured', async () => {
    await using s = await startServer({ env: { JWT_ISSUER: 'https://issuer.test', JWT_AUDIENCE: 'scheduler' } });
    const ok = await sign({ sub: 'a', exp: inAnHour() }, (j) => j.setIssuer('https://issuer.test').setAudience('scheduler'));
    const wrongIss = await sign({ sub: 'a', exp: inAnHour() }, (j) => j.setIssuer('https://evil.test').setAudience('scheduler'));
    const wrongAud = await sign({ sub: 'a', exp: inAnHour() }, (j) => j.setIssuer('https://issuer.test').setAudience('other'));
    const none = await sign({ sub: 'a', exp: inAnHour() });
    expect((await s.call('GET', '/api/agents', { token: ok })).status).toBe(200);
    for (const token of [wrongIss, wrongAud, none]) {
      const r = await s.call('GET', '/api/agents', { token });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
    }
  });

  it('refuses a secret under 32 bytes', () => {
    expect(() => createAuth({ secret: 'x'.repeat(31) })).toThrow(/at least 32 bytes/);
  });

  it('leaves /healthz open', async () => {
    await using s = await startServer();
    const r = await s.call('GET', '/healthz', { token: null });
    expect(r).toMatchObject({ status: 200, body: { ok: true } });
  });
});
