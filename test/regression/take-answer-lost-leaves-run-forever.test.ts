import { describe, expect, it } from 'vitest';
import { REAPED } from '../../src/core/recovery.ts';
import type { Store } from '../../src/core/store.ts';
import { createMemoryStore } from '../../src/storage/memory.ts';
import { at, createHarness } from '../harness.ts';

/**
 * Found by the cluster's outage test (test/cluster/cluster.test.ts): a take whose transaction committed
 * while the connection was cut before its answer came back left the run `running` under the instance,
 * which never learnt it held it. Every heartbeat renewed the leases of all `running` rows with its id,
 * so the run was never reaped, and every fire of its agent from then on was recorded skipped as busy.
 */
describe('a take whose answer was lost in an outage', () => {
  it('leaves a run its instance does not know it holds: unrenewed, it is reaped and retried, and the agent runs again', async () => {
    const repo = createMemoryStore();
    let cuts = 1;
    // The take is applied, then its answer is lost, as when PostgreSQL commits and the socket dies.
    const store: Store = {
      ...repo,
      shared: true,
      async take(...args) {
        const got = await repo.take(...args);
        if (got.length > 0 && cuts > 0) {
          cuts--;
          throw new Error('Connection terminated unexpectedly');
        }
        return got;
      },
    };
    await using a = await createHarness({ shared: true, instanceId: 'inst_a', repo, store, start: at('2026-01-01T00:00:00Z') });
    const agent = await a.addAgent('x');
    const lost = await a.scheduler.runNow(agent);
    await a.scheduler.settled();
    await repo.flush();
    expect(await repo.getRun(lost.id)).toMatchObject({ status: 'running', instanceId: 'inst_a', epoch: 1 });
    expect(a.calls).toEqual([]);

    // Heartbeats every 5 s for 35 s: the lease it got at the take (30 s) is never renewed, and ends.
    for (let t = 0; t < 7; t++) {
      a.clock.advance(5_000);
      await a.scheduler.maintainLeases();
      await a.scheduler.settled();
    }
    await repo.flush();
    expect(await repo.getRun(lost.id)).toMatchObject({ status: 'failed', error: REAPED });

    // Its retry runs, once, and the agent is free again: a new run is not skipped as busy.
    const retried = a.eventually((e) => e.type === 'agent:completed');
    a.clock.advance(60_000);
    expect((await retried).data).toMatchObject({ attempt: 2 });
    const next = await a.scheduler.runNow(agent);
    expect(next.status).not.toBe('skipped');
    const runs = await a.runs('x');
    // Nothing else is left open: the lost run ended, its retry completed.
    expect(runs.filter((r) => r.id !== next.id && (r.status === 'running' || r.status === 'queued'))).toEqual([]);
    await repo[Symbol.asyncDispose]();
  });
});
