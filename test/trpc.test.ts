import WebSocket from 'ws';
import { describe, expect, it } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import { createSchedulerClient } from '../client/index.ts';
import { deferred, nextEvent, startServer, type TestServer } from './harness.ts';

function client(s: TestServer, token: string) {
  return createSchedulerClient({ url: s.url, token, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket, retryDelayMs: () => 50 });
}

type Ev = { id: number; type: string; data: Record<string, unknown> };

/** Subscribes and collects `{ id, type }` until `done(events)` holds. */
function collect(c: ReturnType<typeof client>, input: { agentId: string; lastEventId?: number }, done: (events: Ev[]) => boolean) {
  const events: Ev[] = [];
  const finished = deferred<Ev[]>();
  const started = deferred();
  const sub = c.events.agent.subscribe(input, {
    onStarted: () => started.resolve(),
    onData: (e) => {
      events.push({ id: e.data.id, type: e.data.type, data: e.data.data as Record<string, unknown> });
      if (done(events)) finished.resolve(events);
    },
    onError: (err) => finished.reject(err),
  });
  return { events, finished: finished.promise, started: started.promise, unsubscribe: () => sub.unsubscribe() };
}

describe('tRPC', () => {
  it('mirrors the REST routes under the contract names, typed end to end', async () => {
    await using s = await startServer();
    await using c = client(s, await s.token());
    const agent = await c.agents.create.mutate({ id: 'writer', name: 'Writer', handler: 'demo', config: { steps: 2, stepMs: 0 } });
    expect(agent).toMatchObject({ id: 'writer', status: 'IDLE', scheduleEnabled: false });
    expect((await c.agents.list.query()).map((a) => a.id)).toEqual(['writer']);
    expect(await c.agents.update.mutate({ agentId: 'writer', name: 'Writer 2' })).toMatchObject({ name: 'Writer 2' });
    const scheduled = await c.schedule.set.mutate({ agentId: 'writer', cronExpression: '0 */6 * * *', priority: 'HIGH' });
    expect(scheduled).toMatchObject({ id: 'writer', scheduleExpression: '0 */6 * * *', scheduleEnabled: true });
    const info = await c.schedule.get.query({ agentId: 'writer' });
    expect(info.taskDetails?.priority).toBe(3);
    expect(await c.scheduler.status.query()).toMatchObject({ scheduledTasksCount: 1, maxConcurrentAgents: 5 });
    expect(await c.schedule.pause.mutate({ agentId: 'writer', jobId: 'writer' })).toEqual({ agentId: 'writer', jobId: 'writer', status: 'paused' });
    expect(await c.scheduler.paused.query()).toEqual([{ agentId: 'writer', jobId: 'writer', pauseReason: 'manual', pauseNote: null, pausedUntil: null }]);
    expect(await c.schedule.resume.mutate({ agentId: 'writer', jobId: 'writer' })).toMatchObject({ status: 'resumed', nextRunAt: expect.any(String) });
    const done = nextEvent(s.app, (e) => e.type === 'agent:completed');
    const { runId } = await c.agents.run.mutate({ agentId: 'writer' });
    await done;
    expect((await c.agents.runs.query({ agentId: 'writer', limit: 5 }))[0]).toMatchObject({ id: runId, status: 'completed' });
    expect(await c.schedule.remove.mutate({ agentId: 'writer' })).toEqual({ agentId: 'writer' });
    expect(await c.agents.delete.mutate({ agentId: 'writer' })).toEqual({ id: 'writer', deleted: true });
  });

  it('maps errors to tRPC codes with messages that name the field', async () => {
    await using s = await startServer();
    await using c = client(s, await s.token());
    await using bad = createSchedulerClient({ url: s.url, token: 'garbage' });
    const code = (p: Promise<unknown>) => p.then(() => 'OK', (e: unknown) => (e instanceof TRPCClientError ? `${e.data?.code}: ${e.message}` : String(e)));
    await c.agents.create.mutate({ id: 'a', name: 'A', handler: 'demo' });
    expect(await code(bad.agents.list.query())).toMatch(/^UNAUTHORIZED/);
    expect(await code(c.agents.get.query({ agentId: 'nope' }))).toBe('NOT_FOUND: Agent nope not found');
    expect(await code(c.agents.create.mutate({ id: 'a', name: 'A', handler: 'demo' }))).toBe('CONFLICT: Agent id "a" already exists');
    expect(await code(c.schedule.set.mutate({ agentId: 'a', cronExpression: 'nope' }))).toMatch(/^BAD_REQUEST: cronExpression: invalid cron expression "nope"/);
    expect(await code(c.schedule.set.mutate({ agentId: 'a', cronExpression: '* * * * *', priority: 'high' as 'HIGH' }))).toMatch(/^BAD_REQUEST: priority: expected one of/);
    expect(await code(c.schedule.resume.mutate({ agentId: 'a', jobId: 'a' }))).toBe('NOT_FOUND: No scheduled task found for agent a with job a');
  });

  it('streams started → progress → completed, and failed with willRetry', async () => {
    await using s = await startServer({ env: { RETRY_BASE_DELAY_MS: '50' } });
    await using c = client(s, await s.token());
    await c.agents.create.mutate({ id: 'demo', name: 'Demo', handler: 'demo', config: { steps: 2, stepMs: 0, failTimes: 1 } });
    const sub = collect(c, { agentId: 'demo' }, (evs) => evs.some((e) => e.type === 'agent:completed'));
    await sub.started;
    await c.agents.run.mutate({ agentId: 'demo' });
    const events = await sub.finished;
    sub.unsubscribe();
    expect(events.map((e) => e.type)).toEqual(['agent:started', 'agent:failed', 'agent:started', 'agent:progress', 'agent:progress', 'agent:completed']);
    expect(events[1]!.data).toMatchObject({ status: 'failed', error: 'demo failure (attempt 1)', attempt: 1, willRetry: true, nextRetryAt: expect.any(String) });
    expect(events[3]!.data).toMatchObject({ progress: 50, message: 'Step 1 of 2', currentStep: '1', totalSteps: 2 });
    expect(events[5]!.data).toMatchObject({ status: 'completed', duration: expect.any(Number), attempt: 2 });
    const ids = events.map((e) => e.id);
    expect(ids).toEqual([...ids].sort((a, b) => a - b));
  });

  it('resumes from lastEventId: every missed event, in order, none twice', async () => {
    await using s = await startServer();
    await using c = client(s, await s.token());
    await c.agents.create.mutate({ id: 'demo', name: 'Demo', handler: 'demo', config: { steps: 3, stepMs: 0 } });
    const first = collect(c, { agentId: 'demo' }, (evs) => evs.some((e) => e.type === 'agent:completed'));
    await first.started;
    await c.agents.run.mutate({ agentId: 'demo' });
    const seen = await first.finished;
    first.unsubscribe();
    // Disconnected: a second run happens unseen.
    const missed = nextEvent(s.app, (e) => e.type === 'agent:completed');
    await c.agents.run.mutate({ agentId: 'demo' });
    await missed;
    const lastId = seen.at(-1)!.id;
    const resumed = collect(c, { agentId: 'demo', lastEventId: lastId }, (evs) => evs.some((e) => e.type === 'agent:completed'));
    const got = await resumed.finished;
    resumed.unsubscribe();
    expect(got.map((e) => e.type)).toEqual(['agent:started', 'agent:progress', 'agent:progress', 'agent:progress', 'agent:completed']);
    expect(got.every((e) => e.id > lastId)).toBe(true);
    expect(new Set(got.map((e) => e.id)).size).toBe(got.length);
  });

  it('reconnects by itself after the socket drops and resumes without a gap', async () => {
    await using s = await startServer();
    await using c = client(s, await s.token());
    await c.agents.create.mutate({ id: 'demo', name: 'Demo', handler: 'demo', config: { steps: 2, stepMs: 0 } });
    const completions = (evs: Ev[]) => evs.filter((e) => e.type === 'agent:completed').length;
    const sub = collect(c, { agentId: 'demo' }, (evs) => completions(evs) === 2);
    await sub.started;
    const one = nextEvent(s.app, (e) => e.type === 'agent:completed');
    await c.agents.run.mutate({ agentId: 'demo' });
    await one;
    // Cut every tRPC socket from the server side, then run again while the client reconnects.
    const wssClients = [...s.app.trpcSockets()];
    expect(wssClients.length).toBeGreaterThan(0);
    for (const ws of wssClients) ws.terminate();
    await c.agents.run.mutate({ agentId: 'demo' });
    const events = await sub.finished;
    sub.unsubscribe();
    expect(events.map((e) => e.type)).toEqual(['agent:started', 'agent:progress', 'agent:progress', 'agent:completed', 'agent:started', 'agent:progress', 'agent:progress', 'agent:completed']);
    expect(new Set(events.map((e) => e.id)).size).toBe(events.length);
  });

  it("refuses another owner's agent for subscriptions and procedures alike", async () => {
    await using s = await startServer();
    await using alice = client(s, await s.token('alice'));
    await using bob = client(s, await s.token('bob'));
    await alice.agents.create.mutate({ id: 'secret', name: 'S', handler: 'demo' });
    await expect(bob.agents.get.query({ agentId: 'secret' })).rejects.toMatchObject({ data: { code: 'NOT_FOUND' } });
    await expect(bob.schedule.get.query({ agentId: 'secret' })).rejects.toMatchObject({ data: { code: 'NOT_FOUND' } });
    await expect(bob.agents.run.mutate({ agentId: 'secret' })).rejects.toMatchObject({ data: { code: 'NOT_FOUND' } });
    const refused = deferred<unknown>();
    bob.events.agent.subscribe({ agentId: 'secret' }, { onData: () => refused.reject(new Error('got data')), onError: (e) => refused.resolve(e) });
    expect(await refused.promise).toMatchObject({ data: { code: 'NOT_FOUND' }, message: 'Agent secret not found' });
  });

  it('gives an explicit resync event when the cursor is older than what is kept', async () => {
    await using s = await startServer();
    await using c = client(s, await s.token());
    await c.agents.create.mutate({ id: 'demo', name: 'Demo', handler: 'demo', config: { steps: 1, stepMs: 0 } });
    const done = nextEvent(s.app, (e) => e.type === 'agent:completed');
    await c.agents.run.mutate({ agentId: 'demo' });
    await done;
    await s.app.repo.flush();
    await s.app.repo.db.deleteFrom('events').where('id', '<=', 2).execute(); // as retention would
    const sub = collect(c, { agentId: 'demo', lastEventId: 0 }, (evs) => evs.some((e) => e.type === 'agent:completed'));
    const events = await sub.finished;
    sub.unsubscribe();
    expect(events[0]).toMatchObject({ type: 'resync', data: { oldestAvailableId: 3 } });
  });

  it('events.scheduler starts with the current figures, then sends each change', async () => {
    await using s = await startServer();
    await using c = client(s, await s.token());
    const got: { stats: { scheduledTasksCount: number } }[] = [];
    const first = deferred();
    const changed = deferred();
    const sub = c.events.scheduler.subscribe(undefined, {
      onData: (e) => {
        if (e.data.type !== 'scheduler:status') return;
        got.push(e.data.data);
        first.resolve();
        if (e.data.data.stats.scheduledTasksCount === 1) changed.resolve();
      },
    });
    // The figures at subscribe time first: a change made before the subscription is set up would be in them.
    await first.promise;
    await c.agents.create.mutate({ id: 'a', name: 'A', handler: 'demo' });
    await c.schedule.set.mutate({ agentId: 'a', cronExpression: '@yearly' });
    await changed.promise;
    sub.unsubscribe();
    expect(got[0]!.stats).toMatchObject({ isRunning: true, scheduledTasksCount: 0, maxConcurrentAgents: 5 });
    expect(got.at(-1)!.stats.scheduledTasksCount).toBe(1);
  });

  it('refuses WebSocket messages over 1 MiB', async () => {
    await using s = await startServer();
    const ws = new WebSocket(`${s.url.replace('http', 'ws')}/trpc`);
    await new Promise((r) => ws.once('open', r));
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.send('x'.repeat(1024 * 1024 + 1));
    expect(await closed).toBe(1009);
  });
});
