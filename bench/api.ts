import autocannon from 'autocannon';
import superjson from 'superjson';
import WebSocket from 'ws';
import { createAuth } from '../src/services/auth.ts';
import { percentile, quick, record, round } from './harness.ts';
import { startBareServer, startServerProcess } from './server.ts';

/**
 * API latency: autocannon against the REST status and schedule endpoints and the same status call
 * over tRPC — over HTTP as the typed client sends it (a batch of one), and over the tRPC WebSocket —
 * each against a bare node:http server answering a fixed JSON body in the same run.
 * Servers run in their own processes; autocannon runs here (one core each, on this 2-core machine).
 */
const DURATION = quick ? 1 : Number(process.env["BENCH_API_SECONDS"] ?? 10);
const BURST = quick ? 100 : 10_000;
const CONNECTIONS = 20;
const SECRET = 'bench-secret-bench-secret-bench-secret!!';

async function cannon(url: string, headers: Record<string, string> = {}, overallRate?: number, duration = DURATION) {
  const r = await autocannon({ url, connections: CONNECTIONS, duration, headers, ...(overallRate && { overallRate }) });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { rps: r.requests.average, p99: r.latency.p99 };
}

/** The status query over the tRPC WebSocket: CONNECTIONS sockets with one call in flight on each, as autocannon's. */
async function wsCannon(url: string, token: string, duration = DURATION) {
  const message = (id: number) => JSON.stringify({ id, method: 'query', params: { path: 'scheduler.status', input: superjson.serialize(undefined) } });
  const sockets = await Promise.all(Array.from({ length: CONNECTIONS }, () => new Promise<WebSocket>((resolve, reject) => {
    const ws = new WebSocket(`${url.replace(/^http/, 'ws')}/trpc`, { headers: { authorization: `Bearer ${token}` } });
    ws.once('open', () => resolve(ws)).once('error', reject);
  })));
  const latencies: number[] = [];
  let errors = 0;
  let ids = 0;
  let stop = false;
  const timer = setTimeout(() => (stop = true), duration * 1000);
  await Promise.all(sockets.map((ws) => new Promise<void>((done) => {
    let sent = 0;
    const send = () => {
      sent = performance.now();
      ws.send(message(++ids));
    };
    ws.on('message', (raw) => {
      const text = raw.toString();
      if (text === 'PING') return void ws.send('PONG'); // tRPC's keep-alive
      latencies.push(performance.now() - sent);
      if (!text.includes('"result":{"type":"data"')) errors++;
      if (stop) done();
      else send();
    });
    send();
  })));
  clearTimeout(timer);
  for (const ws of sockets) ws.terminate();
  if (errors > 0) throw new Error(`tRPC over WebSocket: ${errors} error answers`);
  latencies.sort((a, b) => a - b);
  return { rps: latencies.length / duration, p99: round(percentile(latencies, 99), 2) };
}

