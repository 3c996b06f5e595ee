import { createRemoteJWKSet, errors as joseErrors, importSPKI, type CryptoKey, type JWTVerifyGetKey } from 'jose';
import { DomainError, errorText } from '../core/errors.ts';
import { silentLogger, type Logger } from '../core/logger.ts';

/**
 * Which key verifies a token (CONTRACT §10 "Your own identity provider"): the server's HS256 secret, an
 * identity provider's JWKS endpoint (JWT_JWKS_URL) or one PEM public key (JWT_PUBLIC_KEY). The key is
 * chosen by the token header's `alg` against an allowlist, and a key is only ever used with its own
 * algorithm: the HMAC key for HS256, never a public key's bytes (the classic algorithm confusion).
 */

/** Asymmetric algorithms accepted from an identity provider; each pairs with one key type. */
export const IDP_ALGORITHMS = ['RS256', 'ES256', 'EdDSA'] as const;
export type IdpAlgorithm = (typeof IDP_ALGORITHMS)[number];

/**
 * After a JWKS fetch, a token with an unknown `kid` triggers the next fetch only after this long, so a flood
 * of made-up kids cannot turn the server into a load generator against the IdP (jose's own default).
 */
const JWKS_COOLDOWN_MS = 30_000;
/** Keys are refetched when older than this even without an unknown kid, so a revoked key goes within 10 min (jose's default). */
const JWKS_MAX_AGE_MS = 600_000;
/** One JWKS request may take this long; then the token is refused as "could not fetch keys" (jose's default). */
const JWKS_TIMEOUT_MS = 5_000;

const unauthorized = (why: string) => new DomainError('UNAUTHORIZED', why);

// ---------- JWT_PUBLIC_KEY: a PEM SPKI key, its type read from the DER ----------

/** Algorithm-identifier OIDs (DER content bytes, hex) of the key types IDP_ALGORITHMS pair with. */
const OID = { rsa: '2a864886f70d010101', ec: '2a8648ce3d0201', p256: '2a8648ce3d030107', ed25519: '2b6570' };

/** One DER element at `at`: its tag and where its content starts and ends. Throws when the bytes are cut short. */
function tlv(bytes: Uint8Array, at: number): { tag: number; body: number; end: number } {
  const tag = bytes[at];
  let len = bytes[at + 1];
  let body = at + 2;
  if (tag === undefined || len === undefined) throw new Error('truncated');
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n < 1 || n > 4) throw new Error('bad length');
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + (bytes[body++] ?? Number.NaN);
  }
  const end = body + len;
  if (!(end <= bytes.length)) throw new Error('truncated');
  return { tag, body, end };
}

const hex = (bytes: Uint8Array, from: number, to: number) => Array.from(bytes.subarray(from, to), (b) => b.toString(16).padStart(2, '0')).join('');

/** Why a PEM of another kind is not the one wanted, and how to get the right one. */
const WRONG_BLOCK: Record<string, string> = {
  CERTIFICATE: 'a certificate (openssl x509 -pubkey -noout -in cert.pem prints its key)',
  'RSA PUBLIC KEY': 'a PKCS#1 RSA key (openssl rsa -RSAPublicKey_in -pubout -in key.pem converts it)',
};

/**
 * The PEM text of an SPKI public key (`-----BEGIN PUBLIC KEY-----`) and the one algorithm it verifies:
 * RSA → RS256, EC P-256 → ES256, Ed25519 → EdDSA. Literal `\n` sequences count as line breaks, since
 * environment variables are often written on one line. Synchronous and runtime-free, so `loadConfig` can
 * refuse a bad key at start; the message says what is wrong without echoing the text (it may be a private key).
 */
export function parsePublicKeyPem(text: string): { pem: string; alg: IdpAlgorithm } {
  const pem = text.replace(/\\n/g, '\n').trim();
  const m = /^-----BEGIN ([A-Z0-9 ]+)-----\s*([A-Za-z0-9+/=\s]*?)\s*-----END ([A-Z0-9 ]+)-----$/.exec(pem);
  if (!m || m[1] !== m[3]) throw new Error('expected a PEM public key (-----BEGIN PUBLIC KEY----- … -----END PUBLIC KEY-----)');
  const kind = m[1]!;
  if (kind.includes('PRIVATE')) throw new Error('expected a public key, not a private one (openssl pkey -pubout -in key.pem prints it)');
  if (kind !== 'PUBLIC KEY') throw new Error(`expected -----BEGIN PUBLIC KEY----- (SPKI), not ${WRONG_BLOCK[kind] ?? `a ${kind} block`}`);
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(m[2]!.replace(/\s+/g, '')), (c) => c.charCodeAt(0));
  } catch {
    throw new Error('expected a PEM public key whose body is base64');
  }
  const bad = new Error('expected a PEM public key whose body is a DER SubjectPublicKeyInfo');
  let alg: IdpAlgorithm | undefined;
  let curve = '';
  let oid = '';
  try {
    const spki = tlv(bytes, 0);
    const algId = tlv(bytes, spki.body);
    const id = tlv(bytes, algId.body);
    const key = tlv(bytes, algId.end);
    if (spki.tag !== 0x30 || spki.end !== bytes.length || algId.tag !== 0x30 || id.tag !== 0x06 || key.tag !== 0x03 || key.end !== spki.end) throw bad;
    oid = hex(bytes, id.body, id.end);
    if (oid === OID.ec && id.end < algId.end) {
      const params = tlv(bytes, id.end);
      if (params.tag === 0x06) curve = hex(bytes, params.body, params.end);
    }
  } catch {
    throw bad;
  }
  if (oid === OID.rsa) alg = 'RS256';
  else if (oid === OID.ec && curve === OID.p256) alg = 'ES256';
  else if (oid === OID.ed25519) alg = 'EdDSA';
  else if (oid === OID.ec) throw new Error('expected an EC key on P-256 (prime256v1) for ES256, not another curve');
  if (!alg) throw new Error('expected an RSA, EC P-256 or Ed25519 public key (for RS256, ES256 or EdDSA), not another key type');
  return { pem, alg };
}

