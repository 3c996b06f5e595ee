import { Cron } from 'croner';
import { badRequest } from './errors.ts';

/**
 * Cron occurrences. croner is used only to compute the next instant: one paused `Cron` per distinct
 * (expression, timezone) is parsed once and shared by every schedule that uses it, since a live
 * croner job per schedule costs ~83 KB and a timer. The scheduler's heap does the waiting.
 */
interface Parsed {
  cron: Cron;
  /** The last answer: the first occurrence after `after` is `next`, so it is also the answer for any instant in [after, next). */
  after: number;
  next: number | null;
}
const parsed = new Map<string, Parsed>();

/** Distinct patterns kept parsed; past this the oldest is dropped (re-parsing is cheap, ~20 µs). */
const PARSED_CACHE_LIMIT = 10_000;

const NICKNAMES = new Set(['@yearly', '@annually', '@monthly', '@weekly', '@daily', '@hourly']);

export function isValidTimezone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

function pattern(expression: string, timezone: string): Parsed {
  const key = `${timezone}\u0000${expression}`;
  const found = parsed.get(key);
  if (found) return found;
  let cron: Cron;
  const trimmed = expression.trim();
  if (trimmed.startsWith('@') && !NICKNAMES.has(trimmed.toLowerCase())) {
    throw badRequest(`cronExpression: unknown nickname "${expression}" (expected one of ${[...NICKNAMES].join(', ')})`);
  }
  if (!isValidTimezone(timezone)) throw badRequest(`timezone: expected an IANA time zone name, got "${timezone}"`);
  try {
    // '5-or-6-parts': the standard 5 fields, or 6 with a leading seconds field. croner's default
    // OR-combination of day-of-month and day-of-week is the classic cron rule.
    cron = new Cron(trimmed, { timezone, paused: true, mode: '5-or-6-parts' });
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^CronPattern:\s*/, '') : String(err);
    throw badRequest(`cronExpression: invalid cron expression "${expression}": ${why}`);
  }
  if (parsed.size >= PARSED_CACHE_LIMIT) parsed.delete(parsed.keys().next().value!);
  const entry: Parsed = { cron, after: NaN, next: null };
  parsed.set(key, entry);
  return entry;
}

/** Throws a BAD_REQUEST naming the expression unless it parses and has at least one future occurrence. */
export function validateCron(expression: string, timezone = 'UTC'): void {
  pattern(expression, timezone);
}

/** The first occurrence strictly after `afterMs`, or null when the pattern has none. */
export function nextOccurrence(expression: string, timezone: string, afterMs: number): number | null {
  const p = pattern(expression, timezone);
  // Thousands of schedules sharing an expression fire together and ask the same question: croner
  // takes ~25 µs to answer it, the memo well under one.
  if (p.next !== null && afterMs >= p.after && afterMs < p.next) return p.next;
  const next = p.cron.nextRun(new Date(afterMs));
  p.after = afterMs;
  p.next = next ? next.getTime() : null;
  return p.next;
}
