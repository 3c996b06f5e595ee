import { io as connect, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { createSchedulerClient } from '../client/index.ts';
import { deferred, nextEvent, startServer, type TestServer } from './harness.ts';

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

async function socket(s: TestServer, token: string | undefined): Promise<Socket> {
  const sock = connect(s.url, { auth: token === undefined ? {} : { token }, transports: ['websocket'], reconnection: false });
  await new Promise<void>((resolve, reject) => {
    sock.once('connect', () => resolve());
    sock.once('connect_error', (err) => reject(err));
  });
  return sock;
}

const ack = (sock: Socket, event: string, ...args: unknown[]) => sock.emitWithAck(event, ...args) as Promise<{ success: boolean; error?: string }>;

/** Records every agent:* event the socket receives, in order. */
function record(sock: Socket) {
  const got: { event: string; data: Record<string, unknown> }[] = [];
  sock.onAny((event: string, data: Record<string, unknown>) => void (event.startsWith('agent:') && got.push({ event, data })));
  return got;
}

describe('Socket.IO', () => {
  it('refuses a missing or bad token with connect error Unauthorized', async () => {
    await using s = await startServer();
    for (const token of [undefined, 'garbage', await s.app.auth.sign({ sub: 'x' }, -60)]) {
      await expect(socket(s, token)).rejects.toMatchObject({ message: 'Unauthorized' });
    }
  });

  it('checks the token again when a dropped session is recovered', async () => {
    await using s = await startServer();
    const sock = connect(s.url, { auth: { token: await s.token() }, transports: ['websocket'], reconnectionDelay: 10, reconnectionDelayMax: 20 });
    try {
      await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
      // Receive a broadcast first: it carries the offset a client needs to ask for its session back.
      await s.call('POST', '/api/agents', { body: { id: 'r', name: 'R', handler: 'demo', config: { steps: 1, stepMs: 0 } } });
      expect(await ack(sock, 'subscribe-agent-updates', 'r')).toEqual({ success: true });
      const heard = new Promise<void>((resolve) => sock.once('agent:completed', () => resolve()));
      await s.call('POST', '/api/agents/r/run');
      await heard;
      // The transport drops (not a server-side disconnect), so the client reconnects and asks to recover
      // its session — now with a token that no longer verifies.
      sock.auth = { token: 'tampered' };
      const refused = new Promise<Error>((resolve) => sock.once('connect_error', resolve));
      for (const client of s.app.io.of('/').sockets.values()) client.conn.close();
      expect((await refused).message).toBe('Unauthorized');
      // A refused namespace connection is not retried by the client; with a good token it connects again.
      sock.auth = { token: await s.token() };
      const back = new Promise<void>((resolve) => sock.once('connect', () => resolve()));
      sock.connect();
      await back;
      expect(sock.connected).toBe(true);
    } finally {
      sock.close();
    }
  });

  it('sends the documented events with their documented fields to agent subscribers', async () => {
    await using s = await startServer({ env: { RETRY_BASE_DELAY_MS: '50' } });
    await s.call('POST', '/api/agents', { body: { id: 'agent-123', name: 'Demo', handler: 'demo', config: { steps: 2, stepMs: 0, failTimes: 1 } } });
    await s.call('POST', '/api/agents/agent-123/schedule', { body: { cronExpression: '0 0 1 1 *', jobId: 'job-456' } });
    const sock = await socket(s, await s.token());
    try {
      const got = record(sock);
      expect(await ack(sock, 'subscribe-agent-updates', 'agent-123')).toEqual({ success: true });
      const done = deferred();
      sock.on('agent:completed', () => done.resolve());
      await s.call('POST', '/api/agents/agent-123/run');
      await done.promise;
      expect(got.map((g) => g.event)).toEqual(['agent:started', 'agent:failed', 'agent:started', 'agent:progress', 'agent:progress', 'agent:completed']);
      expect(got[0]!.data).toMatchObject({ agentId: 'agent-123', jobId: 'job-456', status: 'started', timestamp: expect.stringMatching(ISO) });
      expect(got[1]!.data).toMatchObject({ agentId: 'agent-123', jobId: 'job-456', status: 'failed', error: 'demo failure (attempt 1)', willRetry: true, attempt: 1, timestamp: expect.stringMatching(ISO) });
      expect(got[3]!.data).toEqual({ agentId: 'agent-123', jobId: 'job-456', runId: expect.any(String), progress: 50, message: 'Step 1 of 2', currentStep: '1', totalSteps: 2, timestamp: expect.stringMatching(ISO) });
      expect(got[5]!.data).toMatchObject({ agentId: 'agent-123', jobId: 'job-456', status: 'completed', duration: expect.any(Number), timestamp: expect.stringMatching(ISO) });

      const paused = deferred<Record<string, unknown>>();
      const resumed = deferred<Record<string, unknown>>();
      sock.on('agent:paused', paused.resolve);
      sock.on('agent:resumed', resumed.resolve);
      await s.call('PATCH', '/api/agents/agent-123/schedule/job-456/pause');
      expect(await paused.promise).toEqual({ agentId: 'agent-123', jobId: 'job-456', status: 'paused', timestamp: expect.stringMatching(ISO) });
      await s.call('PATCH', '/api/agents/agent-123/schedule/job-456/resume');
      expect(await resumed.promise).toMatchObject({ agentId: 'agent-123', jobId: 'job-456', status: 'resumed', timestamp: expect.stringMatching(ISO) });

      expect(await ack(sock, 'unsubscribe-agent-updates', 'agent-123')).toEqual({ success: true });
      const before = got.length;
      const finished = nextEvent(s.app, (e) => e.type === 'agent:completed');
      await s.call('POST', '/api/agents/agent-123/run');
      await finished;
      // A round trip after the run: anything still in flight to this socket would have arrived before the ack.
      await ack(sock, 'subscribe-scheduler-updates');
      expect(got.length).toBe(before);
    } finally {
      sock.close();
    }
  });

  it("cannot subscribe to another owner's agent, and hears nothing of it", async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: { id: 'alices', name: 'A', handler: 'demo', config: { steps: 1, stepMs: 0 } } });
    const bob = await socket(s, await s.token('bob'));
    try {
      const got = record(bob);
      expect(await ack(bob, 'subscribe-agent-updates', 'alices')).toEqual({ success: false, error: 'Agent alices not found' });
      expect(await ack(bob, 'subscribe-agent-updates', 'bad id!')).toMatchObject({ success: false, error: expect.stringMatching(/^agentId/) });
      const done = nextEvent(s.app, (e) => e.type === 'agent:completed');
      await s.call('POST', '/api/agents/alices/run');
      await done;
      await ack(bob, 'subscribe-scheduler-updates');
      expect(got).toEqual([]);
    } finally {
      bob.close();
    }
  });

  it('sends scheduler:status at subscribe time, then on change at most every 250 ms', async () => {
    await using s = await startServer();
    const sock = await socket(s, await s.token());
    try {
      const statuses: { stats: Record<string, unknown>; timestamp: string; at: number }[] = [];
      const fiveScheduled = deferred();
      sock.on('scheduler:status', (d: { stats: Record<string, unknown>; timestamp: string }) => {
        statuses.push({ ...d, at: Date.now() });
        if (d.stats['scheduledTasksCount'] === 5) fiveScheduled.resolve();
      });
      expect(await ack(sock, 'subscribe-scheduler-updates')).toEqual({ success: true });
      for (let i = 0; i < 5; i++) {
        await s.call('POST', '/api/agents', { body: { id: `a${i}`, name: 'A', handler: 'demo' } });
        await s.call('POST', `/api/agents/a${i}/schedule`, { body: { cronExpression: '@yearly' } });
      }
      await fiveScheduled.promise;
      expect(statuses[0]!.stats).toEqual({ isRunning: true, scheduledTasksCount: 0, runningAgentsCount: 0, queuedTasksCount: 0, maxConcurrentAgents: 5, pausedJobsCount: 0 });
      expect(statuses[0]!.timestamp).toMatch(ISO);
      const changes = statuses.slice(1);
      for (let i = 1; i < changes.length; i++) expect(Date.parse(changes[i]!.timestamp) - Date.parse(changes[i - 1]!.timestamp)).toBeGreaterThanOrEqual(250);
      expect(changes.length).toBeLessThan(10); // ten changes were made; the throttle folded them
    } finally {
      sock.close();
    }
  });

  it('carries the same information as the tRPC subscription', async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: { id: 'demo', name: 'Demo', handler: 'demo', config: { steps: 2, stepMs: 0 } } });
    const sock = await socket(s, await s.token());
    await using c = createSchedulerClient({ url: s.url, token: await s.token(), WebSocket: WebSocket as unknown as typeof globalThis.WebSocket });
    try {
      const viaSocket = record(sock);
      await ack(sock, 'subscribe-agent-updates', 'demo');
      const viaTrpc: { event: string; data: unknown }[] = [];
      const started = deferred();
      const trpcDone = deferred();
      const sub = c.events.agent.subscribe({ agentId: 'demo' }, {
        onStarted: () => started.resolve(),
        onData: (e) => {
          viaTrpc.push({ event: e.data.type, data: e.data.data });
          if (e.data.type === 'agent:completed') trpcDone.resolve();
        },
      });
      await started.promise;
      const socketDone = deferred();
      sock.on('agent:completed', () => socketDone.resolve());
      await s.call('POST', '/api/agents/demo/run');
      await Promise.all([trpcDone.promise, socketDone.promise]);
      sub.unsubscribe();
      expect(viaTrpc).toEqual(viaSocket);
    } finally {
      sock.close();
    }
  });
});
