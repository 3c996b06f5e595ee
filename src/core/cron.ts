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

/**
 * croner reads a day-of-week range ending in SUN as ending in 7, so `SUN-SUN` becomes `0-7`, every day
 * (found by test/cron-oracle.test.ts): written `0-0` it means Sunday, as every other cron reads it.
 */
function sundayRangeFixed(expression: string): string {
  const fields = expression.split(/\s+/);
  if (fields.length !== 5 && fields.length !== 6) return expression;
  fields[fields.length - 1] = fields[fields.length - 1]!.replace(/(^|,)sun-sun(?=$|,|\/)/gi, '$10-0');
  return fields.join(' ');
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
    cron = new Cron(sundayRangeFixed(trimmed), { timezone, paused: true, mode: '5-or-6-parts' });
  } catch (err) {
    const why = err instanceof Error ? err.message.replace(/^CronPattern:\s*/, '') : String(err);
    throw badRequest(`cronExpression: invalid cron expression "${expression}": ${why}`);
  }
  if (parsed.size >= PARSED_CACHE_LIMIT) parsed.delete(parsed.keys().next().value!);
  const entry: Parsed = { cron, after: NaN, next: null };
  parsed.set(key, entry);
  return entry;
}

/**
 * Throws a BAD_REQUEST naming the expression unless it parses and names at least one instant: croner
 * accepts a date no calendar has (`0 0 30 2 *`, February 30th), and such a schedule would be stored with
 * `nextRunAt: null`, never to fire. Asked from 1970 because an instant that exists at all exists after it
 * (a 5- or 6-field pattern has no year); croner gives up on a date that matches nothing at year 10000,
 * after ~6 ms of searching, once per distinct expression at most (the parse is cached).
 */
export function validateCron(expression: string, timezone = 'UTC'): void {
  const p = pattern(expression, timezone);
  if (p.cron.nextRun(new Date(0)) === null) {
    throw badRequest(`cronExpression: "${expression}" never fires: no date matches it`);
  }
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

/** The latest occurrence at or before `atMs`, or null when the pattern has none. One backwards search, however far `atMs` is. */
export function latestOccurrence(expression: string, timezone: string, atMs: number): number | null {
  // croner strips milliseconds and includes a run earlier in the same second as the reference: 1 ms past
  // `atMs` makes an occurrence exactly at `atMs` count. A DST fold could still answer one past it: step back then.
  const cron = pattern(expression, timezone).cron;
  const [latest, before] = cron.previousRuns(2, new Date(atMs + 1)).map((d) => d.getTime());
  if (latest === undefined) return null;
  return latest <= atMs ? latest : (before ?? null);
}

/** Up to `n` occurrences at or before `atMs`, oldest first: the latest ones, found in one backwards search. */
export function latestOccurrences(expression: string, timezone: string, atMs: number, n: number): number[] {
  const cron = pattern(expression, timezone).cron;
  return cron.previousRuns(n + 1, new Date(atMs + 1)).map((d) => d.getTime()).filter((t) => t <= atMs).slice(0, n).reverse();
}

/** What `countOccurrences` found. */
export interface OccurrenceCount {
  /** Occurrences in the range, at most the cap asked for. */
  count: number;
  /** true when there are more than `count`. */
  capped: boolean;
  /** The latest occurrence in the range (found directly when the count was capped), or null when there is none. */
  latest: number | null;
}

interface Counted extends OccurrenceCount {
  /** The range end counted up to. */
  to: number;
  /** The first occurrence after the last one counted (null: none). */
  next: number | null;
}

/**
 * Counts already made, by (expression, timezone, start of range): schedules that share an expression
 * missed the same slots, and a restart asks the same question for each of them. A later end continues
 * a count instead of starting it again.
 */
const counts = new Map<string, Counted>();
/** Counts kept; past this the oldest is dropped. Each is a few numbers. */
const COUNT_CACHE_LIMIT = 10_000;

/**
 * The occurrences in (afterMs, toMs], counted one by one up to `cap` (each costs croner ~50 µs, so the cap
 * bounds the work: a schedule every second down for a day has 86,400), with the latest of them, which is
 * found with one backwards search when the count stops at the cap. What a restart records as missed.
 */
export function countOccurrences(expression: string, timezone: string, afterMs: number, toMs: number, cap: number): OccurrenceCount {
  const key = `${timezone}\u0000${expression}\u0000${afterMs}`;
  let c = counts.get(key);
  if (!c || c.to > toMs) {
    c = { count: 0, capped: false, latest: null, to: afterMs, next: nextOccurrence(expression, timezone, afterMs) };
    if (counts.size >= COUNT_CACHE_LIMIT) counts.delete(counts.keys().next().value!);
    counts.set(key, c);
  }
  if (!c.capped) {
    while (c.next !== null && c.next <= toMs && c.count < cap) {
      c.count++;
      c.latest = c.next;
      c.next = nextOccurrence(expression, timezone, c.next);
    }
    c.capped = c.next !== null && c.next <= toMs;
  }
  c.to = toMs;
  if (!c.capped) return { count: c.count, capped: false, latest: c.latest };
  const latest = latestOccurrence(expression, timezone, toMs);
  return { count: c.count, capped: true, latest: latest !== null && c.latest !== null && latest > c.latest ? latest : c.latest };
}

/** Whether `atMs` is itself one of the pattern's instants: its wall time in `timezone` matches every field. */
export function matchesAt(expression: string, timezone: string, atMs: number): boolean {
  return pattern(expression, timezone).cron.match(new Date(atMs));
}

/** Offsets sampled this far apart: no zone changes its offset twice within six hours, so equal samples mean none changed. */
const OFFSET_SAMPLE_MS = 6 * 60 * 60_000;
const offsetFormatters = new Map<string, Intl.DateTimeFormat>();
/** The zone's UTC offset at `atMs`, as text (`GMT+01:00`): compared, never parsed. */
function offsetAt(timezone: string, atMs: number): string {
  let f = offsetFormatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', { timeZone: timezone, timeZoneName: 'longOffset' });
    if (offsetFormatters.size > 1000) offsetFormatters.clear();
    offsetFormatters.set(timezone, f);
  }
  return f.formatToParts(new Date(atMs)).find((p) => p.type === 'timeZoneName')?.value ?? 'GMT';
}
/** Minutes east of UTC from `GMT+05:30` / `GMT-04:00` / `GMT`. */
const offsetMinutes = (text: string) => {
  const m = /^GMT([+-])(\d\d):(\d\d)$/.exec(text);
  return m ? (m[1] === '-' ? -1 : 1) * (Number(m[2]) * 60 + Number(m[3])) : 0;
};

