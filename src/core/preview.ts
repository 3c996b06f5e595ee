import { matchesAt, nextOccurrence } from './cron.ts';

/**
 * The next fire times of a schedule, as a user checks them before saving one (CONTRACT §11, "Preview"): each in
 * UTC and as the wall time of the schedule's zone with its offset, and a note where a DST change bends it.
 */
export type PreviewNote = 'dst-gap' | 'dst-repeat';
export interface PreviewFire {
  at: number;
  /** The wall time in the schedule's zone with its offset, e.g. `2026-03-08T03:30:00-04:00`. */
  local: string;
  /**
   * `dst-gap`: the wall time the pattern names does not exist that day, and the fire moved (croner fires it at
   * the first instant after the gap). `dst-repeat`: the fire's wall time happens twice that day; it fires once.
   */
  note?: PreviewNote;
}

/** The wall-clock parts of an instant in a zone, one formatter per zone (building one costs ~50 µs). */
const formatters = new Map<string, Intl.DateTimeFormat>();
function formatter(timezone: string): Intl.DateTimeFormat {
  let f = formatters.get(timezone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: timezone, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
      hour: '2-digit', minute: '2-digit', second: '2-digit', timeZoneName: 'longOffset',
    });
    if (formatters.size > 1000) formatters.clear();
    formatters.set(timezone, f);
  }
  return f;
}

/** `[wall time, offset]`: `2026-03-08T03:30:00` and `-04:00` (`+00:00` for UTC itself). */
function wallOf(atMs: number, timezone: string): [string, string] {
  const parts: Record<string, string> = {};
  for (const p of formatter(timezone).formatToParts(new Date(atMs))) parts[p.type] = p.value;
  const offset = (parts['timeZoneName'] ?? 'GMT').replace(/^GMT/, '') || '+00:00';
  return [`${parts['year']}-${parts['month']}-${parts['day']}T${parts['hour']}:${parts['minute']}:${parts['second']}`, offset];
}

/** The local time of `atMs` in `timezone` with its offset, ISO 8601. */
export function localTime(atMs: number, timezone: string): string {
  const [wall, offset] = wallOf(atMs, timezone);
  return wall + offset;
}

/** Offsets change by 30 minutes (Lord Howe Island) or an hour (everywhere else that has DST). */
const DST_SHIFTS_MS = [30 * 60_000, 60 * 60_000];

/** Whether the wall time of `atMs` also names another instant: it lies in the hour a DST change repeats. */
function wallTimeRepeats(atMs: number, timezone: string): boolean {
  const [wall] = wallOf(atMs, timezone);
  return DST_SHIFTS_MS.some((d) => wallOf(atMs - d, timezone)[0] === wall || wallOf(atMs + d, timezone)[0] === wall);
}

/** The first `count` fires strictly after `afterMs`, fewer when the pattern has no more. */
export function previewFires(expression: string, timezone: string, afterMs: number, count: number): PreviewFire[] {
  const fires: PreviewFire[] = [];
  let at = nextOccurrence(expression, timezone, afterMs);
  while (at !== null && fires.length < count) {
    const fire: PreviewFire = { at, local: localTime(at, timezone) };
    if (!matchesAt(expression, timezone, at)) fire.note = 'dst-gap';
    else if (wallTimeRepeats(at, timezone)) fire.note = 'dst-repeat';
    fires.push(fire);
    at = nextOccurrence(expression, timezone, at);
  }
  return fires;
}
