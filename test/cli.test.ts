import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { runCli } from '../src/cli/program.ts';
import { createWatchView } from '../src/cli/watch-view.ts';
import { signToken } from '../src/runtime/token.ts';
import type { StreamEvent } from '../src/services/events.ts';
import { startServer, tempDir, TEST_SECRET, type TestServer } from './harness.ts';

/**
 * `agent-scheduler` (CONTRACT §10 "CLI"). The commands run in-process through `runCli` (the code the
 * bin runs, minus the process); a handful run as real child processes through `bin/agent-scheduler.js`
 * with plain `node`: the exit codes, `serve`, `token` and `watch`. Each child costs a tsx start, so there are few.
 */

const BIN = fileURLToPath(new URL('../bin/agent-scheduler.js', import.meta.url));

/** A stream that keeps what is written, synchronously. */
function sink(extra: { isTTY?: boolean; columns?: number } = {}) {
  let text = '';
  const stream = Object.assign(new Writable({ write(chunk, _enc, cb) { text += String(chunk); cb(); } }), extra);
  return { stream, text: () => text };
}

interface Result { code: number; stdout: string; stderr: string }

async function cli(args: string[], env: Record<string, string | undefined>): Promise<Result> {
  const out = sink();
  const err = sink();
  const code = await runCli(args, {
    env,
    streams: { stdout: out.stream, stderr: err.stream },
    onInterrupt: () => () => {},
    serve: () => Promise.reject(new Error('serve is tested as a child process')),
    signToken,
  });
  return { code, stdout: out.text(), stderr: err.text() };
}

