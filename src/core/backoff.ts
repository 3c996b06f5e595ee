export interface RetryPolicy {
  /** First retry's delay. @default 1000 (RETRY_BASE_DELAY_MS) */
  baseDelayMs: number;
  /** Cap on any one delay. @default 300000 (RETRY_MAX_DELAY_MS) */
  maxDelayMs: number;
}

/**
 * Delay before retry `n` (1 = first retry): base · 2^(n-1), capped. Pure, so it is property-tested.
 * The exponent is clamped so a large `n` cannot overflow to Infinity/NaN before the cap applies.
 */
export function retryDelay(n: number, policy: RetryPolicy): number {
  const exp = Math.min(Math.max(0, n - 1), 52);
  return Math.min(policy.baseDelayMs * 2 ** exp, policy.maxDelayMs);
}
