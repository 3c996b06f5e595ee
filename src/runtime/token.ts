import { realpathSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.ts';
import { acceptsOwnTokens, createAuth } from '../services/auth.ts';
import { loadSecrets } from './secrets.ts';

export interface TokenRequest {
  sub: string;
  /** `admin` makes an admin token; any other value is kept as the claim, with no extra rights. */
  role?: string;
  /** A duration such as 30m, 1h or 7d. @default '1h' */
  ttl?: string;
}

const TTL = /^\d+\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks|y|yr|yrs|year|years)$/i;

/**
 * A JWT signed with the configured secret (JWT_SECRET, or the data folder's generated one), for
 * `npm run token` and `agent-scheduler token`. A bad request or configuration is a `ConfigError`.
 */
export async function signToken({ sub, role, ttl = '1h' }: TokenRequest, env: Record<string, string | undefined> = process.env): Promise<string> {
  if (!sub) throw new ConfigError('--sub is required: npm run token -- --sub alice [--role admin] [--ttl 1h]');
  if (!TTL.test(ttl)) throw new ConfigError(`--ttl: expected a duration such as 30m, 1h or 7d, got "${ttl}"`);
  const config = loadConfig(env);
  if (!acceptsOwnTokens(config)) {
    throw new ConfigError(
      `Cannot sign a token for an identity provider: ${config.JWT_JWKS_URL !== undefined ? 'JWT_JWKS_URL' : 'JWT_PUBLIC_KEY'} is set and JWT_SECRET is not, so the server accepts only the provider's tokens; get one from it, or set JWT_SECRET too`,
    );
  }
  const { jwtSecret } = loadSecrets(config);
  const auth = createAuth({ secret: jwtSecret, roleClaim: config.JWT_ROLE_CLAIM, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE });
  return auth.sign({ sub, ...(role && { role }) }, ttl);
}

/** `npm run token -- --sub alice [--role admin] [--ttl 1h]`: prints a JWT signed with the configured secret. */
async function tokenCommand(): Promise<void> {
  try {
    const { values } = parseArgs({
      options: { sub: { type: 'string' }, role: { type: 'string' }, ttl: { type: 'string', default: '1h' } },
      strict: true,
    });
    process.stdout.write(`${await signToken({ sub: values.sub ?? '', role: values.role, ttl: values.ttl })}\n`);
  } catch (err) {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  }
}

// Run as a script by `npm run token`; imported by the CLI for signToken.
if (process.argv[1] !== undefined && realpathSync(process.argv[1]) === realpathSync(fileURLToPath(import.meta.url))) await tokenCommand();
