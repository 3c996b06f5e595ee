import autocannon from 'autocannon';
import superjson from 'superjson';
import { createAuth } from '../src/services/auth.ts';
import { quick, record, round } from './harness.ts';
import { startBareServer, startServerProcess } from './server.ts';

/**
 * API latency: autocannon against the REST status and schedule endpoints and the same status call
 * over tRPC, each against a bare node:http server answering a fixed JSON body in the same run.
 * Servers run in their own processes; autocannon runs here (one core each, on this 2-core machine).
 */
const DURATION = quick ? 1 : Number(process.env["BENCH_API_SECONDS"] ?? 10);
const CONNECTIONS = 20;
const SECRET = 'bench-secret-bench-secret-bench-secret!!';

async function cannon(url: string, headers: Record<string, string> = {}, overallRate?: number) {
  const r = await autocannon({ url, connections: CONNECTIONS, duration: DURATION, headers, ...(overallRate && { overallRate }) });
  if (r.non2xx > 0 || r.errors > 0) throw new Error(`${url}: ${r.non2xx} non-2xx, ${r.errors} errors`);
  return { rps: r.requests.average, p99: r.latency.p99 };
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
    const trpc = await cannon(`${server.url}/trpc/scheduler.status?input=${encodeURIComponent(JSON.stringify(superjson.serialize(undefined)))}`, headers);
    const paced = await cannon(`${server.url}/api/agents/schedule/status`, headers, 10_000);

    record({ name: 'REST GET /api/agents/schedule/status', value: round(status.rps), unit: 'req/s', baseline: 'bare node:http, fixed JSON', baselineValue: round(base.rps), target: '≥ 50 % of bare', met: status.rps >= base.rps / 2 });
    record({ name: 'REST status p99 at up to 10,000 req/s', value: paced.p99, unit: 'ms', baseline: 'bare node:http p99 (unpaced)', baselineValue: base.p99, target: '≤ 5 ms', met: paced.p99 <= 5, lowerIsBetter: true });
    record({ name: 'REST GET /api/agents/:id/schedule', value: round(schedule.rps), unit: 'req/s', baseline: 'bare node:http, fixed JSON', baselineValue: round(base.rps), target: null, met: null });
    record({ name: 'REST schedule p99', value: schedule.p99, unit: 'ms', baseline: 'bare node:http p99', baselineValue: base.p99, target: null, met: null, lowerIsBetter: true });
    record({ name: 'tRPC GET /trpc/scheduler.status', value: round(trpc.rps), unit: 'req/s', baseline: 'bare node:http, fixed JSON', baselineValue: round(base.rps), target: null, met: null });
    record({ name: 'tRPC status p99', value: trpc.p99, unit: 'ms', baseline: 'bare node:http p99', baselineValue: base.p99, target: null, met: null, lowerIsBetter: true });
  } finally {
    await server.stop();
    await bare.stop();
  }
}
