import { describe, expect, it } from 'vitest';
import { nextOccurrence } from '../../src/core/cron.ts';

/**
 * Found by the next-time oracle (test/cron-oracle.test.ts): croner maps a day name after `-` through
 * `"-sun": "-7"`, so the day-of-week range `SUN-SUN` becomes `0-7`, every day, instead of Sunday only
 * (cron-parser and the model read it as Sunday). `0-0`, `7-7` and `SUN` are read right.
 */
describe('cron: SUN-SUN', () => {
  it('fires on Sundays only', () => {
    const monday = Date.parse('2026-06-01T12:00:00Z');
    const next = nextOccurrence('0 0 * * SUN-SUN', 'UTC', monday);
    expect(new Date(next!).toISOString()).toBe('2026-06-07T00:00:00.000Z');
    expect(new Date(nextOccurrence('0 0 * * sun-sun', 'UTC', monday)!).getUTCDay()).toBe(0);
  });
});
