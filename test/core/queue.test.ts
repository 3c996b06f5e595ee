import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createExecutor } from '../../src/core/executor.ts';
import { createHarness, gate } from '../harness.ts';

/** Lets every queued microtask and promise callback run (no timers involved). */
const drain = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

describe('run queue', () => {
  it('never runs more than the limit, under 200 runs of random priorities', async () => {
    await fc.assert(
      fc.asyncProperty(fc.array(fc.integer({ min: 1, max: 4 }), { minLength: 200, maxLength: 200 }), fc.integer({ min: 1, max: 8 }), async (priorities, limit) => {
        const ex = createExecutor({ concurrency: limit });
        let running = 0;
        let peak = 0;
        let done = 0;
        const releases: (() => void)[] = [];
        for (const p of priorities) {
          ex.add(async () => {
            running++;
            peak = Math.max(peak, running);
            await new Promise<void>((r) => releases.push(r));
            running--;
            done++;
          }, p);
        }
        while (done < priorities.length) {
          await drain();
          expect(running).toBeLessThanOrEqual(limit);
          releases.splice(0).forEach((r) => r());
          await drain();
        }
        return peak <= limit && peak === Math.min(limit, priorities.length);
      }),
      { numRuns: 20 },
    );
  });

  it('starts CRITICAL before LOW when the slots are busy, and equal priorities oldest first', async () => {
    const ex = createExecutor({ concurrency: 1 });
    const order: string[] = [];
    let release!: () => void;
    ex.add(() => new Promise<void>((r) => (release = r)), 2);
    await drain();
    for (const [name, p] of [['low-1', 1], ['normal-1', 2], ['critical-1', 4], ['low-2', 1], ['high-1', 3], ['critical-2', 4], ['normal-2', 2]] as const) {
      ex.add(async () => void order.push(name), p);
    }
    expect(ex.waiting).toBe(7);
    release();
    for (let i = 0; i < 10; i++) await drain();
    expect(order).toEqual(['critical-1', 'critical-2', 'high-1', 'normal-1', 'normal-2', 'low-1', 'low-2']);
  });

  it('gives waiting scheduled runs the slot in priority order', async () => {
    await using h = await createHarness({ maxConcurrent: 1 });
    const blocker = await h.addAgent('blocker');
    const low = await h.addAgent('low');
    const critical = await h.addAgent('critical');
    const g = gate();
    h.script(g.step);
    await h.scheduler.runNow(blocker);
    await g.started;
    await h.scheduler.setSchedule(low, { jobId: 'low', expression: '* * * * * *', timezone: 'UTC', priority: 1, enabled: true, catchUp: true });
    await h.scheduler.setSchedule(critical, { jobId: 'critical', expression: '* * * * * *', timezone: 'UTC', priority: 4, enabled: true, catchUp: true });
    h.clock.advance(1000); // both fire while the only slot is taken
    await h.scheduler.settled(); // their claims are answered: both are held, queued
    expect(h.scheduler.stats()).toMatchObject({ runningAgentsCount: 1, queuedTasksCount: 2 });
    const started: string[] = [];
    h.scheduler.events.on((e) => void (e.type === 'agent:started' && started.push(e.agentId!)));
    g.release();
    await h.waitFor((e) => e.type === 'agent:completed' && e.agentId === 'low');
    expect(started).toEqual(['critical', 'low']);
  });
});
