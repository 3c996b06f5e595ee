import { randomBytes } from 'node:crypto';
import { createConnection } from 'node:net';
import { createAuth } from '../src/services/auth.ts';
import { percentile, quick, record, round } from './harness.ts';
import { processCpuMs, startBareFanout, startServerProcess } from './server.ts';

/**
 * Event fan-out: SUBS Socket.IO and SUBS tRPC WebSocket subscribers on one agent while its runs emit
 * progress. Two rounds: a paced one (a step every STEP_MS, so 2 × SUBS deliveries are offered every
 * STEP_MS) for the delivery latency (receive time minus the event's timestamp, same clock), and a flood
 * (steps back to back) for the most deliveries a second the server sustains. Missed events are counted in
 * both. The baseline is a bare `ws` process sending a frame of the same size to as many raw WebSockets,
 * in the same two rounds: what this machine allows for one write per socket per event. Servers run in their
 * own processes; the clients share this one, as light raw-WebSocket clients.
 */
const SUBS = quick ? 20 : 1000;
const PACED = { runs: quick ? 2 : 5, steps: 20, stepMs: Number(process.env['FANOUT_STEP_MS'] ?? 20) };
const FLOOD = { runs: quick ? 1 : 2, steps: quick ? 20 : 100, stepMs: 0 };
const SECRET = 'bench-secret-bench-secret-bench-secret!!';
/** A round that delivers nothing more for this long is over, its remaining events missed. */
const STALL_MS = 10_000;

type Round = typeof PACED;
interface Tally {
  latencies: number[];
  delivered: number;
  firstEmit: number;
  lastDelivery: number;
  /** Deliveries that would complete the round. */
  expected: number;
  done?: () => void;
}
export interface FanoutFigures {
  rate: number;
  p99: number;
  missed: number;
  seconds: number;
  delivered: number;
  /** Server CPU (user + system) per delivery, µs. */
  cpuUs: number;
  /** The clients' CPU (this process) per delivery, µs. */
  clientUs: number;
}

const tally = (expected: number): Tally => ({ latencies: [], delivered: 0, firstEmit: Infinity, lastDelivery: 0, expected });
/** Where deliveries are counted; each round puts a fresh tally here. */
let current = tally(0);
function onEvent(ts: number): void {
  const now = Date.now();
  const t = current;
  t.latencies.push(now - ts);
  if (ts < t.firstEmit) t.firstEmit = ts;
  t.lastDelivery = now;
  if (++t.delivered === t.expected) t.done?.();
}

/** Waits until the tally is complete, or until no delivery arrived for STALL_MS. */
async function settle(t: Tally): Promise<void> {
  const done = new Promise<void>((r) => (t.done = r));
  for (;;) {
    const before = t.delivered;
    const stalled = await Promise.race([done.then(() => false), new Promise<boolean>((r) => setTimeout(() => r(true), STALL_MS))]);
    if (!stalled || t.delivered === before) return;
  }
}

const clientCpuMs = () => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
};

function figures(t: Tally, cpuMs: number, clientMs: number): FanoutFigures {
  t.latencies.sort((a, b) => a - b);
  const seconds = Math.max(0.001, (t.lastDelivery - t.firstEmit) / 1000);
  return { rate: t.delivered / seconds, p99: percentile(t.latencies, 99), missed: t.expected - t.delivered, seconds, delivered: t.delivered, cpuUs: (cpuMs * 1000) / Math.max(1, t.delivered), clientUs: (clientMs * 1000) / Math.max(1, t.delivered) };
}

/**
 * Light clients: raw WebSockets on `node:net`, speaking each protocol's few frames and reading only each event's
 * timestamp, so the figure is the server's fan-out rather than 2,000 full clients' parsing on the same two cores
 * (with the `ws` client the clients were slower than the servers they measure). Server frames come unmasked and
 * whole; a client's frames are masked with a zero key, which the protocol allows.
 */
interface RawWs {
  send(text: string): void;
  terminate(): void;
}
const TIMESTAMP = '"timestamp":"';
/** `2026-01-01T00:00:00.000Z`: the ISO length of every event's timestamp. */
const ISO_LENGTH = 24;

function eventAt(frame: Buffer): void {
  const i = frame.indexOf(TIMESTAMP);
  if (i >= 0) onEvent(Date.parse(frame.toString('latin1', i + TIMESTAMP.length, i + TIMESTAMP.length + ISO_LENGTH)));
}

