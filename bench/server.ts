import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';

/** The per-owner caps guard a shared server from one user; a benchmark is that one user, measuring throughput. */
const BENCH_LIMITS = { MAX_AGENTS_PER_OWNER: '1000000', MANUAL_RUNS_PER_MINUTE: '1000000' };

/** What `npm start` runs: the server built from src/ into one file, built once a bench run, from the sources as they are. */
let built: string | undefined;
function serverEntry(): string {
  if (!built) {
    execFileSync(process.execPath, [new URL('../scripts/build-server.mjs', import.meta.url).pathname], { stdio: 'inherit' });
    built = new URL('../dist/server/node.mjs', import.meta.url).pathname;
  }
  return built;
}

/**
 * Starts `npm start`'s server in its own process (so load generators do not share its CPU): compiled JavaScript,
 * not the sources through tsx, whose transforms cost CPU on the hot path too. BENCH_SERVER_PROFILE=<dir> writes
 * a `--cpu-prof` profile of each server there.
 */
export async function startServerProcess(env: Record<string, string>): Promise<{ url: string; child: ChildProcess; stop(): Promise<void> }> {
  const profile = process.env['BENCH_SERVER_PROFILE'] ? ['--cpu-prof', `--cpu-prof-dir=${process.env['BENCH_SERVER_PROFILE']}`] : [];
  const child = spawn(process.execPath, [...profile, serverEntry()], { env: { ...process.env, PORT: '0', ...BENCH_LIMITS, ...env }, stdio: ['ignore', 'pipe', 'inherit'] });
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


/** A process's CPU time so far (user + system), in ms, from /proc: the figure is Linux's, NaN elsewhere. */
export function processCpuMs(pid: number): number {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
    // utime and stime, the 14th and 15th fields, in clock ticks of 10 ms (USER_HZ is 100 on Linux).
    return (Number(fields[11]) + Number(fields[12])) * 10;
  } catch {
    return NaN;
  }
}

/**
 * The fan-out baseline: a bare `ws` server that, on `POST /?events=N&stepMs=M`, sends N frames shaped like a
 * Socket.IO `agent:progress` event (each with its timestamp) to every connected WebSocket, one send per socket
 * per event, M ms apart (0: back to back, a loop turn between events), and answers once the last is sent.
 */
export async function startBareFanout(): Promise<{ url: string; pid: number; run(events: number, stepMs: number): Promise<void>; stop(): Promise<void> }> {
  const code = `const clients = new Set();
const server = require('node:http').createServer((req, res) => {
  const q = new URL(req.url, 'http://x').searchParams, n = Number(q.get('events')), ms = Number(q.get('stepMs'));
  let i = 0;
  const step = () => {
    const text = '42["agent:progress",{"agentId":"paced","runId":"0123456789abcdef0123456789abcdef","progress":' + i + ',"message":"Step ' + i + ' of 20","currentStep":"' + i + '","totalSteps":20,"timestamp":"' + new Date().toISOString() + '"},' + i + ']';
    for (const ws of clients) ws.send(text);
    if (++i < n) ms > 0 ? setTimeout(step, ms) : setImmediate(step); else res.end();
  };
  step();
});
new (require('ws').WebSocketServer)({ server }).on('connection', (ws) => { clients.add(ws); ws.on('close', () => clients.delete(ws)); });
server.listen(0, '127.0.0.1', function () { console.log('ws://127.0.0.1:' + this.address().port); });`;
  const child = spawn(process.execPath, ['-e', code], { cwd: new URL('..', import.meta.url).pathname, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve) => createInterface({ input: child.stdout! }).once('line', resolve));
  const http = url.replace(/^ws/, 'http');
  return {
    url,
    pid: child.pid!,
    run: async (events, stepMs) => void (await (await fetch(`${http}/?events=${events}&stepMs=${stepMs}`, { method: 'POST' })).text()),
    stop: () => new Promise<void>((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); }),
  };
}
