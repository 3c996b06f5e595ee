import { TRPCClientError } from '@trpc/client';
import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { z } from 'zod';
import { createSchedulerClient } from '../client/index.ts';
import { createManualClock } from '../src/core/clock.ts';
import type { HandlerDefinition } from '../src/core/handlers.ts';
import { at, recordEvents, startServer, type TestServer } from './harness.ts';

/**
 * Backfill over REST and tRPC (CONTRACT §11): `POST /api/agents/:agentId/backfill { from, to }` queues one run per
 * slot in [from, to), trigger `backfill`, oldest first, and answers `202 { runIds }`; a slot with a run is left alone.
 */
const T0 = at('2026-01-01T12:00:00Z');
const MIN = 60_000;
const slot = (m: number) => new Date(T0 + m * MIN).toISOString();

/** Completes at once and remembers the slot it ran for: the order runs started in. */
function recorder() {
  const ran: string[] = [];
  const def: HandlerDefinition<Record<string, unknown>> = {
    name: 'rec',
    config: z.record(z.string(), z.unknown()),
    run: async (ctx) => {
      ran.push(new Date(ctx.scheduledAt).toISOString());
      return 'ok';
    },
  };
  return { def: def as HandlerDefinition<never>, ran };
}

async function backfilled(s: TestServer, from: string, to: string, runs: number) {
  const log = recordEvents(s.app.scheduler.events);
  try {
    const answer = await s.call('POST', '/api/agents/b/backfill', { body: { from, to } });
    expect(answer.status, JSON.stringify(answer.body)).toBe(202);
    await log.eventually(() => log.events.filter((e) => e.type === 'agent:completed').length >= runs);
    return answer.body.data as { runIds: string[]; skipped: number };
  } finally {
    log[Symbol.dispose]();
  }
}

describe('backfill API', () => {
  it('queues one run per past slot, oldest first, trigger backfill; twice over a range runs each slot once', async () => {
    const rec = recorder();
    await using s = await startServer({ clock: createManualClock(T0), handlers: [rec.def] });
    await s.call('POST', '/api/agents', { body: { id: 'b', name: 'Backfill', handler: 'rec' } });
    await s.call('POST', '/api/agents/b/schedule', { body: { cronExpression: '*/10 * * * *', priority: 'HIGH' } });

    // The hour before the schedule existed: 11:00, 11:10 … 11:50.
    const first = await backfilled(s, slot(-60), slot(0), 6);
    expect(first.runIds).toHaveLength(6);
    expect(first.skipped).toBe(0);
    expect(rec.ran).toEqual([-60, -50, -40, -30, -20, -10].map(slot));
    const runs = (await s.call('GET', '/api/agents/b/runs')).body.data as { id: string; trigger: string; priority?: number; status: string; scheduledAt: string }[];
    expect(runs.filter((r) => first.runIds.includes(r.id)).map((r) => [r.trigger, r.status])).toEqual(Array(6).fill(['backfill', 'completed']));

    // The same range again, and one reaching further back: only the slots without a run are queued.
    const again = await s.call('POST', '/api/agents/b/backfill', { body: { from: slot(-60), to: slot(0) } });
    expect(again.status).toBe(202);
    expect(again.body.data).toEqual({ runIds: [], skipped: 6 });
    const wider = await backfilled(s, slot(-80), slot(-30), 2);
    expect(wider.runIds).toHaveLength(2);
    expect(wider.skipped).toBe(3);
    expect(rec.ran.slice(6)).toEqual([slot(-80), slot(-70)]);

    // The ledger tells them, although they came before the schedule.
    const ledger = await s.call('GET', `/api/agents/b/ledger?from=${slot(-80)}&to=${slot(0)}`);
    expect((ledger.body.data as { outcome: string; note?: string }[]).map((e) => `${e.outcome}/${e.note}`)).toEqual(Array(8).fill('backfilled/completed'));
  });

  it('refuses a bad range naming the field; 404 without a schedule or for another owner', async () => {
    await using s = await startServer({ clock: createManualClock(T0) });
    await s.call('POST', '/api/agents', { body: { id: 'b', name: 'Backfill', handler: 'demo' } });
    const post = (body: unknown, as?: string) => s.call('POST', '/api/agents/b/backfill', { body, ...(as && { token: as }) });
    const none = await post({ from: slot(-10), to: slot(0) });
    expect(none.status).toBe(404);
    expect(none.body.error).toMatch(/No scheduled task found for agent b/);

    await s.call('POST', '/api/agents/b/schedule', { body: { cronExpression: '* * * * *' } });
    const cases: [unknown, RegExp][] = [
      [{ from: slot(-5), to: slot(-5) }, /^body\.from: expected an instant before body\.to/],
      [{ from: slot(-5), to: slot(5) }, /^body\.to: expected an instant not in the future/],
      [{ from: slot(-1002), to: slot(0) }, /^body\.to: the range holds more than 1000 slots/],
      [{ from: 'last week', to: slot(0) }, /^body\.from: expected an ISO 8601 date-time/],
      [{ to: slot(0) }, /^body\.from:/],
      [{ from: slot(-5), to: slot(0), extra: 1 }, /extra/],
    ];
    for (const [body, message] of cases) {
      const bad = await post(body);
      expect(bad.status, JSON.stringify(body)).toBe(400);
      expect(bad.body.error).toMatch(message);
    }
    expect((await s.call('GET', '/api/agents/b/runs')).body.data).toEqual([]);

    const stranger = await s.token('someone-else');
    expect((await post({ from: slot(-5), to: slot(0) }, stranger)).status).toBe(404);
    // Exactly 1,000 slots is allowed.
    const most = await post({ from: slot(-1000), to: slot(0) });
    expect(most.status).toBe(202);
    expect((most.body.data as { runIds: string[] }).runIds).toHaveLength(1000);
  });

  it('is schedule.backfill on the typed client, with the same answers and errors', async () => {
    const rec = recorder();
    await using s = await startServer({ clock: createManualClock(T0), handlers: [rec.def] });
    await using client = createSchedulerClient({ url: s.url, token: await s.token(), WebSocket: WebSocket as never });
    await s.call('POST', '/api/agents', { body: { id: 'b', name: 'Backfill', handler: 'rec' } }); // a handler of this server only
    await client.schedule.set.mutate({ agentId: 'b', cronExpression: '0 * * * *' });
    const answer = await client.schedule.backfill.mutate({ agentId: 'b', from: slot(-180), to: slot(0) });
    expect(answer.runIds).toHaveLength(3);
    expect(answer.skipped).toBe(0);
    const error = await client.schedule.backfill.mutate({ agentId: 'b', from: slot(0), to: slot(-60) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(TRPCClientError);
    expect((error as { data?: { code?: string } }).data?.code).toBe('BAD_REQUEST');
    expect((error as Error).message).toMatch(/^body\.from: expected an instant before body\.to/);
  });
});
