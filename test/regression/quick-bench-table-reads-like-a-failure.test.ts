import { describe, expect, it } from 'vitest';
import { formatTable, type Result } from '../../bench/harness.ts';

/** Issue 12, first contact: the quick benchmark table inside `npm test` showed `NO` in a column and read like a failure. */
const missed: Result = { name: 'fire p99', value: 12, unit: 'ms', baseline: null, baselineValue: null, ratio: null, target: '< 10 ms', met: false };
const metRow: Result = { ...missed, name: 'dispatch', value: 5, met: true };

describe('the benchmark table', () => {
  it('labels a quick run as information, with no NO in it', () => {
    const text = formatTable([missed, metRow], true).join('\n');
    expect(text).not.toMatch(/\bNO\b/);
    expect(text).toMatch(/^Quick benchmark \(information only/);
    expect(text).toContain('not at quick size');
    expect(text).toContain('target met (info)');
  });

  it('still says a full run missed a target', () => {
    const lines = formatTable([missed, metRow], false);
    expect(lines[0]).toMatch(/^\| benchmark/);
    expect(lines.find((l) => l.includes('fire p99'))).toMatch(/\| no +\|$/);
  });
});
