import { describe, expect, it } from 'vitest';
import { REAPED } from '../../src/core/recovery.ts';
import { BUSY } from '../../src/core/runs.ts';
import type { RunClaim, Store } from '../../src/core/store.ts';
import { createMemoryStore } from '../../src/storage/memory.ts';
import { at, createHarness, deferred, gate, type Harness } from '../harness.ts';

/**
 * Two schedulers on one in-memory store stand for two instances on one database (docs/cluster.md,
 * "Claim before run"): they share its rows and one manual clock, and each runs only what the store gave it.
 */
async function twoInstances(): Promise<[Harness, Harness]> {
  const first = await createHarness({ shared: true, instanceId: 'inst_a', start: at('2026-01-01T00:00:00Z') });
  return [first, await twin(first)];
}

/** A second instance on `first`'s store and clock, started after `first` (it loads the schedules stored by then). */
const twin = (first: Harness) => createHarness({ shared: true, instanceId: 'inst_b', repo: first.repo, clock: first.clock });

const everySecond = { jobId: 'x', expression: '* * * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true };

describe('claim before run', () => {
  it('does not run a fire planned before a schedule change another instance answered: its claim is stale, and the schedule is read again', async () => {
    await using a = await createHarness({ shared: true, instanceId: 'inst_a' });
    const agent = await a.addAgent('x');
    await a.scheduler.setSchedule(agent, everySecond);
    await using b = await twin(a);
    expect(b.scheduler.schedule('x')).toMatchObject({ paused: false, revision: 1 });

    // `a` pauses; `b` has not heard (no signals here) and still plans the 00:00:01 fire under revision 1.
    await a.scheduler.pause('x', 'x');
    a.clock.advance(1000);
    await a.scheduler.settled();
    await b.scheduler.settled();

    expect(await a.runs('x')).toEqual([]);
    expect(a.calls.length + b.calls.length).toBe(0);
    // The stale answer made `b` read the schedule: it is paused there too now, and plans no fire.
    expect(b.scheduler.schedule('x')).toMatchObject({ paused: true, revision: 2 });
    a.clock.advance(5000);
    await b.scheduler.settled();
    expect(await a.runs('x')).toEqual([]);
  });

  it('runs a slot once when two instances fire it: one claims it, the other finds it taken', async () => {
    const [a, b] = await twoInstances();
    await using _a = a;
    await using _b = b;
    const agent = await a.addAgent('x');
    await a.scheduler.setSchedule(agent, everySecond);
    await b.scheduler.reloadSchedule('x'); // what the `schedules` signal makes it do
    expect(b.scheduler.schedule('x')).toMatchObject({ revision: 1 });

    const done = a.waitFor((e) => e.type === 'agent:completed');
    a.clock.advance(1000); // both timelines fire 00:00:01
    await done;
    await a.scheduler.settled();
    await b.scheduler.settled();
    await a.repo.flush();

    expect(a.calls.length + b.calls.length).toBe(1);
    const runs = await a.runs('x');
    expect(runs.map((r) => [r.trigger, r.status, r.dedupeKey])).toEqual([['schedule', 'completed', `x@${at('2026-01-01T00:00:01Z')}`]]);
    // Both buses see the one run's events once (each follows the store), and no second start.
    expect(a.events.filter((e) => e.type === 'agent:started')).toHaveLength(1);
    expect(b.events.filter((e) => e.type === 'agent:started')).toHaveLength(1);
  });

  it('a run taken back from a silent instance ends as the reaper decided: its late finish changes nothing, and the retry runs once', async () => {
    const [a, b] = await twoInstances();
    await using _b = b;
    const agent = await a.addAgent('x');
    // `a` runs it and then stops answering: no lease renewal (no heartbeat in this harness), its handler hangs.
    const { run, gate: g } = await a.holdRun(agent, false);
    expect(await a.repo.getRun(run.id)).toMatchObject({ status: 'running', instanceId: 'inst_a', epoch: 1 });

    // Past the lease (30 s), `b`'s heartbeat reaps it and queues its retry, due 1 s later.
    a.clock.advance(30_001);
    await b.scheduler.maintainLeases();
    await b.repo.flush();
    const reaped = await a.repo.getRun(run.id);
    expect(reaped).toMatchObject({ status: 'failed', error: REAPED, epoch: 2, leaseUntil: null });
    const afterReap = await a.repo.getAgent('x');
    expect(afterReap).toMatchObject({ retryCount: 1, lastError: REAPED });

    // `a` wakes up and its handler completes: every write it makes about the run is fenced by epoch 1.
    g.release();
    await a.scheduler.stop(0);
    await a.repo.flush();
    expect(await a.repo.getRun(run.id)).toEqual(reaped);
    expect(await a.repo.getAgent('x')).toEqual(afterReap);
    expect(b.events.filter((e) => e.type === 'agent:completed')).toEqual([]);
    const retries = (await a.runs('x')).filter((r) => r.trigger === 'retry');
    expect(retries.map((r) => [r.status, r.dedupeKey])).toEqual([['queued', `retry:${run.id}`]]);

    // The retry is `b`'s: it takes it when due and runs it, once.
    const retried = b.waitFor((e) => e.type === 'agent:completed');
    b.clock.advance(1000);
    expect((await retried).data).toMatchObject({ runId: retries[0]!.id, attempt: 2 });
    expect(b.calls.map((c) => c.runId)).toEqual([retries[0]!.id]);
    expect(await a.repo.getAgent('x')).toMatchObject({ retryCount: 0, lastError: null });
    await a.repo[Symbol.asyncDispose]();
  });

  it('a queued run waits for no slot of its claimer: an instance with a free slot takes it, and the claimer lets it go', async () => {
    const a = await createHarness({ shared: true, instanceId: 'inst_a', maxConcurrent: 1 });
    await using _a = a;
    await using b = await twin(a);
    const busy = await a.addAgent('busy');
    const other = await a.addAgent('other');
    const { gate: g } = await a.holdRun(busy);
    // `a` claims it but has no free slot; `b` looks at the queue every second while it has one.
    const queued = await a.scheduler.runNow(other);
    expect(queued.status).toBe('queued');
    const ran = b.waitFor((e) => e.type === 'agent:completed' && e.agentId === 'other');
    a.clock.advance(1000);
    await ran;
    expect(await a.repo.getRun(queued.id)).toMatchObject({ status: 'completed', instanceId: 'inst_b', attempt: 1 });

    // `a`'s slot comes free: its take of that run gets nothing, and it runs nothing more.
    const done = a.waitFor((e) => e.type === 'agent:completed' && e.agentId === 'busy');
    g.release();
    await done;
    await a.scheduler.stop(0);
    expect(a.calls.map((c) => c.agentId)).toEqual(['busy']);
    expect(b.calls.map((c) => c.runId)).toEqual([queued.id]);
    expect(a.scheduler.stats()).toMatchObject({ runningAgentsCount: 0, queuedTasksCount: 0 });
  });
});

/**
 * On a store this process alone writes (memory, a SQLite file) claims are decided from what the scheduler
 * holds and written with the batch (core/claims.ts, createClaimer): only slots a predecessor may have
 * recorded, and claims that must queue behind one still on its way, go to the database. `counted` wraps a
 * memory store so a test sees each claim transaction; `gated` holds them until released.
 */
function counted(repo = createMemoryStore()) {
  const claimed: RunClaim[][] = [];
  let gate: Promise<void> = Promise.resolve();
  let nextAsked = deferred<RunClaim[]>();
  const store: Store = {
    ...repo,
    async claim(claims) {
      claimed.push([...claims]);
      nextAsked.resolve([...claims]);
      nextAsked = deferred<RunClaim[]>();
      await gate;
      return repo.claim(claims);
    },
  };
  return {
    store,
    claimed,
    /** Resolves with the next claim transaction's claims, when it is asked. */
    nextClaim: () => nextAsked.promise,
    /** Holds every later claim transaction until the returned function is called. */
    hold(): () => void {
      const d = deferred();
      gate = d.promise;
      return () => d.resolve();
    },
    dispose: () => repo[Symbol.asyncDispose](),
  };
}

/** What a scenario leaves in the runs table, per agent, oldest first: the parts both kinds of store must agree on. */
async function rowsOf(h: Harness, agentIds: string[]) {
  await h.scheduler.settled();
  await h.repo.flush();
  const out: Record<string, [string, string, string | null, number][]> = {};
  for (const id of agentIds) out[id] = (await h.runs(id)).reverse().map((r) => [r.trigger, r.status, r.error, r.scheduledAt - at('2026-01-01T00:00:00Z')]);
  return out;
}

describe('claims on a store this process alone writes', () => {
  it('a fire starts its run in the turn it comes due: no claim transaction, its row written with the batch', async () => {
    const db = counted();
    await using h = await createHarness({ repo: db.store });
    const agent = await h.addAgent('x');
    await h.scheduler.setSchedule(agent, everySecond);
    await h.runUntil(agent, 'agent:completed'); // the agent is cached from here on, as it is after its first run
    const done = h.waitFor((e) => e.type === 'agent:completed');
    h.clock.advance(1000);
    // Nothing awaited since the fire: the handler was called within the timer's turn.
    expect(h.calls.map((c) => c.scheduledAt - at('2026-01-01T00:00:00Z'))).toEqual([0, 1000]);
    await done;
    await h.repo.flush();
    expect((await h.runs('x')).map((r) => [r.trigger, r.status, r.dedupeKey, r.instanceId])).toEqual([
      ['schedule', 'completed', `x@${at('2026-01-01T00:00:01Z')}`, h.scheduler.instanceId],
      ['manual', 'completed', null, h.scheduler.instanceId],
    ]);
    expect(db.claimed).toEqual([]);
    await h.scheduler.stop(0);
    await db.dispose();
  });

  it('decides as the database does: a busy agent\'s fire is skipped, a paused schedule does not fire, a slot of a shared jobId runs once', async () => {
    async function scenario(shared: boolean) {
      await using h = await createHarness({ shared });
      const slow = await h.addAgent('slow');
      const p = await h.addAgent('p');
      const q = await h.addAgent('q');
      const g = gate();
      h.script(g.step);
      await h.scheduler.setSchedule(slow, { ...everySecond, jobId: 'slow' });
      // Two agents whose schedules share a jobId share its slots' dedupe keys: each slot is recorded once.
      await h.scheduler.setSchedule(p, { ...everySecond, jobId: 'twin' });
      await h.scheduler.setSchedule(q, { ...everySecond, jobId: 'twin' });
      const twinDone = () => h.waitFor((e) => e.type === 'agent:completed' && (e.agentId === 'p' || e.agentId === 'q'));
      try {
        let done = twinDone();
        h.clock.advance(1000); // slow holds its first run; one of p and q gets slot 1
        await g.started;
        await done;
        done = twinDone();
        h.clock.advance(1000); // slow is busy: slots 2 and 3 are recorded skipped
        await done;
        await h.scheduler.pause('p', 'twin');
        done = twinDone();
        h.clock.advance(1000); // p is paused: only q fires slot 3
        await done;
      } finally {
        g.release();
      }
      await h.eventually((e) => e.type === 'agent:completed' && e.agentId === 'slow');
      return { rows: await rowsOf(h, ['slow', 'p', 'q']), calls: h.calls.length };
    }
    const exclusive = await scenario(false);
    expect(exclusive).toEqual(await scenario(true));
    expect(exclusive.rows).toEqual({
      slow: [['schedule', 'completed', null, 1000], ['schedule', 'skipped', BUSY, 2000], ['schedule', 'skipped', BUSY, 3000]],
      p: [['schedule', 'completed', null, 1000], ['schedule', 'completed', null, 2000]],
      q: [['schedule', 'completed', null, 3000]],
    });
  });

  it('a catch-up after a restart is claimed through the database: a slot the predecessor recorded is found taken and not run again', async () => {
    const db = counted();
    const first = await createHarness({ repo: db.store });
    const agent = await first.addAgent('x');
    await first.scheduler.setSchedule(agent, everySecond);
    first.clock.advance(1000);
    await first.eventually((e) => e.type === 'agent:completed');
    await first.scheduler.stop(0);
    // The crash the fire's claim and its schedule's next fire are written apart for: the run is stored,
    // the schedule still names its slot as the next fire.
    const slot = at('2026-01-01T00:00:01Z');
    db.store.write({ op: 'schedule.update', agentId: 'x', set: { nextRunAt: slot } });
    await db.store.flush();
    expect(db.claimed).toEqual([]);

    first.clock.advance(500);
    await using second = await createHarness({ repo: db.store, clock: first.clock });
    await second.scheduler.settled();
    expect(db.claimed.map((c) => c.map((x) => [x.run.trigger, x.run.dedupeKey]))).toEqual([[['catchup', `x@${slot}`]]]);
    expect(second.calls).toEqual([]);
    // The next slot is this process's own: decided here, and run.
    second.clock.advance(500);
    await second.eventually((e) => e.type === 'agent:completed');
    await second.repo.flush();
    expect((await second.runs('x')).reverse().map((r) => [r.trigger, r.status, r.scheduledAt - slot])).toEqual([['schedule', 'completed', 0], ['schedule', 'completed', 1000]]);
    expect(db.claimed).toHaveLength(1);
    await second.scheduler.stop(0);
    await db.dispose();
  });

  it('an agent whose claim is still on its way to the database has its next claim sent behind it, not decided here', async () => {
    const db = counted();
    const first = await createHarness({ repo: db.store });
    const agent = await first.addAgent('x');
    await first.scheduler.setSchedule(agent, everySecond);
    await first.scheduler.stop(0);
    // Down over the 00:00:01 slot: the next start claims its catch-up through the database, held there.
    first.clock.advance(1500);
    const release = db.hold();
    const second = await createHarness({ repo: db.store, clock: first.clock });
    try {
      expect(db.claimed.map((c) => c.map((x) => x.run.trigger))).toEqual([['catchup']]);
      const g = gate();
      second.script(g.step);
      // The 00:00:02 fire: memory holds no run of x, but the catch-up may be queued by now, so it waits.
      second.clock.advance(500);
      expect(second.inserted).toEqual([]);
      release();
      await g.started;
      await second.scheduler.settled();
      expect(db.claimed.map((c) => c.map((x) => x.run.trigger))).toEqual([['catchup'], ['schedule']]);
      g.release();
      await second.eventually((e) => e.type === 'agent:completed');
      await second.repo.flush();
      expect((await second.runs('x')).reverse().map((r) => [r.trigger, r.status, r.error])).toEqual([['catchup', 'completed', null], ['schedule', 'skipped', BUSY]]);
      expect(second.calls).toHaveLength(1);
    } finally {
      release();
      await second[Symbol.asyncDispose]();
      await db.dispose();
    }
  });
});
