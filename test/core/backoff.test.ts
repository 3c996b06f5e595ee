import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { retryDelay } from '../../src/core/backoff.ts';

describe('retry delay', () => {
  const defaults = { baseDelayMs: 1000, maxDelayMs: 300_000 };

  it('is 1 s, 2 s, 4 s with the defaults', () => {
    expect([1, 2, 3].map((n) => retryDelay(n, defaults))).toEqual([1000, 2000, 4000]);
  });

  it('stops at the cap', () => {
    expect(retryDelay(9, defaults)).toBe(256_000);
    expect(retryDelay(10, defaults)).toBe(300_000);
    expect(retryDelay(1000, defaults)).toBe(300_000);
    expect(retryDelay(3, { baseDelayMs: 1000, maxDelayMs: 2500 })).toBe(2500);
  });

  it('never decreases and never exceeds the cap, for any policy', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 10_000_000 }), fc.integer({ min: 1, max: 2 ** 31 }), fc.integer({ min: 1, max: 200 }), (base, extra, n) => {
        const policy = { baseDelayMs: base, maxDelayMs: base + extra };
        const d = retryDelay(n, policy);
        const d2 = retryDelay(n + 1, policy);
        return Number.isFinite(d) && d >= base && d <= policy.maxDelayMs && d2 >= d;
      }),
      { numRuns: 2000 },
    );
  });
});
