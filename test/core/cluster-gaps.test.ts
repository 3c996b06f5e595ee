import { describe, expect, it } from 'vitest';
import { createHandlerRegistry } from '../../src/core/handlers.ts';
import type { RunRecord, ScheduleRecord, Store } from '../../src/core/store.ts';
import { createServices } from '../../src/services/services.ts';
import { createMemoryStore } from '../../src/storage/memory.ts';
import { at, createHarness, type Harness } from '../harness.ts';

/**
 * Two schedulers on one in-memory store stand for two instances on one database with no signals between
 * them (docs/cluster.md: a lost signal may only delay, never break): a cancel recorded for the holder,
 * open runs however old, revisions from one counter, and reconciles that read only what changed.
 */
const START = at('2026-01-01T00:00:00Z');
const everySecond = { jobId: 'x', expression: '* * * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true };
const hourly = { ...everySecond, expression: '0 0 * * * *' };

async function twoInstances(extra: { store?: (s: Store) => Store } = {}): Promise<[Harness, Harness]> {
  const repo = createMemoryStore();
  const a = await createHarness({ shared: true, instanceId: 'inst_a', repo, start: START, ...(extra.store && { store: extra.store({ ...repo, shared: true }) }) });
  const b = await createHarness({ shared: true, instanceId: 'inst_b', repo, clock: a.clock });
  return [a, b];
}

async function dispose(...hs: Harness[]): Promise<void> {
  for (const h of hs) await h[Symbol.asyncDispose]();
  await hs[0]!.repo[Symbol.asyncDispose]();
}

/** Lets the promise callbacks the manual clock's timers started run to their end. */
const settle = async (h: Harness) => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  await h.scheduler.settled();
  await h.repo.flush();
};

describe('a cancel answered by an instance that does not hold the run', () => {
  it('is recorded on the run, and its holder aborts it within 1 s with no signal', async () => {
    const [a, b] = await twoInstances();
    try {
      const agent = await a.addAgent('x');
      const { run } = await a.holdRun(agent);
      const stored = (await b.repo.getRun(run.id))!;
      expect(stored).toMatchObject({ status: 'running', instanceId: 'inst_a', cancelRequestedAt: null });

      // `b` answers the cancel; nothing tells `a` (no onCancelElsewhere here).
      expect(await b.scheduler.cancel(run.id, stored)).toBe(true);
      expect(await b.repo.getRun(run.id)).toMatchObject({ status: 'running', cancelRequestedAt: START });

      const cancelled = a.eventually((e) => e.type === 'agent:cancelled');
      a.clock.advance(1000);
      expect((await cancelled).data).toMatchObject({ runId: run.id });
      expect(await a.repo.getRun(run.id)).toMatchObject({ status: 'cancelled', error: 'cancelled' });
      expect(a.scheduler.stats()).toMatchObject({ runningAgentsCount: 0 });
    } finally {
      await dispose(a, b);
    }
  });

  it('reads nothing while the instance runs nothing', async () => {
    let reads = 0;
    const [a, b] = await twoInstances({ store: (s) => ({ ...s, cancelRequests: (id) => (reads++, s.cancelRequests(id)) }) });
    try {
      a.clock.advance(5000);
      await settle(a);
      expect(reads).toBe(0);
      const agent = await a.addAgent('x');
      const { gate: g } = await a.holdRun(agent);
      a.clock.advance(1000);
      await settle(a);
      expect(reads).toBeGreaterThan(0);
      g.release();
    } finally {
      await dispose(a, b);
    }
  });
});

describe('pause and unschedule on a shared store', () => {
  it('see the open run of another instance behind more than 200 newer finished runs', async () => {
    const [a, b] = await twoInstances();
    try {
      const agent = await a.addAgent('x');
      await a.scheduler.setSchedule(agent, hourly);
      const { gate: g } = await a.holdRun(agent);
      // 250 skipped fires recorded after the run started (a job whose run outlives many slots).
      for (let i = 1; i <= 250; i++) {
        const skipped: RunRecord = {
          ...(await a.runs('x'))[0]!, id: `skipped_${i}`, trigger: 'schedule', status: 'skipped', dedupeKey: `x@${i}`,
          startedAt: null, finishedAt: START + i, instanceId: null, leaseUntil: null, createdAt: START + i,
        };
        a.repo.write({ op: 'run.insert', run: skipped });
      }
      await a.repo.flush();

      const services = createServices({ store: { ...b.repo, shared: true }, scheduler: b.scheduler, handlers: createHandlerRegistry(), instances: { live: async () => [] } });
      await expect(services.schedule.pause({ sub: 'alice', admin: false }, 'x', 'x')).rejects.toMatchObject({ code: 'CONFLICT' });
      expect(b.scheduler.schedule('x')).toMatchObject({ paused: false });
      g.release();
    } finally {
      await dispose(a, b);
    }
  });
});

