import { describe, expect, it } from 'vitest';
import { createHarness, gate } from '../harness.ts';

describe('skipped runs never triggered the history trim', () => {
  it('an agent whose manual runs are all skipped (busy) keeps at most twice its history limit', async () => {
    await using h = await createHarness({ runHistoryLimit: 5 });
    const agent = await h.addAgent('busy');
    const g = gate();
    h.script(g.step);
    await h.scheduler.runNow(agent);
    await g.started;
    // 200 runs asked for while one is going: every one is recorded skipped, and none finished a run.
    for (let i = 0; i < 200; i++) await h.scheduler.runNow(agent);
    await h.repo.flush();
    const kept = await h.runs('busy');
    expect(kept.filter((r) => r.status === 'skipped').length).toBeGreaterThan(0);
    expect(kept.length).toBeLessThanOrEqual(10); // was 201
    g.release();
  });
});
