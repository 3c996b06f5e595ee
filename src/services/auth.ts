import { errors as joseErrors, jwtVerify, SignJWT } from 'jose';
import { DomainError, forbidden } from '../core/errors.ts';
import { CLOCK_TOLERANCE_S, JWT_MAX_TTL_S, MIN_SECRET_BYTES, VERIFIED_TOKEN_CACHE } from '../core/limits.ts';

/** Who is calling: the token's `sub`, and whether its `role` claim is "admin". */
export interface Principal {
  sub: string;
  admin: boolean;
}

export interface AuthOptions {
  /** HS256 key, at least `MIN_SECRET_BYTES` (32) bytes. */
  secret: string;
  issuer?: string;
  audience?: string;
  /** Longest lifetime accepted, in seconds: `exp` further than this from `iat` (or from now) is refused. @default JWT_MAX_TTL_S (30 days) */
  maxTtlS?: number;
}

export interface Auth {
  verify(token: string | null | undefined): Promise<Principal>;
  sign(claims: { sub: string; role?: string }, ttl?: string | number): Promise<string>;
}

const unauthorized = (why: string) => new DomainError('UNAUTHORIZED', why);

/**
 * Verified tokens are kept until their `exp` (+ tolerance): a client sends the same token on every
 * request, and a full HMAC verification through WebCrypto costs more than the rest of a status call.
 * At most `VERIFIED_TOKEN_CACHE` of them, oldest first out; only tokens that verified are kept.
 */
export function createAuth(options: AuthOptions): Auth {
  const key = new TextEncoder().encode(options.secret);
  if (key.length < MIN_SECRET_BYTES) throw new Error(`JWT secret must be at least ${MIN_SECRET_BYTES} bytes, got ${key.length}`);
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
        const { payload } = await jwtVerify(token, key, {
          algorithms: ['HS256'],
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
        const principal = { sub: payload.sub, admin: payload['role'] === 'admin' };
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
        throw unauthorized('Invalid token');
      }
    },
    async sign(claims, ttl = '1h') {
      const jwt = new SignJWT({ ...(claims.role !== undefined && { role: claims.role }) })
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
 * `role` claim is "admin" (`admin`). Each row of `procedures.ts` names one; every transport resolves
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
