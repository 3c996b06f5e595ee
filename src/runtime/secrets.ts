import { createHmac, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import type { Config } from '../config.ts';

/** Where generated files (the JWT secret) live: beside the SQLite file, or ./data otherwise. */
export function dataFolder(config: Config): string {
  const url = config.DATABASE_URL;
  if (url.startsWith('file:')) return resolve(dirname(url.replace(/^file:(\/\/)?/, '')));
  return resolve('data');
}

/** Creates the folder of a `file:` database if it is missing (SQLite creates files, not folders). */
export function ensureFolder(url: string): void {
  if (url.startsWith('file:')) mkdirSync(dirname(resolve(url.replace(/^file:(\/\/)?/, ''))), { recursive: true });
}

export interface Secrets {
  jwtSecret: string;
  webhookSecret: string;
  /** True when the JWT secret came from the data folder, not JWT_SECRET: a dev setup, so a token is printed. */
  generated: boolean;
  /** True when this call created the secret file. */
  created: boolean;
}

/**
 * JWT_SECRET when set; otherwise a 48-byte random secret generated on first start and kept in
 * `<data>/jwt-secret` with mode 0600. The webhook key, when not set, is derived from it with HMAC,
 * so the two are never the same bytes. Beside an identity provider (JWT_JWKS_URL, JWT_PUBLIC_KEY) the
 * secret is still generated, for that derivation and a stable webhook key, but admits no token unless it
 * is JWT_SECRET (`acceptsOwnTokens` in services/auth.ts).
 */
export function loadSecrets(config: Config): Secrets {
  let jwtSecret = config.JWT_SECRET;
  let generated = false;
  let created = false;
  if (!jwtSecret) {
    generated = true;
    const folder = dataFolder(config);
    const file = join(folder, 'jwt-secret');
    if (existsSync(file)) jwtSecret = readFileSync(file, 'utf8').trim();
    else {
      mkdirSync(folder, { recursive: true });
      jwtSecret = randomBytes(48).toString('base64url');
      writeFileSync(file, `${jwtSecret}\n`, { mode: 0o600 });
      chmodSync(file, 0o600);
      created = true;
    }
  }
  const webhookSecret = config.WEBHOOK_SIGNING_SECRET ?? createHmac('sha256', jwtSecret).update('agent-scheduler webhook signing').digest('hex');
  return { jwtSecret, webhookSecret, generated, created };
}
