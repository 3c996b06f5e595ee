import { describe, expect, it } from 'vitest';
import { createExecutor } from '../../src/core/executor.ts';
import { gate } from '../harness.ts';

/**
 * Fair share (CONTRACT §11), the queue's part: within one priority level, waiting runs of different owners take
 * turns, so one owner's backlog never holds another's runs back; higher priorities still go first. (The scheduler
 * does not hand the queue an owner yet: that needs the owner known synchronously for every run, see README.)
 */
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
});
