import { describe, expect, it } from 'vitest';
import { jitterOf } from '../../src/core/jitter.ts';
import type { ScheduleSpec } from '../../src/core/scheduler.ts';
import { createMemoryStore } from '../../src/storage/memory.ts';
import { at, createHarness, startServer, type Harness } from '../harness.ts';

/**
 * Jitter (CONTRACT §11): each fire starts up to `jitterMs` after its slot, the delay fixed per (job, slot) and
 * spread evenly, so every instance plans the same start; the run's `scheduledAt` stays the slot.
 */
const START = at('2026-01-01T00:00:00Z');
const MINUTE = 60_000;
const everyMinute = (jitterMs: number): ScheduleSpec => ({ jobId: 'j', expression: '* * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true, jitterMs });

const settle = async (...hs: Harness[]) => {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
  for (const h of hs) {
    await h.scheduler.settled();
    await h.repo.flush();
  }
};

describe('jitter', () => {
  it('is fixed per job and slot, within [0, jitterMs], and spread evenly', () => {
    expect(jitterOf('j', START, 0)).toBe(0);
    expect(jitterOf('j', START, 30_000)).toBe(jitterOf('j', START, 30_000));
    const buckets = Array<number>(10).fill(0);
    for (let i = 0; i < 10_000; i++) {
      const d = jitterOf('hourly-report', START + i * 60 * MINUTE, 59_999);
      expect(d).toBeGreaterThanOrEqual(0);
      expect(d).toBeLessThanOrEqual(59_999);
      buckets[Math.floor(d / 6000)]!++;
    }
    // 1,000 expected in each tenth; a uniform spread stays well within ±15 % at this count.
    for (const n of buckets) expect(Math.abs(n - 1000)).toBeLessThan(150);
    // A thousand jobs on the same slot do not start together.
    const starts = new Set(Array.from({ length: 1000 }, (_, i) => jitterOf(`agent-${i}`, START, 3_600_000)));
    expect(starts.size).toBeGreaterThan(990);
  });

  it('starts a fire at its slot plus its delay, with the slot as scheduledAt', async () => {
    await using h = await createHarness({ start: START });
    const agent = await h.addAgent('j');
    await h.scheduler.setSchedule(agent, everyMinute(30_000));
    const slot = START + MINUTE;
    const delay = jitterOf('j', slot, 30_000);
    expect(delay).toBeGreaterThan(0);
    h.clock.advance(MINUTE + delay - 1);
    await settle(h);
    expect(await h.runs('j')).toEqual([]);
    const done = h.waitFor((e) => e.type === 'agent:completed');
    h.clock.advance(1);
    await done;
    expect(await h.runs('j')).toMatchObject([{ trigger: 'schedule', status: 'completed', scheduledAt: slot, startedAt: slot + delay }]);
    expect(h.scheduler.schedule('j')!.nextRunAt).toBe(START + 2 * MINUTE);
  });

  it('is the same on two instances: neither starts the fire early, and it runs once', async () => {
    const repo = createMemoryStore();
    const a = await createHarness({ shared: true, instanceId: 'inst_a', repo, start: START });
    const b = await createHarness({ shared: true, instanceId: 'inst_b', repo, clock: a.clock });
    try {
      const agent = await a.addAgent('j');
      await a.scheduler.setSchedule(agent, everyMinute(45_000));
      await b.scheduler.reloadSchedule('j');
      const slot = START + MINUTE;
      const delay = jitterOf('j', slot, 45_000);
      a.clock.advance(MINUTE + delay - 1);
      await settle(a, b);
      expect(a.calls.length + b.calls.length).toBe(0);
      a.clock.advance(1);
      await settle(a, b);
      await expect.poll(async () => (await a.runs('j')).map((r) => r.status)).toEqual(['completed']);
      expect(a.calls.length + b.calls.length).toBe(1);
      expect((await a.runs('j'))[0]).toMatchObject({ scheduledAt: slot, startedAt: slot + delay });
    } finally {
      await a[Symbol.asyncDispose]();
      await b[Symbol.asyncDispose]();
      await repo[Symbol.asyncDispose]();
    }
  });

  it('is set through REST (0 to 3,600,000 ms) and shown in taskDetails; outside that a 400 names jitterMs', async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: { id: 'j', name: 'J', handler: 'demo' } });
    expect((await s.call('POST', '/api/agents/j/schedule', { body: { cronExpression: '0 * * * *', jitterMs: 120_000 } })).status).toBe(201);
    expect((await s.call('GET', '/api/agents/j/schedule')).body.data.taskDetails.jitterMs).toBe(120_000);
    for (const jitterMs of [-1, 3_600_001, 1.5, '10']) {
      const bad = await s.call('POST', '/api/agents/j/schedule', { body: { cronExpression: '0 * * * *', jitterMs } });
      expect(bad.status, String(jitterMs)).toBe(400);
      expect(bad.body.error).toMatch(/^body\.jitterMs: expected a whole number of milliseconds from 0 to 3600000/);
    }
  });
});
