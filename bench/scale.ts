import { execFileSync } from 'node:child_process';
import { quick, record, round } from './harness.ts';

/**
 * Schedules at scale: N enabled schedules created through the scheduler, memory and idle CPU after,
 * and a fresh process's time to load them all. Baseline: one live croner job per schedule, measured
 * at M and reported per schedule (100,000 of them would take gigabytes).
 */
const N = quick ? 2000 : 100_000;
const M = quick ? 500 : 10_000;
const IDLE_MS = quick ? 500 : 10_000;

function child(...args: string[]): Record<string, number> {
  const out = execFileSync(process.execPath, ['--expose-gc', '--import', 'tsx', new URL('./scale-child.ts', import.meta.url).pathname, ...args], { env: { ...process.env, IDLE_MS: String(IDLE_MS) }, encoding: 'utf8', maxBuffer: 1 << 20 });
  return JSON.parse(out.trim().split('\n').at(-1)!);
}

export async function benchScale(tmp: string): Promise<void> {
  const file = `${tmp}/scale.db`;
  const created = child('create', String(N), file);
  const reloaded = child('reload', file);
  const live = child('croner', String(M));
  const perScheduleKb = (created['rssDeltaMb']! * 1024) / N;
  const perCronerKb = (live['rssDeltaMb']! * 1024) / M;
  const heapPerScheduleKb = (created['heapDeltaMb']! * 1024) / N;
  const heapPerCronerKb = (live['heapDeltaMb']! * 1024) / M;
  record({ name: `scale: create ${N} schedules`, value: round(created['createMs']!), unit: 'ms', baseline: `${M} live croner jobs, scaled to ${N}`, baselineValue: round((live['createMs']! * N) / M), target: null, met: null, lowerIsBetter: true });
  record({ name: `scale: RSS with ${N} schedules`, value: created['rssMb']!, unit: 'MB', baseline: 'same process before creating them', baselineValue: created['rssBeforeMb']!, lowerIsBetter: true, target: N >= 100_000 ? '< 100 MB' : null, met: N >= 100_000 ? created['rssMb']! < 100 : null });
  record({ name: `scale: RSS growth per schedule`, value: round(perScheduleKb, 3), unit: 'KB', baseline: 'live croner job', baselineValue: round(perCronerKb, 2), target: '≤ 1 KB', met: perScheduleKb <= 1, lowerIsBetter: true });
  record({ name: `scale: live heap per schedule (after GC)`, value: round(heapPerScheduleKb, 3), unit: 'KB', baseline: 'live croner job', baselineValue: round(heapPerCronerKb, 2), target: null, met: null, lowerIsBetter: true });
  record({ name: `scale: idle CPU with ${N} schedules`, value: round(created['idleCpuPct']!, 2), unit: '% of a core', baseline: `${M} live croner jobs`, baselineValue: round(live['idleCpuPct']!, 2), target: 'near zero (< 1 %)', met: created['idleCpuPct']! < 1, lowerIsBetter: true });
  record({ name: `scale: reload ${N} schedules in a new process`, value: round(reloaded['reloadMs']!), unit: 'ms', baseline: null, baselineValue: null, target: '< 1000 ms', met: reloaded['reloadMs']! < 1000 && reloaded['scheduled'] === N });
}
