import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.ts';

describe('config', () => {
  it('has the contract defaults with an empty environment', () => {
    const c = loadConfig({});
    expect(c).toMatchObject({
      PORT: 5000,
      HOST: '127.0.0.1',
      DATABASE_URL: 'file:./data/scheduler.db',
      MAX_CONCURRENT_AGENTS: 5,
      MAX_RETRIES: 3,
      RETRY_BASE_DELAY_MS: 1000,
      RETRY_MAX_DELAY_MS: 300000,
      AGENT_TIMEOUT_MS: 900000,
      WEBHOOK_ALLOWED_HOSTS: ['localhost', '127.0.0.1', '::1'],
      RUN_HISTORY_LIMIT: 1000,
    });
    expect(c.JWT_SECRET).toBeUndefined();
    expect(c.JWT_ISSUER).toBeUndefined();
    expect(Object.isFrozen(c)).toBe(true);
  });

  it('reads every variable', () => {
    const c = loadConfig({
      PORT: '8080', HOST: '0.0.0.0', DATABASE_URL: 'postgres://u@h/db', JWT_SECRET: 'x'.repeat(32), JWT_ISSUER: 'iss', JWT_AUDIENCE: 'aud',
      MAX_CONCURRENT_AGENTS: '2', MAX_RETRIES: '0', RETRY_BASE_DELAY_MS: '10', RETRY_MAX_DELAY_MS: '20', AGENT_TIMEOUT_MS: '30',
      WEBHOOK_ALLOWED_HOSTS: 'Example.com, hooks.local', WEBHOOK_SIGNING_SECRET: 'sig',
    });
    expect(c).toMatchObject({ PORT: 8080, HOST: '0.0.0.0', MAX_CONCURRENT_AGENTS: 2, MAX_RETRIES: 0, RETRY_BASE_DELAY_MS: 10, RETRY_MAX_DELAY_MS: 20, AGENT_TIMEOUT_MS: 30, WEBHOOK_ALLOWED_HOSTS: ['example.com', 'hooks.local'], JWT_ISSUER: 'iss', JWT_AUDIENCE: 'aud', WEBHOOK_SIGNING_SECRET: 'sig' });
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ PORT: '' }).PORT).toBe(5000);
  });

  const invalid: [string, string, RegExp][] = [
    ['PORT', 'abc', /PORT: expected a whole number from 0 to 65535, got "abc"/],
    ['PORT', '70000', /PORT: .*got "70000"/],
    ['DATABASE_URL', 'mysql://x', /DATABASE_URL: expected file:PATH, :memory: or postgres/],
    ['JWT_SECRET', 'short', /JWT_SECRET: expected at least 32 bytes, got a value of 5 bytes/],
    ['MAX_CONCURRENT_AGENTS', '0', /MAX_CONCURRENT_AGENTS: expected a whole number from 1/],
    ['MAX_RETRIES', '-1', /MAX_RETRIES: .*got "-1"/],
    ['RETRY_BASE_DELAY_MS', '1.5', /RETRY_BASE_DELAY_MS: .*got "1.5"/],
    ['RETRY_MAX_DELAY_MS', 'x', /RETRY_MAX_DELAY_MS/],
    ['AGENT_TIMEOUT_MS', '0', /AGENT_TIMEOUT_MS/],
    ['WEBHOOK_ALLOWED_HOSTS', ' , ', /WEBHOOK_ALLOWED_HOSTS: expected a comma-separated list/],
    ['EVENT_RETENTION_MS', '60000', /EVENT_RETENTION_MS: expected a whole number from 3600000/],
    ['RUN_HISTORY_LIMIT', '0', /RUN_HISTORY_LIMIT: expected a whole number from 1/],
  ];
  it.each(invalid)('rejects %s=%j naming the variable, the expectation and the value', (name, value, message) => {
    expect(() => loadConfig({ [name]: value })).toThrow(ConfigError);
    expect(() => loadConfig({ [name]: value })).toThrow(message);
  });

  it('never echoes a secret in the error', () => {
    expect(() => loadConfig({ JWT_SECRET: 'hunter2' })).toThrow(/^(?!.*hunter2)/);
  });

  it('rejects a max delay below the base delay', () => {
    expect(() => loadConfig({ RETRY_BASE_DELAY_MS: '100', RETRY_MAX_DELAY_MS: '10' })).toThrow(/RETRY_MAX_DELAY_MS: expected at least RETRY_BASE_DELAY_MS/);
  });

  it('stops the process with exit code 1 and one line', () => {
    const r = spawnSync(process.execPath, ['--import', 'tsx', 'src/runtime/node.ts'], { env: { ...process.env, PORT: 'nope' }, encoding: 'utf8', timeout: 20_000 });
    expect(r.status).toBe(1);
    expect(r.stderr.trim().split('\n')).toEqual(['Invalid environment variable PORT: expected a whole number from 0 to 65535, got "nope"']);
  });
});
