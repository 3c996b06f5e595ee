import { describe, expect, it } from 'vitest';
import { createExecutor } from '../../src/core/executor.ts';
import type { ScheduleSpec } from '../../src/core/scheduler.ts';
import { createHarness, gate } from '../harness.ts';

/**
 * Fair share (CONTRACT §11), the queue's part: within one priority level, waiting runs of different owners take
 * turns, so one owner's backlog never holds another's runs back; higher priorities still go first. The scheduler
 * knows each run's owner without a read: from its agent when cached, else from its schedule (stored beside it).
 */
const everySecond = (jobId: string): ScheduleSpec => ({ jobId, expression: '* * * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true });
describe('fair share between owners', () => {
  it('serves owners in turn within a level, each owner oldest first, and higher levels before lower', async () => {
    const executor = createExecutor({ concurrency: 1 });
    const order: string[] = [];
    const g = gate();
    executor.add(async () => void (await g.step({ signal: new AbortController().signal } as never)), 2, 'blocker');
    const task = (name: string) => async () => void order.push(name);
    for (let i = 1; i <= 1000; i++) executor.add(task(`a${i}`), 2, 'alice');
    executor.add(task('b1'), 2, 'bob');
    executor.add(task('b2'), 2, 'bob');
    executor.add(task('c1'), 2, 'carol');
    executor.add(task('urgent'), 4, 'alice');
    const done = new Promise<void>((resolve) => executor.add(async () => resolve(), 1, 'low'));
    g.release();
    await done;
    expect(order.slice(0, 8)).toEqual(['urgent', 'a1', 'b1', 'c1', 'a2', 'b2', 'a3', 'a4']);
    expect(order).toHaveLength(1004);
    expect(order.filter((n) => n.startsWith('a'))).toEqual(Array.from({ length: 1000 }, (_, i) => `a${i + 1}`));
  });

  // Shared: the store of instances sharing a database, where each run is taken by the instance before it starts.
  it.each([['one instance', false], ['on a shared store', true]])("starts another owner's run within a turn, behind a thousand waiting runs of one owner (%s)", async (_name, shared) => {
    await using h = await createHarness({ maxConcurrent: 1, shared });
    // A thousand of alice's agents and one of bob's, all on the same second; none of them read yet (a fresh start).
    for (let i = 0; i < 1000; i++) await h.scheduler.setSchedule(await h.addAgent(`alice-${i}`, { owner: 'alice' }), everySecond(`alice-${i}`));
    await h.scheduler.setSchedule(await h.addAgent('bob-1', { owner: 'bob' }), everySecond('bob-1'));
    // Every run holds until the test lets it go, so the queue's order is what decides who is next.
    const gates = Array.from({ length: 3 }, () => gate());
    h.script(...gates.map((g) => g.step));
    h.clock.advance(1000);
    await expect.poll(() => h.scheduler.stats().queuedTasksCount, { timeout: 20_000 }).toBe(1000); // one runs, the rest wait
    const bobStarted = h.waitFor((e) => e.type === 'agent:started' && e.agentId === 'bob-1');
    // alice-0 took the free slot; alice-1 was queued before bob, so hers is the turn before his. With one queue for
    // everyone bob's run would be the 1,001st to start; in turns it is the third.
    gates[0]!.release();
    gates[1]!.release();
    await bobStarted;
    const starts = h.events.filter((e) => e.type === 'agent:started').map((e) => e.agentId);
    expect(starts).toEqual(['alice-0', 'alice-1', 'bob-1']);
    gates[2]!.release();
  });
});