function rawWebSocket(url: string, headers: Record<string, string>, onText: (frame: Buffer, ws: RawWs) => void): [RawWs, Promise<void>] {
  const u = new URL(url);
  const socket = createConnection(Number(u.port), u.hostname);
  socket.setNoDelay(true);
  const frame = (op: number, body: Buffer) => {
    const head = body.length < 126 ? [0x80 | op, 0x80 | body.length] : [0x80 | op, 0xfe, body.length >> 8, body.length & 0xff];
    socket.write(Buffer.concat([Buffer.from([...head, 0, 0, 0, 0]), body]));
  };
  const ws: RawWs = { send: (text) => frame(0x1, Buffer.from(text)), terminate: () => socket.destroy() };
  const extra = Object.entries(headers).map(([k, v]) => `${k}: ${v}\r\n`).join('');
  socket.write(`GET ${u.pathname}${u.search} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\n${extra}\r\n`);
  let opened!: () => void;
  const open = new Promise<void>((r) => (opened = r));
  let pending: Buffer | null = null;
  let upgraded = false;
  socket.on('data', (chunk: Buffer) => {
    let buf = pending ? Buffer.concat([pending, chunk]) : chunk;
    if (!upgraded) {
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) return void (pending = buf);
      if (!buf.toString('latin1', 0, 12).endsWith(' 101')) throw new Error(`${url}: ${buf.toString('latin1', 0, end)}`);
      upgraded = true;
      buf = buf.subarray(end + 4);
      opened();
    }
    let at = 0;
    while (buf.length - at >= 2) {
      const op = buf[at]! & 0x0f;
      let len = buf[at + 1]! & 0x7f;
      let head = 2;
      if (len === 126) {
        if (buf.length - at < 4) break;
        len = buf.readUInt16BE(at + 2);
        head = 4;
      }
      if (buf.length - at < head + len) break;
      const payload = buf.subarray(at + head, at + head + len);
      at += head + len;
      if (op === 0x1) onText(payload, ws);
      else if (op === 0x9) frame(0xa, payload); // ping → pong
    }
    pending = at === buf.length ? null : buf.subarray(at);
  });
  socket.on('error', () => {}); // a client cut at the end of the round
  return [ws, open];
}

function socketIoClient(url: string, token: string, agents: string[]): [RawWs, Promise<void>] {
  let acks = 0;
  let subscribed!: () => void;
  const ready = new Promise<void>((r) => (subscribed = r));
  const [ws, open] = rawWebSocket(`${url}/socket.io/?EIO=4&transport=websocket`, {}, (frame, ws) => {
    if (frame.toString('latin1', 0, 10) === '42["agent:') return eventAt(frame);
    const text = frame.toString();
    if (text.startsWith('0')) ws.send(`40${JSON.stringify({ token })}`); // Engine.IO open → Socket.IO connect with auth
    else if (text.startsWith('40')) agents.forEach((a, i) => ws.send(`42${i}${JSON.stringify(['subscribe-agent-updates', a])}`));
    else if (text.startsWith('43') && ++acks === agents.length) subscribed(); // the subscribe acks
    else if (text === '2') ws.send('3'); // ping → pong
  });
  return [ws, open.then(() => ready)];
}

const AGENT_EVENT = '"type":"agent:';
function trpcClient(url: string, token: string, agents: string[]): [RawWs, Promise<void>] {
  let started = 0;
  let subscribed!: () => void;
  const ready = new Promise<void>((r) => (subscribed = r));
  const [ws, open] = rawWebSocket(`${url}/trpc`, { authorization: `Bearer ${token}` }, (frame, ws) => {
    if (frame.indexOf(AGENT_EVENT) >= 0) return eventAt(frame);
    const text = frame.toString();
    if (text.includes('"type":"started"') && ++started === agents.length) subscribed();
    else if (text === 'PING') ws.send('PONG');
  });
  void open.then(() => agents.forEach((a, i) => ws.send(JSON.stringify({ id: i + 1, method: 'subscription', params: { path: 'events.agent', input: { json: { agentId: a } } } }))));
  return [ws, open.then(() => ready)];
}

function bareClient(url: string): [RawWs, Promise<void>] {
  return rawWebSocket(url, {}, eventAt);
}

async function connect(clients: [RawWs, Promise<void>][]): Promise<RawWs[]> {
  await Promise.all(clients.map(([, ready]) => ready));
  return clients.map(([ws]) => ws);
}

