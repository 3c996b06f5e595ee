import { describe, expect, it } from 'vitest';
import { createManualClock, type ManualClock } from '../../src/core/clock.ts';
import { at, createHarness } from '../harness.ts';

/**
 * A manual clock on which work takes time: every read moves it 1 ms on, so a long stretch of work is seen
 * to be long, while timers still fire only when the test moves the clock (`advance(0)` runs the due ones).
 */
function busyClock(start: number): ManualClock {
  const base = createManualClock(start);
  let spent = 0;
  return { ...base, now: () => base.now() + ++spent };
}

const SCHEDULES = 20;
const DOWN_MS = 6 * 3_600_000;

describe('a restart stalled on missed fires', () => {
  it('20 every-second schedules down 6 h: start returns after one slice, the rest follow in later turns, each caught up once at its latest slot', async () => {
    const first = await createHarness({ keepOpen: true, start: at('2026-01-01T00:00:00Z') });
    for (let i = 0; i < SCHEDULES; i++) {
      const a = await first.addAgent(`s${i}`);
      await first.scheduler.setSchedule(a, { jobId: `s${i}`, expression: '* * * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: i % 2 === 0 });
    }
    await first.scheduler.stop(0);

    const downUntil = at('2026-01-01T00:00:00Z') + DOWN_MS;
    const clock = busyClock(downUntil);
    const second = await createHarness({ repo: first.repo, clock });
    try {
      // Old code: every schedule counted (10,000 croner calls each) before start returned.
      const atStart = second.inserted.filter((r) => r.trigger === 'catchup').length;
      expect(atStart).toBeLessThan(SCHEDULES);
      for (let turns = 0; second.inserted.filter((r) => r.trigger === 'catchup').length < SCHEDULES; turns++) {
        expect(turns).toBeLessThan(10_000);
        clock.advance(0);
        await new Promise((r) => setImmediate(r)); // the claims go through the store's write path
      }
      await second.scheduler.settled();
      await second.repo.flush();
      const catchups = second.inserted.filter((r) => r.trigger === 'catchup');
      expect(new Set(catchups.map((r) => r.agentId)).size).toBe(SCHEDULES);
      for (const r of catchups) {
        // The latest missed slot (old code: the 10,000th, 2 h 46 min after the first), a whole second.
        expect(r.scheduledAt).toBeGreaterThanOrEqual(downUntil);
        expect(r.scheduledAt % 1000).toBe(0);
      }
      const skipped = catchups.filter((r) => r.status === 'skipped');
      expect(skipped).toHaveLength(SCHEDULES / 2);
      for (const r of skipped) expect(r.error).toBe('missed 1000+ fire(s) while the server was down; catch-up is off');
      // Every schedule goes on after its catch-up.
      for (let i = 0; i < SCHEDULES; i++) expect(second.scheduler.schedule(`s${i}`)!.nextRunAt).toBeGreaterThan(downUntil);
    } finally {
      await second[Symbol.asyncDispose]();
      await first.repo[Symbol.asyncDispose]();
    }
  });
});
