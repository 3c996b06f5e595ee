import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import type { HandlerDefinition } from '../src/core/handlers.ts';
import { createManualClock, type ManualClock } from '../src/core/clock.ts';
import { at, deferred, nextEvent, startServer, tempDir, type TestServer } from './harness.ts';

/**
 * The fire ledger (CONTRACT §11): `GET /api/agents/:agentId/ledger?from&to` answers, for every slot of the schedule
 * in the range, what became of it. Computed from the runs, the pauses and the instances' lives; each outcome exact.
 */
const T0 = at('2026-01-01T00:00:00Z');
const MIN = 60_000;
const slot = (m: number) => new Date(T0 + m * MIN).toISOString();

/** A handler whose first run waits until the test lets it go; later runs complete at once. */
function holdFirst() {
  let held = false;
  const release = deferred();
  const def: HandlerDefinition<Record<string, unknown>> = {
    name: 'hold',
    config: z.record(z.string(), z.unknown()),
    run: async () => {
      if (held) return 'done';
      held = true;
      await release.promise;
      return 'done';
    },
  };
  return { def: def as HandlerDefinition<never>, release: () => release.resolve() };
}

async function advanceTo(s: TestServer, clock: ManualClock, minutes: number, done?: string) {
  const ended = done && nextEvent(s.app, (e) => e.type === done);
  clock.set(T0 + minutes * MIN);
  if (ended) await ended;
  await s.app.scheduler.settled();
}

const ledger = async (s: TestServer, from: string, to: string) => {
  const got = await s.call('GET', `/api/agents/l/ledger?from=${from}&to=${to}`);
  expect(got.status, JSON.stringify(got.body)).toBe(200);
  return (got.body.data as { scheduledAt: string; outcome: string; note?: string; runId?: string }[]).map(({ runId, ...e }) => ({ ...e, run: runId !== undefined }));
};

describe('the fire ledger', () => {
  it('tells a slot that ran, overlapped, was paused, is pending', async () => {
    const clock = createManualClock(T0);
    const hold = holdFirst();
    await using s = await startServer({ clock, handlers: [hold.def] });
    await s.call('POST', '/api/agents', { body: { id: 'l', name: 'Ledger', handler: 'hold' } });
    await s.call('POST', '/api/agents/l/schedule', { body: { cronExpression: '* * * * *' } });
    await advanceTo(s, clock, 1, 'agent:started');
    await advanceTo(s, clock, 2); // the first run still holds: this fire is skipped
    const completed = nextEvent(s.app, (e) => e.type === 'agent:completed');
    hold.release();
    await completed;
    await advanceTo(s, clock, 3, 'agent:completed');
    clock.set(T0 + 3.5 * MIN);
    expect((await s.call('PATCH', '/api/agents/l/schedule/l/pause', { body: { note: 'provider maintenance' } })).status).toBe(200);
    await advanceTo(s, clock, 5.5);
    expect((await s.call('PATCH', '/api/agents/l/schedule/l/resume')).status).toBe(200);

    expect(await ledger(s, slot(0), slot(8))).toEqual([
      { scheduledAt: slot(1), outcome: 'ran', note: 'completed', run: true },
      { scheduledAt: slot(2), outcome: 'skipped-overlap', note: 'skipped: the previous run or its retry is still in progress', run: true },
      { scheduledAt: slot(3), outcome: 'ran', note: 'completed', run: true },
      { scheduledAt: slot(4), outcome: 'skipped-paused', note: 'provider maintenance', run: false },
      { scheduledAt: slot(5), outcome: 'skipped-paused', note: 'provider maintenance', run: false },
      { scheduledAt: slot(6), outcome: 'pending', run: false },
      { scheduledAt: slot(7), outcome: 'pending', run: false },
    ]);
  });

  it('tells the slots missed while no server ran from the one caught up after the restart and those backfilled', async () => {
    using dir = tempDir();
    const dbFile = join(dir.path, 'ledger.db');
    const clock = createManualClock(T0);
    {
      await using s = await startServer({ clock, dbFile, handlers: [holdFirst().def] });
      await s.call('POST', '/api/agents', { body: { id: 'l', name: 'Ledger', handler: 'demo', config: { steps: 1, stepMs: 0 } } });
      await s.call('POST', '/api/agents/l/schedule', { body: { cronExpression: '* * * * *' } });
      await advanceTo(s, clock, 1, 'agent:completed');
      clock.set(T0 + 1.5 * MIN);
    } // a clean stop at 00:01:30
    clock.set(T0 + 5.5 * MIN); // down until 00:05:30: 00:02 … 00:05 missed, 00:05 caught up
    await using s2 = await startServer({ clock, dbFile });
    await expect.poll(async () => (await s2.call('GET', '/api/agents/l/runs')).body.data.map((r: { trigger: string; status: string }) => `${r.trigger} ${r.status}`)).toContain('catchup completed');
    // Two of the missed slots backfilled; the third left missed.
    const backfilled = await s2.app.scheduler.backfill('l', [T0 + 2 * MIN, T0 + 3 * MIN]);
    await expect.poll(async () => (await s2.call('GET', '/api/agents/l/runs')).body.data.filter((r: { trigger: string; status: string }) => r.trigger === 'backfill' && r.status === 'completed').length).toBe(2);
    expect(backfilled).toHaveLength(2);

    expect(await ledger(s2, slot(0), slot(7))).toEqual([
      { scheduledAt: slot(1), outcome: 'ran', note: 'completed', run: true },
      { scheduledAt: slot(2), outcome: 'backfilled', note: 'completed', run: true },
      { scheduledAt: slot(3), outcome: 'backfilled', note: 'completed', run: true },
      { scheduledAt: slot(4), outcome: 'missed-downtime', note: 'no instance was running', run: false },
      { scheduledAt: slot(5), outcome: 'caught-up', note: 'completed', run: true },
      { scheduledAt: slot(6), outcome: 'pending', run: false },
    ]);
  });

  it('refuses a range of more than 1,000 slots, an empty range or a missing bound, naming the field; 404 without a schedule', async () => {
    await using s = await startServer({ clock: createManualClock(T0) });
    await s.call('POST', '/api/agents', { body: { id: 'l', name: 'Ledger', handler: 'demo' } });
    expect((await s.call('GET', `/api/agents/l/ledger?from=${slot(0)}&to=${slot(10)}`)).status).toBe(404);
    await s.call('POST', '/api/agents/l/schedule', { body: { cronExpression: '* * * * *' } });
    const cases: [string, RegExp][] = [
      [`from=${slot(0)}&to=${slot(1002)}`, /^query\.to: the range holds more than 1000 slots/],
      [`from=${slot(5)}&to=${slot(5)}`, /^query\.from: expected an instant before query\.to/],
      [`to=${slot(5)}`, /^query\.from:/],
      [`from=yesterday&to=${slot(5)}`, /^query\.from: expected an ISO 8601 date-time/],
    ];
    for (const [q, message] of cases) {
      const bad = await s.call('GET', `/api/agents/l/ledger?${q}`);
      expect(bad.status, q).toBe(400);
      expect(bad.body.error).toMatch(message);
    }
    expect((await s.call('GET', `/api/agents/l/ledger?from=${slot(1)}&to=${slot(1001)}`)).body.data).toHaveLength(1000);
  });
});
