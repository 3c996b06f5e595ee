import { describe, expect, it } from 'vitest';
import type { Store } from '../../src/core/store.ts';
import { createMemoryStore } from '../../src/storage/memory.ts';
import { at, createHarness, deferred } from '../harness.ts';

/**
 * Seen in the PostgreSQL pass of npm test (schedule-api, "unschedules with the documented message"): on a
 * shared store a schedule change is signalled to every instance, the one that made it included, and each
 * reads the schedule again. When that read was still on its way as the same instance answered an
 * unschedule, it came back with the row as it was before and put the schedule back in memory: GET showed
 * it, the status counted it and the timeline planned its fire (README, "Running several instances":
 * changes hold everywhere at once). A slow read on the memory store makes the race certain.
 */
describe('regression: an unschedule undone by a read that began before it', () => {
  it('a read of the schedule begun before an answered unschedule does not bring the schedule back', async () => {
    const memory = createMemoryStore();
    let holdNextRead: Promise<void> | undefined;
    const store: Store = {
      ...memory,
      shared: true,
      async getSchedule(agentId) {
        const row = await memory.getSchedule(agentId);
        const hold = holdNextRead;
        holdNextRead = undefined;
        await hold;
        return row;
      },
    };
    await using h = await createHarness({ shared: true, repo: store, start: at('2026-01-01T00:00:00Z') });
    const agent = await h.addAgent('a');
    await h.scheduler.setSchedule(agent, { jobId: 'a', expression: '@hourly', timezone: 'UTC', priority: 2, enabled: true, catchUp: true });
    h.clock.advance(10);
    const slow = deferred();
    holdNextRead = slow.promise;
    const signalled = h.scheduler.reloadSchedule('a'); // the set's own signal, come back: its read is slow
    h.clock.advance(10);
    await h.scheduler.removeSchedule('a');
    expect(h.scheduler.schedule('a'), 'right after the unschedule').toBeUndefined();
    slow.resolve();
    await signalled;
    expect(h.scheduler.schedule('a'), 'after the older read came back').toBeUndefined();
    expect(h.scheduler.stats().scheduledTasksCount).toBe(0);
  });
});