/** The bin as a child process: its lines as they come, and its exit code. */
function child(args: string[], env: Record<string, string | undefined>) {
  const proc: ChildProcess = spawn(process.execPath, [BIN, ...args], { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  const lines = { stdout: [] as string[], stderr: [] as string[] };
  const waiters: { stream: 'stdout' | 'stderr'; pred: (l: string) => boolean; resolve: (l: string) => void }[] = [];
  const exited = new Promise<number | null>((resolve) => proc.on('exit', (code) => resolve(code)));
  for (const stream of ['stdout', 'stderr'] as const) {
    createInterface({ input: proc[stream]! }).on('line', (line) => {
      lines[stream].push(line);
      for (const w of [...waiters]) if (w.stream === stream && w.pred(line)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(line);
      }
    });
  }
  return {
    proc,
    lines,
    exited,
    /** The first line (seen or to come) on `stream` that matches; rejects if the process exits first. */
    waitFor(stream: 'stdout' | 'stderr', pred: (l: string) => boolean): Promise<string> {
      const seen = lines[stream].find(pred);
      if (seen !== undefined) return Promise.resolve(seen);
      return Promise.race([
        new Promise<string>((resolve) => waiters.push({ stream, pred, resolve })),
        exited.then((code) => Promise.reject(new Error(`exited with ${code} before the line; stdout:\n${lines.stdout.join('\n')}\nstderr:\n${lines.stderr.join('\n')}`))),
      ]);
    },
    async result(): Promise<Result> {
      const code = await exited;
      return { code: code ?? -1, stdout: lines.stdout.join('\n'), stderr: lines.stderr.join('\n') };
    },
  };
}

const run = (args: string[], env: Record<string, string | undefined>) => child(args, env).result();

/** A port nothing listens on: taken from the OS, then let go. */
async function closedPort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  await new Promise<void>((r) => srv.close(() => r()));
  return port;
}

describe('agent-scheduler CLI', () => {
  let server: TestServer;
  let env: Record<string, string>;

  beforeAll(async () => {
    server = await startServer();
    env = { SCHEDULER_URL: server.url, SCHEDULER_TOKEN: await server.token('alice') };
  });
  afterAll(async () => {
    await server?.[Symbol.asyncDispose]();
  });

  it('drives agents end to end: create, list, get, delete (--json is the REST data object)', async () => {
    const created = await run(['agents', 'create', '--name', 'Writer', '--handler', 'demo', '--id', 'cli-writer', '--config', '{"steps":2,"stepMs":1}', '--json'], env);
    expect(created).toMatchObject({ code: 0, stderr: '' });
    expect(JSON.parse(created.stdout)).toMatchObject({ id: 'cli-writer', name: 'Writer', handler: 'demo', owner: 'alice', config: { steps: 2, stepMs: 1 } });

    const listed = await cli(['agents', 'list', '--json'], env);
    expect(listed.code).toBe(0);
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((a) => a.id)).toContain('cli-writer');
    const table = await cli(['agents', 'list'], env);
    expect(table.stdout.split('\n')[0]).toMatch(/^ID\s+NAME\s+HANDLER\s+STATUS/);
    expect(table.stdout).toMatch(/cli-writer\s+Writer\s+demo\s+IDLE/);

    const got = await cli(['agents', 'get', 'cli-writer', '--json'], env);
    expect(JSON.parse(got.stdout)).toMatchObject({ id: 'cli-writer', status: 'IDLE' });
    expect((await cli(['agents', 'get', 'cli-writer'], env)).stdout).toMatch(/^handler:\s+demo$/m);

    const deleted = await cli(['agents', 'delete', 'cli-writer', '--json'], env);
    expect(JSON.parse(deleted.stdout)).toEqual({ id: 'cli-writer', deleted: true });
    const gone = await cli(['agents', 'get', 'cli-writer'], env);
    expect(gone).toMatchObject({ code: 1, stdout: '' });
    expect(gone.stderr).toMatch(/404.*cli-writer/);
  });

  it('previews a schedule, reads its ledger, pauses with a note and an end, runs with an idempotency key, sets jitter', async () => {
    await server.call('POST', '/api/agents', { body: { id: 'cli-more', name: 'More', handler: 'demo', config: { steps: 1, stepMs: 1 } } });
    const preview = await cli(['schedule', 'preview', 'cli-more', '--cron', '30 2 * * *', '--timezone', 'America/New_York', '--count', '3', '--json'], env);
    expect(preview.code, preview.stderr).toBe(0);
    const fires = JSON.parse(preview.stdout) as { at: string; local: string }[];
    expect(fires).toHaveLength(3);
    expect(fires[0]!.local).toMatch(/T0[23]:[03]0:00-0[45]:00$/);
    expect((await cli(['schedule', 'preview', 'cli-more', '--cron', '0 9 * * *', '--count', '1'], env)).stdout.split('\n')[0]).toMatch(/^AT \(UTC\)\s+LOCAL\s+NOTE/);
    expect((await cli(['schedule', 'preview', 'cli-more', '--count', '0'], env)).code).toBe(2);

    const set = await cli(['schedule', 'set', 'cli-more', '0 * * * *', '--jitter-ms', '60000', '--json'], env);
    expect(set.code, set.stderr).toBe(0);
    expect(JSON.parse((await cli(['schedule', 'get', 'cli-more', '--json'], env)).stdout)).toMatchObject({ taskDetails: { jitterMs: 60_000 } });

    const until = new Date(Date.now() + 3_600_000).toISOString();
    const paused = await cli(['schedule', 'pause', 'cli-more', '--note', 'maintenance', '--until', until], env);
    expect(paused.code, paused.stderr).toBe(0);
    expect(JSON.parse((await cli(['schedule', 'get', 'cli-more', '--json'], env)).stdout)).toMatchObject({ taskDetails: { isPaused: true, pauseNote: 'maintenance', pausedUntil: until } });
    await cli(['schedule', 'resume', 'cli-more'], env);

    const first = JSON.parse((await cli(['run', 'cli-more', '--idempotency-key', 'k1', '--json'], env)).stdout) as { runId: string };
    const again = JSON.parse((await cli(['run', 'cli-more', '--idempotency-key', 'k1', '--json'], env)).stdout) as { runId: string };
    expect(again.runId).toBe(first.runId);

    const from = new Date(Date.now() - 3 * 3_600_000).toISOString();
    const ledger = await cli(['ledger', 'cli-more', '--from', from, '--to', new Date(Date.now() + 2 * 3_600_000).toISOString(), '--json'], env);
    expect(ledger.code, ledger.stderr).toBe(0);
    // The schedule was set just now: only its coming slots are its own, and they are pending.
    expect((JSON.parse(ledger.stdout) as { outcome: string }[]).map((e) => e.outcome)).toEqual(['pending', 'pending']);
    expect((await cli(['ledger', 'cli-more', '--from', from], env)).code).toBe(2);
  });

  it('sets overlap and catch-up policies, and backfills a past range once', async () => {
    await server.call('POST', '/api/agents', { body: { id: 'cli-fill', name: 'Fill', handler: 'demo', config: { steps: 1, stepMs: 1 } } });
    const set = await cli(['schedule', 'set', 'cli-fill', '* * * * *', '--overlap', 'queue-one', '--catch-up', 'all', '--catch-up-window', '360m', '--json'], env);
    expect(set.code, set.stderr).toBe(0);
    expect(JSON.parse((await cli(['schedule', 'get', 'cli-fill', '--json'], env)).stdout)).toMatchObject({ taskDetails: { overlap: 'queue-one', catchUp: { policy: 'all', window: '6h' } } });
    expect((await cli(['schedule', 'set', 'cli-fill', '* * * * *', '--catch-up', 'off', '--json'], env)).code).toBe(0);
    expect(JSON.parse((await cli(['schedule', 'get', 'cli-fill', '--json'], env)).stdout)).toMatchObject({ taskDetails: { overlap: 'skip', catchUp: false } });
    expect((await cli(['schedule', 'set', 'cli-fill', '* * * * *', '--overlap', 'sometimes'], env)).code).toBe(2);
    expect((await cli(['schedule', 'set', 'cli-fill', '* * * * *', '--catch-up', 'off', '--catch-up-window', '1h'], env)).code).toBe(2);
    const badWindow = await cli(['schedule', 'set', 'cli-fill', '* * * * *', '--catch-up-window', 'soon'], env);
    expect([badWindow.code, badWindow.stderr]).toEqual([1, expect.stringMatching(/catchUp\.window: expected a duration/)]);

    // The three whole minutes before this one.
    const end = Math.floor(Date.now() / 60_000) * 60_000;
    const range = ['--from', new Date(end - 3 * 60_000).toISOString(), '--to', new Date(end).toISOString()];
    const first = await cli(['backfill', 'cli-fill', ...range, '--json'], env);
    expect(first.code, first.stderr).toBe(0);
    expect((JSON.parse(first.stdout) as { runIds: string[] }).runIds).toHaveLength(3);
    const again = await cli(['backfill', 'cli-fill', ...range], env);
    expect(again.stdout).toMatch(/^Queued 0 run\(s\); 3 slot\(s\) already had one/);
    expect((await cli(['backfill', 'cli-fill', '--from', range[1]!], env)).code).toBe(2);
    const future = await cli(['backfill', 'cli-fill', '--from', range[1]!, '--to', new Date(end + 3_600_000).toISOString()], env);
    expect([future.code, future.stderr]).toEqual([1, expect.stringMatching(/body\.to: expected an instant not in the future/)]);
  });

  it('sets, shows, pauses, resumes and removes a schedule', async () => {
    await server.call('POST', '/api/agents', { body: { id: 'cli-sched', name: 'Sched', handler: 'demo' } });
    const set = await cli(['schedule', 'set', 'cli-sched', '0 9 * * *', '--priority', 'HIGH', '--timezone', 'Europe/Berlin', '--job-id', 'morning', '--json'], env);
    expect(set.code).toBe(0);
    expect(JSON.parse(set.stdout)).toMatchObject({ id: 'cli-sched', jobId: 'morning', priority: 'HIGH', timezone: 'Europe/Berlin', scheduleExpression: '0 9 * * *' });
    expect(JSON.parse((await cli(['schedule', 'get', 'cli-sched', '--json'], env)).stdout)).toMatchObject({ scheduleEnabled: true, taskDetails: { jobId: 'morning', priority: 3 } });

    // Without --job-id the agent's current job is used: here `morning`, not the agent id.
    const paused = await cli(['schedule', 'pause', 'cli-sched', '--json'], env);
    expect(JSON.parse(paused.stdout)).toEqual({ agentId: 'cli-sched', jobId: 'morning', status: 'paused' });
    expect((await cli(['status', '--json'], env)).stdout).toContain('"pausedJobsCount": 1');
    const resumed = await cli(['schedule', 'resume', 'cli-sched', '--job-id', 'morning'], env);
    expect(resumed).toMatchObject({ code: 0, stderr: '' });
    expect(resumed.stdout).toMatch(/^Job morning resumed successfully; next run \d{4}-/);

    const removed = await cli(['schedule', 'remove', 'cli-sched', '--json'], env);
    expect(JSON.parse(removed.stdout)).toEqual({ agentId: 'cli-sched' });
    expect(JSON.parse((await cli(['agents', 'get', 'cli-sched', '--json'], env)).stdout)).toMatchObject({ scheduleExpression: null });
  });

  it('runs, lists runs, cancels, and reports status and usage', async () => {
    await server.call('POST', '/api/agents', { body: { id: 'cli-run', name: 'Runner', handler: 'demo', config: { steps: 1000, stepMs: 1000 } } });
    const started = await cli(['run', 'cli-run', '--json'], env);
    expect(started.code).toBe(0);
    const { runId } = JSON.parse(started.stdout) as { runId: string };
    expect(runId).toEqual(expect.any(String));

    const cancelled = await cli(['cancel', runId, '--json'], env);
    expect(JSON.parse(cancelled.stdout)).toEqual({ runId, status: 'cancelled' });
    expect((await cli(['cancel', runId], env)).code).toBe(1); // already over: the server refuses

    const runs = await cli(['runs', 'cli-run', '--limit', '5', '--json'], env);
    expect(JSON.parse(runs.stdout)).toEqual([expect.objectContaining({ id: runId, agentId: 'cli-run', trigger: 'manual', status: 'cancelled' })]);
    expect((await cli(['runs', 'cli-run'], env)).stdout).toMatch(new RegExp(`^${runId}\\s+cancelled\\s+manual\\s+1`, 'm'));

    const status = JSON.parse((await cli(['status', '--json'], env)).stdout) as Record<string, unknown>;
    expect(status).toMatchObject({ isRunning: true, maxConcurrentAgents: expect.any(Number), runningAgentsCount: expect.any(Number) });
    expect((await cli(['status'], env)).stdout).toMatch(/^isRunning:\s+true$/m);

    const usage = await cli(['usage', 'cli-run', '--from', '2026-01-01', '--to', '2100-01-01', '--json'], env);
    expect(usage.code).toBe(0);
    expect(JSON.parse(usage.stdout)).toMatchObject({ inputTokens: 0, outputTokens: 0, costUsd: 0, byDay: expect.any(Array) });
    expect((await cli(['usage', 'cli-run'], env)).stdout).toMatch(/input \+ 0 output tokens, \$0\.0000/);
  });

  it('exits 1 when the server refuses or cannot be reached, saying why on stderr', async () => {
    const badToken = await run(['status'], { ...env, SCHEDULER_TOKEN: 'not-a-jwt' });
    expect(badToken).toMatchObject({ code: 1, stdout: '' });
    expect(badToken.stderr).toMatch(/401/);

    const port = await closedPort();
    const unreachable = await run(['agents', 'list'], { ...env, SCHEDULER_URL: `http://127.0.0.1:${port}` });
    expect(unreachable.code).toBe(1);
    expect(unreachable.stderr).toContain(`Cannot reach the server at http://127.0.0.1:${port}`);
    expect(unreachable.stderr).toMatch(/ECONNREFUSED/);

    // A value the server rejects names its field.
    await server.call('POST', '/api/agents', { body: { id: 'cli-bad', name: 'Bad', handler: 'demo' } });
    const badCron = await cli(['schedule', 'set', 'cli-bad', 'not a cron'], env);
    expect(badCron.code).toBe(1);
    expect(badCron.stderr).toMatch(/400 cronExpression/);
  });

  it('exits 2 on a usage error: unknown command, missing argument or option, bad option value, no token', async () => {
    const unknown = await run(['agnets', 'list'], env);
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toMatch(/unknown command 'agnets'/);
    const missing = await run(['agents', 'get'], env);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toMatch(/missing required argument 'agentId'/);

    expect((await cli(['agents', 'create', '--name', 'X'], env)).stderr).toMatch(/--handler/);
    expect((await cli(['agents', 'create', '--name', 'X', '--handler', 'demo', '--config', '[1]'], env)).code).toBe(2);
    expect((await cli(['runs', 'x', '--limit', '0'], env)).stderr).toMatch(/--limit: expected a whole number from 1 to 1000, got "0"/);
    expect((await cli(['schedule', 'set', 'x', '* * * * *', '--priority', 'URGENT'], env)).code).toBe(2);
    expect((await cli(['usage', 'x', '--from', 'yesterday'], env)).code).toBe(2);
    expect((await cli(['token', '--sub', 'a', '--ttl', 'forever'], { JWT_SECRET: TEST_SECRET })).code).toBe(2);
    const noToken = await cli(['agents', 'list'], { SCHEDULER_URL: server.url });
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toMatch(/SCHEDULER_TOKEN/);
    expect((await cli(['agents', 'list', '--url', 'localhost:5000'], env)).code).toBe(2);

    // Help is not an error, and says what a user needs: the variables, the exit codes, an example.
    const help = await cli(['--help'], env);
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/Examples:[\s\S]*SCHEDULER_URL[\s\S]*SCHEDULER_TOKEN[\s\S]*Exit codes/);
    // Each command's own help: its arguments and options, the global ones, an example, the variables.
    expect((await cli(['schedule', 'set', '--help'], env)).stdout).toMatch(/<agentId>[\s\S]*<cron>[\s\S]*--priority[\s\S]*Global Options:[\s\S]*--url[\s\S]*\$ agent-scheduler schedule set[\s\S]*SCHEDULER_TOKEN/);
  });

  it('token prints a JWT signed with the configured secret', async () => {
    const r = await run(['token', '--sub', 'bob', '--role', 'admin', '--ttl', '2h'], { JWT_SECRET: TEST_SECRET });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^[\w-]+\.[\w-]+\.[\w-]+$/);
    await expect(server.app.auth.verify(r.stdout)).resolves.toEqual({ sub: 'bob', admin: true });
    const json = await cli(['token', '--sub', 'carol', '--json'], { JWT_SECRET: TEST_SECRET });
    await expect(server.app.auth.verify((JSON.parse(json.stdout) as { token: string }).token)).resolves.toEqual({ sub: 'carol', admin: false });
  });

  it('watch prints a run started with `run` as it progresses (plain lines off a terminal, NDJSON with --json), and Ctrl-C ends it with 0', async () => {
    await server.call('POST', '/api/agents', { body: { id: 'cli-watched', name: 'Watched', handler: 'demo', config: { steps: 3, stepMs: 5 } } });
    const lines = child(['watch', 'cli-watched'], env);
    const json = child(['watch', '--json'], env); // every agent the token sees
    try {
      await lines.waitFor('stderr', (l) => l.startsWith('Watching cli-watched'));
      await json.waitFor('stderr', (l) => l.startsWith('Watching'));
      const { runId } = JSON.parse((await cli(['run', 'cli-watched', '--json'], env)).stdout) as { runId: string };

      await lines.waitFor('stdout', (l) => l.includes(`${runId} completed in`));
      const mine = lines.lines.stdout.filter((l) => l.includes(runId));
      expect(mine[0]).toMatch(new RegExp(`^\\d\\d:\\d\\d:\\d\\d Watched \\(cli-watched\\) ${runId} started \\(attempt 1\\)$`));
      expect(mine.slice(1, 4).map((l) => l.split(`${runId} `)[1])).toEqual([' 33% Step 1 of 3', ' 67% Step 2 of 3', '100% Step 3 of 3']);

      await json.waitFor('stdout', (l) => l.includes('agent:completed') && l.includes(runId));
      const events = json.lines.stdout.map((l) => JSON.parse(l) as StreamEvent).filter((e) => 'runId' in e.data && e.data.runId === runId);
      expect(events.map((e) => e.type)).toEqual(['agent:started', 'agent:progress', 'agent:progress', 'agent:progress', 'agent:completed']);
      expect(events[1]).toMatchObject({ agentId: 'cli-watched', data: { progress: 33, message: 'Step 1 of 3' } });
    } finally {
      lines.proc.kill('SIGINT');
      json.proc.kill('SIGINT');
    }
    expect(await lines.exited).toBe(0);
    expect(await json.exited).toBe(0);
  });

  it('watch of a missing agent fails with the server\'s answer', async () => {
    const r = await cli(['watch', 'no-such-agent'], env);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/404/);
  });

  it('serve starts the server as npm start does, and stops with 0 on SIGTERM', async () => {
    using dir = tempDir();
    const srv = child(['serve', '--port', '0'], { JWT_SECRET: TEST_SECRET, DATABASE_URL: `file:${join(dir.path, 'cli.db')}`, LOG_FORMAT: 'json' });
    try {
      const url = /"url":"([^"]+)"/.exec(await srv.waitFor('stdout', (l) => l.includes('"url":"')))![1]!;
      expect(await (await fetch(`${url}/healthz`)).json()).toMatchObject({ ok: true });
      const listed = await cli(['agents', 'list', '--json'], { SCHEDULER_URL: url, SCHEDULER_TOKEN: await server.token('dave') });
      expect(JSON.parse(listed.stdout)).toEqual([]);
    } finally {
      srv.proc.kill('SIGTERM');
    }
    expect(await srv.exited).toBe(0);
  });
});

