import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { startFakeOpenAI } from './fake-openai.ts';
import { startServer, type TestServer } from './harness.ts';

describe('npm run example:watch', () => {
  it('schedules a demo agent, draws its progress, and cleans up', async () => {
    await using s = await startServer();
    const child = spawn('npm', ['run', '--silent', 'example:watch'], { env: { ...process.env, SCHEDULER_URL: s.url, TOKEN: await s.token('example'), RUNS: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    expect(code, out).toBe(0);
    expect(out).toMatch(/Scheduled watch-\w+ every 5 s/);
    expect(out).toContain('[##############################] 100% Step 8 of 8');
    expect(out).toMatch(/done in \d+ ms/);
    expect((await s.call('GET', '/api/agents', { token: await s.token('example') })).body.data).toEqual([]);
  }, 30_000);
});

describe('npm run example:llm', () => {
  /** Runs the example against `s` and a fake model server; resolves with its exit code and output. */
  async function example(s: TestServer, baseUrl: string, env: Record<string, string> = {}) {
    const child = spawn('npm', ['run', '--silent', 'example:llm'], {
      env: { ...process.env, SCHEDULER_URL: s.url, TOKEN: await s.token('example'), LLM_BASE_URL: baseUrl, LLM_MODEL: 'tiny', PROMPT: 'What runs it?', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const code = await new Promise<number | null>((r) => child.on('exit', r));
    return { code, stdout, stderr, all: stdout + stderr };
  }

  it('streams the answer, prints the usage and cost, and cleans up', async () => {
    await using fake = await startFakeOpenAI({ chunks: ['Cron ', 'runs ', 'it.'], chunkDelayMs: 150, usage: { prompt_tokens: 12, completion_tokens: 3 } });
    await using s = await startServer({ env: { LLM_PRICES: JSON.stringify({ tiny: { inputPerMTok: 2.5, outputPerMTok: 10 } }) } });
    const { code, stdout, all } = await example(s, fake.baseUrl);
    expect(code, all).toBe(0);
    // The answer on stdout, as it streamed: the deltas, in order, are the whole output.
    expect(stdout).toContain('Cron runs it.\n');
    // 12 × 2.5 + 3 × 10 USD per million tokens
    expect(stdout).toContain('usage: tiny, 12 input + 3 output tokens, cost $0.000060');
    expect(fake.requests).toHaveLength(1);
    expect(fake.requests[0]!.body).toMatchObject({ model: 'tiny', stream: true, messages: [{ role: 'user', content: 'What runs it?' }] });
    expect(fake.requests[0]!.headers['authorization']).toBeUndefined();
    expect((await s.call('GET', '/api/agents', { token: await s.token('example') })).body.data).toEqual([]);
  }, 30_000);

  it('says when the model has no price', async () => {
    await using fake = await startFakeOpenAI({ chunks: ['ok'] });
    await using s = await startServer();
    const { code, stdout, all } = await example(s, fake.baseUrl);
    expect(code, all).toBe(0);
    expect(stdout).toMatch(/usage: tiny, \d+ input \+ 1 output tokens, cost unknown/);
  }, 30_000);

  it('names the key variable of LLM_API_KEY_ENV to the server, which reads it at run time', async () => {
    await using fake = await startFakeOpenAI({ chunks: ['ok'] });
    await using s = await startServer(); // with no environment for keys: the variable is missing there
    const { code, stderr, all } = await example(s, fake.baseUrl, { LLM_API_KEY_ENV: 'EXAMPLE_TEST_KEY', EXAMPLE_TEST_KEY: 'sk-only-in-the-example' });
    expect(code, all).toBe(1);
    expect(stderr).toContain('failed: environment variable EXAMPLE_TEST_KEY is not set (config.apiKeyEnv)');
    expect(all).not.toContain('sk-only-in-the-example');
    expect(fake.requests).toHaveLength(0);
  }, 30_000);

  it('exits 1 with the error when the run fails, without a retry', async () => {
    await using fake = await startFakeOpenAI({ status: 503 });
    await using s = await startServer();
    const { code, stderr, all } = await example(s, fake.baseUrl);
    expect(code, all).toBe(1);
    expect(stderr).toMatch(/failed: .*503/);
    expect(fake.requests).toHaveLength(1);
    expect((await s.call('GET', '/api/agents', { token: await s.token('example') })).body.data).toEqual([]);
  }, 30_000);
});
