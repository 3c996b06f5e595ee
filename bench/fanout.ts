import { io, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { createSchedulerClient } from '../client/index.ts';
import { createAuth } from '../src/services/auth.ts';
import { percentile, quick, record, round } from './harness.ts';
import { startServerProcess } from './server.ts';

/**
 * Event fan-out: SUBS Socket.IO and SUBS tRPC WebSocket subscribers on one agent while its runs emit
 * progress. Deliveries per second, p99 delivery latency (receive time minus the event's timestamp,
 * same clock), and missed events. The server runs in its own process; all clients share this one, so
 * the client side may be what limits the figure on two cores.
 */
const SUBS = quick ? 20 : 1000;
const RUNS = quick ? 2 : 5;
const STEPS = 20;
const SECRET = 'bench-secret-bench-secret-bench-secret!!';

export async function benchFanout(tmp: string): Promise<void> {
  const server = await startServerProcess({ DATABASE_URL: `file:${tmp}/fanout.db`, JWT_SECRET: SECRET });
  const token = await createAuth({ secret: SECRET }).sign({ sub: 'bench' }, '1h');
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  await fetch(`${server.url}/api/agents`, { method: 'POST', headers, body: JSON.stringify({ id: 'fan', name: 'Fan-out', handler: 'demo', config: { steps: STEPS, stepMs: 5 } }) });
  const perRun = STEPS + 2; // started, progress × STEPS, completed
  const expected = perRun * RUNS;
  const latencies: number[] = [];
  const counts = { socketio: new Array<number>(SUBS).fill(0), trpc: new Array<number>(SUBS).fill(0) };
  let firstEmit = Infinity;
  let lastDelivery = 0;
  let delivered = 0;
  let allDone!: () => void;
  const done = new Promise<void>((r) => (allDone = r));
  const onEvent = (kind: 'socketio' | 'trpc', i: number, timestamp: string) => {
    const now = Date.now();
    const ts = Date.parse(timestamp);
    latencies.push(now - ts);
    firstEmit = Math.min(firstEmit, ts);
    lastDelivery = now;
    counts[kind][i]!++;
    if (++delivered === expected * SUBS * 2) allDone();
  };

  const sockets: Socket[] = [];
  for (let i = 0; i < SUBS; i++) {
    const s = io(server.url, { auth: { token }, transports: ['websocket'], reconnection: false });
    for (const ev of ['agent:started', 'agent:progress', 'agent:completed']) s.on(ev, (d: { timestamp: string }) => onEvent('socketio', i, d.timestamp));
    sockets.push(s);
  }
  await Promise.all(sockets.map((s) => s.emitWithAck('subscribe-agent-updates', 'fan')));
  const clients = Array.from({ length: SUBS }, () => createSchedulerClient({ url: server.url, token, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket }));
  await Promise.all(
    clients.map(
      (c, i) =>
        new Promise<void>((resolve) => {
          c.events.agent.subscribe({ agentId: 'fan' }, {
            onStarted: () => resolve(),
            onData: (e) => {
              if (e.data.type === 'agent:started' || e.data.type === 'agent:progress' || e.data.type === 'agent:completed') onEvent('trpc', i, e.data.data.timestamp);
            },
          });
        }),
    ),
  );

  for (let r = 0; r < RUNS; r++) {
    await fetch(`${server.url}/api/agents/fan/run`, { method: 'POST', headers });
    // The next run only once this one is over (a run in progress would make the manual run a skip).
    for (;;) {
      const runs = (await (await fetch(`${server.url}/api/agents/fan/runs?limit=1`, { headers })).json()) as { data: { status: string }[] };
      if (runs.data[0]?.status === 'completed') break;
      await new Promise((res) => setTimeout(res, 20));
    }
  }
  const timeout = new Promise<void>((r) => setTimeout(r, 30_000));
  await Promise.race([done, timeout]);
  const missed = expected * SUBS * 2 - delivered;
  const seconds = Math.max(0.001, (lastDelivery - firstEmit) / 1000);
  latencies.sort((a, b) => a - b);

  for (const s of sockets) s.close();
  await Promise.all(clients.map((c) => c.close()));
  await server.stop();

  record({ name: `fan-out: ${SUBS} Socket.IO + ${SUBS} tRPC subscribers`, value: round(delivered / seconds), unit: 'deliveries/s', baseline: null, baselineValue: null, target: '≥ 100,000 /s', met: delivered / seconds >= 100_000, note: `${delivered} deliveries over ${round(seconds, 2)} s of paced runs` });
  record({ name: 'fan-out: p99 delivery latency', value: percentile(latencies, 99), unit: 'ms', baseline: null, baselineValue: null, target: '≤ 10 ms', met: percentile(latencies, 99) <= 10 });
  record({ name: 'fan-out: missed events', value: missed, unit: 'events', baseline: null, baselineValue: null, target: '0', met: missed === 0 });
}
