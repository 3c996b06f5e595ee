import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { createSchedulerClient } from '../../client/index.ts';
import { TEST_POSTGRES_URL } from '../harness.ts';
import { startCluster, startReceiver, until, type Cluster } from './harness.ts';

/**
 * Status and health of three server processes on one PostgreSQL (README, "Running several instances";
 * docs/cluster.md): the figures count the whole cluster and agree on every instance as soon as a change
 * has been answered, and `/healthz` says "degraded" (still 200) while the database is away.
 */

type Stats = { isRunning: boolean; scheduledTasksCount: number; runningAgentsCount: number; queuedTasksCount: number; maxConcurrentAgents: number; pausedJobsCount: number };

async function status(c: Cluster, i: number): Promise<Stats> {
  const r = await c.call(i, 'GET', '/api/agents/schedule/status');
  if (r.status !== 200) throw new Error(`status on ${i}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.data as Stats;
}

/** The figures of every instance, asked right after a change was answered: each must already show it. */
const everywhere = (c: Cluster) => Promise.all(c.instances.map((_, i) => status(c, i)));

/** Once a year: a schedule that never fires during the test. */
const YEARLY = '0 0 1 1 *';

if (!TEST_POSTGRES_URL) console.warn('cluster status tests skipped: TEST_POSTGRES_URL is not set (they start three servers on one PostgreSQL)');

describe.skipIf(!TEST_POSTGRES_URL).sequential('status and health of a cluster of three server processes', () => {
  it('shows a schedule, a pause and a run in progress answered by one instance in the status of every other at once', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver();
    const start = await everywhere(c);
    // Every instance's MAX_CONCURRENT_AGENTS (5 by default), summed over the three.
    expect(start.map((s) => s.maxConcurrentAgents)).toEqual([15, 15, 15]);
    expect(start.map((s) => s.scheduledTasksCount)).toEqual([0, 0, 0]);

    for (const id of ['s1', 's2']) {
      const made = await c.call(0, 'POST', '/api/agents', { id, name: id, handler: 'webhook', config: { url: receiver.url } });
      expect(made.status, JSON.stringify(made.body)).toBe(201);
    }
    expect((await c.call(0, 'POST', '/api/agents/s1/schedule', { cronExpression: YEARLY })).status).toBe(201);
    expect((await everywhere(c)).map((s) => s.scheduledTasksCount), 'scheduled through instance 0').toEqual([1, 1, 1]);

    expect((await c.call(1, 'POST', '/api/agents/s2/schedule', { cronExpression: YEARLY })).status).toBe(201);
    expect((await c.call(1, 'PATCH', '/api/agents/s2/schedule/s2/pause')).status).toBe(200);
    const paused = await everywhere(c);
    expect(paused.map((s) => [s.scheduledTasksCount, s.pausedJobsCount]), 'paused through instance 1 (paused schedules still count as scheduled)').toEqual([[2, 1], [2, 1], [2, 1]]);

    // A run held open by the receiver: in progress on whichever instance took it, counted by all three.
    receiver.hold((b) => b.agentId === 's1');
    expect((await c.call(2, 'POST', '/api/agents/s1/run')).status).toBe(202);
    const call = await receiver.eventually((x) => x.body.agentId === 's1');
    const running = await everywhere(c);
    expect(running.map((s) => [s.runningAgentsCount, s.queuedTasksCount]), 'a run in progress').toEqual([[1, 0], [1, 0], [1, 0]]);

    call.release();
    await until('the run to finish on every instance', async () =>
      (await everywhere(c)).every((s) => s.runningAgentsCount === 0) ? true : undefined);

    expect((await c.call(2, 'PATCH', '/api/agents/s2/schedule/s2/resume')).status).toBe(200);
    expect((await c.call(0, 'DELETE', '/api/agents/s1/schedule')).status).toBe(200);
    expect((await everywhere(c)).map((s) => [s.scheduledTasksCount, s.pausedJobsCount]), 'resumed through 2, unscheduled through 0').toEqual([[1, 0], [1, 0], [1, 0]]);
  }, 60_000);

  it('sends a subscriber on one instance scheduler:status with the cluster figures when another instance answers a change', async () => {
    await using c = await startCluster();
    const token = await c.token();
    await using client = createSchedulerClient({ url: c.instances[2]!.url, token, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket });
    const got: Stats[] = [];
    let started!: () => void;
    const ready = new Promise<void>((r) => (started = r));
    const sub = client.events.scheduler.subscribe(undefined, {
      onStarted: () => started(),
      onData: (e) => {
        if (e.data.type === 'scheduler:status') got.push((e.data.data as { stats: Stats }).stats);
      },
    });
    try {
      await ready;
      await until('the first figures', async () => (got.length > 0 ? true : undefined));
      expect(got[0]).toMatchObject({ scheduledTasksCount: 0, maxConcurrentAgents: 15 });
      for (const id of ['t1', 't2', 't3']) {
        expect((await c.call(0, 'POST', '/api/agents', { id, name: id, handler: 'demo', config: {} })).status).toBe(201);
        expect((await c.call(0, 'POST', `/api/agents/${id}/schedule`, { cronExpression: YEARLY })).status).toBe(201);
      }
      await until('the three schedules in an event on instance 2', async () => (got.at(-1)?.scheduledTasksCount === 3 ? true : undefined), 5_000);
      expect((await c.call(1, 'PATCH', '/api/agents/t1/schedule/t1/pause')).status).toBe(200);
      await until('the pause in an event on instance 2', async () => (got.at(-1)?.pausedJobsCount === 1 ? true : undefined), 5_000);
      // Schedules only came: no older figures (an instance's stale read published late) were the last word at any point.
      const counts = got.map((s) => s.scheduledTasksCount);
      expect(counts, JSON.stringify(counts)).toEqual([...counts].sort((x, y) => x - y));
      expect(got.at(-1)).toMatchObject({ scheduledTasksCount: 3, pausedJobsCount: 1, runningAgentsCount: 0 });
    } finally {
      sub.unsubscribe();
    }
  }, 60_000);

  it('answers /healthz degraded (still 200) on at least one instance while the database is away, and recovers', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver();
    // Work that writes every second, so the outage meets write batches as well as the probe and the signals.
    const made = await c.call(0, 'POST', '/api/agents', { id: 'o', name: 'o', handler: 'webhook', config: { url: receiver.url } });
    expect(made.status).toBe(201);
    expect((await c.call(0, 'POST', '/api/agents/o/schedule', { cronExpression: '* * * * * *' })).status).toBe(201);
    await receiver.eventually((x) => x.body.agentId === 'o');

    const health = async (i: number) => {
      const r = await fetch(`${c.instances[i]!.url}/healthz`, { signal: AbortSignal.timeout(3_000) });
      return { status: r.status, body: (await r.json()) as { ok: boolean; degraded?: boolean; reason?: string } };
    };
    expect(await Promise.all([0, 1, 2].map(health))).toEqual([0, 1, 2].map(() => ({ status: 200, body: { ok: true } })));

    // The outage, as in cluster.test.ts: every connection of the three processes cut, and cut again as they reconnect, for 3 s.
    const pgAdmin = await c.admin();
    const cut = () => pgAdmin.query('SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1', [c.applicationName]);
    expect((await cut()).rows[0].n, 'connections of the cluster cut').toBeGreaterThan(0);
    const answers: { status: number; body: { ok: boolean; degraded?: boolean; reason?: string } }[] = [];
    const outageEnd = Date.now() + 3_000;
    while (Date.now() < outageEnd) {
      await cut();
      answers.push(...(await Promise.all([0, 1, 2].map(health))));
      await new Promise((r) => setTimeout(r, 100)); // the pace of the cuts, not a wait for a result
    }
    expect(answers.filter((a) => a.status !== 200), 'every answer is 200, degraded or not').toEqual([]);
    expect(answers.every((a) => a.body.ok === true)).toBe(true);
    const degraded = answers.filter((a) => a.body.degraded === true);
    expect(degraded.length, `degraded answers during the outage: ${JSON.stringify(answers.slice(0, 6))}`).toBeGreaterThan(0);
    expect(degraded.filter((a) => !(typeof a.body.reason === 'string' && a.body.reason.length > 0)), 'a reason with each degraded answer').toEqual([]);
    // What the instances said, for the record: the signals connection and the database's own answers both show.
    const reasons = new Set(degraded.map((a) => a.body.reason));
    expect([...reasons].some((r) => /signals|database/.test(r!)), [...reasons].join(' | ')).toBe(true);

    // Recovered: each instance answers plain { ok: true } again (the window of a failed batch is 5 s).
    for (const i of [0, 1, 2]) {
      await until(`instance ${i} healthy again`, async () => {
        const h = await health(i);
        return h.body.degraded ? undefined : h;
      }, 20_000);
    }
    expect(await Promise.all([0, 1, 2].map(health))).toEqual([0, 1, 2].map(() => ({ status: 200, body: { ok: true } })));
  }, 60_000);
});
