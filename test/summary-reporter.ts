import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints one plain closing line, `vitest: N passed, N failed, N skipped`, so that CI logs that do not
 * know vitest's own summary still read how many tests ran.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    const total = { passed: 0, failed: 0, skipped: 0 };
    // Per pass (vitest.config.ts: `sqlite`, then `postgres`), so a log shows the second pass ran.
    const byProject = new Map<string, typeof total>();
    // Listed in the order the passes run (their groupOrder), not the order their files happened to finish.
    const groupOrder = new Map(testModules.map((m) => [m.project.name, m.project.config.sequence.groupOrder ?? 0]));
    const order = (name: string) => groupOrder.get(name) ?? 0;
    const add = (project: string, outcome: keyof typeof total) => {
      const counts = byProject.get(project) ?? { passed: 0, failed: 0, skipped: 0 };
      byProject.set(project, counts);
      counts[outcome]++;
      total[outcome]++;
    };
    for (const m of testModules) {
      if (m.state() === 'failed' && [...m.children.allTests()].length === 0) add(m.project.name, 'failed');
      for (const t of m.children.allTests()) {
        const state = t.result().state;
        add(m.project.name, state === 'passed' ? 'passed' : state === 'failed' ? 'failed' : 'skipped');
      }
    }
    if (byProject.size > 1) {
      const passes = [...byProject].sort(([a], [b]) => order(a) - order(b)).map(([name, c]) => `${name || 'default'} ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped`);
      process.stdout.write(`\nvitest passes: ${passes.join('; ')}`);
    }
    // The last line, and the one CI reads: both passes counted.
    process.stdout.write(`\nvitest: ${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped\n`);
  }
}
