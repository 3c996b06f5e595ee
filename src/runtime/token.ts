import { parseArgs } from 'node:util';
import { ConfigError, loadConfig } from '../config.ts';
import { createAuth } from '../services/auth.ts';
import { loadSecrets } from './secrets.ts';

/** `npm run token -- --sub alice [--role admin] [--ttl 1h]`: prints a JWT signed with the configured secret. */
try {
  const { values } = parseArgs({
    options: { sub: { type: 'string' }, role: { type: 'string' }, ttl: { type: 'string', default: '1h' } },
    strict: true,
  });
  if (!values.sub) throw new ConfigError('--sub is required: npm run token -- --sub alice [--role admin] [--ttl 1h]');
  if (!/^\d+\s*(s|sec|secs|second|seconds|m|min|mins|minute|minutes|h|hr|hrs|hour|hours|d|day|days|w|week|weeks|y|yr|yrs|year|years)$/i.test(values.ttl)) {
    throw new ConfigError(`--ttl: expected a duration such as 30m, 1h or 7d, got "${values.ttl}"`);
  }
  const config = loadConfig(process.env);
  const { jwtSecret } = loadSecrets(config);
  const auth = createAuth({ secret: jwtSecret, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE });
  process.stdout.write(`${await auth.sign({ sub: values.sub, ...(values.role && { role: values.role }) }, values.ttl)}\n`);
} catch (err) {
  process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
}
