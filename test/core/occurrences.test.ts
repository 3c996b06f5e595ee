import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { nextOccurrence, occurrencesBetween } from '../../src/core/cron.ts';
import { at } from '../harness.ts';

/**
 * `occurrencesBetween` (the ledger's slots) takes a fixed-offset shortcut when the zone keeps one offset over the
 * range: it must give exactly what stepping `nextOccurrence` in the named zone gives, with or without a DST change
 * in the range, and stop at its cap.
 */
const stepping = (expression: string, tz: string, from: number, to: number) => {
  const out: number[] = [];
  for (let t = nextOccurrence(expression, tz, from - 1); t !== null && t < to; t = nextOccurrence(expression, tz, t)) out.push(t);
  return out;
};
const ZONES = ['UTC', 'Europe/Berlin', 'America/New_York', 'Asia/Kolkata', 'Australia/Lord_Howe', 'America/Sao_Paulo'];
const EXPRESSIONS = ['* * * * *', '*/7 * * * *', '30 2 * * *', '0 */3 * * 1-5', '15,45 9-17 * * *', '0 0 1 * *', '*/20 * * * * *', '@hourly'];

describe('occurrencesBetween', () => {
  it('agrees with stepping nextOccurrence, away from DST changes and across them', () => {
    fc.assert(
      fc.property(fc.constantFrom(...EXPRESSIONS), fc.constantFrom(...ZONES), fc.integer({ min: 0, max: 365 * 24 }), fc.integer({ min: 1, max: 48 }), (expression, tz, startHour, hours) => {
        const from = at('2026-01-01T00:00:00Z') + startHour * 3_600_000 + 17_000;
        // A seconds pattern makes 180 slots an hour: two hours of it are plenty.
        const to = from + Math.min(hours, expression.split(' ').length === 6 ? 2 : hours) * 3_600_000;
        expect(occurrencesBetween(expression, tz, from, to, 100_000)).toEqual(stepping(expression, tz, from, to));
      }),
      { numRuns: 60 },
    );
    // Each zone's changes of 2026, a day either side (the named-zone path).
    const changes: [string, string][] = [
      ['Europe/Berlin', '2026-03-29T01:00:00Z'], ['Europe/Berlin', '2026-10-25T01:00:00Z'],
      ['America/New_York', '2026-03-08T07:00:00Z'], ['America/New_York', '2026-11-01T06:00:00Z'],
      ['Australia/Lord_Howe', '2026-04-04T15:00:00Z'], ['Australia/Lord_Howe', '2026-10-03T15:30:00Z'],
    ];
    for (const [tz, change] of changes) {
      for (const expression of ['*/7 * * * *', '30 2 * * *', '15,45 9-17 * * *', '@hourly']) {
        const from = at(change) - 86_400_000;
        const to = at(change) + 86_400_000;
        expect(occurrencesBetween(expression, tz, from, to, 100_000), `${expression} ${tz} ${change}`).toEqual(stepping(expression, tz, from, to));
      }
    }
  });

  it('answers null past its cap', () => {
    expect(occurrencesBetween('* * * * *', 'UTC', at('2026-01-01T00:00:00Z'), at('2026-01-01T00:10:00Z'), 10)).toHaveLength(10);
    expect(occurrencesBetween('* * * * *', 'UTC', at('2026-01-01T00:00:00Z'), at('2026-01-01T00:10:01Z'), 10)).toBeNull();
  });
});
