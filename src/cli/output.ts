/**
 * How the CLI writes: with `--json` the REST `data` object (one JSON document; NDJSON for `watch`),
 * otherwise short readable lines and tables. Nothing here knows a command.
 */

/** Where output goes: the process's streams in `main.ts`, buffers in tests. */
export interface CliStreams {
  stdout: NodeJS.WritableStream & { isTTY?: boolean; columns?: number };
  stderr: NodeJS.WritableStream;
}

export interface Printer {
  json: boolean;
  /** One line on stdout. */
  line(text?: string): void;
  /** With --json: `data` as JSON; otherwise `human()`'s lines. */
  result<T>(data: T, human: (data: T) => string | string[]): void;
}

export function createPrinter(streams: CliStreams, json: boolean): Printer {
  const line = (text = '') => void streams.stdout.write(`${text}\n`);
  return {
    json,
    line,
    result(data, human) {
      if (json) return line(JSON.stringify(data, null, 2));
      const out = human(data);
      for (const l of Array.isArray(out) ? out : [out]) line(l);
    },
  };
}

/** A cell as text: null and undefined as `-`, objects as compact JSON. */
export function cell(v: unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

/** Columns padded to their widest cell; the last column is not padded (it may be long, e.g. an error). */
export function table(headers: string[], rows: unknown[][]): string[] {
  if (rows.length === 0) return ['(none)'];
  const text = rows.map((r) => r.map(cell));
  const widths = headers.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i] ?? 0))).join('  ').trimEnd();
  return [fmt(headers), ...text.map(fmt)];
}

/** `key: value` lines, keys aligned; nested objects are flattened one level (`taskDetails.jobId`). */
export function fields(record: object, prefix = ''): string[] {
  const entries: [string, unknown][] = [];
  for (const [k, v] of Object.entries(record)) {
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && prefix === '') {
      for (const [k2, v2] of Object.entries(v)) entries.push([`${k}.${k2}`, v2]);
    } else entries.push([prefix + k, v]);
  }
  const width = Math.max(0, ...entries.map(([k]) => k.length));
  return entries.map(([k, v]) => `${`${k}:`.padEnd(width + 1)} ${cell(v)}`);
}

/** A duration for people: 850 ms, 4.2 s, 3 min 5 s. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '-';
  if (ms < 1000) return `${Math.round(ms)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${Math.floor(ms / 60_000)} min ${Math.round((ms % 60_000) / 1000)} s`;
}
