import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import type { HandlerDefinition } from '../src/core/handlers.ts';
import { deferred, nextEvent, startServer } from './harness.ts';

/** A handler that holds each run until the test lets it go. */
function holdHandler() {
  const holds: (() => void)[] = [];
  let entered = deferred();
  const def: HandlerDefinition<Record<string, unknown>> = {
    name: 'hold',
    config: z.record(z.string(), z.unknown()),
    run: (ctx) =>
      new Promise<void>((resolve, reject) => {
        holds.push(resolve);
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
        entered.resolve();
      }),
  };
  return {
    def: def as HandlerDefinition<never>,
    nextEntered: () => entered.promise.then(() => void (entered = deferred())),
    releaseAll: () => holds.splice(0).forEach((r) => r()),
  };
}

const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describe('schedule REST API', () => {
  it('schedules (201, then 200 on replace) with the documented shape, and reads it back', async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: { id: 'agent-123', name: 'Content Creator Agent', handler: 'demo' } });
    const created = await s.call('POST', '/api/agents/agent-123/schedule', { body: { cronExpression: '*/5 * * * *', priority: 'HIGH', enabled: true } });
    expect(created.status).toBe(201);
    expect(created.body.success).toBe(true);
    expect(created.body.data).toMatchObject({ id: 'agent-123', name: 'Content Creator Agent', scheduleExpression: '*/5 * * * *', scheduleEnabled: true, nextRunAt: expect.stringMatching(ISO) });
    expect(Date.parse(created.body.data.nextRunAt) % (5 * 60_000)).toBe(0);

    const got = await s.call('GET', '/api/agents/agent-123/schedule');
    expect(got.status).toBe(200);
    expect(got.body).toEqual({
      success: true,
      data: {
        id: 'agent-123', name: 'Content Creator Agent', scheduleExpression: '*/5 * * * *', scheduleEnabled: true,
        nextRunAt: created.body.data.nextRunAt, lastRunAt: null, status: 'IDLE',
        taskDetails: {
          agentId: 'agent-123', agentName: 'Content Creator Agent', priority: 3, nextRunTime: created.body.data.nextRunAt,
          retryCount: 0, lastError: null, backoffUntil: null, isRunning: false, isPaused: false, pauseReason: null, pauseNote: null, pausedUntil: null, jobId: 'agent-123', timezone: 'UTC', catchUp: true, overlap: 'skip', jitterMs: 0,
        },
      },
    });

    const replaced = await s.call('POST', '/api/agents/agent-123/schedule', { body: { cronExpression: '@daily', jobId: 'job-456', timezone: 'Europe/Berlin' } });
    expect(replaced.status).toBe(200);
    const again = await s.call('GET', '/api/agents/agent-123/schedule');
    expect(again.body.data.taskDetails).toMatchObject({ priority: 2, jobId: 'job-456', timezone: 'Europe/Berlin' });
    const agents = await s.call('GET', '/api/agents');
    expect(agents.body.data[0]).toMatchObject({ scheduleExpression: '@daily', scheduleEnabled: true, nextRunAt: expect.stringMatching(ISO) });
  });

  it('stores enabled: false without a next run, and answers for an agent without a schedule', async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: { id: 'a', name: 'A', handler: 'demo' } });
    const none = await s.call('GET', '/api/agents/a/schedule');
    expect(none.body.data).toMatchObject({ scheduleExpression: null, scheduleEnabled: false, nextRunAt: null, taskDetails: null });
    expect((await s.call('DELETE', '/api/agents/a/schedule')).status).toBe(404);
    const off = await s.call('POST', '/api/agents/a/schedule', { body: { cronExpression: '* * * * *', enabled: false } });
    expect(off.body.data).toMatchObject({ scheduleEnabled: false, nextRunAt: null });
    expect((await s.call('GET', '/api/agents/schedule/status')).body.data.scheduledTasksCount).toBe(0);
  });

  it('answers 400 naming the field for a bad expression, priority or timezone, and changes nothing', async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: { id: 'a', name: 'A', handler: 'demo' } });
    const cases: [unknown, RegExp][] = [
      [{ cronExpression: 'every day' }, /cronExpression: invalid cron expression "every day"/],
      [{ cronExpression: '61 * * * *' }, /cronExpression: invalid cron expression "61 \* \* \* \*"/],
      [{}, /body\.cronExpression: /],
      [{ cronExpression: '* * * * *', priority: 'high' }, /body\.priority: expected one of "LOW", "NORMAL", "HIGH", "CRITICAL", got "high"/],
      [{ cronExpression: '* * * * *', priority: 3 }, /body\.priority/],
      [{ cronExpression: '* * * * *', enabled: 'yes' }, /body\.enabled: expected a boolean/],
      [{ cronExpression: '* * * * *', timezone: 'Moon/Base' }, /timezone: .*"Moon\/Base"/],
      [{ cronExpression: '* * * * *', jobId: 'has space' }, /body\.jobId/],
    ];
    for (const [body, message] of cases) {
      const r = await s.call('POST', '/api/agents/a/schedule', { body });
      expect(r.status, JSON.stringify(body)).toBe(400);
      expect(r.body).toEqual({ success: false, error: expect.stringMatching(message) });
    }
    expect((await s.call('GET', '/api/agents/a/schedule')).body.data.taskDetails).toBeNull();
  });

  it('pauses and resumes with the documented messages and codes', async () => {
    const hold = holdHandler();
    await using s = await startServer({ handlers: [hold.def] });
    await s.call('POST', '/api/agents', { body: { id: 'agent-123', name: 'A', handler: 'hold' } });
    await s.call('POST', '/api/agents/agent-123/schedule', { body: { cronExpression: '0 0 1 1 *', jobId: 'job-456' } });

    expect((await s.call('PATCH', '/api/agents/agent-123/schedule/wrong/pause')).status).toBe(404);
    expect((await s.call('PATCH', '/api/agents/nobody/schedule/job-456/pause')).status).toBe(404);
    const notPaused = await s.call('PATCH', '/api/agents/agent-123/schedule/job-456/resume');
    expect(notPaused).toMatchObject({ status: 400, body: { success: false, error: 'Job job-456 is not paused' } });

    const run = await s.call('POST', '/api/agents/agent-123/run');
    expect(run.status).toBe(202);
    expect(run.body.data).toEqual({ runId: expect.any(String) });
    await hold.nextEntered();
    const busy = await s.call('PATCH', '/api/agents/agent-123/schedule/job-456/pause');
    expect(busy).toMatchObject({ status: 409, body: { success: false, error: 'Cannot pause agent agent-123 while it is running' } });
    expect((await s.call('GET', '/api/agents/agent-123/schedule')).body.data).toMatchObject({ status: 'RUNNING', taskDetails: { isRunning: true } });
    const completed = nextEvent(s.app, (e) => e.type === 'agent:completed');
    hold.releaseAll();
    await completed;

    const paused = await s.call('PATCH', '/api/agents/agent-123/schedule/job-456/pause');
    expect(paused.status).toBe(200);
    expect(paused.body).toEqual({ success: true, message: 'Job job-456 paused successfully', data: { agentId: 'agent-123', jobId: 'job-456', status: 'paused' } });
    const info = await s.call('GET', '/api/agents/agent-123/schedule');
    expect(info.body.data).toMatchObject({ status: 'PAUSED', nextRunAt: null, scheduleEnabled: true, taskDetails: { isPaused: true } });
    expect((await s.call('GET', '/api/agents/schedule/paused')).body).toEqual({ success: true, data: [{ agentId: 'agent-123', jobId: 'job-456', pauseReason: 'manual', pauseNote: null, pausedUntil: null }] });
    expect((await s.call('GET', '/api/agents/schedule/status')).body.data).toMatchObject({ pausedJobsCount: 1, scheduledTasksCount: 1 });
    const bob = await s.token('bob');
    expect((await s.call('GET', '/api/agents/schedule/paused', { token: bob })).body.data).toEqual([]);

    const resumed = await s.call('PATCH', '/api/agents/agent-123/schedule/job-456/resume');
    expect(resumed.status).toBe(200);
    expect(resumed.body).toEqual({
      success: true,
      message: 'Job job-456 resumed successfully',
      data: { agentId: 'agent-123', jobId: 'job-456', status: 'resumed', nextRunAt: expect.stringMatching(/^\d{4}-01-01T00:00:00\.000Z$/) },
    });
    expect((await s.call('GET', '/api/agents/agent-123/schedule')).body.data.status).toBe('IDLE');
  });

  it('unschedules with the documented message', async () => {
    await using s = await startServer();
    await s.call('POST', '/api/agents', { body: { id: 'a', name: 'A', handler: 'demo' } });
    await s.call('POST', '/api/agents/a/schedule', { body: { cronExpression: '@hourly' } });
    const r = await s.call('DELETE', '/api/agents/a/schedule');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ success: true, message: 'Agent unscheduled successfully' });
    expect((await s.call('GET', '/api/agents/a/schedule')).body.data).toMatchObject({ scheduleExpression: null, taskDetails: null });
    expect((await s.call('GET', '/api/agents/schedule/status')).body.data.scheduledTasksCount).toBe(0);
  });

  it('reports scheduler status with the documented fields', async () => {
    await using s = await startServer({ env: { MAX_CONCURRENT_AGENTS: '7' } });
    const r = await s.call('GET', '/api/agents/schedule/status');
    expect(r.body).toEqual({ success: true, data: { isRunning: true, scheduledTasksCount: 0, runningAgentsCount: 0, queuedTasksCount: 0, maxConcurrentAgents: 7, pausedJobsCount: 0 } });
    expect((await s.call('GET', '/api/agents/schedule/status', { token: null })).status).toBe(401);
  });

  it('runs an agent now, lists its runs newest first, and cancels a running one', async () => {
    const hold = holdHandler();
    await using s = await startServer({ handlers: [hold.def] });
    await s.call('POST', '/api/agents', { body: { id: 'd', name: 'Demo', handler: 'demo', config: { steps: 2, stepMs: 0 } } });
    const done = nextEvent(s.app, (e) => e.type === 'agent:completed');
    const run = await s.call('POST', '/api/agents/d/run');
    expect(run.status).toBe(202);
    await done;
    const runs = await s.call('GET', '/api/agents/d/runs?limit=5');
    expect(runs.body.data).toEqual([
      {
        id: run.body.data.runId, agentId: 'd', jobId: 'd', trigger: 'manual', attempt: 1, status: 'completed',
        scheduledAt: expect.stringMatching(ISO), startedAt: expect.stringMatching(ISO), finishedAt: expect.stringMatching(ISO),
        durationMs: expect.any(Number), progress: 100, error: null, instanceId: s.app.instance.id, outputPreview: null, outputTruncated: false, usage: null,
      },
    ]);
    expect((await s.call('GET', '/api/agents/d')).body.data).toMatchObject({ status: 'COMPLETED', lastRunAt: expect.stringMatching(ISO), lastError: null });

    await s.call('POST', '/api/agents', { body: { id: 'h', name: 'Hold', handler: 'hold' } });
    const held = await s.call('POST', '/api/agents/h/run');
    await hold.nextEntered();
    const bob = await s.token('bob');
    expect((await s.call('POST', `/api/runs/${held.body.data.runId}/cancel`, { token: bob })).status).toBe(404);
    const cancelled = await s.call('POST', `/api/runs/${held.body.data.runId}/cancel`);
    expect(cancelled).toMatchObject({ status: 200, body: { success: true, data: { runId: held.body.data.runId, status: 'cancelled' } } });
    expect((await s.call('GET', '/api/agents/h/runs')).body.data[0]).toMatchObject({ status: 'cancelled' });
    expect((await s.call('POST', `/api/runs/${held.body.data.runId}/cancel`)).status).toBe(409);
    expect((await s.call('POST', '/api/runs/run_missing/cancel')).status).toBe(404);
  });

  it('deleting an agent aborts its run and removes its schedule', async () => {
    const hold = holdHandler();
    await using s = await startServer({ handlers: [hold.def] });
    await s.call('POST', '/api/agents', { body: { id: 'h', name: 'Hold', handler: 'hold' } });
    await s.call('POST', '/api/agents/h/schedule', { body: { cronExpression: '@hourly' } });
    await s.call('POST', '/api/agents/h/run');
    await hold.nextEntered();
    expect((await s.call('DELETE', '/api/agents/h')).status).toBe(200);
    expect((await s.call('GET', '/api/agents/schedule/status')).body.data).toMatchObject({ scheduledTasksCount: 0, runningAgentsCount: 0 });
    expect((await s.call('GET', '/api/agents/h/runs')).status).toBe(404);
  });
});