export async function benchApi(tmp: string): Promise<void> {
  const server = await startServerProcess({ DATABASE_URL: `file:${tmp}/api.db`, JWT_SECRET: SECRET });
  const bare = await startBareServer();
  try {
    const token = await createAuth({ secret: SECRET }).sign({ sub: 'bench' }, '1h');
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    await fetch(`${server.url}/api/agents`, { method: 'POST', headers, body: JSON.stringify({ id: 'bench', name: 'Bench', handler: 'demo' }) });
    await fetch(`${server.url}/api/agents/bench/schedule`, { method: 'POST', headers, body: JSON.stringify({ cronExpression: '0 0 * * *' }) });

    const base = await cannon(`${bare.url}/`);
    const status = await cannon(`${server.url}/api/agents/schedule/status`, headers);
    const schedule = await cannon(`${server.url}/api/agents/bench/schedule`, headers);
    // What the typed client (and the dashboard) sends for `client.scheduler.status.query()`: a batch of one, no content-type.
    const trpc = await cannon(`${server.url}/trpc/scheduler.status?batch=1&input=${encodeURIComponent(JSON.stringify({ 0: superjson.serialize(undefined) }))}`, { authorization: headers.authorization });
    const trpcWs = await wsCannon(server.url, token);
    const paced = await cannon(`${server.url}/api/agents/schedule/status`, headers, 10_000);

    // A burst: BURST schedules all due at one second, while the status endpoint is under load.
    const ids = Array.from({ length: BURST }, (_, i) => `burst${i}`);
    const inBatches = async (fn: (id: string) => Promise<unknown>) => {
      for (let i = 0; i < ids.length; i += 50) await Promise.all(ids.slice(i, i + 50).map(fn));
    };
    await inBatches((id) => fetch(`${server.url}/api/agents`, { method: 'POST', headers, body: JSON.stringify({ id, name: id, handler: 'demo', config: { steps: 1, stepMs: 0 } }) }));
    const burstAt = new Date(Date.now() + (quick ? 3000 : 20_000));
    burstAt.setUTCMilliseconds(0);
    const cron = `${burstAt.getUTCSeconds()} ${burstAt.getUTCMinutes()} ${burstAt.getUTCHours()} * * *`;
    await inBatches((id) => fetch(`${server.url}/api/agents/${id}/schedule`, { method: 'POST', headers, body: JSON.stringify({ cronExpression: cron }) }));
    const lead = burstAt.getTime() - Date.now() - 1000;
    if (lead > 0) await new Promise((r) => setTimeout(r, lead));
    const during = await cannon(`${server.url}/api/agents/schedule/status`, headers, 2_000, Math.max(3, Math.min(DURATION, 5)));
    const last = (await (await fetch(`${server.url}/api/agents/${ids.at(-1)}/runs`, { headers })).json()) as { data: { scheduledAt: string }[] };
    if (last.data[0]?.scheduledAt !== burstAt.toISOString()) throw new Error('the burst did not fire inside the measured window');

    record({ name: `REST status p99 during a burst of ${BURST} runs`, value: during.p99, unit: 'ms', baseline: 'same endpoint, no burst', baselineValue: paced.p99, target: '≤ 25 ms', met: during.p99 <= 25, lowerIsBetter: true, note: 'at 2,000 req/s' });
    record({ name: 'REST GET /api/agents/schedule/status', value: round(status.rps), unit: 'req/s', baseline: 'bare node:http, fixed JSON', baselineValue: round(base.rps), target: '≥ 50 % of bare', met: status.rps >= base.rps / 2 });
    record({ name: 'REST status p99 at up to 10,000 req/s', value: paced.p99, unit: 'ms', baseline: 'bare node:http p99 (unpaced)', baselineValue: base.p99, target: '≤ 5 ms', met: paced.p99 <= 5, lowerIsBetter: true });
    record({ name: 'REST GET /api/agents/:id/schedule', value: round(schedule.rps), unit: 'req/s', baseline: 'bare node:http, fixed JSON', baselineValue: round(base.rps), target: null, met: null });
    record({ name: 'REST schedule p99', value: schedule.p99, unit: 'ms', baseline: 'bare node:http p99', baselineValue: base.p99, target: null, met: null, lowerIsBetter: true });
    record({ name: 'tRPC GET /trpc/scheduler.status (typed client, batch of one)', value: round(trpc.rps), unit: 'req/s', baseline: 'bare node:http, fixed JSON', baselineValue: round(base.rps), target: '≥ 0.3× bare', met: trpc.rps >= 0.3 * base.rps });
    record({ name: 'tRPC status p99', value: trpc.p99, unit: 'ms', baseline: 'bare node:http p99', baselineValue: base.p99, target: '≤ 10 ms', met: trpc.p99 <= 10, lowerIsBetter: true });
    record({ name: 'tRPC scheduler.status query over the WebSocket', value: round(trpcWs.rps), unit: 'req/s', baseline: 'bare node:http, fixed JSON', baselineValue: round(base.rps), target: '≥ 0.3× bare', met: trpcWs.rps >= 0.3 * base.rps, note: `${CONNECTIONS} sockets, one call in flight on each` });
    record({ name: 'tRPC WebSocket query p99', value: trpcWs.p99, unit: 'ms', baseline: 'bare node:http p99', baselineValue: base.p99, target: '≤ 10 ms', met: trpcWs.p99 <= 10, lowerIsBetter: true });
  } finally {
    await server.stop();
    await bare.stop();
  }
}
