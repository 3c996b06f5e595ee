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

  it('parses LLM_PRICES as USD per million tokens by model, {} by default', () => {
    expect(loadConfig({}).LLM_PRICES).toEqual({});
    const c = loadConfig({ LLM_PRICES: '{"gpt-4o":{"inputPerMTok":2.5,"outputPerMTok":10},"llama3.2":{"inputPerMTok":0,"outputPerMTok":0}}' });
    expect(c.LLM_PRICES).toEqual({ 'gpt-4o': { inputPerMTok: 2.5, outputPerMTok: 10 }, 'llama3.2': { inputPerMTok: 0, outputPerMTok: 0 } });
    expect(Object.isFrozen(c.LLM_PRICES)).toBe(true);
  });

  const badPrices: [string, string, RegExp][] = [
    ['not JSON', '{gpt-4o: 2.5}', /^Invalid environment variable LLM_PRICES: expected JSON such as \{"gpt-4o":\{"inputPerMTok":2\.5,"outputPerMTok":10\}\}, got "\{gpt-4o: 2\.5\}"$/],
    ['an array', '[1,2]', /^Invalid environment variable LLM_PRICES: expected an object of models, each \{ inputPerMTok, outputPerMTok \}/],
    ['a number per model', '{"gpt-4o":2.5}', /^Invalid environment variable LLM_PRICES: .*expected object, received number/],
    ['null', 'null', /^Invalid environment variable LLM_PRICES: expected an object of models/],
    ['a price that is a string', '{"gpt-4o":{"inputPerMTok":"2.5","outputPerMTok":10}}', /^Invalid environment variable LLM_PRICES: expected a number of USD per million input tokens/],
    ['a missing price', '{"gpt-4o":{"inputPerMTok":2.5}}', /^Invalid environment variable LLM_PRICES: expected a number of USD per million output tokens/],
    ['a negative price', '{"gpt-4o":{"inputPerMTok":-1,"outputPerMTok":10}}', /^Invalid environment variable LLM_PRICES: expected a number of USD per million input tokens/],
    ['an unknown field', '{"gpt-4o":{"inputPerMTok":1,"outputPerMTok":1,"perRequest":1}}', /^Invalid environment variable LLM_PRICES: .*"perRequest"/],
  ];
  it.each(badPrices)('rejects LLM_PRICES that is %s with a ConfigError naming LLM_PRICES', (_what, value, message) => {
    expect(() => loadConfig({ LLM_PRICES: value })).toThrow(ConfigError);
    expect(() => loadConfig({ LLM_PRICES: value })).toThrow(message);
  });

  it('parses LLM_ALLOWED_HOSTS like WEBHOOK_ALLOWED_HOSTS: trimmed, lower-cased, empty entries dropped', () => {
    expect(loadConfig({}).LLM_ALLOWED_HOSTS).toEqual(['localhost', '127.0.0.1', '::1']);
    const value = ' API.OpenAI.com , ,ollama.local,::1 ';
    const c = loadConfig({ LLM_ALLOWED_HOSTS: value, WEBHOOK_ALLOWED_HOSTS: value });
    expect(c.LLM_ALLOWED_HOSTS).toEqual(['api.openai.com', 'ollama.local', '::1']);
    expect(c.LLM_ALLOWED_HOSTS).toEqual(c.WEBHOOK_ALLOWED_HOSTS);
    expect(Object.isFrozen(c.LLM_ALLOWED_HOSTS)).toBe(true);
    // Each variable is its own list.
    expect(loadConfig({ LLM_ALLOWED_HOSTS: 'api.openai.com' }).WEBHOOK_ALLOWED_HOSTS).toEqual(['localhost', '127.0.0.1', '::1']);
    expect(() => loadConfig({ LLM_ALLOWED_HOSTS: ' , ' })).toThrow(ConfigError);
    expect(() => loadConfig({ LLM_ALLOWED_HOSTS: ' , ' })).toThrow(/^Invalid environment variable LLM_ALLOWED_HOSTS: expected a comma-separated list of at least one host, got " , "$/);
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
