import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { at, createHarness, gate, ON_POSTGRES, pgSchema, tempDir } from './harness.ts';

/**
 * The data both lives share: a SQLite file, or with TEST_DATABASE=postgres one PostgreSQL schema (README,
 * "Restarts lose nothing" holds on either); removed when the test ends.
 */
async function database(name: string): Promise<{ url: string } & AsyncDisposable> {
  if (ON_POSTGRES) return pgSchema();
  const dir = tempDir();
  return { url: `file:${join(dir.path, name)}`, [Symbol.asyncDispose]: async () => dir[Symbol.dispose]() };
}

describe('durability', () => {
  it('rebuilds schedules, pauses and retry state after a crash; fails then retries the interrupted run; catches up a missed fire once', async () => {
    await using db = await database('crash.db');
    const dbUrl = db.url;

    // First life: three agents. `busy` is mid-run when the process "dies"; `paused` is paused;
    // `sleeper` is due at 01:00 while the server is down; `nocatch` the same with catchUp off.
    const first = await createHarness({ dbUrl, keepOpen: true, start: at('2026-01-01T00:00:00Z') });
    const busy = await first.addAgent('busy');
    const paused = await first.addAgent('paused');
    const sleeper = await first.addAgent('sleeper');
    const nocatch = await first.addAgent('nocatch');
    const hourly = { expression: '0 * * * *', timezone: 'UTC', enabled: true, catchUp: true };
    await first.scheduler.setSchedule(busy, { ...hourly, jobId: 'busy-job', priority: 3 });
    await first.scheduler.setSchedule(paused, { ...hourly, jobId: 'paused', priority: 1 });
    await first.scheduler.setSchedule(sleeper, { ...hourly, jobId: 'sleeper', priority: 2, expression: '*/15 * * * *' });
    await first.scheduler.setSchedule(nocatch, { ...hourly, jobId: 'nocatch', priority: 2, expression: '*/15 * * * *', catchUp: false });
    await first.scheduler.pause('paused', 'paused');
    const g = gate(false);
    first.script(g.step);
    await first.scheduler.runNow(busy);
    await g.started;
    await first.repo.flush();
    // The process dies here: no stop(), no further writes. Its clock never moves again.

    // Second life, 70 minutes later, on the same file.
    await using second = await createHarness({ dbUrl, start: at('2026-01-01T01:10:00Z') });
    await second.repo.flush();

    expect(second.scheduler.schedule('busy')).toMatchObject({ jobId: 'busy-job', priority: 3, enabled: true, paused: false });
    expect(second.scheduler.schedule('paused')).toMatchObject({ paused: true });
    expect(second.scheduler.pausedJobs()).toEqual([{ agentId: 'paused', jobId: 'paused', pauseReason: 'manual', pauseNote: null, pausedUntil: null }]);
    expect(second.scheduler.stats()).toMatchObject({ scheduledTasksCount: 4, pausedJobsCount: 1 });

    // The interrupted run failed and its retry waits 1 s; its missed 01:00 fire is recorded as skipped,
    // since a job never overlaps its own pending retry. A SQLite file's open runs are all its predecessor's;
    // on a shared database the run is taken back because its lease ended (docs/cluster.md, "Leases and fences").
    const interrupted = ON_POSTGRES ? 'interrupted: its instance stopped answering' : 'interrupted by restart';
    const busyRuns = await second.runs('busy');
    expect(busyRuns.map((r) => [r.trigger, r.attempt, r.status])).toEqual([
      ['catchup', 1, 'skipped'],
      ['retry', 2, 'queued'],
      ['manual', 1, 'failed'],
    ]);
    expect(busyRuns[2]!.error).toBe(interrupted);
    expect(busyRuns[0]!.error).toMatch(/missed 1 fire\(s\).*still in progress/);
    expect(await second.repo.getAgent('busy')).toMatchObject({ retryCount: 1, lastError: interrupted });

    // sleeper missed 4 fires (00:15 … 01:00): one catch-up run for the latest slot.
    const sleeperRuns = second.inserted.filter((r) => r.agentId === 'sleeper');
    expect(sleeperRuns.map((r) => [r.trigger, r.status, new Date(r.scheduledAt).toISOString()])).toEqual([['catchup', 'queued', '2026-01-01T01:00:00.000Z']]);
    // nocatch missed the same, and the misses are recorded, not run.
    const nocatchRuns = await second.runs('nocatch');
    expect(nocatchRuns.map((r) => [r.trigger, r.status])).toEqual([['catchup', 'skipped']]);
    expect(nocatchRuns[0]!.error).toMatch(/missed 4 fire\(s\) while the server was down; catch-up is off/);
    // The paused job made up nothing.
    expect(second.inserted.filter((r) => r.agentId === 'paused')).toEqual([]);

    await second.eventually((e) => e.type === 'agent:completed' && e.agentId === 'sleeper');
    const retried = second.waitFor((e) => e.type === 'agent:completed' && e.agentId === 'busy');
    second.clock.advance(1000);
    await retried;
    expect((await second.runs('busy')).find((r) => r.trigger === 'retry')).toMatchObject({ attempt: 2, status: 'completed' });
    expect(await second.repo.getAgent('busy')).toMatchObject({ retryCount: 0, status: 'IDLE' });
    // Next fires resume on the normal rhythm.
    expect(new Date(second.scheduler.schedule('sleeper')!.nextRunAt!).toISOString()).toBe('2026-01-01T01:15:00.000Z');
    // The first life ends for good before its data goes: its late finish is written (fenced out on a shared
    // database) before the store closes, so nothing of it races the schema's DROP.
    g.release();
    await first.scheduler.stop();
    await first.repo[Symbol.asyncDispose]();
  });

  it('does not fire the same slot twice across a restart', async () => {
    await using db = await database('slot.db');
    const dbUrl = db.url;
    const first = await createHarness({ dbUrl, start: at('2026-01-01T00:59:59Z') });
    const agent = await first.addAgent('a');
    await first.scheduler.setSchedule(agent, { jobId: 'a', expression: '0 * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true });
    const done = first.waitFor((e) => e.type === 'agent:completed');
    first.clock.advance(1000);
    await done;
    await first[Symbol.asyncDispose]();
    await using second = await createHarness({ dbUrl, start: at('2026-01-01T01:00:30Z') });
    await second.repo.flush();
    expect(second.inserted).toEqual([]);
    expect((await second.runs('a')).map((r) => r.trigger)).toEqual(['schedule']);
  });
});