describe('schedule revisions', () => {
  it('gives two changes of one schedule made at once on two instances two revisions', async () => {
    const [a, b] = await twoInstances();
    try {
      const agent = await a.addAgent('x');
      await a.scheduler.setSchedule(agent, everySecond);
      const [ra, rb] = await Promise.all([a.scheduler.setSchedule(agent, hourly), b.scheduler.setSchedule(agent, everySecond)]);
      expect(ra.revision).not.toBe(rb.revision);
      expect([ra.revision, rb.revision]).toContain((await a.repo.getSchedule('x'))!.revision);
    } finally {
      await dispose(a, b);
    }
  });

  it('never starts over when a schedule is removed and set again: a fire planned for the old one is stale', async () => {
    const [a, b] = await twoInstances();
    try {
      const agent = await a.addAgent('x');
      await a.scheduler.setSchedule(agent, everySecond);
      await b.scheduler.reloadSchedule('x');
      const old = a.scheduler.schedule('x')!.revision;
      // `b` removes it and sets another; `a` has heard of neither and plans 00:00:01 under the old revision.
      await b.scheduler.removeSchedule('x');
      const renewed = await b.scheduler.setSchedule(agent, hourly);
      expect(renewed.revision).toBeGreaterThan(old);

      a.clock.advance(1000);
      await settle(a);
      await settle(b);
      expect(await a.runs('x')).toEqual([]);
      expect(a.calls.length + b.calls.length).toBe(0);
      // The stale claim made `a` read the schedule: it holds the new one now.
      expect(a.scheduler.schedule('x')).toMatchObject({ expression: hourly.expression, revision: renewed.revision });
    } finally {
      await dispose(a, b);
    }
  });
});

describe('reconciling schedules', () => {
  it('reads only the schedules the API changed since the last read, and everything once a minute', async () => {
    const reads: { since: number | undefined; got: ScheduleRecord[] }[] = [];
    const [a, b] = await twoInstances({
      store: (s) => ({ ...s, loadSchedules: async (since) => {
        const got = await s.loadSchedules(since);
        reads.push({ since, got });
        return got;
      } }),
    });
    try {
      const x = await a.addAgent('x');
      const y = await a.addAgent('y');
      await a.scheduler.setSchedule(x, everySecond);
      await a.scheduler.setSchedule(y, hourly);
      await b.scheduler.reloadSchedule('x');
      await b.scheduler.reloadSchedule('y');
      expect(reads.map((r) => r.since)).toEqual([undefined]); // the start's full read

      // Past the look-back (a reconcile looks one interval further back than its last read), fires of x
      // move its updatedAt but not its changedAt: a reconcile reads nothing.
      for (let i = 0; i < 3; i++) {
        a.clock.advance(5000);
        await settle(a);
      }
      expect(reads.length).toBe(4);
      expect(reads.at(-1)).toMatchObject({ since: START + 5000 });
      expect(reads.at(-1)!.got).toEqual([]);

      // `b` pauses x: the next reconcile of `a` reads that row alone, and `a` holds it paused.
      await b.scheduler.pause('x', 'x');
      a.clock.advance(5000);
      await settle(a);
      expect(reads.at(-1)!.got.map((s) => s.agentId)).toEqual(['x']);
      expect(a.scheduler.schedule('x')).toMatchObject({ paused: true });

      // `b` removes y: no row is left to read since; the full read of the minute drops it.
      await b.scheduler.removeSchedule('y');
      while (reads.at(-1)!.since !== undefined) {
        expect(a.scheduler.schedule('y'), 'y until the full read').toBeDefined();
        a.clock.advance(5000);
        await settle(a);
      }
      expect(reads.filter((r) => r.since === undefined)).toHaveLength(2);
      expect(reads.length).toBe(1 + 12);
      expect(a.scheduler.schedule('y')).toBeUndefined();
    } finally {
      await dispose(a, b);
    }
  });

  it('never lets a read begun before a change answered here undo it, even within the same millisecond', async () => {
    let hold: Promise<void> | undefined;
    let started!: () => void;
    const reading = new Promise<void>((r) => (started = r));
    const [a, b] = await twoInstances({
      store: (s) => ({ ...s, loadSchedules: async (since) => {
        const got = await s.loadSchedules(since);
        if (hold && since !== undefined) {
          started();
          await hold;
        }
        return got;
      } }),
    });
    try {
      const x = await a.addAgent('x');
      await a.scheduler.setSchedule(x, hourly);
      let release!: () => void;
      hold = new Promise<void>((r) => (release = r));
      a.clock.advance(5000); // the reconcile reads x as unpaused, and is held before it adopts
      await reading;
      await a.scheduler.pause('x', 'x'); // answered at the same instant on the manual clock
      release();
      await settle(a);
      expect(a.scheduler.schedule('x')).toMatchObject({ paused: true });
    } finally {
      await dispose(a, b);
    }
  });

  it('never reconciles on a store this process alone writes (a SQLite file, memory)', async () => {
    const repo = createMemoryStore();
    let reads = 0;
    await using h = await createHarness({ repo, store: { ...repo, loadSchedules: (since) => (reads++, repo.loadSchedules(since)) } });
    const agent = await h.addAgent('x');
    await h.scheduler.setSchedule(agent, everySecond);
    for (let i = 0; i < 13; i++) {
      h.clock.advance(5000);
      await settle(h);
    }
    expect(reads).toBe(1); // the start's
    await repo[Symbol.asyncDispose]();
  });
});
