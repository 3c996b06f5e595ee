import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { createManualClock, type ManualClock } from '../../src/core/clock.ts';
import type { ScheduleSpec } from '../../src/core/scheduler.ts';
import type { RunRecord } from '../../src/core/store.ts';
import { at, createHarness, ON_POSTGRES, tempDir, type Harness } from '../harness.ts';

/**
 * Issue 12: a wall clock that jumps (an NTP step forward an hour, backward ten minutes). No slot runs twice,
 * and no slot is lost beyond what the catch-up records.
 */

/**
 * A manual clock whose wall time can be stepped as NTP steps it: `jump(ms)` moves `now()` by `ms`, either way,
 * while timers stay on the underlying manual clock, as platform timers stay on the monotonic clock (a step
 * neither fires nor delays them). `advance` moves monotonic time (and wall time with it); `set` takes a wall time.
 */
interface JumpingClock extends ManualClock {
  jump(ms: number): void;
}

function jumpingClock(start: number): JumpingClock {
  const mono = createManualClock(start);
  let offset = 0;
  return {
    now: () => mono.now() + offset,
    setTimer: (fn, ms) => mono.setTimer(fn, ms),
    advance: (ms) => mono.advance(ms),
    set: (wall) => mono.set(wall - offset),
    pendingTimers: () => mono.pendingTimers(),
    jump(ms) {
      offset += ms;
    },
  };
}

const T0 = at('2026-01-01T00:00:00Z');
const HOUR = 3_600_000;
const TEN_MINUTES = 600_000;

const CADENCES = [
  { name: 'every minute', expression: '* * * * *', period: 60_000 },
  { name: 'every second', expression: '* * * * * *', period: 1_000 },
] as const;

const spec = (jobId: string, expression: string, extra: Partial<ScheduleSpec> = {}): ScheduleSpec => ({ jobId, expression, timezone: 'UTC', priority: 2, enabled: true, catchUp: true, ...extra });

/** Waits until every claim is answered, every write committed and no run is queued or running. */
async function idle(h: Harness): Promise<void> {
  for (;;) {
    await h.scheduler.settled();
    await h.repo.flush();
    const s = h.scheduler.stats();
    if (s.runningAgentsCount === 0 && s.queuedTasksCount === 0) break;
    // A run is on its way (on PostgreSQL its take and writes are round trips): its end is the next thing to wait for.
    await h.waitFor((e) => e.type === 'agent:completed' || e.type === 'agent:failed' || e.type === 'agent:cancelled');
  }
  await h.scheduler.settled();
  await h.repo.flush();
}

/** Moves monotonic time on by `ms` and lets whatever fired finish. */
async function tick(h: Harness, ms: number): Promise<void> {
  h.clock.advance(ms);
  await idle(h);
}

/** The slot runs (schedule and catch-up) among `runs`, by dedupe key. */
const slotRuns = (runs: readonly RunRecord[]) => runs.filter((r) => r.trigger === 'schedule' || r.trigger === 'catchup');

/** Every dedupe key `jobId@scheduledAt` is inserted once. */
function expectNoSlotTwice(runs: readonly RunRecord[]): void {
  const keys = slotRuns(runs).map((r) => r.dedupeKey);
  for (const r of slotRuns(runs)) expect(r.dedupeKey).toBe(`${r.jobId}@${r.scheduledAt}`);
  const dup = keys.filter((k, i) => keys.indexOf(k) !== i);
  expect(dup, 'slots inserted more than once').toEqual([]);
}

const iso = (t: number) => new Date(t).toISOString();

