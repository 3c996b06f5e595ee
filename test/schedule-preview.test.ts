import { describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { createSchedulerClient } from '../client/index.ts';
import { createManualClock } from '../src/core/clock.ts';
import { previewFires } from '../src/core/preview.ts';
import { at, startServer } from './harness.ts';

/**
 * The schedule preview (CONTRACT §11, "Preview"): the next fires of a schedule in UTC and in its zone's wall time,
 * with a note where DST bends them: `dst-gap` when the wall time does not exist that day and the fire moves,
 * `dst-repeat` when it happens twice. Fixed reference dates around both changes of 2026 in three zones.
 */
const fires = (expression: string, timezone: string, from: string, count = 4) =>
  previewFires(expression, timezone, at(from), count).map((f) => [new Date(f.at).toISOString(), f.local, f.note ?? null]);

describe('schedule preview', () => {
  it('moves a fire out of the spring gap and says so, in New York, Berlin and Sydney', () => {
    expect(fires('30 2 * * *', 'America/New_York', '2026-03-07T00:00:00Z', 3)).toEqual([
      ['2026-03-07T07:30:00.000Z', '2026-03-07T02:30:00-05:00', null],
      ['2026-03-08T07:00:00.000Z', '2026-03-08T03:00:00-04:00', 'dst-gap'],
      ['2026-03-09T06:30:00.000Z', '2026-03-09T02:30:00-04:00', null],
    ]);
    expect(fires('30 2 * * *', 'Europe/Berlin', '2026-03-28T00:00:00Z', 3)).toEqual([
      ['2026-03-28T01:30:00.000Z', '2026-03-28T02:30:00+01:00', null],
      ['2026-03-29T01:00:00.000Z', '2026-03-29T03:00:00+02:00', 'dst-gap'],
      ['2026-03-30T00:30:00.000Z', '2026-03-30T02:30:00+02:00', null],
    ]);
    // Sydney springs forward on the first Sunday of October: 02:00 becomes 03:00.
    expect(fires('30 2 * * *', 'Australia/Sydney', '2026-10-02T12:00:00Z', 3)).toEqual([
      ['2026-10-02T16:30:00.000Z', '2026-10-03T02:30:00+10:00', null],
      ['2026-10-03T16:00:00.000Z', '2026-10-04T03:00:00+11:00', 'dst-gap'],
      ['2026-10-04T15:30:00.000Z', '2026-10-05T02:30:00+11:00', null],
    ]);
  });

  it('fires once in the repeated autumn hour and notes it, in New York, Berlin and Sydney', () => {
    expect(fires('30 1 * * *', 'America/New_York', '2026-10-31T00:00:00Z', 3)).toEqual([
      ['2026-10-31T05:30:00.000Z', '2026-10-31T01:30:00-04:00', null],
      ['2026-11-01T05:30:00.000Z', '2026-11-01T01:30:00-04:00', 'dst-repeat'],
      ['2026-11-02T06:30:00.000Z', '2026-11-02T01:30:00-05:00', null],
    ]);
    expect(fires('30 2 * * *', 'Europe/Berlin', '2026-10-24T00:00:00Z', 3)).toEqual([
      ['2026-10-24T00:30:00.000Z', '2026-10-24T02:30:00+02:00', null],
      ['2026-10-25T00:30:00.000Z', '2026-10-25T02:30:00+02:00', 'dst-repeat'],
      ['2026-10-26T01:30:00.000Z', '2026-10-26T02:30:00+01:00', null],
    ]);
    // Sydney falls back on the first Sunday of April: 03:00 becomes 02:00 again.
    expect(fires('30 2 * * *', 'Australia/Sydney', '2026-04-03T12:00:00Z', 3)).toEqual([
      ['2026-04-03T15:30:00.000Z', '2026-04-04T02:30:00+11:00', null],
      ['2026-04-04T15:30:00.000Z', '2026-04-05T02:30:00+11:00', 'dst-repeat'],
      ['2026-04-05T16:30:00.000Z', '2026-04-06T02:30:00+10:00', null],
    ]);
  });

  it('answers over REST for the saved schedule, or an unsaved expression; count is checked and named', async () => {
    await using s = await startServer({ clock: createManualClock(at('2026-03-07T12:00:00Z')) });
    await s.call('POST', '/api/agents', { body: { id: 'p', name: 'Preview', handler: 'demo' } });
    const none = await s.call('GET', '/api/agents/p/schedule/preview');
    expect(none.status).toBe(400);
    expect(none.body.error).toMatch(/cronExpression/);

    await s.call('POST', '/api/agents/p/schedule', { body: { cronExpression: '30 2 * * *', timezone: 'America/New_York' } });
    const saved = await s.call('GET', '/api/agents/p/schedule/preview?count=2');
    expect(saved.status).toBe(200);
    expect(saved.body.data).toEqual([
      { at: '2026-03-08T07:00:00.000Z', local: '2026-03-08T03:00:00-04:00', note: 'dst-gap' },
      { at: '2026-03-09T06:30:00.000Z', local: '2026-03-09T02:30:00-04:00' },
    ]);
    expect((await s.call('GET', '/api/agents/p/schedule/preview')).body.data).toHaveLength(10);

    const unsaved = await s.call('GET', `/api/agents/p/schedule/preview?count=1&cronExpression=${encodeURIComponent('0 9 * * MON')}&timezone=Europe/Berlin`);
    expect(unsaved.body.data).toEqual([{ at: '2026-03-09T08:00:00.000Z', local: '2026-03-09T09:00:00+01:00' }]);

    for (const count of ['0', '101', 'ten', '1.5']) {
      const bad = await s.call('GET', `/api/agents/p/schedule/preview?count=${count}`);
      expect(bad.status, count).toBe(400);
      expect(bad.body.error).toMatch(/count/);
    }
    const badCron = await s.call('GET', '/api/agents/p/schedule/preview?cronExpression=61+*+*+*+*');
    expect(badCron.status).toBe(400);
    expect(badCron.body.error).toMatch(/cronExpression/);
    const badZone = await s.call('GET', '/api/agents/p/schedule/preview?timezone=Mars/Olympus');
    expect(badZone.status).toBe(400);
    expect(badZone.body.error).toMatch(/timezone/);
    // Another owner's agent answers as a missing one.
    const other = await s.call('GET', '/api/agents/p/schedule/preview', { token: await s.token('mallory') });
    expect(other.status).toBe(404);
  });

  it('answers through the typed client as schedule.preview', async () => {
    await using s = await startServer({ clock: createManualClock(at('2026-10-31T12:00:00Z')) });
    await s.call('POST', '/api/agents', { body: { id: 'q', name: 'Preview', handler: 'demo' } });
    await using client = createSchedulerClient({ url: s.url, token: await s.token(), WebSocket: WebSocket as never });
    const got = await client.schedule.preview.query({ agentId: 'q', cronExpression: '30 1 * * *', timezone: 'America/New_York', count: 1 });
    expect(got).toEqual([{ at: '2026-11-01T05:30:00.000Z', local: '2026-11-01T01:30:00-04:00', note: 'dst-repeat' }]);
  });
});
