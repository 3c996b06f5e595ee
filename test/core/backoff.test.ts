import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { retryAt, retryDelay } from '../../src/core/backoff.ts';

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

describe('retry time', () => {
  const policy = { baseDelayMs: 1000, maxDelayMs: 300_000 };
  it('follows the delay from the failure, waits at least a Retry-After but never past the cap, and ends after maxRetries', () => {
    expect(retryAt(1, 3, 10_000, undefined, policy)).toBe(11_000);
    expect(retryAt(3, 3, 10_000, undefined, policy)).toBe(14_000);
    expect(retryAt(4, 3, 10_000, undefined, policy)).toBeNull();
    expect(retryAt(1, 3, 10_000, 60_000, policy)).toBe(70_000);
    expect(retryAt(1, 3, 10_000, 10 ** 9, policy)).toBe(310_000);
    expect(retryAt(1, 0, 10_000, undefined, policy)).toBeNull();
  });
});
