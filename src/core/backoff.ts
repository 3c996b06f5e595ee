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

/**
 * When attempt `attempt`'s retry is due after it failed at `now`: retryDelay of the next retry from now — at
 * least the failure's `retryAfterMs` (a 429's Retry-After), never past the policy's cap — or null once
 * `maxRetries` retries are used.
 */
export function retryAt(attempt: number, maxRetries: number, now: number, retryAfterMs: number | undefined, policy: RetryPolicy): number | null {
  const retriesDone = attempt - 1;
  if (retriesDone >= maxRetries) return null;
  const backoff = retryDelay(retriesDone + 1, policy);
  return now + (retryAfterMs === undefined ? backoff : Math.min(Math.max(backoff, retryAfterMs), policy.maxDelayMs));
}