describe('watch on a terminal', () => {
  it('draws one bar per running run and prints a line when it ends', () => {
    vi.useFakeTimers();
    try {
      const out = sink({ isTTY: true, columns: 120 });
      const view = createWatchView('bars', { stdout: out.stream, stderr: sink().stream }, new Map([['a1', 'Writer']]));
      const ts = '2026-01-01T09:00:00.000Z';
      const base = { agentId: 'a1', jobId: 'a1', timestamp: ts };
      view.event({ id: 1, type: 'agent:started', agentId: 'a1', data: { ...base, runId: 'run_1', attempt: 1, status: 'started' } });
      view.event({ id: 2, type: 'agent:started', agentId: 'a1', data: { ...base, runId: 'run_2', attempt: 1, status: 'started' } });
      view.event({ id: 3, type: 'agent:progress', agentId: 'a1', data: { ...base, runId: 'run_1', progress: 50, message: 'Step 2 of 4' } });
      vi.advanceTimersByTime(500);
      expect(out.text()).toMatch(/Writer \(a1\) run_1 \[=+-+\]\s+50% Step 2 of 4/);
      expect(out.text()).toMatch(/Writer \(a1\) run_2 \[-+\]\s+0% attempt 1/);
      view.event({ id: 4, type: 'agent:completed', agentId: 'a1', data: { ...base, runId: 'run_1', attempt: 1, status: 'completed', duration: 1500, usage: null } });
      expect(out.text()).toContain('09:00:00 Writer (a1) run_1 completed in 1.5 s');
      view.stop();
    } finally {
      vi.useRealTimers();
    }
  });
});
