import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.ts';
import { loadSecrets } from '../src/runtime/secrets.ts';
import { tempDir } from './harness.ts';

describe('secrets', () => {
  const jwt = 'a-configured-secret-of-at-least-32-bytes';

  it('derives the webhook signing key from JWT_SECRET: stable, and never the same bytes', () => {
    using dir = tempDir();
    const config = loadConfig({ JWT_SECRET: jwt, DATABASE_URL: `file:${join(dir.path, 'a.db')}` });
    const first = loadSecrets(config);
    expect(first.webhookSecret).not.toBe(jwt);
    expect(first.webhookSecret).toMatch(/^[0-9a-f]{64}$/);
    expect(loadSecrets(config).webhookSecret).toBe(first.webhookSecret);
    const other = loadSecrets(loadConfig({ JWT_SECRET: `${jwt}!`, DATABASE_URL: `file:${join(dir.path, 'a.db')}` }));
    expect(other.webhookSecret).not.toBe(first.webhookSecret);
    expect(first.generated).toBe(false);
  });

  it('uses WEBHOOK_SIGNING_SECRET when it is set', () => {
    using dir = tempDir();
    const config = loadConfig({ JWT_SECRET: jwt, WEBHOOK_SIGNING_SECRET: 'hook-key', DATABASE_URL: `file:${join(dir.path, 'a.db')}` });
    expect(loadSecrets(config).webhookSecret).toBe('hook-key');
  });

  it('keeps the generated JWT secret across starts', () => {
    using dir = tempDir();
    const config = loadConfig({ DATABASE_URL: `file:${join(dir.path, 'a.db')}` });
    const first = loadSecrets(config);
    expect(first).toMatchObject({ generated: true, created: true });
    expect(loadSecrets(config)).toMatchObject({ jwtSecret: first.jwtSecret, generated: true, created: false });
  });
});
