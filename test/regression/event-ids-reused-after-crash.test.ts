import { join } from 'node:path';
import Database from 'better-sqlite3';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createSchedulerClient, type SchedulerClient } from '../../client/index.ts';
import { createAuth } from '../../src/services/auth.ts';
import { deferred, spawnServer, tempDir, TEST_SECRET } from '../harness.ts';

/**
 * Event ids used to be handed out in memory and published before their batch committed: after a
 * `kill -9` numbering restarted at the stored maximum, so an id a client had seen live could name
 * another event, and a client resuming from it skipped events. Now the database numbers each event as
 * its batch commits and only committed events are published (README, "How the engine works").
 */

const AGENTS = Array.from({ length: 12 }, (_, i) => `a${i}`);
/** Live events seen before each kill: by then every agent is mid-run, emitting progress as fast as it can. */
const KILL_AFTER = 300;
const CRASHES = 3;

/** `npm start`'s entry on a database file; resolves with its URL once it listens. */
const start = (dbFile: string) => spawnServer({ DATABASE_URL: `file:${dbFile}`, MAX_CONCURRENT_AGENTS: String(AGENTS.length), RETRY_BASE_DELAY_MS: '50' });

interface Seen {
  id: number;
  type: string;
  agentId: string | null;
  runId: string | undefined;
}

function client(url: string, token: string): SchedulerClient {
  return createSchedulerClient({ url, token, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket, retryDelayMs: () => 50 });
}

/** Subscribes to each agent's events; `onEvent` is called as each arrives; `started` resolves once every subscription is live. */
function watch(c: SchedulerClient, agents: string[], from: Record<string, number> | null, onEvent: (e: Seen) => void) {
  const started = agents.map(() => deferred());
  const subs = agents.map((agentId, i) =>
    c.events.agent.subscribe(
      { agentId, ...(from && { lastEventId: from[agentId] ?? 0 }) },
      {
        onStarted: () => started[i]!.resolve(),
        onData: ({ data: e }) => onEvent({ id: e.id, type: e.type, agentId: e.agentId, runId: (e.data as { runId?: string }).runId }),
        onError: () => {}, // the kill ends the stream
      },
    ),
  );
  return { started: Promise.all(started.map((d) => d.promise)), stop: () => subs.forEach((s) => s.unsubscribe()) };
}

/** What the events table holds for these ids (read-only, beside the running server). */
function stored(dbFile: string, ids: number[]): Map<number, Seen> {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare(`SELECT id, type, agent_id, data FROM events WHERE id IN (${ids.map(() => '?').join(',')})`).all(...ids) as { id: number; type: string; agent_id: string | null; data: string }[];
    return new Map(rows.map((r) => [r.id, { id: r.id, type: r.type, agentId: r.agent_id, runId: (JSON.parse(r.data) as { runId?: string }).runId }]));
  } finally {
    db.close();
  }
}

function agentEventsAfter(dbFile: string, agentId: string, after: number): Seen[] {
  const db = new Database(dbFile, { readonly: true, fileMustExist: true });
  try {
    const rows = db.prepare('SELECT id, type, agent_id, data FROM events WHERE agent_id = ? AND id > ? ORDER BY id').all(agentId, after) as { id: number; type: string; agent_id: string; data: string }[];
    return rows.map((r) => ({ id: r.id, type: r.type, agentId: r.agent_id, runId: (JSON.parse(r.data) as { runId?: string }).runId }));
  } finally {
    db.close();
  }
}

/**
 * One life of the server killed with SIGKILL the moment the client has seen `KILL_AFTER` live events,
 * while every agent is mid-run emitting progress as fast as it can and batches are being committed.
 */
async function lifeKilledMidStream(dbFile: string, token: string, createAgents: boolean): Promise<Seen[]> {
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  const seen: Seen[] = [];
  const life = start(dbFile);
  const exited = new Promise((r) => life.child.once('exit', r));
  try {
    const url = await life.url;
    if (createAgents) {
      for (const id of AGENTS) {
        await fetch(`${url}/api/agents`, { method: 'POST', headers, body: JSON.stringify({ id, name: id, handler: 'demo', config: { steps: 3000, stepMs: 0 } }) });
      }
    }
    await using c = client(url, token);
    const enough = deferred();
    const live = watch(c, AGENTS, null, (e) => {
      seen.push(e);
      if (seen.length === KILL_AFTER) {
        life.child.kill('SIGKILL');
        enough.resolve();
      }
    });
    await live.started;
    // A run already going (a retry of one the last crash interrupted) makes this a recorded skip: fine.
    // Those retries may bring the kill before every run is asked for: a request cut by it is no failure.
    const killedNow = () => seen.length >= KILL_AFTER;
    const asked = (async () => {
      for (const id of AGENTS) if (!killedNow()) await fetch(`${url}/api/agents/${id}/run`, { method: 'POST', headers });
    })();
    await Promise.all([
      enough.promise,
      asked.catch((err: unknown) => {
        if (!killedNow()) throw err;
      }),
    ]);
    await exited;
    live.stop();
  } finally {
    life.child.kill('SIGKILL');
  }
  return seen;
}

describe('regression: event ids reused after a crash', () => {
  it('every id a client saw live still names the same event after kill -9 and restart, and resuming from it skips nothing', async () => {
    using dir = tempDir();
    const dbFile = join(dir.path, 'events.db');
    const token = await createAuth({ secret: TEST_SECRET }).sign({ sub: 'alice' });

    // Several crashes, each a chance for an event seen live to be one its batch never committed.
    const seen: Seen[] = [];
    for (let crash = 0; crash < CRASHES; crash++) {
      const got = await lifeKilledMidStream(dbFile, token, crash === 0);
      expect(got.length).toBeGreaterThanOrEqual(KILL_AFTER);
      seen.push(...got);
    }

    // Last life on the same file: the interrupted runs fail and are retried, so new events are
    // numbered — after every id handed out before the crashes.
    const last = start(dbFile);
    try {
      const url = await last.url;
      await using c = client(url, token);
      const retried = deferred();
      const live = watch(c, AGENTS, null, (e) => {
        if (e.type === 'agent:progress') retried.resolve();
      });
      await retried.promise;
      live.stop();

      // Every id seen live names the event the client saw: same type, agent and run.
      const byId = stored(dbFile, seen.map((e) => e.id));
      const mismatched = seen.filter((e) => JSON.stringify(byId.get(e.id)) !== JSON.stringify(e));
      expect(mismatched).toEqual([]);

      // Resuming from the last id seen of each agent replays every stored event after it, in order.
      const lastSeen: Record<string, number> = {};
      for (const e of seen) if (e.agentId) lastSeen[e.agentId] = e.id;
      const expected = Object.fromEntries(AGENTS.map((a) => [a, agentEventsAfter(dbFile, a, lastSeen[a] ?? 0)]));
      const resumed: Record<string, Seen[]> = Object.fromEntries(AGENTS.map((a) => [a, []]));
      const replayed = deferred();
      const caughtUp = () => AGENTS.every((a) => resumed[a]!.length >= expected[a]!.length);
      const resume = watch(c, AGENTS, lastSeen, (e) => {
        resumed[e.agentId!]!.push(e);
        if (caughtUp()) replayed.resolve();
      });
      if (caughtUp()) replayed.resolve();
      await replayed.promise;
      resume.stop();
      for (const a of AGENTS) expect(resumed[a]!.slice(0, expected[a]!.length), a).toEqual(expected[a]);
    } finally {
      last.child.kill('SIGKILL');
    }
    await new Promise((r) => last.child.once('exit', r));
  }, 90_000);
});
