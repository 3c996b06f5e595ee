/** Durations written as a whole number and a unit (`90s`, `30m`, `1h`, `7d`): the catch-up window's format. */

const UNITS = [
  ['d', 86_400_000],
  ['h', 3_600_000],
  ['m', 60_000],
  ['s', 1000],
  ['ms', 1],
] as const;

/** `"90m"` → 5400000; NaN for anything that is not a whole number and one of ms, s, m, h, d. */
export function parseDuration(text: string): number {
  const m = /^([0-9]+)(ms|s|m|h|d)$/.exec(text);
  if (!m) return Number.NaN;
  const unit = UNITS.find(([u]) => u === m[2]);
  return Number(m[1]) * (unit ? unit[1] : Number.NaN);
}

/** The same duration in the largest unit that divides it (5400000 → `"90m"`, 86400000 → `"1d"`). */
export function formatDuration(ms: number): string {
  for (const [unit, size] of UNITS) if (ms >= size && ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}
