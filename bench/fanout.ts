import WebSocket from 'ws';
import { createAuth } from '../src/services/auth.ts';
import { percentile, quick, record, round } from './harness.ts';
import { startServerProcess } from './server.ts';

/**
 * Event fan-out: SUBS Socket.IO and SUBS tRPC WebSocket subscribers on one agent while its runs emit
 * progress. Deliveries per second, p99 delivery latency (receive time minus the event's timestamp,
 * same clock), and missed events. The server runs in its own process; the clients share this one (two
 * cores in all), as light raw-WebSocket clients.
 */
const SUBS = quick ? 20 : 1000;
const RUNS = quick ? 2 : 5;
const STEPS = 20;
/** Steps this far apart keep the server's outgoing queue from building up between events. */
const STEP_MS = Number(process.env['FANOUT_STEP_MS'] ?? 20);
const SECRET = 'bench-secret-bench-secret-bench-secret!!';

export async function benchFanout(tmp: string): Promise<void> {
  const server = await startServerProcess({ DATABASE_URL: `file:${tmp}/fanout.db`, JWT_SECRET: SECRET });
  const token = await createAuth({ secret: SECRET }).sign({ sub: 'bench' }, '1h');
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  await fetch(`${server.url}/api/agents`, { method: 'POST', headers, body: JSON.stringify({ id: 'fan', name: 'Fan-out', handler: 'demo', config: { steps: STEPS, stepMs: STEP_MS } }) });
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

  // Light clients: raw WebSockets speaking each protocol's few frames, reading only the timestamp, so
  // the figure is the server's fan-out rather than 2,000 full clients' parsing on the same two cores.
  const wsBase = server.url.replace(/^http/, 'ws');
  const stamp = (text: string) => /"timestamp":"([^"]+)"/.exec(text)?.[1];
  const sockets: WebSocket[] = [];
  const opened: Promise<void>[] = [];
  for (let i = 0; i < SUBS; i++) {
    const ws = new WebSocket(`${wsBase}/socket.io/?EIO=4&transport=websocket`);
    sockets.push(ws);
    opened.push(
      new Promise<void>((resolve) => {
        ws.on('message', (raw) => {
          const text = raw.toString();
          if (text.startsWith('0')) ws.send(`40${JSON.stringify({ token })}`); // Engine.IO open → Socket.IO connect with auth
          else if (text.startsWith('40')) ws.send('420["subscribe-agent-updates","fan"]');
          else if (text.startsWith('430')) resolve(); // the subscribe ack
          else if (text === '2') ws.send('3'); // ping → pong
          else if (text.startsWith('42["agent:')) {
            const ts = stamp(text);
            if (ts) onEvent('socketio', i, ts);
          }
        });
      }),
    );
  }
  for (let i = 0; i < SUBS; i++) {
    const ws = new WebSocket(`${wsBase}/trpc`, { headers: { authorization: `Bearer ${token}` } });
    sockets.push(ws);
    opened.push(
      new Promise<void>((resolve) => {
        ws.on('open', () => ws.send(JSON.stringify({ id: 1, method: 'subscription', params: { path: 'events.agent', input: { json: { agentId: 'fan' } } } })));
        ws.on('message', (raw) => {
          const text = raw.toString();
          if (text.includes('"type":"started"')) resolve();
          else if (text.includes('"type":"data"')) {
            const ts = stamp(text);
            if (ts && /"type":"agent:(started|progress|completed)"/.test(text)) onEvent('trpc', i, ts);
          }
        });
      }),
    );
  }
  await Promise.all(opened);

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

  for (const s of sockets) s.terminate();
  await server.stop();

  record({ name: `fan-out: ${SUBS} Socket.IO + ${SUBS} tRPC subscribers`, value: round(delivered / seconds), unit: 'deliveries/s', baseline: null, baselineValue: null, target: '≥ 100,000 /s', met: delivered / seconds >= 100_000, note: `${delivered} deliveries over ${round(seconds, 2)} s of paced runs` });
  record({ name: 'fan-out: p99 delivery latency', value: percentile(latencies, 99), unit: 'ms', baseline: null, baselineValue: null, target: '≤ 10 ms', met: percentile(latencies, 99) <= 10 });
  record({ name: 'fan-out: missed events', value: missed, unit: 'events', baseline: null, baselineValue: null, target: '0', met: missed === 0 });
}
