import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { createSchedulerClient } from '../../client/index.ts';
import { TEST_POSTGRES_URL } from '../harness.ts';
import { duplicates, startCluster, startReceiver, until, type Cluster, type HookCall, type Receiver } from './harness.ts';

/**
 * Three server processes on one PostgreSQL schema, the receiver counting the work they do
 * (docs/cluster.md, "Next: claim before run"; README, "Running several instances"). Each test is one
 * promise of the cluster, checked from the outside only: HTTP, tRPC and the receiver's calls.
 */

type Run = { id: string; agentId: string; trigger: string; attempt: number; status: string; error: string | null; instanceId: string | null; scheduledAt: string };

const EVERY_SECOND = '* * * * * *';

async function hookAgent(c: Cluster, i: number, receiver: Receiver, id: string, cron?: string): Promise<void> {
  const made = await c.call(i, 'POST', '/api/agents', { id, name: id, handler: 'webhook', config: { url: receiver.url } });
  expect(made.status, JSON.stringify(made.body)).toBe(201);
  if (cron) {
    const s = await c.call(i, 'POST', `/api/agents/${id}/schedule`, { cronExpression: cron });
    expect(s.status, JSON.stringify(s.body)).toBe(201);
  }
}

async function runs(c: Cluster, i: number, agentId: string): Promise<Run[]> {
  const r = await c.call(i, 'GET', `/api/agents/${agentId}/runs?limit=1000`);
  if (r.status !== 200) throw new Error(`runs of ${agentId}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.data as Run[];
}

/** The run with `id` once `pred` holds for it (read through instance `i`). */
const runWhen = (c: Cluster, i: number, agentId: string, id: string, pred: (r: Run) => boolean, timeoutMs?: number) =>
  until(`run ${id} of ${agentId} to match`, async () => (await runs(c, i, agentId)).find((r) => r.id === id && pred(r)), timeoutMs);

const distinctSlots = (calls: readonly HookCall[]) => new Set(calls.map((x) => x.body.scheduledAt)).size;

/** A live instance other than `not` (by index). */
const other = (c: Cluster, ...not: number[]) => c.instances.find((i) => i.alive && !not.includes(i.index))!.index;

if (!TEST_POSTGRES_URL) console.warn('cluster tests skipped: TEST_POSTGRES_URL is not set (they start three servers on one PostgreSQL)');

describe.skipIf(!TEST_POSTGRES_URL).sequential('a cluster of three server processes on one PostgreSQL', () => {
  it('runs each slot once in the whole cluster while fires keep coming', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver(); // disposed first: held calls are answered before the servers stop
    for (const [i, id] of ['a', 'b', 'c'].entries()) await hookAgent(c, i, receiver, id, EVERY_SECOND);
    // Every instance has every schedule on its timeline (the ones that started before the schedules
    // existed learn them by signal or reconcile, and a restart loads them): all three want every slot.
    await c.instances[1]!.restart();
    // About 8 s of fires: eight slots of each agent, each done once.
    await until('eight slots of every agent', async () => (['a', 'b', 'c'].every((id) => distinctSlots(receiver.of(id)) >= 8) ? true : undefined), 15_000);
    expect(duplicates(receiver.calls)).toEqual([]);
  }, 40_000);

  it('retries on another instance the run of an instance killed mid-run; the killed one rejoins after a restart', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver();
    const admin = await c.token('root', 'admin');
    await hookAgent(c, 0, receiver, 'k');
    receiver.hold((b) => b.agentId === 'k');
    const ran = await c.call(0, 'POST', '/api/agents/k/run');
    expect(ran.status).toBe(202);
    const first = await receiver.eventually((x) => x.body.agentId === 'k');
    const run = await runWhen(c, 0, 'k', first.body.runId, (r) => r.status === 'running' && !!r.instanceId);
    const holder = (await c.byId(run.instanceId!))!;
    expect(holder, `the holder ${run.instanceId} is one of ours`).toBeDefined();
    const killedId = await holder.id();
    await holder.kill9();
    const killedAt = Date.now();

    // The contract's bound is 45 s with the default 30 s lease; with a 3 s lease the cluster reaps within
    // the lease and one reconcile (docs/cluster.md, "Leases and fences"), so 20 s is generous.
    const retry = await receiver.eventually((x) => x.body.agentId === 'k' && x.body.attempt === 2, 20_000);
    expect(retry.receivedAt - killedAt).toBeLessThan(45_000);
    retry.release();
    const reader = other(c, holder.index);
    const failed = await runWhen(c, reader, 'k', first.body.runId, (r) => r.status === 'failed');
    expect(failed.error).toMatch(/interrupted/);
    const done = await runWhen(c, reader, 'k', retry.body.runId, (r) => r.status === 'completed');
    expect(done.instanceId).not.toBe(killedId);
    // Nothing stuck: no run of the agent is left open, and the dead instance left the list.
    const all = await runs(c, reader, 'k');
    expect(all.filter((r) => r.status === 'running' || r.status === 'queued')).toEqual([]);
    expect(receiver.of('k').map((x) => x.body.attempt)).toEqual([1, 2]);
    await until('the killed instance to leave GET /api/instances', async () => {
      const r = await c.call(reader, 'GET', '/api/instances', undefined, admin);
      return (r.body.data as { id: string }[]).some((x) => x.id === killedId) ? undefined : true;
    });

    await holder.restart();
    const rejoined = await holder.id();
    const listed = await c.call(reader, 'GET', '/api/instances', undefined, admin);
    expect((listed.body.data as { id: string; pid: number }[]).find((x) => x.id === rejoined)).toMatchObject({ pid: holder.pid });
    // Its restart does not take the finished runs for its own leftovers.
    expect((await runs(c, holder.index, 'k')).map((r) => [r.id, r.status]).sort()).toEqual(all.map((r) => [r.id, r.status]).sort());
  }, 60_000);

  it('holds pause, unschedule and delete answered by one instance on all the others', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver();
    for (const id of ['p', 'u', 'd']) await hookAgent(c, 0, receiver, id, EVERY_SECOND);
    await c.instances[1]!.restart();
    await c.instances[2]!.restart();
    for (const id of ['p', 'u', 'd']) await receiver.eventually((x) => x.body.agentId === id);

    /** Answers `path` through instance `i`, retrying a 409 (a run of the job in progress right then). */
    const answer = async (i: number, method: string, path: string): Promise<number> =>
      until(`${method} ${path}`, async () => {
        const r = await c.call(i, method, path);
        if (r.status === 409) return undefined;
        expect(r.status, JSON.stringify(r.body)).toBe(200);
        return Date.now();
      });
    const answered: Record<string, number> = {
      p: await answer(1, 'PATCH', '/api/agents/p/schedule/p/pause'),
      u: await answer(2, 'DELETE', '/api/agents/u/schedule'),
      d: await answer(0, 'DELETE', '/api/agents/d'),
    };
    // A fire whose slot comes after the answer contradicts it, whichever instance would start it (a slot
    // due before the answer may still be running). A negative needs a window: three more slots.
    const last = Math.max(...Object.values(answered));
    await until('three more slots to pass', async () => (Date.now() - last > 3_000 ? true : undefined), 5_000, 250);
    const late = Object.fromEntries(
      Object.entries(answered).map(([id, at]) => [id, receiver.of(id).filter((x) => Date.parse(x.body.scheduledAt) > at).map((x) => x.body.scheduledAt)]),
    );
    expect(late, 'fires after the answer, per agent').toEqual({ p: [], u: [], d: [] });
    for (const inst of c.instances) {
      const p = await c.call(inst.index, 'GET', '/api/agents/p/schedule');
      expect(p.body.data, `p on instance ${inst.index}`).toMatchObject({ nextRunAt: null });
      const u = await c.call(inst.index, 'GET', '/api/agents/u/schedule');
      expect(u.body.data, `u on instance ${inst.index}`).toMatchObject({ scheduleExpression: null, nextRunAt: null });
      expect((await c.call(inst.index, 'GET', '/api/agents/d')).status, `d on instance ${inst.index}`).toBe(404);
    }
  }, 60_000);

  it('aborts within 1 s a run cancelled through an instance that does not run it', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver();
    await hookAgent(c, 0, receiver, 'x');
    receiver.hold((b) => b.agentId === 'x');
    await c.call(0, 'POST', '/api/agents/x/run');
    const held = await receiver.eventually((x) => x.body.agentId === 'x');
    const run = await runWhen(c, 0, 'x', held.body.runId, (r) => r.status === 'running' && !!r.instanceId);
    const runner = (await c.byId(run.instanceId!))!;
    const canceller = other(c, runner.index);
    const cancel = await c.call(canceller, 'POST', `/api/runs/${run.id}/cancel`);
    expect(cancel.status, JSON.stringify(cancel.body)).toBe(200);
    const cancelledAt = Date.now();
    // The handler's signal fires on the runner: the webhook call it holds open is dropped.
    const abortedAt = await Promise.race([held.aborted, new Promise<number>((r) => setTimeout(() => r(Infinity), 3_000))]);
    expect(abortedAt - cancelledAt, 'cancel answered → call dropped by the runner (ms)').toBeLessThanOrEqual(1_000);
    const ended = await runWhen(c, canceller, 'x', run.id, (r) => r.status !== 'running', 1_000);
    expect(ended).toMatchObject({ status: 'cancelled' });
    const settled = await runs(c, runner.index, 'x');
    expect(settled.map((r) => r.status)).toEqual(['cancelled']);
    expect(receiver.of('x')).toHaveLength(1);
  }, 40_000);

  it('aborts within 1 s a run cancelled elsewhere while the signals connections are down: the request is on the run', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver();
    await hookAgent(c, 0, receiver, 'y');
    receiver.hold((b) => b.agentId === 'y');
    await c.call(0, 'POST', '/api/agents/y/run');
    const held = await receiver.eventually((x) => x.body.agentId === 'y');
    const run = await runWhen(c, 0, 'y', held.body.runId, (r) => r.status === 'running' && !!r.instanceId);
    const runner = (await c.byId(run.instanceId!))!;
    const canceller = other(c, runner.index);

    // Every signals connection of the cluster (the one running LISTEN, NOTIFY or its probe) is cut, and cut
    // again each time it comes back; its reconnect backoff doubles each time, so after a second of this the
    // `cancel` signal finds no live connection to leave by or arrive on.
    const pgAdmin = await c.admin();
    let cuts = 0;
    const cutSignals = async () => {
      const r = await pgAdmin.query(
        `SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1 AND (query LIKE 'LISTEN%' OR query LIKE '%pg_notify%' OR query = 'SELECT 1')`,
        [c.applicationName],
      );
      cuts += r.rows[0].n as number;
    };
    let cutting = true;
    const cutStart = Date.now();
    const cutter = (async () => {
      while (cutting) {
        await cutSignals();
        await new Promise((r) => setTimeout(r, 20)); // the pace of the cuts, not a wait for a result
      }
    })();
    try {
      await until('a second of cutting, the signals connections cut a few times', async () => (Date.now() - cutStart >= 1_000 && cuts >= 6 ? true : undefined), 10_000, 50);
      const cancel = await c.call(canceller, 'POST', `/api/runs/${run.id}/cancel`);
      expect(cancel.status, JSON.stringify(cancel.body)).toBe(200);
      const cancelledAt = Date.now();
      const abortedAt = await Promise.race([held.aborted, new Promise<number>((r) => setTimeout(() => r(Infinity), 3_000))]);
      expect(abortedAt - cancelledAt, 'cancel answered → call dropped by the runner (ms)').toBeLessThanOrEqual(1_000);
    } finally {
      cutting = false;
      await cutter;
    }
    const ended = await runWhen(c, canceller, 'y', run.id, (r) => r.status !== 'running');
    expect(ended).toMatchObject({ status: 'cancelled' });
    expect(receiver.of('y')).toHaveLength(1);
  }, 40_000);

  it('streams to a subscriber on one instance the runs others execute, and resumes on a third by lastEventId', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver();
    await hookAgent(c, 0, receiver, 'e');
    const token = await c.token();
    const client = (i: number) => createSchedulerClient({ url: c.instances[i]!.url, token, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket });
    type Ev = { id: number; type: string; runId?: string };
    const subscribe = (cl: ReturnType<typeof client>, lastEventId?: number) => {
      const got: Ev[] = [];
      let started!: () => void;
      const ready = new Promise<void>((r) => (started = r));
      const sub = cl.events.agent.subscribe(
        { agentId: 'e', ...(lastEventId !== undefined && { lastEventId }) },
        {
          onStarted: () => started(),
          onData: (e) => void got.push({ id: e.data.id, type: e.data.type, runId: (e.data.data as { runId?: string }).runId }),
        },
      );
      return { got, ready, stop: () => sub.unsubscribe() };
    };
    const completedOf = (evs: Ev[], runId: string) => evs.some((e) => e.type === 'agent:completed' && e.runId === runId);
    const ranOn = async (runId: string) => (await runWhen(c, 1, 'e', runId, (r) => r.status === 'completed')).instanceId!;

    await using onA = client(0);
    const a = subscribe(onA);
    await a.ready;
    // Runs asked of B until one is executed elsewhere than A (with claim before run, any instance may take it).
    const aId = await c.instances[0]!.id();
    const seenOnA: string[] = [];
    for (let n = 0; n < 10; n++) {
      const r = await c.call(1, 'POST', '/api/agents/e/run');
      expect(r.status).toBe(202);
      const runId = r.body.data.runId as string;
      await until(`run ${runId} seen on A`, async () => (completedOf(a.got, runId) ? true : undefined));
      seenOnA.push(runId);
      if ((await ranOn(runId)) !== aId) break;
    }
    expect(await Promise.all(seenOnA.map(ranOn))).not.toEqual(seenOnA.map(() => aId));
    a.stop();
    const lastSeen = a.got.at(-1)!.id;

    // Unseen while disconnected: two runs asked of C.
    const missed: string[] = [];
    for (let n = 0; n < 2; n++) {
      const r = await c.call(2, 'POST', '/api/agents/e/run');
      missed.push(r.body.data.runId as string);
      await runWhen(c, 2, 'e', missed.at(-1)!, (x) => x.status === 'completed');
    }
    await using onC = client(2);
    const resumed = subscribe(onC, lastSeen);
    await until('the missed runs on C', async () => (missed.every((id) => completedOf(resumed.got, id)) ? true : undefined));
    resumed.stop();

    // The whole history, read fresh through B: A's part then C's part is exactly it, in id order.
    await using onB = client(1);
    const all = subscribe(onB, 0);
    await until('the whole history on B', async () => (missed.every((id) => completedOf(all.got, id)) ? true : undefined));
    all.stop();
    const joined = [...a.got, ...resumed.got].map((e) => e.id);
    expect(joined).toEqual(all.got.map((e) => e.id));
    expect(new Set(joined).size).toBe(joined.length);
    expect([...joined].sort((x, y) => x - y)).toEqual(joined);
  }, 60_000);

  it('fences a frozen holder: after SIGSTOP past its lease and SIGCONT, its late writes change nothing', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver();
    const admin = await c.token('root', 'admin');
    await hookAgent(c, 0, receiver, 'f');
    receiver.hold((b) => b.agentId === 'f' && b.attempt === 1);
    await c.call(0, 'POST', '/api/agents/f/run');
    const first = await receiver.eventually((x) => x.body.agentId === 'f');
    const run = await runWhen(c, 0, 'f', first.body.runId, (r) => r.status === 'running' && !!r.instanceId);
    const holder = (await c.byId(run.instanceId!))!;
    const holderId = await holder.id();
    holder.freeze();

    // The cluster gives up on it after its lease: the run fails interrupted, a retry runs elsewhere.
    const retry = await receiver.eventually((x) => x.body.agentId === 'f' && x.body.attempt === 2, 20_000);
    const reader = other(c, holder.index);
    await runWhen(c, reader, 'f', retry.body.runId, (r) => r.status === 'completed');
    const decided = await runWhen(c, reader, 'f', run.id, (r) => r.status === 'failed');
    expect(decided.error).toMatch(/interrupted/);

    // Wake it and answer its call: unless it noticed first that it lost the run (and dropped the call),
    // it believes its run succeeded and writes so.
    holder.thaw();
    first.release();
    await Promise.race([first.answered, first.aborted]);
    // Its writes are done once it heartbeats again twice after the answer (the heartbeat follows them).
    const answeredAt = Date.now();
    await until('the woken instance to heartbeat again', async () => {
      const r = await c.call(reader, 'GET', '/api/instances', undefined, admin);
      const me = (r.body.data as { id: string; heartbeatAt: string }[]).find((x) => x.id === holderId);
      return me && Date.parse(me.heartbeatAt) > answeredAt + 1_000 ? true : undefined;
    }, 10_000).catch(() => undefined); // it may also have been dropped for good: then it has nothing to say

    const after = await runs(c, reader, 'f');
    expect(after.find((r) => r.id === run.id)).toMatchObject({ status: 'failed', error: decided.error });
    expect(after.find((r) => r.id === retry.body.runId)).toMatchObject({ status: 'completed' });
    expect(after.filter((r) => r.attempt >= 2)).toHaveLength(1);
    expect(after.filter((r) => r.status === 'running' || r.status === 'queued')).toEqual([]);
    expect(receiver.of('f').map((x) => x.body.attempt)).toEqual([1, 2]);
    const agent = await c.call(reader, 'GET', '/api/agents/f');
    expect(agent.body.data).toMatchObject({ status: 'COMPLETED' });
  }, 60_000);

  it('fires a schedule made on one instance when that one stops, and runs no slot twice through a rolling restart', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver();
    await hookAgent(c, 2, receiver, 'r', EVERY_SECOND);
    await until('two fires', async () => (distinctSlots(receiver.of('r')) >= 2 ? true : undefined));
    await c.instances[2]!.stop();
    const stoppedAt = Date.now();
    await until('three fires after the maker stopped', async () =>
      receiver.of('r').filter((x) => Date.parse(x.body.scheduledAt) > stoppedAt).length >= 3 ? true : undefined);

    for (const inst of c.instances) {
      await inst.restart();
      const back = Date.now();
      await until(`a fire after instance ${inst.index} came back`, async () =>
        receiver.of('r').some((x) => Date.parse(x.body.scheduledAt) > back) ? true : undefined);
    }
    expect(duplicates(receiver.calls)).toEqual([]);
    const all = await runs(c, 0, 'r');
    expect(all.filter((r) => r.status === 'failed')).toEqual([]);
  }, 90_000);

  it('rides out a database outage: /healthz answers, nothing runs twice, work resumes', async () => {
    await using c = await startCluster();
    await using receiver = await startReceiver();
    for (const id of ['o1', 'o2']) await hookAgent(c, 0, receiver, id, EVERY_SECOND);
    await c.instances[1]!.restart();
    await until('fires before the outage', async () => (distinctSlots(receiver.of('o1')) >= 2 ? true : undefined));

    // The outage: every connection of the three processes is cut, and cut again as they reconnect, for 3 s.
    const pgAdmin = await c.admin();
    const cut = () => pgAdmin.query('SELECT count(pg_terminate_backend(pid))::int AS n FROM pg_stat_activity WHERE application_name = $1', [c.applicationName]);
    const first = await cut();
    expect(first.rows[0].n, 'connections of the cluster cut').toBeGreaterThan(0);
    const outageEnd = Date.now() + 3_000;
    const health: number[] = [];
    while (Date.now() < outageEnd) {
      await cut();
      for (const inst of c.instances) {
        const r = await fetch(`${inst.url}/healthz`, { signal: AbortSignal.timeout(1_000) }).catch(() => undefined);
        health.push(r?.status ?? 0);
      }
      await new Promise((r) => setTimeout(r, 100)); // the pace of the cuts, not a wait for a result
    }
    // /healthz answers 200 throughout, degraded or not (test/cluster/status.test.ts checks the flag): here only that it answers.
    const dead = c.instances.filter((i) => !i.alive).map((i) => `instance ${i.index}: ${i.log.filter((l) => l.startsWith('stderr')).slice(0, 5).join(' | ')}`);
    expect(dead, 'processes that died in the outage').toEqual([]);
    expect(health.filter((s) => s !== 200), 'healthz answers during the outage').toEqual([]);
    const over = Date.now();

    for (const id of ['o1', 'o2']) {
      await until(`${id} to fire again after the outage`, async () =>
        // It once never fired again: a take answered into a cut connection left a run `running` whose lease every
        // heartbeat renewed (test/regression/take-answer-lost-leaves-run-forever.test.ts). The wait says work resumes, not how fast.
        receiver.of(id).filter((x) => Date.parse(x.body.scheduledAt) > over).length >= 2 ? true : undefined, 45_000).catch(async (err: Error) => {
        // What the cluster says of the agent that did not come back: its schedule and its last runs.
        const schedule = await c.call(0, 'GET', `/api/agents/${id}/schedule`).catch(() => undefined);
        const all = await runs(c, 0, id).catch(() => [] as Run[]);
        const last = all.slice(0, 8).map((r) => `${r.status} ${r.trigger} #${r.attempt} ${r.error ?? ''}`);
        const open = all.filter((r) => r.status === 'running' || r.status === 'queued');
        // And what the processes warned of since the outage (a run held open says why in its holder's log).
        const warned = c.instances.map((i) => `instance ${i.index}: ${i.log.filter((l) => /"level":(40|50|60)|"level":"(warn|error|fatal)"/.test(l)).slice(-12).join(' | ')}`);
        throw new Error(`${err.message}; schedule ${JSON.stringify(schedule?.body?.data)}; last runs ${JSON.stringify(last)}; open runs ${JSON.stringify(open)}; warnings ${warned.join(' || ')}`);
      });
    }
    expect(c.instances.map((i) => i.alive), 'every process survived').toEqual([true, true, true]);
    expect(duplicates(receiver.calls)).toEqual([]);
    // Nothing lost: every call the receiver answered is a run the cluster recorded as completed.
    for (const id of ['o1', 'o2']) {
      const answeredRuns = receiver.of(id).map((x) => x.body.runId);
      const stored = await until(`the runs of ${id} to be settled`, async () => {
        const rs = await runs(c, 2, id);
        return answeredRuns.every((rid) => rs.some((r) => r.id === rid && r.status !== 'running')) ? rs : undefined;
      });
      const byId = new Map(stored.map((r) => [r.id, r]));
      expect(answeredRuns.filter((rid) => byId.get(rid)?.status !== 'completed').map((rid) => byId.get(rid) ?? rid)).toEqual([]);
    }
  }, 120_000);
});
