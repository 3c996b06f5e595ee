import { decodeProtectedHeader, errors as joseErrors, jwtVerify, SignJWT, type JWTPayload } from 'jose';
import type { Config } from '../config.ts';
import { DomainError, forbidden } from '../core/errors.ts';
import { CLOCK_TOLERANCE_S, JWT_MAX_TTL_S, MIN_SECRET_BYTES, VERIFIED_TOKEN_CACHE } from '../core/limits.ts';
import type { Logger } from '../core/logger.ts';
import { createKeySource } from './keys.ts';

/** Who is calling: the token's `sub`, and whether its role claim (JWT_ROLE_CLAIM, `role` by default) holds "admin". */
export interface Principal {
  sub: string;
  admin: boolean;
}

export interface AuthOptions {
  /** HS256 key, at least `MIN_SECRET_BYTES` (32) bytes: what `sign` uses, and what verifies HS256 tokens when they are accepted. */
  secret: string;
  /**
   * Whether `secret` was configured (JWT_SECRET) rather than generated. Beside an identity provider only a
   * configured secret verifies HS256 tokens: a generated one is a dev convenience, not a second way in.
   * Without an identity provider it makes no difference. @default true
   */
  explicitSecret?: boolean;
  /** An identity provider's JWKS endpoint (JWT_JWKS_URL): RS256, ES256 and EdDSA tokens verify with its keys. @default none */
  jwksUrl?: string;
  /** One PEM SPKI public key (JWT_PUBLIC_KEY): tokens of its algorithm verify with it. Exclusive with `jwksUrl`. @default none */
  publicKey?: string;
  /**
   * The claim whose value "admin" (or an array holding it) makes a token admin's: a claim name, or a dotted
   * path into nested objects such as `realm_access.roles` (a claim literally named so wins). @default 'role'
   */
  roleClaim?: string;
  issuer?: string;
  audience?: string;
  /** Longest lifetime accepted, in seconds: `exp` further than this from `iat` (or from now) is refused. @default JWT_MAX_TTL_S (30 days) */
  maxTtlS?: number;
  /** Told when the JWKS endpoint cannot be reached (never with a token). @default silentLogger */
  logger?: Logger;
}

export interface Auth {
  verify(token: string | null | undefined): Promise<Principal>;
  /** A token signed with `secret` (HS256). Beside an identity provider without JWT_SECRET, `verify` refuses what this makes. */
  sign(claims: { sub: string; role?: string }, ttl?: string | number): Promise<string>;
}

const unauthorized = (why: string) => new DomainError('UNAUTHORIZED', why);

/**
 * Whether the server's own HS256 tokens (its secret, `npm run token`, the first start's admin token) are
 * accepted: always without an identity provider; beside one (JWT_JWKS_URL or JWT_PUBLIC_KEY) only when
 * JWT_SECRET is set too. The one rule for `createAuth`, the start banner and `npm run token`.
 */
export function acceptsOwnTokens(config: Pick<Config, 'JWT_SECRET' | 'JWT_JWKS_URL' | 'JWT_PUBLIC_KEY'>): boolean {
  return ownTokens(config.JWT_JWKS_URL !== undefined || config.JWT_PUBLIC_KEY !== undefined, config.JWT_SECRET !== undefined);
}

const ownTokens = (identityProvider: boolean, explicitSecret: boolean) => !identityProvider || explicitSecret;

/** The role claim's value: the claim of that exact name, else the dotted path through nested objects. */
function claimAt(payload: JWTPayload, claim: string): unknown {
  if (Object.hasOwn(payload, claim)) return payload[claim];
  let value: unknown = payload;
  for (const part of claim.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return undefined;
    value = (value as Record<string, unknown>)[part];
  }
  return value;
}

const isAdmin = (role: unknown) => role === 'admin' || (Array.isArray(role) && role.includes('admin'));

/** The header's alg, for a message; null when the header cannot be read. */
function headerAlg(token: string): string | null {
  try {
    return String(decodeProtectedHeader(token).alg);
  } catch {
    return null;
  }
}

/**
 * Verified tokens are kept until their `exp` (+ tolerance): a client sends the same token on every
 * request, and a full verification through WebCrypto costs more than the rest of a status call (an RSA
 * one far more). At most `VERIFIED_TOKEN_CACHE` of them, oldest first out; only tokens that verified are
 * kept, so a key rotated out of a JWKS stops admitting new tokens at once and cached ones at their `exp`.
 */
