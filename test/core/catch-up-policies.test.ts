import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/core/clock.ts';
import type { ScheduleSpec } from '../../src/core/scheduler.ts';
import { at, createHarness, type Harness } from '../harness.ts';

/**
 * Catch-up policies (CONTRACT §11): `{ policy: "all", window }` runs every missed slot in the window, oldest first,
 * at most 100; `window` leaves older slots alone, with `latest` too. A restart on a manual clock: the first
 * scheduler stops, a second starts on the same store an hour or three later.
 */
const T = at('2026-01-01T00:00:00Z');
const MIN = 60_000;
const everyMinute = (extra: Partial<ScheduleSpec>): ScheduleSpec => ({ jobId: 'x', expression: '* * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true, ...extra });

/** Sets the schedule, stops, and starts again `downMs` later (30 s past a minute); every run completes at once. */
async function downFor(spec: ScheduleSpec, downMs: number): Promise<Harness> {
  const first = await createHarness({ keepOpen: true, start: T });
  await first.scheduler.setSchedule(await first.addAgent('x'), spec);
  await first.scheduler.stop(0);
  return createHarness({ repo: first.repo, clock: createManualClock(T + downMs + 30_000) });
}

async function caughtUp(h: Harness, n: number): Promise<number[]> {
  await h.scheduler.settled();
  const runs = await h.runs('x');
  const last = runs.filter((r) => r.trigger === 'catchup').sort((a, b) => b.scheduledAt - a.scheduledAt)[0];
  if (n > 0) await h.eventually((e) => e.type === 'agent:completed' && (e.data as { runId: string }).runId === last!.id);
  return h.calls.map((c) => (c.scheduledAt - T) / MIN);
}

describe('catch-up policies', () => {
  it('all with a window: every missed slot in the window, oldest first, one after another', async () => {
    await using h = await downFor(everyMinute({ catchUpPolicy: 'all', catchUpWindowMs: 10 * MIN }), 60 * MIN);
    expect(await caughtUp(h, 10)).toEqual([51, 52, 53, 54, 55, 56, 57, 58, 59, 60]);
    const runs = await h.runs('x');
    expect(runs.every((r) => r.trigger === 'catchup' && r.status === 'completed')).toBe(true);
    // One after another: each started after the one before it finished.
    const sorted = runs.sort((a, b) => a.scheduledAt - b.scheduledAt);
    for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.startedAt!).toBeGreaterThanOrEqual(sorted[i - 1]!.finishedAt!);
  });

  it('all with no window: the latest 100 missed slots, no more', async () => {
    await using h = await downFor(everyMinute({ catchUpPolicy: 'all' }), 180 * MIN);
    const ran = await caughtUp(h, 100);
    expect(ran).toHaveLength(100);
    expect(ran[0]).toBe(81);
    expect(ran[99]).toBe(180);
  });

  it('latest with a window: the latest missed slot when it is inside the window, none when it is older', async () => {
    {
      await using h = await downFor(everyMinute({ catchUpWindowMs: 10 * MIN }), 60 * MIN);
      expect(await caughtUp(h, 1)).toEqual([60]);
    }
    {
      await using h = await downFor(everyMinute({ catchUpWindowMs: 10_000 }), 60 * MIN);
      expect(await caughtUp(h, 0)).toEqual([]);
      expect((await h.runs('x')).filter((r) => r.trigger === 'catchup')).toEqual([]);
    }
  });

  it('catch-up off records the miss and runs nothing, whatever the policy', async () => {
    await using h = await downFor(everyMinute({ catchUp: false, catchUpPolicy: 'all' }), 60 * MIN);
    expect(await caughtUp(h, 0)).toEqual([]);
    expect((await h.runs('x')).map((r) => [r.trigger, r.status])).toEqual([['catchup', 'skipped']]);
  });
});
