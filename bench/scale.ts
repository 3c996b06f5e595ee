import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { quick, record, round } from './harness.ts';

/**
 * Schedules at scale: N enabled schedules created through the scheduler, memory and idle CPU after,
 * and a fresh process's time to load them all. Baseline: one live croner job per schedule, measured
 * at M and reported per schedule (100,000 of them would take gigabytes).
 */
const N = quick ? 2000 : 100_000;
const M = quick ? 500 : 10_000;
const IDLE_MS = quick ? 500 : 10_000;

/**
 * The child built to one JavaScript file and run by plain node, as `npm start` runs the server: under tsx a process
 * holds ~55 MB more (the loader and what it compiled) before it holds any schedule. Built under dist/ (two folders
 * below the project, like the sources), so its imports of packages resolve from the project's node_modules.
 */
const childFile = fileURLToPath(new URL('../dist/bench/scale-child.mjs', import.meta.url));
function child(...args: string[]): Record<string, number> {
  const out = execFileSync(process.execPath, ['--expose-gc', childFile, ...args], { env: { ...process.env, IDLE_MS: String(IDLE_MS) }, encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

export async function benchScale(tmp: string): Promise<void> {
  await build({ entryPoints: [fileURLToPath(new URL('./scale-child.ts', import.meta.url))], outfile: childFile, bundle: true, packages: 'external', platform: 'node', format: 'esm', target: 'node20', logLevel: 'warning' });
  const file = `${tmp}/scale.db`;
  const created = child('create', String(N), file);
  const reloaded = child('reload', file);
  const live = child('croner', String(M));
  const perScheduleKb = (created['rssDeltaMb']! * 1024) / N;
  const perCronerKb = (live['rssDeltaMb']! * 1024) / M;
  const heapPerScheduleKb = (created['heapDeltaMb']! * 1024) / N;
  const heapPerCronerKb = (live['heapDeltaMb']! * 1024) / M;
  record({ name: `scale: create ${N} schedules`, value: round(created['createMs']!), unit: 'ms', baseline: `${M} live croner jobs, scaled to ${N}`, baselineValue: round((live['createMs']! * N) / M), target: null, met: null, lowerIsBetter: true });
  // A server started on N stored schedules: what a deployed one holds (creating them all in one process also leaves
  // the heap grown by the creation's garbage; shown apart).
  const reloadKb = (reloaded['rssDeltaMb']! * 1024) / N;
  record({ name: `scale: RSS of a server started with ${N} schedules`, value: reloaded['rssMb']!, unit: 'MB', baseline: 'same process before loading them', baselineValue: reloaded['rssBeforeMb']!, lowerIsBetter: true, target: N >= 100_000 ? '≤ 150 MB' : null, met: N >= 100_000 ? reloaded['rssMb']! <= 150 : null });
  record({ name: 'scale: RSS growth per schedule (started with them)', value: round(reloadKb, 3), unit: 'KB', baseline: 'live croner job', baselineValue: round(perCronerKb, 2), target: '≤ 0.6 KB', met: reloadKb <= 0.6, lowerIsBetter: true });
  record({ name: 'scale: live heap per schedule (started with them, after GC)', value: round((reloaded['heapDeltaMb']! * 1024) / N, 3), unit: 'KB', baseline: 'live croner job', baselineValue: round(heapPerCronerKb, 2), target: null, met: null, lowerIsBetter: true });
  record({ name: `scale: RSS after creating ${N} schedules in one process`, value: created['rssMb']!, unit: 'MB', baseline: 'same process before creating them', baselineValue: created['rssBeforeMb']!, lowerIsBetter: true, target: null, met: null, note: `${round(perScheduleKb, 2)} KB a schedule; live heap ${round(heapPerScheduleKb, 3)} KB a schedule` });
  record({ name: `scale: idle CPU with ${N} schedules`, value: round(created['idleCpuPct']!, 2), unit: '% of a core', baseline: `${M} live croner jobs`, baselineValue: round(live['idleCpuPct']!, 2), target: 'near zero (< 1 %)', met: created['idleCpuPct']! < 1, lowerIsBetter: true });
  record({ name: `scale: reload ${N} schedules in a new process`, value: round(reloaded['reloadMs']!), unit: 'ms', baseline: null, baselineValue: null, target: '< 1000 ms', met: reloaded['reloadMs']! < 1000 && reloaded['scheduled'] === N });
}