const fixedOffsetPatterns = new Map<string, Cron>();
/** The pattern at a fixed UTC offset (already validated in its zone by `pattern`), parsed once per offset. */
function fixedOffset(expression: string, minutes: number): Cron {
  const key = `${minutes}\u0000${expression}`;
  let cron = fixedOffsetPatterns.get(key);
  if (!cron) {
    cron = new Cron(sundayRangeFixed(expression.trim()), { utcOffset: minutes, paused: true, mode: '5-or-6-parts' });
    if (fixedOffsetPatterns.size >= PARSED_CACHE_LIMIT) fixedOffsetPatterns.delete(fixedOffsetPatterns.keys().next().value!);
    fixedOffsetPatterns.set(key, cron);
  }
  return cron;
}

/**
 * The occurrences in [fromMs, toMs), in order, at most `max` (`null` when there are more). croner answers an
 * instant in a named zone in ~0.15–0.2 ms (each step converts through Intl); when the zone keeps one offset over
 * the whole range, the same pattern at that fixed offset gives the same instants about five times faster. A range
 * with a DST change in it takes the named-zone path, which knows what a change does to each fire.
 */
export function occurrencesBetween(expression: string, timezone: string, fromMs: number, toMs: number, max: number): number[] | null {
  const p = pattern(expression, timezone);
  const offset = offsetAt(timezone, fromMs);
  let steady = offsetAt(timezone, toMs) === offset;
  for (let t = fromMs + OFFSET_SAMPLE_MS; steady && t < toMs; t += OFFSET_SAMPLE_MS) steady = offsetAt(timezone, t) === offset;
  const cron = steady ? fixedOffset(expression, offsetMinutes(offset)) : p.cron;
  const out: number[] = [];
  for (let d = cron.nextRun(new Date(fromMs - 1)); d !== null && d.getTime() < toMs; d = cron.nextRun(d)) {
    if (out.length === max) return null;
    out.push(d.getTime());
  }
  return out;
}
