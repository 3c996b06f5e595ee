import { describe, expect, it } from 'vitest';
import { nextOccurrence, validateCron } from '../../src/core/cron.ts';
import { at, createHarness } from '../harness.ts';

const next = (expr: string, from: string, tz = 'UTC') => new Date(nextOccurrence(expr, tz, at(from))!).toISOString();

describe('cron', () => {
  it('reads the five standard fields', () => {
    expect(next('*/5 * * * *', '2026-01-15T10:26:00Z')).toBe('2026-01-15T10:30:00.000Z');
    expect(next('0 */6 * * *', '2026-01-15T10:26:00Z')).toBe('2026-01-15T12:00:00.000Z');
    expect(next('0 9 * * 1-5', '2026-01-16T10:00:00Z')).toBe('2026-01-19T09:00:00.000Z'); // Friday → Monday
    expect(next('0 0 * * 0', '2026-01-15T10:00:00Z')).toBe('2026-01-18T00:00:00.000Z'); // next Sunday
    // Day-of-month OR day-of-week, as in classic cron: the 1st, or any Monday.
    expect(next('0 0 1 * 1', '2026-01-02T00:00:00Z')).toBe('2026-01-05T00:00:00.000Z');
  });

  it('reads a leading seconds field', () => {
    expect(next('*/5 * * * * *', '2026-01-01T00:00:01Z')).toBe('2026-01-01T00:00:05.000Z');
    expect(next('30 0 12 * * *', '2026-01-01T00:00:00Z')).toBe('2026-01-01T12:00:30.000Z');
  });

  it('reads the nicknames', () => {
    const from = '2026-03-15T10:20:00Z';
    expect(next('@hourly', from)).toBe('2026-03-15T11:00:00.000Z');
    expect(next('@daily', from)).toBe('2026-03-16T00:00:00.000Z');
    expect(next('@weekly', from)).toBe('2026-03-22T00:00:00.000Z');
    expect(next('@monthly', from)).toBe('2026-04-01T00:00:00.000Z');
    expect(next('@yearly', from)).toBe('2027-01-01T00:00:00.000Z');
  });

  it('honours an IANA timezone', () => {
    expect(next('0 9 * * *', '2026-01-15T00:00:00Z', 'America/New_York')).toBe('2026-01-15T14:00:00.000Z');
  });

  it.each(['', 'bad', '* * *', '* * * * * * *', '60 * * * *', '* 24 * * *', '* * 32 * *', '* * * 13 *', '@fortnightly', '*/0 * * * *'])(
    'rejects %j with a 400 naming the expression',
    (expr) => {
      let err: unknown;
      try {
        validateCron(expr, 'UTC');
      } catch (e) {
        err = e;
      }
      expect(err).toMatchObject({ code: 'BAD_REQUEST' });
      expect((err as Error).message).toContain(`"${expr}"`);
      expect((err as Error).message).toMatch(/^cronExpression: /);
    },
  );

  it('rejects an unknown timezone naming it', () => {
    expect(() => validateCron('* * * * *', 'Mars/Olympus')).toThrow(/timezone: .*"Mars\/Olympus"/);
  });

  it.each([
    ['spring forward', '2026-03-27T12:00:00Z', ['2026-03-28', '2026-03-29', '2026-03-30']],
    ['fall back', '2026-10-23T12:00:00Z', ['2026-10-24', '2026-10-25', '2026-10-26']],
  ])('fires a daily 02:30 Europe/Berlin job exactly once a day across %s', async (_name, start, days) => {
    await using h = await createHarness({ start: at(start) });
    const agent = await h.addAgent('dst');
    await h.scheduler.setSchedule(agent, { jobId: 'dst', expression: '30 2 * * *', timezone: 'Europe/Berlin', priority: 2, enabled: true, catchUp: true });
    for (let i = 0; i < 4 * 24 * 4; i++) {
      h.clock.advance(15 * 60_000); // quarter hours, past both DST transitions
      await h.repo.flush();
    }
    const fired = h.inserted.filter((r) => r.trigger === 'schedule');
    const localDays = fired.map((r) => new Date(r.scheduledAt).toLocaleDateString('sv-SE', { timeZone: 'Europe/Berlin' }));
    for (const day of days) expect(localDays.filter((d) => d === day), day).toHaveLength(1);
    expect(new Set(localDays).size).toBe(localDays.length);
  });
});
