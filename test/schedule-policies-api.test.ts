import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { createManualClock } from '../src/core/clock.ts';
import type { HandlerDefinition } from '../src/core/handlers.ts';
import { at, deferred, nextEvent, startServer, tempDir } from './harness.ts';

/**
 * A schedule's catch-up and overlap policies through REST (CONTRACT §11): what the body takes, what
 * `taskDetails` shows back, the 400s naming the field, and that the policy given is the one that acts.
 */
const T0 = at('2026-01-01T00:00:00Z');
const MIN = 60_000;
const iso = (t: number) => new Date(t).toISOString();

/** Runs wait until the test lets the current one go. */
function gated() {
  let release = deferred();
  const def: HandlerDefinition<Record<string, unknown>> = {
    name: 'gated',
    config: z.record(z.string(), z.unknown()),
    run: async () => {
      await release.promise;
      release = deferred();
      return 'ok';
    },
  };
  return { def: def as HandlerDefinition<never>, release: () => release.resolve() };
}

describe('schedule policies over REST', () => {
  it('takes catchUp as true, false or { policy, window } and overlap, and shows them back', async () => {
    await using s = await startServer({ clock: createManualClock(T0) });
    await s.call('POST', '/api/agents', { body: { id: 'p', name: 'Policies', handler: 'demo' } });
    const cases: [unknown, string | undefined, unknown, string][] = [
      [undefined, undefined, true, 'skip'],
      [false, 'allow', false, 'allow'],
      [{ policy: 'latest' }, 'queue-one', true, 'queue-one'],
      [{ policy: 'all' }, 'cancel-previous', { policy: 'all' }, 'cancel-previous'],
      [{ policy: 'all', window: '90m' }, 'skip', { policy: 'all', window: '90m' }, 'skip'],
      [{ window: '3600s' }, undefined, { policy: 'latest', window: '1h' }, 'skip'],
      [{ policy: 'latest', window: '7d' }, undefined, { policy: 'latest', window: '7d' }, 'skip'],
    ];
    for (const [catchUp, overlap, shown, shownOverlap] of cases) {
      const body = { cronExpression: '0 * * * *', ...(catchUp !== undefined && { catchUp }), ...(overlap && { overlap }) };
      expect((await s.call('POST', '/api/agents/p/schedule', { body })).status, JSON.stringify(body)).toBeLessThan(300);
      const { taskDetails } = (await s.call('GET', '/api/agents/p/schedule')).body.data;
      expect([taskDetails.catchUp, taskDetails.overlap], JSON.stringify(body)).toEqual([shown, shownOverlap]);
    }
  });

  it('refuses a bad policy with a 400 naming the field, and keeps the schedule it had', async () => {
    await using s = await startServer({ clock: createManualClock(T0) });
    await s.call('POST', '/api/agents', { body: { id: 'p', name: 'Policies', handler: 'demo' } });
    await s.call('POST', '/api/agents/p/schedule', { body: { cronExpression: '0 * * * *', overlap: 'queue-one', catchUp: { policy: 'all', window: '1h' } } });
    const cases: [unknown, RegExp][] = [
      [{ overlap: 'queue' }, /^body\.overlap: expected one of "skip", "queue-one", "cancel-previous", "allow", got "queue"/],
      [{ catchUp: 'yes' }, /^body\.catchUp: expected true, false or/],
      [{ catchUp: { policy: 'every' } }, /^body\.catchUp\.policy: expected "latest" or "all", got "every"/],
      [{ catchUp: { policy: 'all', window: '2 hours' } }, /^body\.catchUp\.window: expected a duration like "90s"/],
      [{ catchUp: { policy: 'all', window: '367d' } }, /^body\.catchUp\.window: .*at most 366d, got "367d"/],
      [{ catchUp: { policy: 'all', window: '0s' } }, /^body\.catchUp\.window: /],
      [{ catchUp: { policy: 'all', until: '1h' } }, /^body\.catchUp: unknown field "until"/],
    ];
    for (const [extra, message] of cases) {
      const bad = await s.call('POST', '/api/agents/p/schedule', { body: { cronExpression: '*/5 * * * *', ...(extra as object) } });
      expect(bad.status, JSON.stringify(extra)).toBe(400);
      expect(bad.body.error).toMatch(message);
    }
    const kept = (await s.call('GET', '/api/agents/p/schedule')).body.data;
    expect([kept.scheduleExpression, kept.taskDetails.overlap, kept.taskDetails.catchUp]).toEqual(['0 * * * *', 'queue-one', { policy: 'all', window: '1h' }]);
  });

  it('queue-one given over REST lets a fire during a run wait and start after it; one more is skipped', async () => {
    const clock = createManualClock(T0);
    const gate = gated();
    await using s = await startServer({ clock, handlers: [gate.def] });
    await s.call('POST', '/api/agents', { body: { id: 'q', name: 'Queue one', handler: 'gated' } });
    await s.call('POST', '/api/agents/q/schedule', { body: { cronExpression: '* * * * *', overlap: 'queue-one' } });
    const started = nextEvent(s.app, (e) => e.type === 'agent:started');
    clock.set(T0 + MIN);
    await started;
    clock.set(T0 + 2 * MIN); // waits behind the first
    await s.app.scheduler.settled();
    clock.set(T0 + 3 * MIN); // one waits already: skipped
    await s.app.scheduler.settled();
    const second = nextEvent(s.app, (e) => e.type === 'agent:started');
    gate.release();
    await second;
    const done = nextEvent(s.app, (e) => e.type === 'agent:completed');
    gate.release();
    await done;
    const runs = (await s.call('GET', '/api/agents/q/runs')).body.data as { scheduledAt: string; status: string }[];
    expect(runs.map((r) => [r.scheduledAt, r.status]).reverse()).toEqual([
      [iso(T0 + MIN), 'completed'],
      [iso(T0 + 2 * MIN), 'completed'],
      [iso(T0 + 3 * MIN), 'skipped'],
    ]);
  });

  it('catch-up { policy: all, window } given over REST runs the missed slots of the window after a restart, oldest first', async () => {
    using dir = tempDir();
    const dbFile = join(dir.path, 'policies.db');
    const clock = createManualClock(T0);
    {
      await using s = await startServer({ clock, dbFile });
      await s.call('POST', '/api/agents', { body: { id: 'c', name: 'Catch up', handler: 'demo', config: { steps: 1, stepMs: 0 } } });
      await s.call('POST', '/api/agents/c/schedule', { body: { cronExpression: '*/10 * * * *', catchUp: { policy: 'all', window: '30m' } } });
    }
    // Down from 00:00 to 01:05: 00:10 … 01:00 were missed; the window keeps 00:40, 00:50 and 01:00.
    clock.set(T0 + 65 * MIN);
    await using s = await startServer({ clock, dbFile });
    await expect.poll(async () => ((await s.call('GET', '/api/agents/c/runs')).body.data as { status: string }[]).filter((r) => r.status === 'completed').length).toBe(3);
    const runs = (await s.call('GET', '/api/agents/c/runs')).body.data as { trigger: string; scheduledAt: string; startedAt: string }[];
    const caught = runs.filter((r) => r.trigger === 'catchup').sort((a, b) => a.startedAt.localeCompare(b.startedAt) || a.scheduledAt.localeCompare(b.scheduledAt));
    expect(caught.map((r) => r.scheduledAt)).toEqual([40, 50, 60].map((m) => iso(T0 + m * MIN)));
    const ledger = (await s.call('GET', `/api/agents/c/ledger?from=${iso(T0)}&to=${iso(T0 + 61 * MIN)}`)).body.data as { outcome: string }[];
    expect(ledger.map((e) => e.outcome)).toEqual([...Array(3).fill('missed-downtime'), ...Array(3).fill('caught-up')]);
  });
});
