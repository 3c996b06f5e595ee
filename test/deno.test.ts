import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { createAuth } from '../src/services/auth.ts';
import { TEST_SECRET } from './harness.ts';

describe('Deno', () => {
  it('`deno task start` serves /healthz and an authenticated route, and stops on SIGTERM', async () => {
    const child = spawn('node_modules/.bin/deno', ['task', 'start'], {
      env: { ...process.env, PORT: '0', DATABASE_URL: ':memory:', JWT_SECRET: TEST_SECRET, NO_COLOR: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    try {
      const url = await new Promise<string>((resolve, reject) => {
        child.on('exit', () => reject(new Error(`deno exited before listening: ${stderr}`)));
        createInterface({ input: child.stdout }).on('line', (line) => {
          // The start's JSON log line (stdout is not a terminal here).
          if (!line.startsWith('{')) return;
          const entry = JSON.parse(line) as { message?: string; url?: string };
          if (entry.message === 'agent scheduler listening' && entry.url) resolve(entry.url);
        });
      });
      expect(await (await fetch(`${url}/healthz`)).json()).toEqual({ ok: true });
      const token = await createAuth({ secret: TEST_SECRET }).sign({ sub: 'deno-user' });
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const created = await fetch(`${url}/api/agents`, { method: 'POST', headers, body: JSON.stringify({ id: 'on-deno', name: 'On Deno', handler: 'demo' }) });
      expect(created.status).toBe(201);
      const list = (await (await fetch(`${url}/api/agents`, { headers })).json()) as { data: { id: string }[] };
      expect(list.data.map((a) => a.id)).toEqual(['on-deno']);
      expect((await fetch(`${url}/api/agents`)).status).toBe(401);
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  }, 60_000);
});