export function createAuth(options: AuthOptions): Auth {
  const key = new TextEncoder().encode(options.secret);
  if (key.length < MIN_SECRET_BYTES) throw new Error(`JWT secret must be at least ${MIN_SECRET_BYTES} bytes, got ${key.length}`);
  const identityProvider = options.jwksUrl !== undefined || options.publicKey !== undefined;
  const keys = createKeySource({
    ...(ownTokens(identityProvider, options.explicitSecret ?? true) && { hmacKey: key }),
    jwksUrl: options.jwksUrl,
    publicKey: options.publicKey,
    logger: options.logger,
  });
  const roleClaim = options.roleClaim ?? 'role';
  const verified = new Map<string, { principal: Principal; expiresAt: number }>();
  return {
    async verify(token) {
      if (!token) throw unauthorized('Missing bearer token');
      const hit = verified.get(token);
      if (hit) {
        if (Date.now() < hit.expiresAt) return hit.principal;
        verified.delete(token);
      }
      try {
        const { payload } = await jwtVerify(token, keys.key, {
          algorithms: keys.algorithms,
          requiredClaims: ['sub', 'exp'],
          clockTolerance: CLOCK_TOLERANCE_S,
          ...(options.issuer !== undefined && { issuer: options.issuer }),
          ...(options.audience !== undefined && { audience: options.audience }),
        });
        if (typeof payload.sub !== 'string' || payload.sub.length === 0) throw unauthorized('Invalid token: sub must be a non-empty string');
        const maxTtl = options.maxTtlS ?? JWT_MAX_TTL_S;
        const nowS = Math.floor(Date.now() / 1000);
        const from = typeof payload.iat === 'number' ? Math.min(payload.iat, nowS) : nowS;
        if (payload.exp! - from > maxTtl) throw unauthorized(`Invalid token: exp is more than JWT_MAX_TTL (${maxTtl} s) after iat`);
        const principal = { sub: payload.sub, admin: isAdmin(claimAt(payload, roleClaim)) };
        // nbf in the future is refused by jwtVerify above, so only exp bounds the entry.
        if (payload.nbf === undefined) {
          if (verified.size >= VERIFIED_TOKEN_CACHE) verified.delete(verified.keys().next().value!);
          verified.set(token, { principal, expiresAt: (payload.exp! + CLOCK_TOLERANCE_S) * 1000 });
        }
        return principal;
      } catch (err) {
        if (err instanceof DomainError) throw err;
        if (err instanceof joseErrors.JWTExpired) throw unauthorized('Token expired');
        if (err instanceof joseErrors.JWTClaimValidationFailed) throw unauthorized(`Invalid token: ${err.message}`);
        if (err instanceof joseErrors.JOSEAlgNotAllowed) throw unauthorized(`Invalid token: algorithm ${JSON.stringify(headerAlg(token))} is not accepted`);
        if (err instanceof joseErrors.JWSSignatureVerificationFailed) throw unauthorized('Invalid token: signature verification failed');
        throw unauthorized('Invalid token');
      }
    },
    async sign(claims, ttl = '1h') {
      // The role goes under the configured claim's exact name, which `claimAt` reads first.
      const jwt = new SignJWT({ ...(claims.role !== undefined && { [roleClaim]: claims.role }) })
        .setProtectedHeader({ alg: 'HS256', typ: 'JWT' })
        .setSubject(claims.sub)
        .setIssuedAt()
        .setExpirationTime(ttl);
      if (options.issuer !== undefined) jwt.setIssuer(options.issuer);
      if (options.audience !== undefined) jwt.setAudience(options.audience);
      return jwt.sign(key);
    },
  };
}

/** The token from an `Authorization: Bearer …` header value, or null. */
export function bearerToken(header: string | undefined | null): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1]! : null;
}

/**
 * Who may call a procedure: anyone (`public`), any verified token (`authed`), or only a token whose
 * role claim (JWT_ROLE_CLAIM) holds "admin" (`admin`). Each row of `procedures.ts` names one; every transport resolves
 * it through `principalFor`, so the rule is written once.
 */
export type Access = 'public' | 'authed' | 'admin';

/** The caller of a public procedure: no token, owns nothing. */
export const ANONYMOUS: Principal = Object.freeze({ sub: 'anonymous', admin: false });

/**
 * The principal behind `token` for a call of the given access: UNAUTHORIZED when the token is missing or
 * bad, FORBIDDEN when it is good but the call is admin-only and the token is not an admin's.
 */
export function principalFor(auth: Auth, access: Access, token: string | null): Promise<Principal> {
  if (access === 'public') return Promise.resolve(ANONYMOUS);
  // Returned as is (not awaited in an async function): the authed case is every request's path.
  if (access === 'authed') return auth.verify(token);
  return auth.verify(token).then((p) => {
    if (!p.admin) throw forbidden('This call needs a token with role "admin"');
    return p;
  });
}
