import { decodeJwt } from 'jose';
import type { Clock, TimerHandle } from '../core/clock.ts';
import { CLOCK_TOLERANCE_S } from '../core/limits.ts';

/**
 * When a live connection's token stops being good: its `exp` plus the clock skew `verify` forgives
 * (CLOCK_TOLERANCE_S). Read from a token `verify` has just accepted, so its claims are trusted; null
 * for a token without `exp` (`verify` refuses those unless configured otherwise: nothing to end).
 */
export function tokenDeadline(token: string, toleranceMs = CLOCK_TOLERANCE_S * 1000): number | null {
  const { exp } = decodeJwt(token);
  return typeof exp === 'number' ? exp * 1000 + toleranceMs : null;
}

/**
 * Calls `fn` once the clock reaches `at`. A timer is capped at 2^31-1 ms (24.8 days, `Clock.setTimer`
 * clamps) while a token may live 30 days (JWT_MAX_TTL): a timer that fires early is armed again for the rest.
 */
export function atTime(clock: Clock, at: number, fn: () => void): () => void {
  let timer: TimerHandle | undefined;
  let cancelled = false;
  const arm = () => {
    if (cancelled) return;
    const wait = at - clock.now();
    if (wait <= 0) fn();
    else timer = clock.setTimer(arm, wait);
  };
  arm();
  return () => {
    cancelled = true;
    timer?.cancel();
  };
}
