import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createAuth } from '../../src/services/auth.ts';
import { spawnServer, tempDir, TEST_SECRET } from '../harness.ts';

/** `npm start`'s entry on a database file; resolves with its URL once it listens. */
const start = (dbFile: string) => spawnServer({ DATABASE_URL: `file:${dbFile}` });

type Run = { id: string; trigger: string; status: string; error: string | null; attempt: number; progress: number | null };

/** Polls the runs list (the server's own state, over its API) until `pred` holds, with a deadline. */
async function until(url: string, token: string, pred: (runs: Run[]) => boolean, deadlineMs = 20_000): Promise<Run[]> {
  const end = Date.now() + deadlineMs;
  for (;;) {
    const res = await fetch(`${url}/api/agents/demo/runs?limit=100`, { headers: { authorization: `Bearer ${token}` } });
    const runs = ((await res.json()) as { data: Run[] }).data;
    if (pred(runs)) return runs;
    if (Date.now() > end) throw new Error(`condition not met; runs: ${JSON.stringify(runs)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('regression: kill -9 mid-run', () => {
  it('marks the interrupted run failed, retries it and keeps firing after restart', async () => {
    using dir = tempDir();
    const dbFile = join(dir.path, 'kill.db');
    const token = await createAuth({ secret: TEST_SECRET }).sign({ sub: 'alice' });
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

    const first = start(dbFile);
    try {
      const url = await first.url;
      await fetch(`${url}/api/agents`, { method: 'POST', headers, body: JSON.stringify({ id: 'demo', name: 'Demo', handler: 'demo', config: { steps: 4, stepMs: 500 } }) });
      await fetch(`${url}/api/agents/demo/schedule`, { method: 'POST', headers, body: JSON.stringify({ cronExpression: '*/5 * * * * *' }) });
      await until(url, token, (runs) => runs.some((r) => r.status === 'running' && (r.progress ?? 0) > 0));
    } finally {
      first.child.kill('SIGKILL');
    }
    await new Promise((r) => first.child.once('exit', r));

    const second = start(dbFile);
    try {
      const url = await second.url;
      const runs = await until(url, token, (rs) => rs.some((r) => r.trigger === 'retry' && r.status === 'completed'));
      const interrupted = runs.find((r) => r.error === 'interrupted by restart');
      expect(interrupted).toMatchObject({ status: 'failed', attempt: 1 });
      expect(runs.filter((r) => r.status === 'running' && r.id === interrupted!.id)).toEqual([]);
      // And the schedule keeps firing.
      await until(url, token, (rs) => rs.some((r) => r.trigger === 'schedule' && r.status === 'completed' && !runs.some((o) => o.id === r.id)));
    } finally {
      second.child.kill('SIGTERM');
    }
  }, 60_000);
});
