import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, expect, it } from 'vitest';
import { createAuth } from '../../src/services/auth.ts';
import { tempDir, TEST_SECRET } from '../harness.ts';

/**
 * What broke: a second `npm start` on the data folder of a running server (by mistake, or on a port
 * that was taken) ran start-up recovery before it failed to bind, and marked the first server's running
 * run failed ("interrupted by restart") with a retry — a phantom retry of a run that went on to finish.
 * Now a second server on the same SQLite file refuses before touching the data, and recovery runs only
 * once a server owns both its database and its port.
 */

interface Server {
  child: ChildProcess;
  /** Resolves with its URL once it listens (recovery is done by then). */
  url: Promise<string>;
  exited: Promise<number | null>;
  stderr: () => string[];
}

function start(env: Record<string, string>, command: 'node' | 'deno' = 'node'): Server {
  const [bin, args] = command === 'node' ? [process.execPath, ['--import', 'tsx', 'src/runtime/node.ts']] : ['node_modules/.bin/deno', ['task', 'start']];
  const child = spawn(bin, args, { env: { ...process.env, JWT_SECRET: TEST_SECRET, NO_COLOR: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (line) => lines.push(line));
  const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  const url = new Promise<string>((resolve, reject) => {
    void exited.then((code) => reject(new Error(`server exited with ${code}: ${lines.join('\n')}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /"url":"([^"]+)"/.exec(line);
      if (m) resolve(m[1]!);
    });
  });
  url.catch(() => {}); // a refused start is what some cases expect: they read `exited`
  // `deno task` names the task it runs on stderr before the program's own output.
  return { child, url, exited, stderr: () => lines.filter((l) => !l.startsWith('Task start ')) };
}

type Run = { id: string; trigger: string; status: string; error: string | null; attempt: number; progress: number | null; instanceId: string | null };

async function api(url: string, token: string, path: string, init: RequestInit = {}): Promise<any> {
  const res = await fetch(url + path, { ...init, headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' } });
  return ((await res.json()) as { data: unknown }).data;
}

/** Polls the runs list (the server's own state, over its API) until `pred` holds, with a deadline. */
async function until(url: string, token: string, pred: (runs: Run[]) => boolean, deadlineMs = 20_000): Promise<Run[]> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const runs = (await api(url, token, '/api/agents/demo/runs?limit=100')) as Run[];
    if (pred(runs)) return runs;
    if (Date.now() > end) throw new Error(`condition not met; runs: ${JSON.stringify(runs)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

const refusal = (pid: number | undefined, file: string) => `Another agent-scheduler (pid ${pid}) is using ${file}; stop it or set DATABASE_URL`;

describe('regression: a second start on the same data', () => {
  it('is refused before it touches the data; the first server\'s run completes with no phantom retry, also after a restart', async () => {
    using dir = tempDir();
    const dbFile = join(dir.path, 'scheduler.db');
    const env = { PORT: '0', DATABASE_URL: `file:${dbFile}` };
    const token = await createAuth({ secret: TEST_SECRET }).sign({ sub: 'alice' });

    const first = start(env);
    try {
      const url = await first.url;
      await api(url, token, '/api/agents', { method: 'POST', body: JSON.stringify({ id: 'demo', name: 'Demo', handler: 'demo', config: { steps: 8, stepMs: 400 } }) });
      await api(url, token, '/api/agents/demo/run', { method: 'POST' });
      const [running] = await until(url, token, (runs) => runs.some((r) => r.status === 'running' && (r.progress ?? 0) > 0));

      // On another port, and on the first server's own port: refused either way, with one line, exit code 1.
      const port = new URL(url).port;
      for (const second of [start(env), start({ ...env, PORT: port })]) {
        expect(await second.exited).toBe(1);
        expect(second.stderr()).toEqual([refusal(first.child.pid, dbFile)]);
      }

      const runs = await until(url, token, (rs) => rs.every((r) => r.status !== 'running' && r.status !== 'queued'));
      expect(runs).toEqual([expect.objectContaining({ id: running!.id, trigger: 'manual', attempt: 1, status: 'completed', error: null, instanceId: running!.instanceId })]);
      expect(running!.instanceId).toEqual(expect.any(String));
    } finally {
      first.child.kill('SIGTERM');
    }
    expect(await first.exited).toBe(0);

    // The first server again, on the same data: nothing was left open, so nothing is retried.
    const again = start(env);
    try {
      const url = await again.url;
      const runs = (await api(url, token, '/api/agents/demo/runs?limit=100')) as Run[];
      expect(runs.map((r) => [r.trigger, r.status, r.error])).toEqual([['manual', 'completed', null]]);
      expect(await api(url, token, '/api/agents/schedule/status')).toMatchObject({ runningAgentsCount: 0, queuedTasksCount: 0 });
      expect(await api(url, token, '/api/agents/demo')).toMatchObject({ status: 'COMPLETED', lastError: null });
    } finally {
      again.child.kill('SIGTERM');
    }
    expect(await again.exited).toBe(0);
  }, 60_000);

  it('a start on a taken port says so in one line naming PORT and exits 1 (Node and Deno); Deno is refused the SQLite file too', async () => {
    using dir = tempDir();
    const dbFile = join(dir.path, 'owned.db');
    const owner = start({ PORT: '0', DATABASE_URL: `file:${dbFile}` });
    try {
      const port = new URL(await owner.url).port;
      const taken = `PORT ${port} is already in use on 127.0.0.1; stop the other server or set PORT`;
      const cases: [Server, string][] = [
        [start({ PORT: port, DATABASE_URL: `file:${join(dir.path, 'other.db')}` }), taken],
        [start({ PORT: port, DATABASE_URL: ':memory:' }, 'deno'), taken],
        [start({ PORT: '0', DATABASE_URL: `file:${dbFile}` }, 'deno'), refusal(owner.child.pid, dbFile)],
      ];
      for (const [server, line] of cases) {
        expect(await server.exited).toBe(1);
        expect(server.stderr()).toEqual([line]);
      }
    } finally {
      owner.child.kill('SIGTERM');
    }
    expect(await owner.exited).toBe(0);
  }, 90_000);
});
