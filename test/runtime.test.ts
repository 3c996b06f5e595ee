import { spawn, spawnSync } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { decodeJwt } from 'jose';
import { describe, expect, it } from 'vitest';
import { createAuth } from '../src/services/auth.ts';
import { tempDir } from './harness.ts';

function env(dir: string): NodeJS.ProcessEnv {
  const e: NodeJS.ProcessEnv = { ...process.env, PORT: '0', DATABASE_URL: `file:${join(dir, 'scheduler.db')}` };
  delete e.JWT_SECRET;
  return e;
}

describe('runtime (npm start, npm run token)', () => {
  it('npm start (the built dist/server/node.mjs) generates a 0600 secret on first start, prints a working admin token, serves the dashboard and docs, and exits 0 on SIGTERM', async () => {
    using dir = tempDir();
    // `npm start` itself: it builds the server file from src/ and runs it with plain node (no tsx).
    const child = spawn('npm', ['start', '--silent'], { env: env(dir.path), stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const lines: string[] = [];
    const { url, token } = await new Promise<{ url: string; token: string }>((resolve, reject) => {
      let url = '';
      child.on('exit', () => reject(new Error(`exited early: ${lines.join('\n')}`)));
      createInterface({ input: child.stdout }).on('line', (line) => {
        lines.push(line);
        url ||= /"url":"([^"]+)"/.exec(line)?.[1] ?? '';
        const t = /export TOKEN=(\S+)/.exec(line)?.[1];
        if (t && url) resolve({ url, token: t });
      });
    });
    try {
      const file = join(dir.path, 'jwt-secret');
      expect(statSync(file).mode & 0o777).toBe(0o600);
      const secret = readFileSync(file, 'utf8').trim();
      expect(new TextEncoder().encode(secret).length).toBeGreaterThanOrEqual(32);
      expect(lines.join('\n')).not.toContain(secret);
      expect(decodeJwt(token)).toMatchObject({ sub: 'admin', role: 'admin' });
      const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
      const created = await fetch(`${url}/api/agents`, { method: 'POST', headers, body: JSON.stringify({ name: 'First', handler: 'demo' }) });
      expect(created.status).toBe(201);
      const listed = (await (await fetch(`${url}/api/agents`, { headers })).json()) as { data: unknown[] };
      expect(listed.data).toHaveLength(1);
      // The built file finds what the sources find from their own folder: the dashboard's files and the API docs.
      const page = await fetch(`${url}/`);
      expect([page.status, page.headers.get('content-type')]).toEqual([200, expect.stringMatching(/^text\/html/)]);
      expect((await fetch(`${url}/api/docs`)).status).toBe(200);

      // `npm run token` signs with the same generated secret.
      const r = spawnSync('npm', ['run', '--silent', 'token', '--', '--sub', 'alice', '--role', 'admin', '--ttl', '2h'], { env: env(dir.path), encoding: 'utf8' });
      expect(r.status).toBe(0);
      // Only the token on stdout, so `TOKEN=$(npm run -s token …)` captures exactly it.
      expect(r.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+\n$/);
      const printed = r.stdout.trim();
      const claims = decodeJwt(printed);
      expect(claims).toMatchObject({ sub: 'alice', role: 'admin' });
      expect(claims.exp! - claims.iat!).toBe(7200);
      await expect(createAuth({ secret }).verify(printed)).resolves.toEqual({ sub: 'alice', admin: true });
    } finally {
      child.kill('SIGTERM');
    }
    expect(await exited).toBe(0);
  });

  it('creates the folder of a SQLite file that does not exist yet', async () => {
    using dir = tempDir();
    const file = join(dir.path, 'not', 'there', 'yet.db');
    const child = spawn(process.execPath, ['--import', 'tsx', 'src/runtime/node.ts'], { env: { ...env(dir.path), DATABASE_URL: `file:${file}`, JWT_SECRET: 'a-configured-secret-of-at-least-32-bytes' }, stdio: ['ignore', 'pipe', 'pipe'] });
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
    const url = await new Promise<string>((resolve, reject) => {
      child.on('exit', () => reject(new Error('exited before listening')));
      createInterface({ input: child.stdout }).on('line', (line) => {
        const m = /"url":"([^"]+)"/.exec(line);
        if (m) resolve(m[1]!);
      });
    });
    expect((await fetch(`${url}/healthz`)).status).toBe(200);
    expect(statSync(file).isFile()).toBe(true);
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  });

  it('`npm run token` without --sub fails with a usage line', () => {
    using dir = tempDir();
    const r = spawnSync('npm', ['run', '--silent', 'token'], { env: env(dir.path), encoding: 'utf8' });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toMatch(/--sub is required/);
  });
});
