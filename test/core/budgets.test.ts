import { describe, expect, it } from 'vitest';
import { isOver, periodOf, totalsOf } from '../../src/core/budgets.ts';
import { DomainError } from '../../src/core/errors.ts';
import type { ScheduleSpec } from '../../src/core/scheduler.ts';
import type { Budget } from '../../src/core/store.ts';
import { at, createHarness, ON_POSTGRES, tempDir, type Harness } from '../harness.ts';
import { join } from 'node:path';

/** CONTRACT §9, budgets: crossing pauses the job, manual runs are refused, the next period resumes it — once, durably. */
const hourly = (jobId: string): ScheduleSpec => ({ jobId, expression: '0 * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true });
const PRICES = { m: { inputPerMTok: 1_000_000, outputPerMTok: 0 } }; // one dollar per input token: easy sums
const DAILY: Budget = { period: 'day', maxCostUsd: 3 };

/** A run of `agentId` now that reports `dollars` of input tokens; resolves with its agent:completed. */
async function spend(h: Harness, agentId: string, dollars: number) {
  h.script(async (ctx) => ctx.reportUsage({ model: 'm', inputTokens: dollars, outputTokens: 0 }));
  return h.runUntil((await h.repo.getAgent(agentId))!, 'agent:completed');
}

const refusal = (p: Promise<unknown>) => p.then(() => 'accepted', (e: unknown) => (e instanceof DomainError ? `${e.code}: ${e.message}` : String(e)));

describe('budget periods', () => {
  it('are UTC days and months, and the limit counts as reached at its figure', () => {
    expect(periodOf('day', at('2026-03-31T23:59:59.999Z'))).toEqual({ start: at('2026-03-31T00:00:00Z'), end: at('2026-04-01T00:00:00Z') });
    expect(periodOf('month', at('2026-12-15T10:00:00Z'))).toEqual({ start: at('2026-12-01T00:00:00Z'), end: at('2027-01-01T00:00:00Z') });
    expect(periodOf('month', at('2028-02-29T00:00:00Z'))).toEqual({ start: at('2028-02-01T00:00:00Z'), end: at('2028-03-01T00:00:00Z') });
    const t = totalsOf([{ day: 1, runs: 1, inputTokens: 60, outputTokens: 40, costUsd: 0.5 }]);
    expect(isOver({ period: 'day', maxTokens: 100 }, t)).toBe(true);
    expect(isOver({ period: 'day', maxTokens: 101 }, t)).toBe(false);
    expect(isOver({ period: 'day', maxCostUsd: 0.5 }, t)).toBe(true);
    expect(isOver({ period: 'day', maxCostUsd: 0.51, maxTokens: 1000 }, t)).toBe(false);
  });
});

describe('budgets', () => {
  it('pause the job once a run brings the period to the limit: budget-exceeded then paused, pauseReason "budget", manual runs refused with 409', async () => {
    await using h = await createHarness({ prices: PRICES, start: at('2026-01-01T10:00:00Z') });
    const agent = await h.addAgent('a', { budget: DAILY });
    await h.scheduler.setSchedule(agent, hourly('a'));
    await spend(h, 'a', 2);
    expect(h.scheduler.schedule('a')!.paused).toBe(false);
    const exceeded = h.waitFor((e) => e.type === 'agent:budget-exceeded');
    const paused = h.waitFor((e) => e.type === 'agent:paused');
    await spend(h, 'a', 1);
    const e = await exceeded;
    expect(e.data).toEqual({ agentId: 'a', jobId: 'a', period: 'day', costUsd: 3, tokens: 3, resumesAt: '2026-01-02T00:00:00.000Z', timestamp: '2026-01-01T10:00:00.000Z' });
    const p = await paused;
    expect(p.id).toBeGreaterThan(e.id);
    const s = h.scheduler.schedule('a')!;
    expect([s.paused, s.pauseReason, s.resumeAt]).toEqual([true, 'budget', at('2026-01-02T00:00:00Z')]);
    expect(h.scheduler.pausedJobs()).toEqual([{ agentId: 'a', jobId: 'a', pauseReason: 'budget', pauseNote: null, pausedUntil: new Date(s.resumeAt!).toISOString() }]);
    expect((await h.repo.getSchedule('a'))!.pauseReason).toBe('budget');
    expect((await h.repo.getAgent('a'))!.status).toBe('PAUSED');
    expect(await refusal(h.scheduler.runNow(agent))).toBe('CONFLICT: Agent a is over its budget until 2026-01-02T00:00:00.000Z');
    // Paused: the hourly fires do not run.
    h.clock.advance(3 * 3_600_000);
    await h.scheduler.settled();
    expect((await h.repo.listRuns('a', 10)).length).toBe(2);
  });

  it('resume by themselves at the next period (agent:resumed, next fire planned), and a manual resume ends a budget pause early', async () => {
    await using h = await createHarness({ prices: PRICES, start: at('2026-01-31T22:30:00Z') });
    const agent = await h.addAgent('a', { budget: { period: 'month', maxTokens: 5 } });
    await h.scheduler.setSchedule(agent, hourly('a'));
    const paused = h.waitFor((e) => e.type === 'agent:paused');
    await spend(h, 'a', 5);
    await paused;
    expect(h.scheduler.schedule('a')!.resumeAt).toBe(at('2026-02-01T00:00:00Z'));
    const resumed = h.waitFor((e) => e.type === 'agent:resumed');
    h.clock.advance(89 * 60_000); // 23:59
    expect(h.scheduler.schedule('a')!.paused).toBe(true);
    h.clock.advance(60_000); // 00:00, the next month
    const r = await resumed;
    expect(r.data).toEqual({ agentId: 'a', jobId: 'a', status: 'resumed', nextRunAt: '2026-02-01T01:00:00.000Z', timestamp: '2026-02-01T00:00:00.000Z' });
    const s = h.scheduler.schedule('a')!;
    expect([s.paused, s.pauseReason, s.resumeAt]).toEqual([false, null, null]);
    await h.repo.flush();
    expect((await h.repo.getSchedule('a'))!.paused).toBe(false);
    expect(await refusal(h.scheduler.runNow(agent))).toBe('accepted');
  });

  it('let a manual resume end a budget pause before its period does; the timer then does nothing', async () => {
    await using h = await createHarness({ prices: PRICES, start: at('2026-01-01T10:00:00Z') });
    const agent = await h.addAgent('a', { budget: DAILY });
    await h.scheduler.setSchedule(agent, hourly('a'));
    await spend(h, 'a', 3);
    await h.eventually((e) => e.type === 'agent:paused');
    await h.scheduler.resume('a', 'a');
    expect(h.scheduler.schedule('a')!.pauseReason).toBeNull();
    h.clock.set(at('2026-01-02T00:00:30Z'));
    await h.scheduler.settled();
    await h.repo.flush();
    expect(h.events.filter((e) => e.type === 'agent:resumed').length).toBe(1);
  });

  it('an agent without a schedule gets the event and its manual runs are refused until the period ends', async () => {
    await using h = await createHarness({ prices: PRICES, start: at('2026-01-01T10:00:00Z') });
    const agent = await h.addAgent('a', { budget: DAILY });
    const exceeded = h.waitFor((e) => e.type === 'agent:budget-exceeded');
    await spend(h, 'a', 4);
    expect((await exceeded).data).toMatchObject({ jobId: 'a', costUsd: 4 });
    expect(h.events.some((e) => e.type === 'agent:paused')).toBe(false);
    expect(await refusal(h.scheduler.runNow(agent))).toMatch(/^CONFLICT: /);
    h.clock.set(at('2026-01-02T00:00:00Z'));
    expect(await refusal(h.scheduler.runNow(agent))).toBe('accepted');
  });

  it.skipIf(ON_POSTGRES)('survive a restart: a pause whose period ended while no process ran resumes at start (a SQLite file, so skipped on the PostgreSQL pass)', async () => {
    using dir = tempDir();
    const dbUrl = `file:${join(dir.path, 'budget.db')}`;
    {
      await using h = await createHarness({ prices: PRICES, dbUrl, start: at('2026-01-01T10:00:00Z') });
      const agent = await h.addAgent('a', { budget: DAILY });
      await h.scheduler.setSchedule(agent, hourly('a'));
      await spend(h, 'a', 3);
      await h.eventually((e) => e.type === 'agent:paused');
    }
    {
      // Restarted before the period ends: still paused, then resumed at midnight by the timer planned at start.
      await using h = await createHarness({ prices: PRICES, dbUrl, start: at('2026-01-01T20:00:00Z') });
      expect(h.scheduler.schedule('a')!.pauseReason).toBe('budget');
      expect(await refusal(h.scheduler.runNow((await h.repo.getAgent('a'))!))).toMatch(/^CONFLICT: /);
      const resumed = h.waitFor((e) => e.type === 'agent:resumed');
      h.clock.set(at('2026-01-02T00:00:00Z'));
      await resumed;
      // Spent again on the second day, then the process is away past its end.
      await spend(h, 'a', 3);
      await h.eventually((e) => e.type === 'agent:paused' && e.data.timestamp.startsWith('2026-01-02'));
    }
    {
      await using h = await createHarness({ prices: PRICES, dbUrl, start: at('2026-01-05T08:00:00Z') });
      const resumed = h.eventually((e) => e.type === 'agent:resumed');
      h.clock.advance(0); // the resume's timer, armed at start for a time already past, is due now
      await resumed;
      expect(h.scheduler.schedule('a')!.paused).toBe(false);
      expect(h.scheduler.schedule('a')!.nextRunAt).toBe(at('2026-01-05T09:00:00Z'));
    }
  });

  it('on two instances sharing a database, the period end resumes the job once', async () => {
    // The memory store, or PostgreSQL on the second pass: either way the conditional update decides who resumes.
    const a = await createHarness({ shared: true, instanceId: 'inst_a', prices: PRICES, start: at('2026-01-01T10:00:00Z') });
    const repo = a.repo;
    const b = await createHarness({ shared: true, instanceId: 'inst_b', repo, prices: PRICES, clock: a.clock });
    try {
      const agent = await a.addAgent('a', { budget: DAILY });
      await a.scheduler.setSchedule(agent, hourly('a'));
      await b.scheduler.reloadSchedule('a');
      await spend(a, 'a', 3);
      await a.eventually((e) => e.type === 'agent:paused');
      await b.scheduler.reloadSchedule('a'); // what the `schedules` signal makes it do
      expect(b.scheduler.schedule('a')!.pauseReason).toBe('budget');
      const resumedA = a.waitFor((e) => e.type === 'agent:resumed');
      const resumedB = b.waitFor((e) => e.type === 'agent:resumed');
      a.clock.set(at('2026-01-02T00:00:00Z'));
      await Promise.all([resumedA, resumedB]);
      await a.scheduler.settled();
      await b.scheduler.settled();
      await repo.flush();
      // Both instances see every committed event: one resume, seen once by each.
      expect(a.events.filter((e) => e.type === 'agent:resumed').length).toBe(1);
      expect(b.events.filter((e) => e.type === 'agent:resumed').length).toBe(1);
      expect((await repo.getSchedule('a'))!.paused).toBe(false);
    } finally {
      await b[Symbol.asyncDispose]();
      await a[Symbol.asyncDispose](); // it owns the store
    }
  });
});