// ---------- choosing the key for a token ----------

export interface KeySourceOptions {
  /** HS256 key; when absent HS256 tokens are refused. @default none */
  hmacKey?: Uint8Array;
  /** An identity provider's JWKS endpoint (http or https). @default none */
  jwksUrl?: string;
  /** One PEM SPKI public key (RSA, EC P-256 or Ed25519). @default none */
  publicKey?: string;
  /** Where a JWKS outage is reported (at warn, with the URL and the cause, never a token). @default silentLogger */
  logger?: Logger;
}

export interface KeySource {
  /** The `alg` values a token may carry; anything else (`none` included) is refused before any key is looked at. */
  algorithms: string[];
  /** For jose's `jwtVerify`: the key for a token's header. Throws an UNAUTHORIZED DomainError when there is none. */
  key: JWTVerifyGetKey;
}

/** The URL without credentials or query, fit for a log line. */
function shownUrl(url: string): string {
  const u = new URL(url);
  return `${u.origin}${u.pathname}`;
}

/** Keys from a JWKS endpoint: jose caches them, refetches on an unknown kid (after the cooldown) and when stale. */
function jwksKeys(url: string, logger: Logger): JWTVerifyGetKey {
  const remote = createRemoteJWKSet(new URL(url), { cooldownDuration: JWKS_COOLDOWN_MS, cacheMaxAge: JWKS_MAX_AGE_MS, timeoutDuration: JWKS_TIMEOUT_MS });
  // One warning per outage, not one per request: while the endpoint is down every token comes here.
  let failing = false;
  return async (header, token) => {
    try {
      const key = await remote(header, token);
      if (failing) logger.info('keys fetched from JWT_JWKS_URL again', { url: shownUrl(url) });
      failing = false;
      return key;
    } catch (err) {
      if (err instanceof joseErrors.JWKSNoMatchingKey) throw unauthorized(`Invalid token: no key from JWT_JWKS_URL matches its kid and alg (${header.alg})`);
      if (err instanceof joseErrors.JWKSMultipleMatchingKeys) throw unauthorized('Invalid token: several keys from JWT_JWKS_URL match; the token needs a kid');
      // Anything else is the endpoint's fault: down, not 200, not JSON, not a key set, or too slow.
      if (!failing) logger.warn('could not fetch keys from JWT_JWKS_URL; tokens from the identity provider are refused until it answers', { url: shownUrl(url), error: errorText(err) });
      failing = true;
      throw unauthorized('Could not fetch keys from the identity provider (JWT_JWKS_URL) to verify the token; try again later');
    }
  };
}

/** The one PEM key, imported on first use (WebCrypto import is async) and kept. */
function pemKey(text: string, logger: Logger): { alg: IdpAlgorithm; key: () => Promise<CryptoKey> } {
  const { pem, alg } = parsePublicKeyPem(text);
  let imported: Promise<CryptoKey> | undefined;
  return {
    alg,
    key() {
      imported ??= importSPKI(pem, alg).catch((err: unknown) => {
        // loadConfig read the key's type, so this is a key whose numbers WebCrypto refuses: every token will fail.
        logger.error('JWT_PUBLIC_KEY could not be imported', { alg, error: errorText(err) });
        imported = undefined;
        throw unauthorized('The server cannot use its JWT_PUBLIC_KEY to verify tokens');
      });
      return imported;
    },
  };
}

/**
 * The allowlist and key lookup for a configuration. HS256 gets the HMAC key and nothing else; RS256, ES256
 * and EdDSA get the identity provider's key for that algorithm (jose checks a JWK's kty, crv and alg, and a
 * CryptoKey's algorithm, against the header's). JWT_JWKS_URL and JWT_PUBLIC_KEY are exclusive (loadConfig).
 */
export function createKeySource(options: KeySourceOptions): KeySource {
  const logger = options.logger ?? silentLogger;
  const { hmacKey } = options;
  const pem = options.publicKey !== undefined ? pemKey(options.publicKey, logger) : undefined;
  const jwks = options.jwksUrl !== undefined ? jwksKeys(options.jwksUrl, logger) : undefined;
  const asymmetric: readonly string[] = jwks ? IDP_ALGORITHMS : pem ? [pem.alg] : [];
  const algorithms = [...(hmacKey ? ['HS256'] : []), ...asymmetric];
  return {
    algorithms,
    async key(header, token) {
      if (header.alg === 'HS256') {
        if (!hmacKey) throw unauthorized('Invalid token: HS256 is not accepted');
        return hmacKey;
      }
      if (header.alg === undefined || !asymmetric.includes(header.alg)) throw unauthorized(`Invalid token: algorithm ${JSON.stringify(header.alg)} is not accepted`);
      if (pem) return pem.key();
      return jwks!(header, token);
    },
  };
}
