import { spawn } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { startServer } from './harness.ts';

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