/** The scheduler: each round on its own agent, every client subscribed to both from the start. */
async function measureServer(tmp: string): Promise<Record<'paced' | 'flood', FanoutFigures>> {
  const server = await startServerProcess({ DATABASE_URL: `file:${tmp}/fanout.db`, JWT_SECRET: SECRET });
  const token = await createAuth({ secret: SECRET }).sign({ sub: 'bench' }, '1h');
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const rounds = { paced: PACED, flood: FLOOD };
  for (const [id, r] of Object.entries(rounds)) {
    await fetch(`${server.url}/api/agents`, { method: 'POST', headers, body: JSON.stringify({ id, name: id, handler: 'demo', config: { steps: r.steps, stepMs: r.stepMs } }) });
  }
  const wsBase = server.url.replace(/^http/, 'ws');
  const agents = Object.keys(rounds);
  const sockets = await connect([
    ...Array.from({ length: SUBS }, () => socketIoClient(wsBase, token, agents)),
    ...Array.from({ length: SUBS }, () => trpcClient(wsBase, token, agents)),
  ]);
  const out = {} as Record<'paced' | 'flood', FanoutFigures>;
  try {
    for (const [id, r] of Object.entries(rounds) as ['paced' | 'flood', Round][]) {
      const t = (current = tally((r.steps + 2) * r.runs * SUBS * 2)); // started, progress × steps, completed
      const cpu = processCpuMs(server.child.pid!);
      const clientCpu = clientCpuMs();
      for (let i = 0; i < r.runs; i++) {
        await fetch(`${server.url}/api/agents/${id}/run`, { method: 'POST', headers });
        // The next run only once this one is over (a run in progress would make the manual run a skip).
        for (;;) {
          const runs = (await (await fetch(`${server.url}/api/agents/${id}/runs?limit=1`, { headers })).json()) as { data: { status: string }[] };
          if (runs.data[0]?.status === 'completed') break;
          await new Promise((res) => setTimeout(res, 20));
        }
      }
      await settle(t);
      out[id] = figures(t, processCpuMs(server.child.pid!) - cpu, clientCpuMs() - clientCpu);
    }
  } finally {
    for (const s of sockets) s.terminate();
    await server.stop();
  }
  return out;
}

/** The baseline: a bare `ws` process sends each event's frame to every client, one send per socket per event. */
async function measureBare(): Promise<Record<'paced' | 'flood', FanoutFigures>> {
  const bare = await startBareFanout();
  const sockets = await connect(Array.from({ length: 2 * SUBS }, () => bareClient(bare.url)));
  const out = {} as Record<'paced' | 'flood', FanoutFigures>;
  try {
    for (const [id, r] of Object.entries({ paced: PACED, flood: FLOOD }) as ['paced' | 'flood', Round][]) {
      const t = (current = tally((r.steps + 2) * r.runs * SUBS * 2));
      const cpu = processCpuMs(bare.pid);
      const clientCpu = clientCpuMs();
      for (let i = 0; i < r.runs; i++) await bare.run(r.steps + 2, r.stepMs);
      await settle(t);
      out[id] = figures(t, processCpuMs(bare.pid) - cpu, clientCpuMs() - clientCpu);
    }
  } finally {
    for (const s of sockets) s.terminate();
    await bare.stop();
  }
  return out;
}

export async function benchFanout(tmp: string): Promise<void> {
  const bare = await measureBare();
  const ours = await measureServer(tmp);
  const subs = `${SUBS} Socket.IO + ${SUBS} tRPC subscribers`;
  const cpu = (f: FanoutFigures) => `${round(f.cpuUs, 2)} µs server CPU a delivery, ${round(f.clientUs, 2)} µs client`;
  record({ name: `fan-out: ${subs}, steps back to back`, value: round(ours.flood.rate), unit: 'deliveries/s', baseline: `bare ws, ${2 * SUBS} sockets`, baselineValue: round(bare.flood.rate), target: '≥ 100,000 /s', met: ours.flood.rate >= 100_000, note: `${ours.flood.delivered} deliveries in ${round(ours.flood.seconds, 2)} s; ${cpu(ours.flood)} (bare: ${round(bare.flood.cpuUs, 2)}, ${round(bare.flood.clientUs, 2)})` });
  record({ name: `fan-out: ${subs}, a step every ${PACED.stepMs} ms`, value: round(ours.paced.rate), unit: 'deliveries/s', baseline: `bare ws, ${2 * SUBS} sockets`, baselineValue: round(bare.paced.rate), target: null, met: null, note: `offered ${round((2 * SUBS * 1000) / PACED.stepMs)}/s during steps; ${cpu(ours.paced)} (bare: ${round(bare.paced.cpuUs, 2)}, ${round(bare.paced.clientUs, 2)})` });
  record({ name: `fan-out: p99 delivery latency, a step every ${PACED.stepMs} ms`, value: ours.paced.p99, unit: 'ms', baseline: 'bare ws p99', baselineValue: bare.paced.p99, target: '≤ 20 ms', met: ours.paced.p99 <= 20, lowerIsBetter: true });
  const missed = ours.paced.missed + ours.flood.missed;
  record({ name: 'fan-out: missed events', value: missed, unit: 'events', baseline: null, baselineValue: null, target: '0', met: missed === 0, note: `paced ${ours.paced.missed}, flood ${ours.flood.missed}` });
}
