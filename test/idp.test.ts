import { randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { exportJWK, exportPKCS8, exportSPKI, generateKeyPair, SignJWT, UnsecuredJWT, type JWK, type JWTPayload } from 'jose';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';
import type { Logger } from '../src/core/logger.ts';
import { main } from '../src/runtime/main.ts';
import { signToken } from '../src/runtime/token.ts';
import { betterSqliteDialect } from '../src/storage/dialects/better-sqlite3.ts';
import { deferred, startServer, tempDir, TEST_SECRET } from './harness.ts';

// CONTRACT §10 "Your own identity provider": JWT_JWKS_URL, JWT_PUBLIC_KEY, JWT_ROLE_CLAIM.

type Alg = 'RS256' | 'ES256' | 'EdDSA';

/** A key pair as an identity provider holds it: the public JWK it publishes, its PEM, and a signer. */
async function idpKey(alg: Alg, kid = `${alg}-1`) {
  const { publicKey, privateKey } = await generateKeyPair(alg);
  const jwk: JWK = { ...(await exportJWK(publicKey)), kid, alg, use: 'sig' };
  // A jti makes every token distinct, so the server's verified-token cache never answers for a new one.
  const sign = (claims: JWTPayload = {}, sub = 'alice') =>
    new SignJWT({ jti: randomUUID(), ...claims }).setProtectedHeader({ alg, kid }).setSubject(sub).setIssuedAt().setExpirationTime('1h').sign(privateKey);
  return { jwk, pem: await exportSPKI(publicKey), sign };
}

/** A loopback JWKS endpoint that counts its fetches; `keys` and `status` can change while it runs. */
async function jwksServer(keys: JWK[]) {
  const state = { keys, status: 200, fetches: 0 };
  const server = createServer((_req, res) => {
    state.fetches++;
    if (state.status !== 200) res.writeHead(state.status).end('unavailable');
    else res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: state.keys }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return Object.assign(state, {
    url: `http://127.0.0.1:${port}/.well-known/jwks.json`,
    async [Symbol.asyncDispose]() {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  });
}

/** A logger that keeps every line, to show what is logged (and that no token is). */
function recordingLogger() {
  const lines: { level: string; message: string; fields?: Record<string, unknown> }[] = [];
  const at = (level: string) => (message: string, fields?: Record<string, unknown>) => void lines.push({ level, message, fields });
  const logger: Logger = { info: at('info'), warn: at('warn'), error: at('error') };
  return { lines, logger };
}

const hs256 = (secret: string, claims: JWTPayload = {}) =>
  new SignJWT(claims).setProtectedHeader({ alg: 'HS256' }).setSubject('alice').setIssuedAt().setExpirationTime('1h').sign(new TextEncoder().encode(secret));

/** Beside an identity provider, `JWT_SECRET: ''` counts as unset (the harness sets one otherwise). */
const NO_SECRET = { JWT_SECRET: '' };

afterEach(() => {
  vi.useRealTimers();
});

describe('identity provider: JWT_JWKS_URL', () => {
  it('verifies RS256, ES256 and EdDSA tokens with the endpoint\'s keys, fetching the key set once for many requests', async () => {
    const keys = await Promise.all((['RS256', 'ES256', 'EdDSA'] as const).map((alg) => idpKey(alg)));
    await using jwks = await jwksServer(keys.map((k) => k.jwk));
    await using s = await startServer({ env: { ...NO_SECRET, JWT_JWKS_URL: jwks.url } });
    for (const key of keys) {
      for (let i = 0; i < 3; i++) expect((await s.call('GET', '/api/agents', { token: await key.sign() })).status).toBe(200);
    }
    expect(jwks.fetches).toBe(1);

    // The token's sub is the owner, as with the server's own tokens.
    const created = await s.call('POST', '/api/agents', { token: await keys[0]!.sign({}, 'alice'), body: { name: 'Mine', handler: 'demo' } });
    expect(created.status).toBe(201);
    expect((await s.call('GET', `/api/agents/${created.body.data.id}`, { token: await keys[1]!.sign({}, 'bob') })).status).toBe(404);
  });

  it('refetches on an unknown kid after the cooldown; a rotated-out key admits no new token, a verified one stays cached', async () => {
    const oldKey = await idpKey('RS256', 'old');
    const newKey = await idpKey('ES256', 'new');
    await using jwks = await jwksServer([oldKey.jwk]);
    await using s = await startServer({ env: { ...NO_SECRET, JWT_JWKS_URL: jwks.url } });
    const before = await oldKey.sign();
    expect((await s.call('GET', '/api/agents', { token: before })).status).toBe(200);

    jwks.keys = [newKey.jwk];
    // Within 30 s of the last fetch an unknown kid does not trigger another one (a flood of made-up kids costs the IdP nothing).
    const early = await s.call('GET', '/api/agents', { token: await newKey.sign() });
    expect(early.status).toBe(401);
    expect(early.body.error).toMatch(/no key from JWT_JWKS_URL matches/);
    expect(jwks.fetches).toBe(1);

    vi.useFakeTimers({ toFake: ['Date'], now: Date.now() + 31_000 });
    expect((await s.call('GET', '/api/agents', { token: await newKey.sign() })).status).toBe(200);
    expect(jwks.fetches).toBe(2);
    expect((await s.call('GET', '/api/agents', { token: await newKey.sign() })).status).toBe(200);
    expect(jwks.fetches).toBe(2);
    // The old key is gone from the set: a new token under it fails; the one verified before is still in the cache.
    expect((await s.call('GET', '/api/agents', { token: await oldKey.sign() })).status).toBe(401);
    expect((await s.call('GET', '/api/agents', { token: before })).status).toBe(200);
  });

  it('refuses algorithm confusion: HS256 keyed with the public key, alg none, and a header alg that does not match the key', async () => {
    const rsa = await idpKey('RS256', 'rsa');
    const ec = await idpKey('ES256', 'ec');
    await using jwks = await jwksServer([rsa.jwk, ec.jwk]);
    for (const env of [NO_SECRET, {}]) {
      await using s = await startServer({ env: { ...env, JWT_JWKS_URL: jwks.url } });
      // An ES256 token relabelled RS256 under the EC key's kid: no RSA key by that kid, so no key at all.
      const [, payload, signature] = (await ec.sign()).split('.');
      const relabelled = [Buffer.from(JSON.stringify({ alg: 'RS256', kid: 'ec' })).toString('base64url'), payload, signature].join('.');
      const cases: [string, string][] = [
        ['HS256 keyed with the JWK', await hs256(JSON.stringify(rsa.jwk))],
        ['HS256 keyed with the PEM', await hs256(rsa.pem)],
        ['alg none', new UnsecuredJWT({ sub: 'alice' }).setExpirationTime('1h').encode()],
        ['alg does not match the key', relabelled],
      ];
      for (const [name, token] of cases) {
        const r = await s.call('GET', '/api/agents', { token });
        expect(r.status, name).toBe(401);
        expect(r.headers.get('www-authenticate'), name).toBe('Bearer');
      }
      expect((await s.call('GET', '/api/agents', { token: await rsa.sign() })).status).toBe(200);
    }
  });

  it('accepts the server\'s own HS256 tokens beside the IdP only when JWT_SECRET is set too', async () => {
    const rsa = await idpKey('RS256');
    await using jwks = await jwksServer([rsa.jwk]);
    {
      await using s = await startServer({ env: { JWT_JWKS_URL: jwks.url } }); // the harness sets JWT_SECRET
      expect((await s.call('GET', '/api/agents', { token: await hs256(TEST_SECRET) })).status).toBe(200);
      expect((await s.call('GET', '/api/agents', { token: await rsa.sign() })).status).toBe(200);
    }
    await using s = await startServer({ env: { ...NO_SECRET, JWT_JWKS_URL: jwks.url } });
    // The app was still handed a secret (as main.ts hands it the generated one): it admits nothing.
    const r = await s.call('GET', '/api/agents', { token: await s.token('alice', 'admin') });
    expect(r.status).toBe(401);
    expect(r.body.error).toBe('Invalid token: algorithm "HS256" is not accepted');
  });

  it('answers 401 "could not fetch keys" while the endpoint is down, warns once without the token, and recovers', async () => {
    const rsa = await idpKey('RS256');
    await using jwks = await jwksServer([rsa.jwk]);
    jwks.status = 503;
    const { lines, logger } = recordingLogger();
    await using s = await startServer({ env: { ...NO_SECRET, JWT_JWKS_URL: jwks.url }, logger });
    const tokens = [await rsa.sign(), await rsa.sign()];
    for (const token of tokens) {
      const r = await s.call('GET', '/api/agents', { token });
      expect(r.status).toBe(401);
      expect(r.headers.get('www-authenticate')).toBe('Bearer');
      expect(r.body.error).toMatch(/Could not fetch keys from the identity provider \(JWT_JWKS_URL\)/);
    }
    const warnings = lines.filter((l) => l.level === 'warn');
    expect(warnings).toHaveLength(1);
    expect(warnings[0]!.message).toMatch(/could not fetch keys from JWT_JWKS_URL/);
    expect(warnings[0]!.fields).toMatchObject({ url: jwks.url });
    for (const token of tokens) expect(JSON.stringify(lines)).not.toContain(token);

    jwks.status = 200;
    expect((await s.call('GET', '/api/agents', { token: tokens[0] })).status).toBe(200);
    expect(lines.at(-1)?.message).toMatch(/fetched from JWT_JWKS_URL again/);
  });

  it('answers 401, not 500, when nothing listens at JWT_JWKS_URL', async () => {
    const rsa = await idpKey('RS256');
    const closed = await jwksServer([]);
    await closed[Symbol.asyncDispose]();
    await using s = await startServer({ env: { ...NO_SECRET, JWT_JWKS_URL: closed.url } });
    const r = await s.call('GET', '/api/agents', { token: await rsa.sign() });
    expect(r.status).toBe(401);
    expect(r.body.error).toMatch(/Could not fetch keys/);
  });
});

describe('identity provider: JWT_PUBLIC_KEY', () => {
  it('verifies tokens of the PEM key\'s own algorithm, and no other', async () => {
    for (const alg of ['RS256', 'ES256', 'EdDSA'] as const) {
      const key = await idpKey(alg);
      const other = await idpKey(alg);
      await using s = await startServer({ env: { ...NO_SECRET, JWT_PUBLIC_KEY: key.pem } });
      expect((await s.call('GET', '/api/agents', { token: await key.sign() })).status, alg).toBe(200);
      const forged = await s.call('GET', '/api/agents', { token: await other.sign() });
      expect(forged.status, alg).toBe(401);
      expect(forged.body.error, alg).toBe('Invalid token: signature verification failed');
      expect((await s.call('GET', '/api/agents', { token: await hs256(key.pem) })).status, `${alg} HS256 keyed with the PEM`).toBe(401);
      expect((await s.call('GET', '/api/agents', { token: new UnsecuredJWT({ sub: 'alice' }).setExpirationTime('1h').encode() })).status, `${alg} none`).toBe(401);
    }
    const rsa = await idpKey('RS256');
    const ec = await idpKey('ES256');
    await using s = await startServer({ env: { JWT_PUBLIC_KEY: rsa.pem } }); // JWT_SECRET set: HS256 keyed with the PEM still fails
    expect((await s.call('GET', '/api/agents', { token: await hs256(rsa.pem) })).status).toBe(401);
    const mismatch = await s.call('GET', '/api/agents', { token: await ec.sign() });
    expect(mismatch).toMatchObject({ status: 401, body: { error: 'Invalid token: algorithm "ES256" is not accepted' } });
  });

  it('takes a one-line PEM with literal \\n, and refuses a bad one at start naming the variable, without echoing it', async () => {
    const { pem } = await idpKey('EdDSA');
    expect(loadConfig({ JWT_PUBLIC_KEY: pem.trim().replace(/\n/g, '\\n') }).JWT_PUBLIC_KEY).toBe(pem.trim());
    const { privateKey } = await generateKeyPair('ES256', { extractable: true });
    const cases: [string, Record<string, string>, RegExp][] = [
      ['garbage', { JWT_PUBLIC_KEY: 'not a key' }, /^Invalid environment variable JWT_PUBLIC_KEY: expected a PEM public key/],
      ['a private key', { JWT_PUBLIC_KEY: await exportPKCS8(privateKey) }, /^Invalid environment variable JWT_PUBLIC_KEY: expected a public key, not a private one/],
      ['P-384', { JWT_PUBLIC_KEY: await exportSPKI((await generateKeyPair('ES384')).publicKey) }, /^Invalid environment variable JWT_PUBLIC_KEY: expected an EC key on P-256/],
      ['not http(s)', { JWT_JWKS_URL: 'file:///etc/jwks.json' }, /^Invalid environment variable JWT_JWKS_URL: expected an http\(s\) URL/],
      ['both', { JWT_JWKS_URL: 'https://idp.example/jwks', JWT_PUBLIC_KEY: pem }, /JWT_JWKS_URL or JWT_PUBLIC_KEY, not both/],
    ];
    for (const [name, env, message] of cases) {
      let thrown: unknown;
      try {
        loadConfig(env);
      } catch (err) {
        thrown = err;
      }
      expect(thrown, name).toBeInstanceOf(ConfigError);
      expect((thrown as Error).message, name).toMatch(message);
      expect((thrown as Error).message, name).not.toContain('MII');
      expect((thrown as Error).message, name).not.toContain('\n');
    }
  });

  it('stops the start with one line and exit code 1 on a bad JWT_PUBLIC_KEY', async () => {
    const printed: string[] = [];
    const exit = new Error('exit');
    const codes: number[] = [];
    const run = main({
      env: { DATABASE_URL: ':memory:', JWT_PUBLIC_KEY: '-----BEGIN PUBLIC KEY-----\nnot a key\n-----END PUBLIC KEY-----' },
      openDatabase: async () => betterSqliteDialect(':memory:'),
      host: 'test',
      pid: 1,
      onShutdownSignal: () => {},
      exit: (code: number) => {
        codes.push(code);
        throw exit;
      },
      print: (line) => void printed.push(line),
      printError: (line) => void printed.push(line),
    });
    await expect(run).rejects.toBe(exit);
    expect(codes).toEqual([1]);
    expect(printed).toEqual([expect.stringMatching(/^Invalid environment variable JWT_PUBLIC_KEY: expected a PEM public key/)]);
  });
});

describe('identity provider: JWT_ROLE_CLAIM', () => {
  it('makes a token admin by a custom claim, an array holding "admin", or a dotted path; others get 403', async () => {
    const key = await idpKey('ES256');
    await using jwks = await jwksServer([key.jwk]);
    const servers: [string, JWTPayload, JWTPayload][] = [
      // Auth0-style namespaced claim: the exact name wins over reading the dots as a path.
      ['https://scheduler.example/roles', { 'https://scheduler.example/roles': ['user', 'admin'] }, { 'https://scheduler.example/roles': ['user'] }],
      // Keycloak-style realm roles.
      ['realm_access.roles', { realm_access: { roles: ['admin'] } }, { realm_access: { roles: ['offline_access'] }, role: 'admin' }],
      ['groups', { groups: 'admin' }, { groups: ['admins'] }],
    ];
    for (const [claim, admin, user] of servers) {
      await using s = await startServer({ env: { ...NO_SECRET, JWT_JWKS_URL: jwks.url, JWT_ROLE_CLAIM: claim } });
      expect((await s.call('GET', '/api/instances', { token: await key.sign(admin) })).status, claim).toBe(200);
      const r = await s.call('GET', '/api/instances', { token: await key.sign(user) });
      expect(r.status, claim).toBe(403);
      expect((await s.call('GET', '/api/agents', { token: await key.sign(user) })).status, claim).toBe(200);
    }
  });
});

describe('identity provider: the server\'s own secret', () => {
  it('prints no admin token on a first start beside an IdP without JWT_SECRET, and says why', async () => {
    using dir = tempDir();
    const printed: string[] = [];
    const stopped = deferred<number>();
    let shutdown: ((signal: string) => void) | undefined;
    await main({
      env: { DATABASE_URL: `file:${join(dir.path, 'scheduler.db')}`, PORT: '0', JWT_JWKS_URL: 'http://127.0.0.1:9/jwks' },
      openDatabase: async () => betterSqliteDialect(':memory:'),
      host: 'test',
      pid: 1,
      onShutdownSignal: (fn) => void (shutdown = fn),
      exit: ((code: number) => stopped.resolve(code)) as (code: number) => never,
      print: (line) => void printed.push(line),
      printError: (line) => void printed.push(line),
    });
    shutdown!('SIGTERM');
    expect(await stopped.promise).toBe(0);
    expect(printed.join('\n')).not.toMatch(/TOKEN=/);
    const line = printed.map((l) => (l.startsWith('{') ? JSON.parse(l) : {})).find((l) => /no admin token printed/.test(l.message ?? ''));
    expect(line).toMatchObject({ level: 'info', identityProvider: 'JWT_JWKS_URL', adminClaim: 'role = "admin"' });
  });

  it('`npm run token` says it cannot sign for an IdP, and signs when JWT_SECRET is set too', async () => {
    const env = { DATABASE_URL: ':memory:', JWT_PUBLIC_KEY: (await idpKey('EdDSA')).pem };
    await expect(signToken({ sub: 'alice' }, env)).rejects.toThrow(/^Cannot sign a token for an identity provider: JWT_PUBLIC_KEY is set and JWT_SECRET is not/);
    const token = await signToken({ sub: 'alice', role: 'admin' }, { ...env, JWT_SECRET: TEST_SECRET, JWT_ROLE_CLAIM: 'roles' });
    await using s = await startServer({ env: { JWT_PUBLIC_KEY: env.JWT_PUBLIC_KEY, JWT_ROLE_CLAIM: 'roles' } });
    expect((await s.call('GET', '/api/instances', { token })).status).toBe(200);
  });
});