describe.each(CADENCES)('a jumping clock, $name', ({ expression, period }) => {
  it('forward an hour while running: no burst of the slots jumped over, none twice, fires resume on the grid after the new now', async () => {
    const clock = jumpingClock(T0);
    await using h = await createHarness({ clock });
    const agent = await h.addAgent('a');
    await h.scheduler.setSchedule(agent, spec('a', expression));
    for (let i = 0; i < 3; i++) await tick(h, period);
    expect(slotRuns(h.inserted).map((r) => iso(r.scheduledAt))).toEqual([1, 2, 3].map((k) => iso(T0 + k * period)));
    const lastBefore = T0 + 3 * period;

    clock.jump(HOUR);
    const jumpedTo = clock.now();
    expect(jumpedTo).toBe(lastBefore + HOUR);
    const before = h.inserted.length;
    const STEPS = 5;
    for (let i = 0; i < STEPS; i++) await tick(h, period);

    const after = h.inserted.slice(before);
    expectNoSlotTwice(h.inserted);
    // Only schedule fires: nothing else ran, nothing was skipped as busy (a burst would be skipped as busy).
    expect(after.map((r) => r.trigger)).toEqual(after.map(() => 'schedule'));
    expect(h.calls).toHaveLength(h.inserted.length);
    // The slots inside the jump are not each run: at most the one the timeline had armed fires (late).
    const inJump = after.filter((r) => r.scheduledAt > lastBefore && r.scheduledAt <= jumpedTo);
    expect(inJump.length, `slots run from inside the jump: ${inJump.map((r) => iso(r.scheduledAt)).join(', ')}`).toBeLessThanOrEqual(1);
    // At most one run per monotonic period that passed, plus none extra.
    expect(after.length).toBeLessThanOrEqual(STEPS);
    // The rest are on the cron grid after the new now, one per period, none missed, none in the future.
    const resumed = after.filter((r) => r.scheduledAt > jumpedTo).map((r) => r.scheduledAt);
    expect(resumed.length).toBeGreaterThanOrEqual(STEPS - 1);
    for (const [i, t] of resumed.entries()) {
      expect(t % period).toBe(0);
      if (i > 0) expect(t - resumed[i - 1]!).toBe(period);
    }
    expect(resumed[0]! - jumpedTo).toBeLessThanOrEqual(2 * period);
    expect(resumed.at(-1)!).toBeLessThanOrEqual(clock.now());
    for (const r of after) expect(r.createdAt).toBeGreaterThanOrEqual(r.scheduledAt); // none fired early
    const next = h.scheduler.schedule('a')!.nextRunAt!;
    expect(next % period).toBe(0);
    expect(next).toBeGreaterThan(clock.now());
    expect(next - clock.now()).toBeLessThanOrEqual(period);
    // And the store agrees: one row per slot.
    expectNoSlotTwice(await h.runs('a'));
  });

  it('backward ten minutes while running: no slot already run runs again; fires continue once the clock passes the last fired slot', async () => {
    const clock = jumpingClock(T0);
    await using h = await createHarness({ clock });
    const agent = await h.addAgent('a');
    await h.scheduler.setSchedule(agent, spec('a', expression));
    for (let i = 0; i < 3; i++) await tick(h, period);
    const lastFired = T0 + 3 * period;
    expect(slotRuns(h.inserted).map((r) => r.scheduledAt)).toEqual([1, 2, 3].map((k) => T0 + k * period));

    clock.jump(-TEN_MINUTES);
    expect(clock.now()).toBe(lastFired - TEN_MINUTES);
    const before = h.inserted.length;
    // Walk the wall clock back up to the last fired slot, one period at a time: nothing may run on the way.
    while (clock.now() < lastFired) {
      await tick(h, period);
      const early = h.inserted.slice(before);
      expect(early.map((r) => `${r.trigger} ${iso(r.scheduledAt)} at ${iso(r.createdAt)}`), `ran before the wall clock passed ${iso(lastFired)} again`).toEqual([]);
    }
    expect(clock.now()).toBe(lastFired);
    // Then three more periods: the next three slots, each once, on time.
    for (let i = 0; i < 3; i++) await tick(h, period);
    const after = h.inserted.slice(before);
    expect(after.map((r) => [r.trigger, iso(r.scheduledAt)])).toEqual([4, 5, 6].map((k) => ['schedule', iso(T0 + k * period)]));
    for (const r of after) expect(r.createdAt).toBeGreaterThanOrEqual(r.scheduledAt);
    expectNoSlotTwice(h.inserted);
    const slots = slotRuns(h.inserted).map((r) => r.scheduledAt);
    expect(slots).toEqual([...slots].sort((x, y) => x - y));
    expect(h.calls).toHaveLength(6);
    expectNoSlotTwice(await h.runs('a'));
    expect(h.scheduler.schedule('a')!.nextRunAt).toBe(T0 + 7 * period);
  });

  // A SQLite file restarted on (as test/core/budgets.test.ts), so skipped on the PostgreSQL pass.
  describe.each([true, false])('across a restart, catchUp %s', (catchUp) => {
    it.skipIf(ON_POSTGRES)('forward an hour while stopped: the catch-up records the misses once, no slot runs twice, fires resume', async () => {
      using dir = tempDir();
      const dbUrl = `file:${join(dir.path, 'jump.db')}`;
      const lastFired = T0 + 3 * period;
      let firstRuns: RunRecord[];
      {
        await using first = await createHarness({ dbUrl, start: T0 });
        const agent = await first.addAgent('a');
        await first.scheduler.setSchedule(agent, spec('a', expression, { catchUp }));
        for (let i = 0; i < 3; i++) await tick(first, period);
        expect(slotRuns(first.inserted).map((r) => r.scheduledAt)).toEqual([1, 2, 3].map((k) => T0 + k * period));
        expect(first.scheduler.schedule('a')!.nextRunAt).toBe(lastFired + period);
        firstRuns = [...first.inserted];
      }

      // Stopped, and the clock is an hour further on when the process starts again.
      const restartAt = lastFired + HOUR;
      await using second = await createHarness({ dbUrl, start: restartAt });
      await idle(second);
      const atStart = [...second.inserted];
      const missed = HOUR / period; // lastFired + period … restartAt
      // One record of what was missed, for the latest missed slot: a catch-up run, or a skipped record.
      expect(atStart.map((r) => [r.trigger, iso(r.scheduledAt)])).toEqual([['catchup', iso(restartAt)]]);
      const [record] = atStart;
      const stored = (await second.runs('a')).find((r) => r.id === record!.id)!;
      if (catchUp) {
        expect(stored).toMatchObject({ trigger: 'catchup', status: 'completed', scheduledAt: restartAt });
        expect(second.calls).toHaveLength(1);
      } else {
        expect(stored).toMatchObject({ trigger: 'catchup', status: 'skipped', scheduledAt: restartAt });
        const counted = missed > 1000 ? '1000+' : String(missed);
        expect(stored.error).toBe(`missed ${counted} fire(s) while the server was down; catch-up is off`);
        expect(second.calls).toHaveLength(0);
      }
      expect(second.scheduler.schedule('a')!.nextRunAt).toBe(restartAt + period);

      for (let i = 0; i < 3; i++) await tick(second, period);
      const later = second.inserted.slice(atStart.length);
      expect(later.map((r) => [r.trigger, iso(r.scheduledAt)])).toEqual([1, 2, 3].map((k) => ['schedule', iso(restartAt + k * period)]));
      expect(second.calls).toHaveLength((catchUp ? 1 : 0) + 3);

      // No slot twice: across both lives' inserts, and in the file.
      expectNoSlotTwice([...firstRuns, ...second.inserted]);
      const all = await second.runs('a');
      expectNoSlotTwice(all);
      // Nothing of the hour down ran besides the one catch-up: every slot row is a fired one or the catch-up.
      const slots = slotRuns(all).map((r) => r.scheduledAt).sort((x, y) => x - y);
      expect(slots.map(iso)).toEqual([1, 2, 3].map((k) => iso(T0 + k * period)).concat([0, 1, 2, 3].map((k) => iso(restartAt + k * period))));
    });
  });
});
