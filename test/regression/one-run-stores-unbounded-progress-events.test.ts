import { describe, expect, it } from 'vitest';
import { MAX_PROGRESS_EVENTS_PER_RUN, PROGRESS_COALESCE_MS } from '../../src/core/limits.ts';
import { createHarness, deferred } from '../harness.ts';

/**
 * Issue 12 §4: one run could store 10,000+ progress events. Past MAX_PROGRESS_EVENTS_PER_RUN its updates are
 * merged (latest figures, deltas joined) and sent at most once per PROGRESS_COALESCE_MS and before the run ends,
 * so the stored events stay bounded and the deltas still join up to the whole text.
 */
describe('a chatty run', () => {
  it('stores a bounded number of progress events, merged past the cap, with nothing of the text lost', async () => {
    await using h = await createHarness();
    const agent = await h.addAgent('a');
    const paused = deferred();
    const go = deferred();
    const n = 10_000;
    let text = '';
    h.script(async (ctx) => {
      for (let i = 0; i < n; i++) {
        ctx.progress({ progress: (100 * i) / n, message: `step ${i}`, delta: `${i},` });
        text += `${i},`;
        if (i === MAX_PROGRESS_EVENTS_PER_RUN + 500) {
          paused.resolve();
          await go.promise;
        }
      }
      return text;
    });
    const completed = h.waitFor((e) => e.type === 'agent:completed');
    void h.scheduler.runNow(agent);
    await paused.promise;
    const progressEvents = () => h.events.filter((e) => e.type === 'agent:progress');
    await h.repo.flush();
    expect(progressEvents().length).toBe(MAX_PROGRESS_EVENTS_PER_RUN);
    // The held-back updates go out once their interval has passed, merged into one event.
    const merged = h.waitFor((e) => e.type === 'agent:progress');
    h.clock.advance(PROGRESS_COALESCE_MS);
    const first = await merged;
    expect(first.type === 'agent:progress' && first.data.message).toBe(`step ${MAX_PROGRESS_EVENTS_PER_RUN + 500}`);
    go.resolve();
    await completed;
    await h.repo.flush();
    const all = progressEvents();
    expect(all.length).toBe(MAX_PROGRESS_EVENTS_PER_RUN + 2); // the cap, one merged by its timer, one sent before the end
    const last = all[all.length - 1]!;
    expect(last.type === 'agent:progress' && [last.data.message, last.data.progress]).toEqual([`step ${n - 1}`, (100 * (n - 1)) / n]);
    const joined = all.map((e) => (e.type === 'agent:progress' ? (e.data.delta ?? '') : '')).join('');
    expect(joined).toBe(text);
    const stored = await h.repo.eventsAfter(0, 'a', 100_000);
    expect(stored.filter((e) => e.type === 'agent:progress').length).toBe(MAX_PROGRESS_EVENTS_PER_RUN + 2);
  });
});
