import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/core/store.ts';
import { createMemoryStore } from '../../src/storage/memory.ts';
import { at, createHarness } from '../harness.ts';

/**
 * Found by soaking the cluster's outage test (test/cluster/cluster.test.ts): runs taken together read their
 * agents in one query, and when an outage failed that query only the first caller heard of it. The others
 * waited for their agent forever, `running` under an instance that renewed their leases with every
 * heartbeat, so their agents' fires were all skipped as busy from then on.
 */
describe('an agent read that fails for several runs at once', () => {
  it('fails every run that waited for it, each retried under its policy, and none is left running', async () => {
    const repo = createMemoryStore();
    let cut = false;
    const store: Store = {
      ...repo,
      shared: true,
      async getAgents(ids) {
        if (cut && ids.length >= 2) {
          cut = false;
          throw new Error('Connection terminated unexpectedly');
        }
        return repo.getAgents(ids);
      },
    };
    await using a = await createHarness({ shared: true, instanceId: 'inst_a', repo, store, start: at('2026-01-01T00:00:00Z') });
    const agents = await Promise.all(['x', 'y', 'z'].map((id) => a.addAgent(id)));
    // Once each first, so the agents are cached as a running instance has them; then three runs start together.
    for (const agent of agents) await a.runUntil(agent, 'agent:completed');
    cut = true;
    const failed = Promise.all(agents.map((agent) => a.eventually((e) => e.type === 'agent:failed' && e.agentId === agent.id)));
    const runs = await Promise.all(agents.map((agent) => a.scheduler.runNow(agent)));
    // Each hears the failure (before the fix, the two that did not read first never ended).
    await failed;
    await repo.flush();
    expect(cut, 'the agents were read together and the read failed').toBe(false);
    for (const run of runs) expect(await repo.getRun(run.id)).toMatchObject({ status: 'failed', error: 'Connection terminated unexpectedly' });

    // Each is retried (its agent as cached), and each retry completes: the agents are free again.
    const retried = Promise.all(agents.map((agent) => a.eventually((e) => e.type === 'agent:completed' && e.agentId === agent.id && (e.data as { attempt: number }).attempt === 2)));
    a.clock.advance(60_000);
    await retried;
    for (const agent of agents) expect((await a.runs(agent.id)).filter((r) => r.status === 'running' || r.status === 'queued')).toEqual([]);
    await repo[Symbol.asyncDispose]();
  });
});
