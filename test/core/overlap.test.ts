import { describe, expect, it } from 'vitest';
import { join } from 'node:path';
import type { ScheduleSpec } from '../../src/core/scheduler.ts';
import { REPLACED } from '../../src/core/store.ts';
import { BUSY } from '../../src/core/runs.ts';
import { at, createHarness, gate, tempDir, type Harness } from '../harness.ts';

/**
 * Overlap policies and backfill (CONTRACT §11) on a manual clock: what a fire does while the agent's run is in
 * progress, and runs that wait their turn behind it. Runs through the harness's store: memory here, a
 * PostgreSQL schema in the postgres project, so the store's letting go of waiting runs is checked on both.
 */
const START = at('2026-01-01T00:00:00Z');
const everySecond = (overlap: ScheduleSpec['overlap']): ScheduleSpec => ({ jobId: 'x', expression: '* * * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true, overlap });

/** Lets the claims and the batches the clock's timers started finish. */
async function settle(h: Harness): Promise<void> {
  for (let i = 0; i < 3; i++) {
    await h.scheduler.settled();
    await h.repo.flush();
    await new Promise((r) => setImmediate(r));
  }
}

const summary = async (h: Harness) => (await h.runs('x')).sort((a, b) => a.scheduledAt - b.scheduledAt || a.createdAt - b.createdAt).map((r) => [(r.scheduledAt - START) / 1000, r.trigger, r.status]);

describe('overlap policies', () => {
  it('skip (the default): a fire during a run is recorded skipped', async () => {
    await using h = await createHarness({ start: START });
    await h.scheduler.setSchedule(await h.addAgent('x'), everySecond(undefined));
    const g = gate();
    h.script(g.step);
    h.clock.advance(1000);
    await g.started;
    h.clock.advance(1000);
    await settle(h);
    expect(await summary(h)).toEqual([[1, 'schedule', 'running'], [2, 'schedule', 'skipped']]);
    expect((await h.runs('x')).find((r) => r.status === 'skipped')!.error).toBe(BUSY);
    g.release();
  });

  it('queue-one: one fire waits and starts after the run; a further fire is skipped', async () => {
    await using h = await createHarness({ start: START });
    await h.scheduler.setSchedule(await h.addAgent('x'), everySecond('queue-one'));
    const g = gate();
    h.script(g.step);
    h.clock.advance(1000);
    await g.started;
    h.clock.advance(1000); // waits
    await settle(h);
    h.clock.advance(1000); // one waits already: skipped
    await settle(h);
    expect(await summary(h)).toEqual([[1, 'schedule', 'running'], [2, 'schedule', 'queued'], [3, 'schedule', 'skipped']]);
    expect(h.calls).toHaveLength(1);

    const second = h.waitFor((e) => e.type === 'agent:completed' && (e.data as { runId: string }).runId !== h.calls[0]!.runId);
    g.release();
    await second;
    expect(h.calls.map((c) => (c.scheduledAt - START) / 1000)).toEqual([1, 2]);
    expect((await summary(h)).slice(0, 3)).toEqual([[1, 'schedule', 'completed'], [2, 'schedule', 'completed'], [3, 'schedule', 'skipped']]);
  });

  it('cancel-previous: the run in progress is cancelled and the new fire starts once it has ended', async () => {
    await using h = await createHarness({ start: START });
    await h.scheduler.setSchedule(await h.addAgent('x'), everySecond('cancel-previous'));
    const g = gate(); // honours its abort signal
    h.script(g.step);
    h.clock.advance(1000);
    await g.started;
    const replacement = h.waitFor((e) => e.type === 'agent:completed');
    h.clock.advance(1000);
    await replacement;
    const runs = await h.runs('x');
    const first = runs.find((r) => (r.scheduledAt - START) / 1000 === 1)!;
    expect(first).toMatchObject({ status: 'cancelled', error: REPLACED });
    expect(runs.find((r) => (r.scheduledAt - START) / 1000 === 2)).toMatchObject({ status: 'completed' });
    expect(h.events.filter((e) => e.type === 'agent:cancelled').map((e) => (e.data as { runId: string }).runId)).toEqual([first.id]);
  });

  it('allow: a fire during a run starts beside it', async () => {
    await using h = await createHarness({ start: START });
    await h.scheduler.setSchedule(await h.addAgent('x'), everySecond('allow'));
    const g1 = gate();
    const g2 = gate();
    h.script(g1.step, g2.step);
    h.clock.advance(1000);
    await g1.started;
    h.clock.advance(1000);
    await g2.started; // both handlers are running at once
    expect(h.scheduler.stats().runningAgentsCount).toBe(2);
    expect(await summary(h)).toEqual([[1, 'schedule', 'running'], [2, 'schedule', 'running']]);
    g2.release();
    g1.release();
    await settle(h);
    await h.eventually((e) => e.type === 'agent:completed' && (e.data as { runId: string }).runId === h.calls[0]!.runId);
    expect(h.scheduler.isRunning('x')).toBe(false);
  });
});

describe('backfill', () => {
  it('queues one run per slot, runs them one after another oldest first, and a second backfill of the range queues nothing', async () => {
    await using h = await createHarness({ start: START + 3_600_000 });
    const agent = await h.addAgent('x');
    await h.scheduler.setSchedule(agent, { jobId: 'x', expression: '*/10 * * * *', timezone: 'UTC', priority: 3, enabled: true, catchUp: true });
    let running = 0;
    let most = 0;
    const step = async () => {
      most = Math.max(most, ++running);
      await new Promise((r) => setImmediate(r));
      running--;
    };
    h.script(step, step, step, step, step, step);
    const slots = [0, 10, 20, 30, 40, 50].map((m) => START + m * 60_000);
    const queued = await h.scheduler.backfill('x', [...slots].reverse());
    expect(queued.map((r) => [r.trigger, r.scheduledAt, r.priority, r.attempt])).toEqual(slots.map((t) => ['backfill', t, 3, 1]));
    // The last slot's run is the last to go.
    await h.eventually((e) => e.type === 'agent:completed' && (e.data as { runId: string }).runId === queued[5]!.id);
    expect(h.calls.map((c) => c.scheduledAt)).toEqual(slots);
    expect(most).toBe(1);
    expect((await h.runs('x')).map((r) => r.status)).toEqual(Array(6).fill('completed'));

    // Twice over the same range: every slot has its run already.
    expect(await h.scheduler.backfill('x', slots)).toEqual([]);
    await settle(h);
    expect(await h.runs('x')).toHaveLength(6);
  });

  it('waits behind a run in progress, and a cancel of a waiting run takes it out of the line', async () => {
    await using h = await createHarness({ start: START + 3_600_000 });
    const agent = await h.addAgent('x');
    await h.scheduler.setSchedule(agent, { jobId: 'x', expression: '0 * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true });
    const { gate: g } = await h.holdRun(agent);
    const queued = await h.scheduler.backfill('x', [START, START - 3_600_000]);
    expect(queued.map((r) => r.status)).toEqual(['queued', 'queued']);
    expect(h.calls).toHaveLength(1);
    // The later slot's run is cancelled while it waits; the other runs after the manual run, alone.
    const later = queued.find((r) => r.scheduledAt === START)!;
    expect(await h.scheduler.cancel(later.id, (await h.repo.getRun(later.id))!)).toBe(true);
    const ran = h.waitFor((e) => e.type === 'agent:completed' && (e.data as { runId: string }).runId !== h.calls[0]!.runId);
    g.release();
    await ran;
    expect(h.calls.map((c) => c.scheduledAt).slice(1)).toEqual([START - 3_600_000]);
    expect(await h.repo.getRun(later.id)).toMatchObject({ status: 'cancelled' });
  });
});

describe('waiting runs on a shared store (two instances)', () => {
  async function twoInstances(): Promise<[Harness, Harness]> {
    const a = await createHarness({ shared: true, instanceId: 'inst_a', start: START + 3_600_000 });
    const b = await createHarness({ shared: true, instanceId: 'inst_b', repo: a.repo, clock: a.clock });
    return [a, b];
  }

  it('a backfill asked of both instances runs each slot once, one after another', async () => {
    const [a, b] = await twoInstances();
    await using _b = b;
    await using _a = a;
    const agent = await a.addAgent('x');
    await a.scheduler.setSchedule(agent, { jobId: 'x', expression: '*/15 * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true });
    await b.scheduler.reloadSchedule('x');
    const slots = [0, 15, 30, 45].map((m) => START + m * 60_000);
    const [fromA, fromB] = await Promise.all([a.scheduler.backfill('x', slots), b.scheduler.backfill('x', slots)]);
    expect([...fromA, ...fromB].map((r) => r.scheduledAt).sort()).toEqual(slots);
    const last = [...fromA, ...fromB].find((r) => r.scheduledAt === slots[3])!;
    await a.eventually((e) => e.type === 'agent:completed' && (e.data as { runId: string }).runId === last.id);
    const runs = (await a.runs('x')).sort((x, y) => x.scheduledAt - y.scheduledAt);
    expect(runs.map((r) => [r.scheduledAt, r.status])).toEqual(slots.map((t) => [t, 'completed']));
    for (let i = 1; i < runs.length; i++) expect(runs[i]!.startedAt!).toBeGreaterThanOrEqual(runs[i - 1]!.finishedAt!);
    expect(a.calls.length + b.calls.length).toBe(4);
  });

  it("a waiting run left with nothing before it (its claim raced the end of the run before) goes at the next heartbeat", async () => {
    const [a, b] = await twoInstances();
    await using _b = b;
    await using _a = a;
    const agent = await a.addAgent('x');
    await a.scheduler.setSchedule(agent, { jobId: 'x', expression: '0 * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true });
    // As a claim that read the agent busy and committed after that run's end let nothing go.
    const [queued] = await a.scheduler.backfill('x', [START]);
    // The backfill had nothing before it: it runs at once.
    await a.eventually((e) => e.type === 'agent:completed' && (e.data as { runId: string }).runId === queued!.id);
    a.repo.write({ op: 'run.insert', run: { ...queued!, id: 'run_stray', dedupeKey: 'x@stray', status: 'queued', waiting: true, startedAt: null, finishedAt: null, instanceId: null, scheduledAt: START - 3_600_000 } });
    await a.repo.flush();
    const ran = b.waitFor((e) => e.type === 'agent:completed' && (e.data as { runId: string }).runId === 'run_stray');
    await b.scheduler.maintainLeases();
    await ran;
    expect(await a.repo.getRun('run_stray')).toMatchObject({ status: 'completed', waiting: false });
  });
});

describe('waiting runs across a restart', () => {
  it('a backfill waiting behind a run a crash interrupted goes, in slot order, once the restart ends that run', async () => {
    using dir = tempDir();
    const dbUrl = join(dir.path, 'waiting.db');
    const first = await createHarness({ dbUrl, keepOpen: true, start: START + 3_600_000 });
    const agent = await first.addAgent('x', { maxRetries: 0 });
    await first.scheduler.setSchedule(agent, { jobId: 'x', expression: '0 * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: false });
    await first.holdRun(agent, false);
    const queued = await first.scheduler.backfill('x', [START, START - 3_600_000]);
    await first.repo.flush();
    expect((await first.repo.getRun(queued[0]!.id))!.waiting).toBe(true);
    // The process dies here: its run is left `running`, the backfill waiting behind it.

    await using second = await createHarness({ dbUrl, start: START + 3_600_000 + 1000 });
    await second.eventually((e) => e.type === 'agent:completed' && (e.data as { runId: string }).runId === queued[1]!.id);
    expect(second.calls.map((c) => c.scheduledAt)).toEqual([START - 3_600_000, START]);
    const runs = await second.runs('x');
    expect(runs.map((r) => [r.trigger, r.status]).sort()).toEqual([['backfill', 'completed'], ['backfill', 'completed'], ['manual', 'failed']]);
    await first.repo[Symbol.asyncDispose]();
  });
});
