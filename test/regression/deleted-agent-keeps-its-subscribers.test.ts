import { io as connect, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { createSchedulerClient } from '../../client/index.ts';
import { createApp, type App } from '../../src/app.ts';
import { createEventBus } from '../../src/core/events.ts';
import type { AgentRecord, EventRecord } from '../../src/core/store.ts';
import { createEventsService } from '../../src/services/events.ts';
import { postgresDialect } from '../../src/storage/dialects/postgres.ts';
import { deferred, nextEvent, pgSchema, startServer, TEST_POSTGRES_URL, TEST_SECRET, testConfig } from '../harness.ts';

/**
 * Issue 12 §1: a socket subscribed to an agent kept receiving after the agent was deleted and its id taken by
 * someone else (the Socket.IO room was never left, the tRPC subscription never ended). Now the delete commits an
 * `agent:deleted` marker with it: every subscription to the agent gets it as its last event and ends, on every
 * instance, and the new owner's events never reach the old subscribers.
 */

interface Watchers {
  /** Types of the events each transport delivered. */
  trpc: string[];
  socket: string[];
  /** The tRPC subscription completed (after `agent:deleted`). */
  trpcEnded: Promise<void>;
  /** Socket.IO told of the delete. */
  socketTold: Promise<unknown>;
  sock: Socket;
  [Symbol.asyncDispose](): Promise<void>;
}

/** Alice watches agent R over tRPC and over Socket.IO, on the server at `url`. */
async function watch(url: string, token: string): Promise<Watchers> {
  const c = createSchedulerClient({ url, token, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket });
  const trpc: string[] = [];
  const socket: string[] = [];
  const ended = deferred();
  const started = deferred();
  const sub = c.events.agent.subscribe({ agentId: 'R' }, {
    onStarted: () => started.resolve(),
    onData: (e) => void trpc.push(e.data.type),
    onComplete: () => ended.resolve(),
    onError: (err) => ended.reject(err),
  });
  const sock = connect(url, { auth: { token }, transports: ['websocket'], reconnection: false });
  sock.onAny((name: string) => void socket.push(name));
  const told = new Promise<unknown>((resolve) => sock.once('agent:deleted', resolve));
  await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
  expect(await sock.emitWithAck('subscribe-agent-updates', 'R')).toEqual({ success: true });
  await started.promise;
  return {
    trpc,
    socket,
    trpcEnded: ended.promise,
    socketTold: told,
    sock,
    async [Symbol.asyncDispose]() {
      sub.unsubscribe();
      sock.close();
      await c[Symbol.asyncDispose]();
    },
  };
}

/** Bob's run of his agent R on `app`, to its end; then a round trip on Alice's socket, so anything sent to it has arrived. */
async function bobsRun(app: App, sock: Socket): Promise<void> {
  const bob = { sub: 'bob', admin: false };
  await app.services.agents.create(bob, { id: 'R', name: 'Bob R', handler: 'demo', config: { steps: 1, stepMs: 0 } });
  const done = nextEvent(app, (e) => e.type === 'agent:completed' && e.agentId === 'R');
  await app.services.agents.run(bob, 'R');
  await done;
  expect(await sock.emitWithAck('subscribe-scheduler-updates')).toEqual({ success: true });
}

describe('deleting an agent', () => {
  it('ends its tRPC subscriptions and Socket.IO rooms; the next owner of the id is not seen', async () => {
    await using s = await startServer();
    const alice = { sub: 'alice', admin: false };
    await s.app.services.agents.create(alice, { id: 'R', name: 'Alice R', handler: 'demo', config: { steps: 1, stepMs: 0 } });
    await using w = await watch(s.url, await s.token('alice'));

    await s.app.services.agents.remove(alice, 'R');
    expect(await w.socketTold).toMatchObject({ agentId: 'R' });
    await w.trpcEnded;
    expect(w.trpc).toEqual(['agent:deleted']);

    await bobsRun(s.app, w.sock);
    expect(w.socket.filter((n) => n.startsWith('agent:'))).toEqual(['agent:deleted']);
    // Bob's own subscription from the start of the id's history sees only his run: the marker is no agent's event.
    const replay = s.app.services.events.watchAgent({ sub: 'bob', admin: false }, 'R', { after: 0 });
    const first = await replay.next();
    await replay.return(undefined);
    expect(first.value).toMatchObject({ type: 'agent:started', agentId: 'R' });
  });

  it('gives a Socket.IO session recovered after the delete its agent:deleted, not the next owner\'s events', async () => {
    await using s = await startServer();
    const alice = { sub: 'alice', admin: false };
    await s.app.services.agents.create(alice, { id: 'R', name: 'Alice R', handler: 'demo', config: { steps: 1, stepMs: 0 } });
    const sock = connect(s.url, { auth: { token: await s.token('alice') }, transports: ['websocket'], reconnectionDelay: 10, reconnectionDelayMax: 10 });
    try {
      const seen: string[] = [];
      sock.onAny((name: string) => void seen.push(name));
      await new Promise<void>((resolve) => sock.once('connect', () => resolve()));
      expect(await sock.emitWithAck('subscribe-agent-updates', 'R')).toEqual({ success: true });
      // Alice's own run arrives (and gives the session an offset to recover from).
      const hers = new Promise<void>((resolve) => sock.once('agent:completed', () => resolve()));
      await s.app.services.agents.run(alice, 'R');
      await hers;
      // The link drops; while it is down R is deleted and Bob runs his own R.
      const dropped = new Promise<void>((resolve) => sock.once('disconnect', () => resolve()));
      s.app.io.of('/').sockets.get(sock.id!)!.conn.close();
      await dropped;
      seen.length = 0;
      await s.app.services.agents.remove(alice, 'R');
      const bob = { sub: 'bob', admin: false };
      await s.app.services.agents.create(bob, { id: 'R', name: 'Bob R', handler: 'demo', config: { steps: 1, stepMs: 0 } });
      const done = nextEvent(s.app, (e) => e.type === 'agent:completed' && e.agentId === 'R');
      await s.app.services.agents.run(bob, 'R');
      await done;
      const back = new Promise<void>((resolve) => sock.once('connect', () => resolve()));
      await back;
      expect(sock.recovered).toBe(true);
      expect(await sock.emitWithAck('subscribe-scheduler-updates')).toEqual({ success: true });
      expect(seen.filter((n) => n.startsWith('agent:'))).toEqual(['agent:deleted']);
    } finally {
      sock.close();
    }
  });

  const onPg = TEST_POSTGRES_URL ? it : it.skip;
  onPg('on another instance of one PostgreSQL database ends the subscriptions there too', async () => {
    await using db = await pgSchema();
    const start = async () => {
      const app = await createApp({ config: testConfig({ DATABASE_URL: db.url }), dialect: postgresDialect(db.url), jwtSecret: TEST_SECRET, webhookSecret: 'hook' });
      const { port } = await app.listen(0, '127.0.0.1');
      return { app, url: `http://127.0.0.1:${port}` };
    };
    const a = await start();
    const b = await start();
    try {
      const alice = { sub: 'alice', admin: false };
      await a.app.services.agents.create(alice, { id: 'R', name: 'Alice R', handler: 'demo', config: { steps: 1, stepMs: 0 } });
      await using w = await watch(b.url, await b.app.auth.sign({ sub: 'alice' }));
      await a.app.services.agents.remove(alice, 'R');
      expect(await w.socketTold).toMatchObject({ agentId: 'R' });
      await w.trpcEnded;
      expect(w.trpc).toEqual(['agent:deleted']);
      // Bob takes the id on A; B delivers his events to nobody who watched Alice's agent.
      const seenOnB = nextEvent(b.app, (e) => e.type === 'agent:completed' && e.agentId === 'R');
      await bobsRun(a.app, w.sock);
      await seenOnB;
      expect(await w.sock.emitWithAck('subscribe-scheduler-updates')).toEqual({ success: true });
      expect(w.socket.filter((n) => n.startsWith('agent:'))).toEqual(['agent:deleted']);
    } finally {
      await b.app.close(0);
      await a.app.close(0);
    }
  });

  it("drops a replayed page read after the delete: it may be the next owner's", async () => {
    // Alice is authorised, then (before her replay reads) R is deleted and Bob takes the id: the page is Bob's.
    let owner = 'alice';
    const bobs: EventRecord = { id: 7, type: 'agent:paused', agentId: 'R', data: { agentId: 'R', jobId: 'j', timestamp: 't', status: 'paused' }, createdAt: 0 };
    const events = createEventsService({
      store: {
        getAgent: async () => ({ id: 'R', owner }) as AgentRecord,
        oldestEventId: async () => 1,
        eventsAfter: async () => {
          owner = 'bob';
          return [bobs];
        },
      },
      scheduler: { events: createEventBus(), figures: async () => ({}) as never, lastEventId: () => 7 },
    });
    const seen: unknown[] = [];
    for await (const e of events.watchAgent({ sub: 'alice', admin: false }, 'R', { after: 0 })) seen.push(e);
    expect(seen).toEqual([]);
  });
});
