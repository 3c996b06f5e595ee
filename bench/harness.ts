import { cpus, totalmem } from 'node:os';
import { writeFileSync } from 'node:fs';

/** Shared pieces of `npm run bench`: sizes, one result row per figure, the table and results.json. */
export const quick = process.argv.includes('--quick');

export interface Result {
  name: string;
  value: number;
  unit: string;
  baseline: string | null;
  baselineValue: number | null;
  /** value / baselineValue (for "higher is better" figures), or baselineValue / value for "lower is better". */
  ratio: number | null;
  target: string | null;
  met: boolean | null;
  note?: string;
}

export const results: Result[] = [];

export function record(r: Omit<Result, 'ratio'> & { lowerIsBetter?: boolean }): void {
  const { lowerIsBetter, ...rest } = r;
  const ratio = r.baselineValue === null || r.baselineValue === 0 || r.value === 0 ? null : lowerIsBetter ? r.baselineValue / r.value : r.value / r.baselineValue;
  results.push({ ...rest, ratio: ratio === null ? null : Math.round(ratio * 1000) / 1000 });
}

export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return NaN;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1))]!;
}

export const round = (n: number, digits = 1) => Math.round(n * 10 ** digits) / 10 ** digits;

/**
 * The table as lines. A quick run (`npm run bench -- --quick`, inside `npm test`) uses reduced sizes, so its figures
 * are for information: it says so above the table, and a target it misses reads "not at quick size", not "NO" —
 * nothing in it fails the test run. The full run judges the targets ("no" where one is missed).
 */
export function formatTable(rows: readonly Result[], isQuick: boolean): string[] {
  const cells = rows.map((r) => [
    r.name,
    `${fmt(r.value)} ${r.unit}`,
    r.baseline ? `${fmt(r.baselineValue)} (${r.baseline})` : '-',
    r.ratio === null ? '-' : `${r.ratio}×`,
    r.target ?? '-',
    r.met === null ? '-' : r.met ? 'yes' : isQuick ? 'not at quick size' : 'no',
  ]);
  const head = ['benchmark', 'value', 'baseline', 'ratio', 'target', isQuick ? 'target met (info)' : 'target met'];
  const widths = head.map((h, i) => Math.max(h.length, ...cells.map((row) => row[i]!.length)));
  const line = (c: string[]) => `| ${c.map((x, i) => x.padEnd(widths[i]!)).join(' | ')} |`;
  const intro = isQuick
    ? ['Quick benchmark (information only: reduced sizes, nothing here fails the tests; `npm run bench` judges the targets):']
    : [];
  return [...intro, line(head), `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`, ...cells.map(line)];
}

export function printTable(): void {
  for (const l of formatTable(results, quick)) console.log(l);
}

function fmt(n: number | null): string {
  if (n === null) return '-';
  if (Math.abs(n) >= 1000) return Math.round(n).toLocaleString('en-US');
  return String(round(n, 2));
}

export function writeResults(path: string): void {
  const machine = `${cpus().length} cores (${cpus()[0]?.model ?? 'unknown'}), ${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
  writeFileSync(path, `${JSON.stringify({ machine, at: new Date().toISOString(), quick, results }, null, 2)}\n`);
}
