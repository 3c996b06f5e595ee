import { describe, expect, it } from 'vitest';
import type { ScheduleSpec } from '../../src/core/scheduler.ts';
import type { AgentRecord } from '../../src/core/store.ts';
import { createHarness, failWith, gate } from '../harness.ts';

const everySecond = (jobId: string, extra: Partial<ScheduleSpec> = {}): ScheduleSpec => ({ jobId, expression: '* * * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true, ...extra });
/** Schedules `agent` hourly and runs it once now, its first attempt failing; resolves after the failure. */
async function failFirstRun(h: Awaited<ReturnType<typeof createHarness>>, agent: AgentRecord, message: string): Promise<void> {
  h.script(failWith(message));
  await h.scheduler.setSchedule(agent, hourly(agent.id));
  await h.runUntil(agent, 'agent:failed');
}

const hourly = (jobId: string, extra: Partial<ScheduleSpec> = {}): ScheduleSpec => ({ jobId, expression: '0 * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true, ...extra });

describe('scheduler', () => {
  describe('runs', () => {
    it('fires on schedule: queued → running → completed, with started, progress and completed events', async () => {
      await using h = await createHarness();
      const agent = await h.addAgent('a');
      h.script(async (ctx) => ctx.progress({ progress: 50, message: 'half', currentStep: 2, totalSteps: 4 }));
      await h.scheduler.setSchedule(agent, everySecond('a'));
      const done = h.waitFor((e) => e.type === 'agent:completed');
      h.clock.advance(1000);
      await done;
      const [run] = await h.runs('a');
      expect(run).toMatchObject({ trigger: 'schedule', attempt: 1, status: 'completed', progress: 50, error: null, scheduledAt: h.clock.now() });
      expect(h.events.filter((e) => e.agentId === 'a').map((e) => e.type)).toEqual(['agent:started', 'agent:progress', 'agent:completed']);
      const progress = h.events.find((e) => e.type === 'agent:progress')!;
      expect(progress.data).toMatchObject({ agentId: 'a', jobId: 'a', progress: 50, message: 'half', currentStep: '2', totalSteps: 4 });
      const ids = h.events.map((e) => e.id);
      expect(ids).toEqual([...ids].sort((x, y) => x - y));
      expect(new Set(ids).size).toBe(ids.length);
    });

    it('keeps running when an event listener throws', async () => {
      await using h = await createHarness();
      const agent = await h.addAgent('a');
      h.scheduler.events.on(() => {
        throw new Error('a broken subscriber');
      });
      expect((await h.runUntil(agent, 'agent:completed')).agentId).toBe('a');
      expect((await h.runs('a'))[0]).toMatchObject({ status: 'completed' });
    });

    it('skips and records a fire that comes while the previous run is still going', async () => {
      await using h = await createHarness();
      const agent = await h.addAgent('a');
      const g = gate();
      h.script(g.step);
      await h.scheduler.setSchedule(agent, everySecond('a'));
      h.clock.advance(1000);
      await g.started;
      h.clock.advance(1000); // fires again while the first run holds on
      h.clock.advance(1000);
      g.release();
      await h.waitFor((e) => e.type === 'agent:completed');
      const runs = await h.runs('a');
      expect(runs.map((r) => r.status).sort()).toEqual(['completed', 'skipped', 'skipped']);
      expect(runs.find((r) => r.status === 'skipped')!.error).toMatch(/still in progress/);
      expect(h.calls).toHaveLength(1);
    });

    it('runs a manual run now through the queue, and skips one while a run is going', async () => {
      await using h = await createHarness();
      const agent = await h.addAgent('a');
      const g = gate();
      h.script(g.step);
      const first = await h.scheduler.runNow(agent);
      await g.started;
      const second = await h.scheduler.runNow(agent);
      g.release();
      await h.waitFor((e) => e.type === 'agent:completed');
      const runs = await h.runs('a');
      expect(runs.find((r) => r.id === first.id)).toMatchObject({ trigger: 'manual', status: 'completed' });
      expect(runs.find((r) => r.id === second.id)).toMatchObject({ trigger: 'manual', status: 'skipped' });
    });

    it('trims run history to the configured number per agent', async () => {
      await using h = await createHarness({ runHistoryLimit: 10 });
      const agent = await h.addAgent('a');
      for (let i = 0; i < 70; i++) {
        await h.runUntil(agent, 'agent:completed');
      }
      expect((await h.runs('a')).length).toBeLessThanOrEqual(10 + 64);
      expect((await h.runs('a')).length).toBeLessThan(70);
    });
  });

  describe('retries', () => {
    it('retries after 1 s, 2 s, 4 s, then sets ERROR, unschedules and never runs again', async () => {
      await using h = await createHarness();
      const agent = await h.addAgent('a');
      h.script(failWith('boom 1'), failWith('boom 2'), failWith('boom 3'), failWith('boom 4'));
      await h.scheduler.setSchedule(agent, hourly('a'));
      h.clock.set(Date.parse('2026-01-01T01:00:00Z'));
      const delays: number[] = [];
      for (let attempt = 1; attempt <= 3; attempt++) {
        const failed = await h.waitFor((e) => e.type === 'agent:failed');
        expect(failed.data).toMatchObject({ attempt, willRetry: true, error: `boom ${attempt}` });
        await h.repo.flush();
        const stored = (await h.repo.getAgent('a'))!;
        expect(stored).toMatchObject({ retryCount: attempt, lastError: `boom ${attempt}`, status: 'IDLE' });
        const nextRetryAt = Date.parse((failed.data as { nextRetryAt: string }).nextRetryAt);
        expect(stored.backoffUntil).toBe(nextRetryAt);
        delays.push(nextRetryAt - h.clock.now());
        h.clock.advance(nextRetryAt - h.clock.now() - 1);
        expect(h.calls).toHaveLength(attempt); // not a millisecond early
        h.clock.advance(1);
      }
      expect(delays).toEqual([1000, 2000, 4000]);
      const last = await h.waitFor((e) => e.type === 'agent:failed');
      expect(last.data).toMatchObject({ attempt: 4, willRetry: false, nextRetryAt: null, error: 'boom 4' });
      await h.repo.flush();
      expect(await h.repo.getAgent('a')).toMatchObject({ status: 'ERROR', lastError: 'boom 4' });
      expect(h.scheduler.schedule('a')).toMatchObject({ enabled: false, nextRunAt: null });
      expect(await h.repo.getSchedule('a')).toMatchObject({ enabled: false, nextRunAt: null });
      expect(h.scheduler.stats().scheduledTasksCount).toBe(0);
      const runsBefore = h.inserted.length;
      h.clock.advance(7 * 24 * 3_600_000);
      await h.repo.flush();
      expect(h.inserted.length).toBe(runsBefore);
      expect(h.calls).toHaveLength(4);
      expect((await h.runs('a')).map((r) => [r.trigger, r.attempt, r.status])).toEqual([
        ['retry', 4, 'failed'], ['retry', 3, 'failed'], ['retry', 2, 'failed'], ['schedule', 1, 'failed'],
      ]);
    });

    it("uses the agent's maxRetries over the default", async () => {
      await using h = await createHarness({ maxRetries: 3 });
      const agent = await h.addAgent('a', { maxRetries: 0 });
      h.script(failWith('once'));
      const failing = h.waitFor((e) => e.type === 'agent:failed');
      await h.scheduler.runNow(agent);
      const failed = await failing;
      expect(failed.data).toMatchObject({ willRetry: false });
      await h.repo.flush();
      expect((await h.repo.getAgent('a'))!.status).toBe('ERROR');
    });

    it('resets retryCount on success', async () => {
      await using h = await createHarness();
      await failFirstRun(h, await h.addAgent('a'), 'flaky');
      await h.repo.flush();
      expect((await h.repo.getAgent('a'))!.retryCount).toBe(1);
      const ok = h.waitFor((e) => e.type === 'agent:completed');
      h.clock.advance(1000);
      await ok;
      await h.repo.flush();
      expect(await h.repo.getAgent('a')).toMatchObject({ retryCount: 0, backoffUntil: null, lastError: null, status: 'IDLE' });
    });
  });

  describe('agent updates', () => {
    it('updateAgent merges the whole patch into the copy runs use, and stores it', async () => {
      await using h = await createHarness({ timeoutMs: 60_000 });
      const agent = await h.addAgent('a', { config: { v: 1 } });
      await h.runUntil(agent, 'agent:completed'); // the scheduler now holds its own copy of the agent
      await h.scheduler.updateAgent('a', { name: 'renamed', config: { v: 2 }, description: 'd', timeoutMs: 100, maxRetries: 0, updatedAt: h.clock.now() });
      expect(await h.repo.getAgent('a')).toMatchObject({ name: 'renamed', config: { v: 2 }, description: 'd', timeoutMs: 100, maxRetries: 0 });
      await h.holdRun(agent);
      expect(h.calls[1]!.config).toEqual({ v: 2 });
      const failed = h.waitFor((e) => e.type === 'agent:failed');
      h.clock.advance(100); // the new timeoutMs applies, and the new maxRetries: no retry
      expect((await failed).data).toMatchObject({ error: 'timed out after 100 ms', willRetry: false });
    });
  });

  describe('timeouts and cancel', () => {
    it('aborts a run after its timeout, fails it and retries it', async () => {
      await using h = await createHarness({ timeoutMs: 5000 });
      const agent = await h.addAgent('a');
      await h.holdRun(agent);
      h.clock.advance(4999);
      expect(h.calls[0]!.signal.aborted).toBe(false);
      const failed = h.waitFor((e) => e.type === 'agent:failed');
      h.clock.advance(1);
      expect((await failed).data).toMatchObject({ error: 'timed out after 5000 ms', willRetry: true });
      expect(h.calls[0]!.signal.aborted).toBe(true);
    });

    it("frees the slot at the timeout even when the handler ignores its signal; the agent's timeoutMs wins", async () => {
      await using h = await createHarness({ maxConcurrent: 1, timeoutMs: 60_000 });
      const stubborn = await h.addAgent('stubborn', { timeoutMs: 100, maxRetries: 0 });
      const other = await h.addAgent('other');
      const { gate: g } = await h.holdRun(stubborn, false); // never looks at ctx.signal
      await h.scheduler.runNow(other);
      expect(h.scheduler.stats()).toMatchObject({ runningAgentsCount: 1, queuedTasksCount: 1 });
      const otherDone = h.waitFor((e) => e.type === 'agent:completed' && e.agentId === 'other');
      h.clock.advance(100);
      await otherDone;
      expect((await h.runs('stubborn'))[0]).toMatchObject({ status: 'failed', error: 'timed out after 100 ms' });
      g.release(); // finishing late changes nothing
      await h.repo.flush();
      expect((await h.runs('stubborn'))[0]).toMatchObject({ status: 'failed' });
    });

    it('cancels a running run: its signal fires, status cancelled, no retry', async () => {
      await using h = await createHarness();
      const agent = await h.addAgent('a');
      const { run } = await h.holdRun(agent);
      expect(await h.scheduler.cancel(run.id)).toBe(true);
      expect(h.calls[0]!.signal.aborted).toBe(true);
      const [stored] = await h.runs('a');
      expect(stored).toMatchObject({ id: run.id, status: 'cancelled' });
      h.clock.advance(3_600_000);
      await h.repo.flush();
      expect(h.inserted).toHaveLength(1);
      expect(await h.scheduler.cancel(run.id)).toBe(false);
      expect(h.events.map((e) => e.type)).toContain('agent:cancelled');
    });

    it('cancels a queued run before it starts', async () => {
      await using h = await createHarness({ maxConcurrent: 1 });
      const a = await h.addAgent('a');
      const b = await h.addAgent('b');
      const { gate: g } = await h.holdRun(a);
      const queued = await h.scheduler.runNow(b);
      expect(await h.scheduler.cancel(queued.id)).toBe(true);
      g.release();
      await h.waitFor((e) => e.type === 'agent:completed' && e.agentId === 'a');
      expect(h.calls.map((c) => c.agentId)).toEqual(['a']);
      expect((await h.runs('b'))[0]).toMatchObject({ status: 'cancelled', startedAt: null });
    });
  });

  describe('pause and resume', () => {
    it('refuses to pause while running (409) and answers 404 for a wrong jobId', async () => {
      await using h = await createHarness();
      const agent = await h.addAgent('a');
      await h.scheduler.setSchedule(agent, hourly('job-1'));
      await expect(h.scheduler.pause('a', 'wrong')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(h.scheduler.resume('a', 'wrong')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      await expect(h.scheduler.pause('nobody', 'job-1')).rejects.toMatchObject({ code: 'NOT_FOUND' });
      const { gate: g } = await h.holdRun(agent);
      await expect(h.scheduler.pause('a', 'job-1')).rejects.toMatchObject({ code: 'CONFLICT', message: expect.stringMatching(/while it is running/) });
      g.release();
      await h.waitFor((e) => e.type === 'agent:completed');
      await h.scheduler.pause('a', 'job-1');
    });

    it('never fires a paused job; resume answers 400 when not paused and picks the next occurrence after now', async () => {
      await using h = await createHarness();
      const agent = await h.addAgent('a');
      await h.scheduler.setSchedule(agent, hourly('a'));
      await expect(h.scheduler.resume('a', 'a')).rejects.toMatchObject({ code: 'BAD_REQUEST', message: 'Job a is not paused' });
      await h.scheduler.pause('a', 'a');
      await h.scheduler.pause('a', 'a'); // pausing twice is harmless
      expect(h.scheduler.stats()).toMatchObject({ pausedJobsCount: 1, scheduledTasksCount: 1 });
      expect(h.scheduler.pausedJobs()).toEqual([{ agentId: 'a', jobId: 'a', pauseReason: 'manual', pauseNote: null, pausedUntil: null }]);
      await h.repo.flush();
      expect((await h.repo.getAgent('a'))!.status).toBe('PAUSED');
      h.clock.advance(5 * 3_600_000 + 30 * 60_000); // 05:30, five fires missed while paused
      await h.repo.flush();
      expect(h.inserted).toHaveLength(0);
      const next = await h.scheduler.resume('a', 'a');
      expect(new Date(next!).toISOString()).toBe('2026-01-01T06:00:00.000Z');
      await h.repo.flush();
      expect((await h.repo.getAgent('a'))!.status).toBe('IDLE');
      expect(h.events.filter((e) => e.agentId === 'a').map((e) => e.type)).toEqual(['agent:paused', 'agent:resumed']);
      const done = h.waitFor((e) => e.type === 'agent:completed');
      h.clock.advance(30 * 60_000);
      await done;
      expect(h.inserted.map((r) => new Date(r.scheduledAt).toISOString())).toEqual(['2026-01-01T06:00:00.000Z']);
    });

    it('a schedule removed and set again never fires at the slot planned for the old one', async () => {
      await using h = await createHarness();
      const agent = await h.addAgent('a');
      await h.scheduler.setSchedule(agent, hourly('a', { expression: '30 * * * *' })); // 00:30 planned
      await h.scheduler.removeSchedule('a');
      await h.scheduler.setSchedule(agent, hourly('a')); // next fire 01:00
      h.clock.set(Date.parse('2026-01-01T00:45:00Z'));
      expect(h.inserted).toHaveLength(0);
      const done = h.waitFor((e) => e.type === 'agent:completed');
      h.clock.set(Date.parse('2026-01-01T01:00:00Z'));
      await done;
      expect(h.inserted.map((r) => new Date(r.scheduledAt).toISOString())).toEqual(['2026-01-01T01:00:00.000Z']);
    });

    it('drops a pending retry when paused', async () => {
      await using h = await createHarness();
      await failFirstRun(h, await h.addAgent('a'), 'first try fails');
      await h.scheduler.pause('a', 'a');
      h.clock.advance(60_000);
      await h.repo.flush();
      expect(h.calls).toHaveLength(1);
      const runs = await h.runs('a');
      expect(runs[0]).toMatchObject({ trigger: 'retry', status: 'cancelled', error: 'dropped: job paused' });
      expect(await h.repo.getAgent('a')).toMatchObject({ status: 'PAUSED', retryCount: 0, backoffUntil: null });
    });
  });

  describe('statuses and figures', () => {
    it('follows IDLE → RUNNING → IDLE with a schedule, COMPLETED without one', async () => {
      await using h = await createHarness();
      const a = await h.addAgent('a');
      const g = gate();
      h.script(g.step);
      await h.scheduler.setSchedule(a, hourly('a'));
      await h.scheduler.runNow(a);
      await g.started;
      await h.repo.flush();
      expect((await h.repo.getAgent('a'))!.status).toBe('RUNNING');
      expect(h.scheduler.isRunning('a')).toBe(true);
      expect(h.scheduler.stats()).toMatchObject({ isRunning: true, scheduledTasksCount: 1, runningAgentsCount: 1, queuedTasksCount: 0, maxConcurrentAgents: 5, pausedJobsCount: 0 });
      g.release();
      await h.waitFor((e) => e.type === 'agent:completed');
      await h.repo.flush();
      expect((await h.repo.getAgent('a'))!.status).toBe('IDLE');
      await h.scheduler.removeSchedule('a');
      await h.repo.flush();
      expect((await h.repo.getAgent('a'))!.status).toBe('COMPLETED');
      await expect(h.scheduler.removeSchedule('a')).rejects.toMatchObject({ code: 'NOT_FOUND' });
    });

    it('counts a run dropped while queued out of the figures at once, though the queue still holds it', async () => {
      await using h = await createHarness({ maxConcurrent: 1 });
      const a = await h.addAgent('a');
      const b = await h.addAgent('b');
      const { gate: g } = await h.holdRun(a);
      const queued = await h.scheduler.runNow(b);
      expect(h.scheduler.stats()).toMatchObject({ runningAgentsCount: 1, queuedTasksCount: 1 });
      await h.scheduler.cancel(queued.id);
      expect(h.scheduler.stats()).toMatchObject({ runningAgentsCount: 1, queuedTasksCount: 0 });
      g.release();
      await h.waitFor((e) => e.type === 'agent:completed' && e.agentId === 'a');
      expect(h.scheduler.stats()).toMatchObject({ runningAgentsCount: 0, queuedTasksCount: 0 });
    });

    it('stores a disabled schedule that never fires', async () => {
      await using h = await createHarness();
      const a = await h.addAgent('a');
      const s = await h.scheduler.setSchedule(a, everySecond('a', { enabled: false }));
      expect(s).toMatchObject({ enabled: false, nextRunAt: null });
      h.clock.advance(10_000);
      await h.repo.flush();
      expect(h.inserted).toHaveLength(0);
      expect(h.scheduler.stats().scheduledTasksCount).toBe(0);
    });

    it('emits scheduler:status when the figures change', async () => {
      await using h = await createHarness();
      const a = await h.addAgent('a');
      const changed = h.waitFor((e) => e.type === 'scheduler:status' && (e.data as { stats: { scheduledTasksCount: number } }).stats.scheduledTasksCount === 1);
      await h.scheduler.setSchedule(a, hourly('a'));
      h.clock.advance(0);
      const status = await changed;
      expect(status.agentId).toBeNull();
      expect(status.data).toMatchObject({ stats: { isRunning: true, scheduledTasksCount: 1, maxConcurrentAgents: 5 } });
    });

    it('stops taking runs on stop, lets a running one finish within the grace period', async () => {
      await using h = await createHarness();
      const a = await h.addAgent('a');
      const { gate: g } = await h.holdRun(a);
      const stopping = h.scheduler.stop(10_000);
      expect(h.scheduler.stats().isRunning).toBe(false);
      await expect(h.scheduler.runNow(a)).rejects.toMatchObject({ code: 'CONFLICT' });
      g.release();
      await stopping;
      expect((await h.runs('a'))[0]).toMatchObject({ status: 'completed' });
    });

    it('aborts runs still going after the grace period as interrupted, with their retry stored', async () => {
      await using h = await createHarness();
      const a = await h.addAgent('a');
      await h.holdRun(a);
      const stopping = h.scheduler.stop(10_000);
      h.clock.advance(10_000);
      await stopping;
      const runs = await h.runs('a');
      expect(runs.map((r) => [r.trigger, r.status, r.error])).toEqual([
        ['retry', 'queued', null],
        ['manual', 'failed', 'interrupted by shutdown'],
      ]);
    });
  });
});
