import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

/** Starts `npm start`'s entry in its own process (so load generators do not share its CPU). */
/** The per-owner caps guard a shared server from one user; a benchmark is that one user, measuring throughput. */
const BENCH_LIMITS = { MAX_AGENTS_PER_OWNER: '1000000', MANUAL_RUNS_PER_MINUTE: '1000000' };

export async function startServerProcess(env: Record<string, string>): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const profile = process.env['BENCH_SERVER_PROFILE'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_SERVER_PROFILE']}`] : [];
  const child = spawn(process.execPath, [...profile, '--import', 'tsx', new URL('../src/runtime/node.ts', import.meta.url).pathname], { env: { ...process.env, PORT: '0', ...BENCH_LIMITS, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    child.once('exit', (code) => reject(new Error(`server exited with ${code}`)));
    createInterface({ input: child.stdout! }).on('line', (line) => {
      const m = /"url":"([^"]+)"/.exec(line);
      if (m) resolve(m[1]!);
    });
  });
  return {
    url,
    child,
    stop: () => new Promise<void>((r) => {
      child.once('exit', () => r());
      child.kill('SIGTERM');
    }),
  };
}

/** The baseline: a bare node:http server answering a fixed JSON body, in its own process too. */
export async function startBareServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const code = `const body = JSON.stringify({ success: true, data: { isRunning: true, scheduledTasksCount: 1, runningAgentsCount: 0, queuedTasksCount: 0, maxConcurrentAgents: 5, pausedJobsCount: 0 } });
require('node:http').createServer((req, res) => { res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }); res.end(body); }).listen(0, '127.0.0.1', function () { console.log('http://127.0.0.1:' + this.address().port); });`;
  const child = spawn(process.execPath, ['-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  return { url, stop: () => new Promise<void>((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); }) };
}

