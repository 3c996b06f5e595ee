import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { benchDispatch } from './dispatch.ts';
import { benchDispatchPg } from './dispatch-pg.ts';
import { benchFire } from './fire.ts';
import { benchApi } from './api.ts';
import { benchFanout } from './fanout.ts';
import { benchLlm } from './llm.ts';
import { benchScale } from './scale.ts';
import { printTable, quick, writeResults } from './harness.ts';

/** `npm run bench [-- --quick]`: every benchmark, one table, and bench/results.json (quick: results.quick.json). */
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
const tmp = mkdtempSync(join(tmpdir(), 'sched-bench-'));
const benches: [string, () => Promise<void>][] = [
  ['dispatch', () => benchDispatch(tmp)],
  ['dispatch-pg', () => benchDispatchPg()],
  ['fire', () => benchFire(tmp)],
  ['scale', () => benchScale(tmp)],
  ['api', () => benchApi(tmp)],
  ['fanout', () => benchFanout(tmp)],
  ['llm', () => benchLlm(tmp)],
];
try {
  for (const [name, run] of benches) {
    if (only && !only.includes(name)) continue;
    process.stderr.write(`bench: ${name}…\n`);
    await run();
  }
  printTable();
  // A partial run (--only) prints its rows but leaves results.json to complete runs.
  if (!only) writeResults(join(import.meta.dirname, quick ? 'results.quick.json' : 'results.json'));
} finally {
  rmSync(tmp, { recursive: true, force: true });
}
process.exit(0);
