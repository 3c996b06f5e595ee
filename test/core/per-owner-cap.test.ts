import { describe, expect, it } from 'vitest';
import { QUEUE_POLL_MS } from '../../src/core/limits.ts';
import { at, createHarness, gate } from '../harness.ts';

/**
 * MAX_CONCURRENT_PER_OWNER (CONTRACT §11): one owner's running runs are capped across the cluster, admins
 * included; the rest wait as `queued`, and other owners' runs pass them.
 */
const START = at('2026-01-01T00:00:00Z');

describe('the per-owner cap', () => {
  it("holds an owner's third run queued while two of theirs run, and lets another owner's run pass it", async () => {
    await using h = await createHarness({ start: START, maxConcurrent: 5, maxConcurrentPerOwner: 2 });
    const a = await Promise.all(['a1', 'a2', 'a3'].map((id) => h.addAgent(id, { owner: 'alice' })));
    const bob = await h.addAgent('b1', { owner: 'bob' });
    const gates = [gate(), gate(), gate(), gate()];
    h.script(...gates.map((g) => g.step));
    for (const agent of a) await h.scheduler.runNow(agent);
    await h.scheduler.runNow(bob);
    await gates[2]!.started; // the third handler to start is bob's: alice's third waits
    expect(h.calls.map((c) => c.agentId)).toEqual(['a1', 'a2', 'b1']);
    expect(h.scheduler.stats()).toMatchObject({ runningAgentsCount: 3, queuedTasksCount: 1 });
    expect((await h.runs('a3'))[0]).toMatchObject({ status: 'queued' });

    gates[0]!.release(); // one of alice's ends: her third starts
    await gates[3]!.started;
    expect(h.calls.map((c) => c.agentId)).toEqual(['a1', 'a2', 'b1', 'a3']);
    for (const g of gates) g.release();
  });

  it('counts across instances on a shared store: a run of an owner at the cap stays queued until one of theirs ends anywhere', async () => {
    const a = await createHarness({ shared: true, instanceId: 'inst_a', start: START, maxConcurrentPerOwner: 1 });
    await using b = await createHarness({ shared: true, instanceId: 'inst_b', repo: a.repo, clock: a.clock, maxConcurrentPerOwner: 1 });
    await using _a = a;
    const first = await a.addAgent('a1', { owner: 'alice' });
    const second = await a.addAgent('a2', { owner: 'alice' });
    const { gate: g } = await a.holdRun(first);
    const queued = await b.scheduler.runNow(second); // b has free slots, alice has one running on a
    await b.scheduler.settled();
    await b.repo.flush();
    expect(await b.repo.getRun(queued.id)).toMatchObject({ status: 'queued' });
    expect(b.calls).toEqual([]);

    const done = a.waitFor((e) => e.type === 'agent:completed' && e.agentId === 'a1');
    g.release();
    await done;
    // The queue poll of an instance with a free slot takes it now that alice has room.
    const ran = b.eventually((e) => e.type === 'agent:completed' && e.agentId === 'a2');
    a.clock.advance(QUEUE_POLL_MS);
    await ran;
    expect(await b.repo.getRun(queued.id)).toMatchObject({ status: 'completed' });
  });
});
