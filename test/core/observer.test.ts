import { describe, expect, it } from 'vitest';
import type { RunObserver } from '../../src/core/observer.ts';
import type { ScheduleSpec } from '../../src/core/scheduler.ts';
import type { RunRecord } from '../../src/core/store.ts';
import { createHarness, failWith, gate } from '../harness.ts';

/**
 * Metrics, logs and traces hear of runs through the scheduler's observers (core/observer.ts): each start,
 * each end with how it ended and whether a retry follows, each skipped fire. An observer that throws is
 * only logged: the run goes on, and the other observers still hear of it.
 */
const everySecond = (jobId: string): ScheduleSpec => ({ jobId, expression: '* * * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true });

function recorder() {
  const seen: string[] = [];
  const observer: RunObserver = {
    runStarted: (run) => seen.push(`started ${run.trigger} #${run.attempt}`),
    runEnded: (run, _agent, retryAt) => seen.push(`ended ${run.status} #${run.attempt}${retryAt === null ? '' : ' retry'}`),
    runSkipped: (run: Readonly<RunRecord>) => seen.push(`skipped ${run.trigger}`),
  };
  return { seen, observer };
}

describe('run observers', () => {
  it('hear each start and end, a retry that follows a failure, and a skipped fire', async () => {
    const { seen, observer } = recorder();
    await using h = await createHarness({ observers: [observer], retry: { baseDelayMs: 1000, maxDelayMs: 1000 } });
    const agent = await h.addAgent('a');
    const g = gate();
    h.script(failWith('first try fails'), g.step);
    await h.scheduler.setSchedule(agent, everySecond('a'));
    const failed = h.waitFor((e) => e.type === 'agent:failed');
    h.clock.advance(1000);
    await failed;
    const started = g.started;
    h.clock.advance(1000); // the retry is due and starts; the fire of the same second finds the agent busy
    await started;
    g.release();
    await h.waitFor((e) => e.type === 'agent:completed');
    expect(seen).toEqual(['started schedule #1', 'ended failed #1 retry', 'skipped schedule', 'started retry #2', 'ended completed #2']);
  });

  it('never stop a run by throwing, and the others still hear of it', async () => {
    const { seen, observer } = recorder();
    const broken: RunObserver = {
      runStarted: () => {
        throw new Error('a broken observer');
      },
      runEnded: () => {
        throw new Error('a broken observer');
      },
    };
    await using h = await createHarness({ observers: [broken, observer] });
    const agent = await h.addAgent('a');
    await h.runUntil(agent, 'agent:completed');
    expect(seen).toEqual(['started manual #1', 'ended completed #1']);
    expect((await h.runs('a'))[0]).toMatchObject({ status: 'completed' });
  });
});
