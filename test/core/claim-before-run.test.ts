import { describe, expect, it } from 'vitest';
import { REAPED } from '../../src/core/recovery.ts';
import { at, createHarness, type Harness } from '../harness.ts';

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
