import { io as connect, type Socket } from 'socket.io-client';
import WebSocket from 'ws';
import { z } from 'zod';
import { describe, expect, it } from 'vitest';
import { TRPCClientError } from '@trpc/client';
import { createSchedulerClient } from '../client/index.ts';
import { createManualClock, type ManualClock } from '../src/core/clock.ts';
import { defineHandler, type UsageReport } from '../src/core/handlers.ts';
import type { StoredEvent } from '../src/schemas/events.ts';
import { at, deferred, nextEvent, recordEvents, startServer, type TestServer } from './harness.ts';

/**
 * CONTRACT §9 through the whole app (REST, tRPC, Socket.IO): what a run returned and used, an agent's usage by
 * UTC day, and budgets that pause a job and resume it at the next period. A custom handler returns what the test
 * queued and reports its usage; a manual clock puts runs on the days the test picks (finishedAt is the clock's
 * time, since the handler answers at once). The core-level cases live in test/core/{budgets,outputs-usage}.test.ts.
 */

interface Step {
  output?: unknown;
  usage?: UsageReport;
  /** Called once the handler has started (and reported its usage, if any). */
  started?: () => void;
  /** The handler returns only once this resolves. */
  hold?: Promise<void>;
}

/** The `spend` handler: each call does the next queued step (with none queued, it returns nothing and reports nothing). */
function spendHandler() {
  const queue: Step[] = [];
  const def = defineHandler({
    name: 'spend',
    config: z.object({}),
    async run(ctx) {
      const step = queue.shift() ?? {};
      if (step.usage) ctx.reportUsage(step.usage);
      step.started?.();
      await step.hold;
      return step.output;
    },
  });
  return { def, next: (...steps: Step[]) => queue.push(...steps) };
}

const of = (type: StoredEvent['type'], agentId: string) => (e: StoredEvent) => e.type === type && e.agentId === agentId;

/** Runs `agentId` now over REST and resolves with its runId once its agent:completed has been sent. */
async function runToCompletion(s: TestServer, agentId: string): Promise<string> {
  const done = nextEvent(s.app, of('agent:completed', agentId));
  const started = await s.call('POST', `/api/agents/${agentId}/run`);
  expect(started.status).toBe(202);
  await done;
  return started.body.data.runId as string;
}

/**
 * Runs `body` against the server, then closes it: closing waits for every budget check asked for (scheduler.stop),
 * so what the log holds afterwards is all that was sent — the way to see that an event did not come.
 */
async function thenClose(s: TestServer, body: () => Promise<void>): Promise<void> {
  try {
    await body();
  } finally {
    await s[Symbol.asyncDispose]();
  }
}

function trpc(s: TestServer, token: string) {
  return createSchedulerClient({ url: s.url, token, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket, retryDelayMs: () => 50 });
}

const trpcError = (p: Promise<unknown>) => p.then(() => 'OK', (e: unknown) => (e instanceof TRPCClientError ? `${e.data?.code}: ${e.message}` : String(e)));

const usage = (model: string, inputTokens: number, outputTokens: number, costUsd?: number | null): UsageReport => ({
  model, inputTokens, outputTokens, ...(costUsd !== undefined && { costUsd }),
});

async function serverAt(start: string, env: Record<string, string> = {}): Promise<{ s: TestServer; clock: ManualClock; h: ReturnType<typeof spendHandler> }> {
  const clock = createManualClock(at(start));
  const h = spendHandler();
  const s = await startServer({ clock, handlers: [h.def], env });
  return { s, clock, h };
}

describe('usage by UTC day through the API', () => {
  it('rolls up runs on different days: totals and byDay exact, days without runs left out, from inclusive, to exclusive, a null cost as 0', async () => {
    const { s, clock, h } = await serverAt('2026-01-20T08:00:00Z');
    await using _s = s;
    expect((await s.call('POST', '/api/agents', { body: { id: 'u', name: 'U', handler: 'spend' } })).status).toBe(201);

    // More than 30 days before the last run: outside the default range.
    h.next({ output: 'old', usage: usage('m', 1000, 100, 1) });
    await runToCompletion(s, 'u');
    clock.set(at('2026-03-01T10:00:00Z'));
    h.next({ output: 'a', usage: usage('m', 100, 10, 0.5) });
    await runToCompletion(s, 'u');
    // The last millisecond of 1 March, with a model LLM_PRICES does not price: its cost is null.
    clock.set(at('2026-03-01T23:59:59.999Z'));
    h.next({ output: 'b', usage: usage('unpriced', 50, 5) });
    const nullCostRun = await runToCompletion(s, 'u');
    // 2 March has no run; 3 March starts with one at midnight exactly.
    clock.set(at('2026-03-03T00:00:00Z'));
    h.next({ output: 'c', usage: usage('m', 200, 20, 0.25) });
    await runToCompletion(s, 'u');
    // A run without usage counts as a run with no tokens.
    clock.set(at('2026-03-05T12:00:00Z'));
    h.next({ output: 'd', usage: usage('m', 10, 1, 0.125) }, { output: 'e' });
    await runToCompletion(s, 'u');
    await runToCompletion(s, 'u');

    expect((await s.call('GET', `/api/runs/${nullCostRun}`)).body.data.usage).toEqual({ model: 'unpriced', inputTokens: 50, outputTokens: 5, costUsd: null });

    const byDay = {
      jan20: { day: '2026-01-20', runs: 1, inputTokens: 1000, outputTokens: 100, costUsd: 1 },
      mar1: { day: '2026-03-01', runs: 2, inputTokens: 150, outputTokens: 15, costUsd: 0.5 },
      mar3: { day: '2026-03-03', runs: 1, inputTokens: 200, outputTokens: 20, costUsd: 0.25 },
      mar5: { day: '2026-03-05', runs: 2, inputTokens: 10, outputTokens: 1, costUsd: 0.125 },
    };

    // Default: the last 30 days up to now (5 March 12:00), so 20 January is out.
    const dflt = await s.call('GET', '/api/agents/u/usage');
    expect(dflt.status).toBe(200);
    expect(dflt.body).toEqual({ success: true, data: { runs: 5, inputTokens: 360, outputTokens: 36, costUsd: 0.875, byDay: [byDay.mar1, byDay.mar3, byDay.mar5] } });

    const range = async (from: string, to: string) => {
      const r = await s.call('GET', `/api/agents/u/usage?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`);
      expect(r.status).toBe(200);
      return r.body.data;
    };
    expect(await range('2026-01-01T00:00:00Z', '2026-04-01T00:00:00Z')).toEqual({
      runs: 6, inputTokens: 1360, outputTokens: 136, costUsd: 1.875, byDay: [byDay.jan20, byDay.mar1, byDay.mar3, byDay.mar5],
    });
    // from is inclusive at the exact instant of the null-cost run; to is exclusive at the exact instant of 3 March's run.
    expect(await range('2026-03-01T23:59:59.999Z', '2026-03-03T00:00:00.000Z')).toEqual({
      runs: 1, inputTokens: 50, outputTokens: 5, costUsd: 0, byDay: [{ day: '2026-03-01', runs: 1, inputTokens: 50, outputTokens: 5, costUsd: 0 }],
    });
    // One millisecond later on each side: the null-cost run is out, 3 March's is in.
    expect(await range('2026-03-02T00:00:00.000Z', '2026-03-03T00:00:00.001Z')).toEqual({ runs: 1, inputTokens: 200, outputTokens: 20, costUsd: 0.25, byDay: [byDay.mar3] });
    // An offset is an instant like any other: 3 March 01:00+01:00 is midnight UTC, so that run is excluded.
    expect(await range('2026-03-02T00:00:00Z', '2026-03-03T01:00:00+01:00')).toEqual({ runs: 0, inputTokens: 0, outputTokens: 0, costUsd: 0, byDay: [] });
  });

  it('refuses a bad range naming the field (400), hides another owner\'s agent (404), and answers the same over tRPC', async () => {
    const { s, clock, h } = await serverAt('2026-03-01T10:00:00Z');
    await using _s = s;
    await s.call('POST', '/api/agents', { body: { id: 'u', name: 'U', handler: 'spend' } });
    h.next({ output: 'a', usage: usage('m', 100, 10, 0.5) });
    await runToCompletion(s, 'u');
    clock.set(at('2026-03-02T10:00:00Z'));
    h.next({ output: 'b', usage: usage('m', 1, 2, null) });
    await runToCompletion(s, 'u');

    const backwards = await s.call('GET', '/api/agents/u/usage?from=2026-03-02T00:00:00Z&to=2026-03-01T00:00:00Z');
    expect(backwards).toMatchObject({ status: 400, body: { success: false, error: 'query.from: expected an instant before query.to, got 2026-03-02T00:00:00.000Z' } });
    const empty = await s.call('GET', '/api/agents/u/usage?from=2026-03-01T00:00:00Z&to=2026-03-01T00:00:00Z');
    expect(empty).toMatchObject({ status: 400, body: { error: expect.stringMatching(/^query\.from: /) } });
    const notIso = await s.call('GET', '/api/agents/u/usage?from=yesterday');
    expect(notIso).toMatchObject({ status: 400, body: { success: false, error: 'query.from: expected an ISO 8601 date-time, got "yesterday"' } });
    const badTo = await s.call('GET', '/api/agents/u/usage?to=2026-13-01T00:00:00Z');
    expect(badTo).toMatchObject({ status: 400, body: { error: expect.stringMatching(/^query\.to: /) } });
    // A date without a time is not a date-time.
    expect((await s.call('GET', '/api/agents/u/usage?from=2026-03-01')).status).toBe(400);

    const bob = await s.token('bob');
    expect(await s.call('GET', '/api/agents/u/usage', { token: bob })).toMatchObject({ status: 404, body: { success: false, error: 'Agent u not found' } });
    expect((await s.call('GET', '/api/agents/nobody/usage')).status).toBe(404);
    expect((await s.call('GET', '/api/agents/u/usage', { token: null })).status).toBe(401);

    await using c = trpc(s, await s.token());
    expect(await c.agents.usage.query({ agentId: 'u', from: '2026-03-01T00:00:00Z', to: '2026-03-03T00:00:00Z' })).toEqual({
      runs: 2, inputTokens: 101, outputTokens: 12, costUsd: 0.5,
      byDay: [
        { day: '2026-03-01', runs: 1, inputTokens: 100, outputTokens: 10, costUsd: 0.5 },
        { day: '2026-03-02', runs: 1, inputTokens: 1, outputTokens: 2, costUsd: 0 },
      ],
    });
    expect(await c.agents.usage.query({ agentId: 'u', from: '2026-03-02T10:00:00Z' })).toMatchObject({ runs: 1, byDay: [{ day: '2026-03-02' }] });
    expect((await c.agents.usage.query({ agentId: 'u' })).runs).toBe(2);
    expect(await trpcError(c.agents.usage.query({ agentId: 'u', from: 'yesterday' }))).toMatch(/^BAD_REQUEST: from: expected an ISO 8601 date-time/);
    expect(await trpcError(c.agents.usage.query({ agentId: 'u', from: '2026-03-02T00:00:00Z', to: '2026-03-01T00:00:00Z' }))).toMatch(/^BAD_REQUEST: query\.from: /);
    await using cb = trpc(s, bob);
    expect(await trpcError(cb.agents.usage.query({ agentId: 'u' }))).toBe('NOT_FOUND: Agent u not found');
  });
});

describe('runs.get through the API', () => {
  it('answers the whole output where the list carries a 500-character preview; a non-string output is JSON; unknown or foreign runs are 404', async () => {
    const { s, h } = await serverAt('2026-03-01T10:00:00Z');
    await using _s = s;
    await s.call('POST', '/api/agents', { body: { id: 'o', name: 'O', handler: 'spend' } });
    const long = 'é'.repeat(400) + 'x'.repeat(400); // 800 characters, 1200 bytes: the preview counts characters
    h.next({ output: long, usage: usage('m', 3, 4, 0.5) }, { output: { items: [1, 2], ok: true, text: 'ü' } }, {});
    const longRun = await runToCompletion(s, 'o');
    const jsonRun = await runToCompletion(s, 'o');
    const noneRun = await runToCompletion(s, 'o');

    const got = await s.call('GET', `/api/runs/${longRun}`);
    expect(got.status).toBe(200);
    expect(got.body.data).toMatchObject({
      id: longRun, agentId: 'o', jobId: 'o', status: 'completed', trigger: 'manual', output: long, outputPreview: long.slice(0, 500), outputTruncated: false,
      usage: { model: 'm', inputTokens: 3, outputTokens: 4, costUsd: 0.5 }, finishedAt: '2026-03-01T10:00:00.000Z',
    });
    expect((await s.call('GET', `/api/runs/${jsonRun}`)).body.data).toMatchObject({ output: '{"items":[1,2],"ok":true,"text":"ü"}', usage: null });
    expect((await s.call('GET', `/api/runs/${noneRun}`)).body.data).toMatchObject({ output: null, outputPreview: null, usage: null });

    const list = await s.call('GET', '/api/agents/o/runs');
    expect(list.status).toBe(200);
    const byId = new Map((list.body.data as { id: string }[]).map((r) => [r.id, r as Record<string, unknown>]));
    expect(byId.get(longRun)).toMatchObject({ outputPreview: long.slice(0, 500), outputTruncated: false, usage: { model: 'm', inputTokens: 3, outputTokens: 4, costUsd: 0.5 } });
    expect(byId.get(longRun)).not.toHaveProperty('output');
    expect(byId.get(jsonRun)).toMatchObject({ outputPreview: '{"items":[1,2],"ok":true,"text":"ü"}', usage: null });

    expect(await s.call('GET', '/api/runs/run_nope')).toMatchObject({ status: 404, body: { success: false, error: 'Run run_nope not found' } });
    const bob = await s.token('bob');
    expect(await s.call('GET', `/api/runs/${longRun}`, { token: bob })).toMatchObject({ status: 404, body: { error: `Run ${longRun} not found` } });
    // An admin sees every owner's runs (CONTRACT §2).
    expect((await s.call('GET', `/api/runs/${longRun}`, { token: await s.token('root', 'admin') })).status).toBe(200);

    await using c = trpc(s, await s.token());
    const viaTrpc = await c.runs.get.query({ runId: longRun });
    expect(viaTrpc).toEqual(got.body.data);
    expect(viaTrpc.output).toHaveLength(800);
    expect((await c.agents.runs.query({ agentId: 'o', limit: 5 })).find((r) => r.id === longRun)?.outputPreview).toHaveLength(500);
    expect(await trpcError(c.runs.get.query({ runId: 'run_nope' }))).toBe('NOT_FOUND: Run run_nope not found');
    await using cb = trpc(s, bob);
    expect(await trpcError(cb.runs.get.query({ runId: longRun }))).toBe(`NOT_FOUND: Run ${longRun} not found`);
  });
});

describe('budgets through REST', () => {
  it('refuses bad budgets naming the field (400), and answers a good one in the agent on create and PATCH', async () => {
    const { s } = await serverAt('2026-03-01T10:00:00Z');
    await using _s = s;
    const create = (budget: unknown) => s.call('POST', '/api/agents', { body: { id: 'b', name: 'B', handler: 'spend', budget } });
    const refused: [unknown, string | RegExp][] = [
      [{ period: 'day' }, 'body.budget: expected maxCostUsd or maxTokens (or both), got {"period":"day"}'],
      [{ period: 'week', maxCostUsd: 1 }, 'body.budget.period: expected "day" or "month", got "week"'],
      [{ maxCostUsd: 1 }, /^body\.budget\.period: /],
      [{ period: 'day', maxCostUsd: -1 }, 'body.budget.maxCostUsd: expected a positive number of US dollars, got -1'],
      [{ period: 'day', maxCostUsd: 0 }, /^body\.budget\.maxCostUsd: /],
      [{ period: 'day', maxTokens: 1.5 }, 'body.budget.maxTokens: expected a positive whole number of tokens, got 1.5'],
      [{ period: 'day', maxTokens: '100' }, /^body\.budget\.maxTokens: /],
      [{ period: 'day', maxTokens: 100, extra: true }, 'body.budget: unknown field "extra"'],
      ['lots', /^body\.budget: expected \{ period, maxCostUsd\?, maxTokens\? \}/],
    ];
    for (const [budget, error] of refused) {
      const r = await create(budget);
      expect({ budget, status: r.status }).toEqual({ budget, status: 400 });
      expect(r.body.error).toEqual(typeof error === 'string' ? error : expect.stringMatching(error));
    }
    expect((await s.call('GET', '/api/agents')).body.data).toEqual([]);

    const made = await create({ period: 'month', maxCostUsd: 2.5, maxTokens: 1000 });
    expect(made.status).toBe(201);
    expect(made.body.data.budget).toEqual({ period: 'month', maxCostUsd: 2.5, maxTokens: 1000 });
    const patched = await s.call('PATCH', '/api/agents/b', { body: { budget: { period: 'day', maxTokens: 10 } } });
    expect(patched.status).toBe(200);
    expect(patched.body.data.budget).toEqual({ period: 'day', maxTokens: 10 });
    expect((await s.call('GET', '/api/agents/b')).body.data.budget).toEqual({ period: 'day', maxTokens: 10 });
    const badPatch = await s.call('PATCH', '/api/agents/b', { body: { budget: { period: 'year', maxTokens: 10 } } });
    expect(badPatch).toMatchObject({ status: 400, body: { error: expect.stringMatching(/^body\.budget\.period: /) } });
    expect((await s.call('PATCH', '/api/agents/b', { body: { budget: null } })).body.data.budget).toBeNull();
    expect((await s.call('GET', '/api/agents/b')).body.data.budget).toBeNull();
  });

  it('crossing the budget pauses the job (pauseReason "budget"), refuses manual runs with 409, and the next UTC day resumes it', async () => {
    const { s, clock, h } = await serverAt('2026-03-10T10:00:00Z');
    await using _s = s;
    using log = recordEvents(s.app.scheduler.events);
    await s.call('POST', '/api/agents', { body: { id: 'spender', name: 'Spender', handler: 'spend', budget: { period: 'day', maxCostUsd: 1 } } });
    await s.call('POST', '/api/agents', { body: { id: 'other', name: 'Other', handler: 'spend' } });
    // Yearly fires: nothing fires on its own while the test moves the clock over a few days.
    expect((await s.call('POST', '/api/agents/spender/schedule', { body: { cronExpression: '0 0 1 1 *', jobId: 'spend-job' } })).status).toBe(201);
    expect((await s.call('POST', '/api/agents/other/schedule', { body: { cronExpression: '0 0 1 1 *', jobId: 'other-job' } })).status).toBe(201);

    h.next({ output: 'first', usage: usage('m', 300, 100, 0.5) });
    await runToCompletion(s, 'spender');
    expect((await s.call('GET', '/api/agents/schedule/paused')).body.data).toEqual([]);
    expect(log.events.some((e) => e.type === 'agent:budget-exceeded')).toBe(false);

    clock.set(at('2026-03-10T15:30:00Z'));
    h.next({ output: 'second', usage: usage('m', 200, 50, 0.5) });
    const pausedEvent = nextEvent(s.app, of('agent:paused', 'spender'));
    await runToCompletion(s, 'spender');
    await pausedEvent;
    const exceeded = log.events.filter(of('agent:budget-exceeded', 'spender'));
    expect(exceeded).toHaveLength(1);
    expect(exceeded[0]!.data).toEqual({
      agentId: 'spender', jobId: 'spend-job', period: 'day', costUsd: 1, tokens: 650, resumesAt: '2026-03-11T00:00:00.000Z', timestamp: '2026-03-10T15:30:00.000Z',
    });
    const paused = log.events.find(of('agent:paused', 'spender'))!;
    expect(paused.id).toBeGreaterThan(exceeded[0]!.id);
    expect(paused.data).toMatchObject({ agentId: 'spender', jobId: 'spend-job', status: 'paused' });

    expect((await s.call('GET', '/api/agents/schedule/paused')).body).toEqual({ success: true, data: [{ agentId: 'spender', jobId: 'spend-job', pauseReason: 'budget', pauseNote: null, pausedUntil: expect.stringMatching(/T00:00:00.000Z$/) }] });
    const info = await s.call('GET', '/api/agents/spender/schedule');
    expect(info.body.data).toMatchObject({ status: 'PAUSED', taskDetails: { jobId: 'spend-job', isPaused: true, pauseReason: 'budget' } });
    const refused = await s.call('POST', '/api/agents/spender/run');
    expect(refused).toMatchObject({ status: 409, body: { success: false, error: 'Agent spender is over its budget until 2026-03-11T00:00:00.000Z' } });

    // A manual pause of another job is told apart.
    expect((await s.call('PATCH', '/api/agents/other/schedule/other-job/pause')).status).toBe(200);
    expect((await s.call('GET', '/api/agents/schedule/paused')).body.data).toEqual(expect.arrayContaining([
      { agentId: 'spender', jobId: 'spend-job', pauseReason: 'budget', pauseNote: null, pausedUntil: expect.stringMatching(/T00:00:00.000Z$/) },
      { agentId: 'other', jobId: 'other-job', pauseReason: 'manual', pauseNote: null, pausedUntil: null },
    ]));
    expect((await s.call('GET', '/api/agents/schedule/paused')).body.data).toHaveLength(2);
    expect((await s.call('GET', '/api/agents/other/schedule')).body.data.taskDetails).toMatchObject({ isPaused: true, pauseReason: 'manual' });

    // Still the same UTC day one millisecond before midnight: still paused.
    clock.set(at('2026-03-10T23:59:59.999Z'));
    expect((await s.call('POST', '/api/agents/spender/run')).status).toBe(409);
    const resumed = nextEvent(s.app, of('agent:resumed', 'spender'));
    clock.set(at('2026-03-11T00:00:00Z'));
    expect((await resumed).data).toMatchObject({ agentId: 'spender', jobId: 'spend-job', status: 'resumed', nextRunAt: '2027-01-01T00:00:00.000Z', timestamp: '2026-03-11T00:00:00.000Z' });
    // The manual pause is not ended by the period.
    expect((await s.call('GET', '/api/agents/schedule/paused')).body.data).toEqual([{ agentId: 'other', jobId: 'other-job', pauseReason: 'manual', pauseNote: null, pausedUntil: null }]);
    expect((await s.call('GET', '/api/agents/spender/schedule')).body.data.taskDetails).toMatchObject({ isPaused: false, pauseReason: null });
    expect((await s.call('PATCH', '/api/agents/other/schedule/other-job/resume')).status).toBe(200);
    expect((await s.call('GET', '/api/agents/schedule/paused')).body.data).toEqual([]);
    h.next({ output: 'next day', usage: usage('m', 1, 1, 0.25) });
    await runToCompletion(s, 'spender'); // 202 again
    expect(log.events.filter((e) => e.type === 'agent:resumed' && e.agentId === 'spender')).toHaveLength(1);
  });

  it('a token budget over a month: the 409 names the end of the month and the job resumes then', async () => {
    const { s, clock, h } = await serverAt('2026-04-30T20:00:00Z');
    await using _s = s;
    await s.call('POST', '/api/agents', { body: { id: 't', name: 'T', handler: 'spend', budget: { period: 'month', maxTokens: 100 } } });
    await s.call('POST', '/api/agents/t/schedule', { body: { cronExpression: '0 0 1 1 *' } });
    const exceeded = nextEvent(s.app, of('agent:budget-exceeded', 't'));
    h.next({ output: 'x', usage: usage('unpriced', 60, 40) });
    await runToCompletion(s, 't');
    expect((await exceeded).data).toEqual({ agentId: 't', jobId: 't', period: 'month', costUsd: 0, tokens: 100, resumesAt: '2026-05-01T00:00:00.000Z', timestamp: '2026-04-30T20:00:00.000Z' });
    expect(await s.call('POST', '/api/agents/t/run')).toMatchObject({ status: 409, body: { error: 'Agent t is over its budget until 2026-05-01T00:00:00.000Z' } });
    const resumed = nextEvent(s.app, of('agent:resumed', 't'));
    clock.set(at('2026-05-01T00:00:00Z'));
    await resumed;
    expect((await s.call('POST', '/api/agents/t/run')).status).toBe(202);
  });
});

describe('budgets over Socket.IO', () => {
  it("a client in the agent's room receives agent:budget-exceeded, then agent:paused", async () => {
    const { s, h } = await serverAt('2026-03-10T10:00:00Z');
    await using _s = s;
    await s.call('POST', '/api/agents', { body: { id: 'sock', name: 'Sock', handler: 'spend', budget: { period: 'day', maxCostUsd: 0.5 } } });
    await s.call('POST', '/api/agents/sock/schedule', { body: { cronExpression: '0 0 1 1 *', jobId: 'sock-job' } });
    const sock: Socket = connect(s.url, { auth: { token: await s.token() }, transports: ['websocket'], reconnection: false });
    try {
      await new Promise<void>((resolve, reject) => {
        sock.once('connect', () => resolve());
        sock.once('connect_error', reject);
      });
      const got: { event: string; data: Record<string, unknown> }[] = [];
      sock.onAny((event: string, data: Record<string, unknown>) => void (event.startsWith('agent:') && got.push({ event, data })));
      expect(await sock.emitWithAck('subscribe-agent-updates', 'sock')).toEqual({ success: true });
      const heardPause = new Promise<void>((resolve) => sock.once('agent:paused', () => resolve()));
      h.next({ output: 'pricey', usage: usage('m', 7, 3, 0.75) });
      expect((await s.call('POST', '/api/agents/sock/run')).status).toBe(202);
      await heardPause;
      const names = got.map((g) => g.event);
      expect(names).toEqual(['agent:started', 'agent:completed', 'agent:budget-exceeded', 'agent:paused']);
      expect(got[2]!.data).toEqual({
        agentId: 'sock', jobId: 'sock-job', period: 'day', costUsd: 0.75, tokens: 10, resumesAt: '2026-03-11T00:00:00.000Z', timestamp: '2026-03-10T10:00:00.000Z',
      });
      expect(got[1]!.data).toMatchObject({ usage: { model: 'm', inputTokens: 7, outputTokens: 3, costUsd: 0.75 } });

      // Another owner in no room of this agent hears none of it.
      const bob: Socket = connect(s.url, { auth: { token: await s.token('bob') }, transports: ['websocket'], reconnection: false });
      try {
        await new Promise<void>((resolve, reject) => {
          bob.once('connect', () => resolve());
          bob.once('connect_error', reject);
        });
        expect(await bob.emitWithAck('subscribe-agent-updates', 'sock')).toEqual({ success: false, error: 'Agent sock not found' });
      } finally {
        bob.close();
      }
    } finally {
      sock.close();
    }
  });
});

describe('usage and budgets at their edges', () => {
  it('counts a run on the UTC day it finished, not the day it started', async () => {
    const { s, clock, h } = await serverAt('2026-03-01T23:59:59.000Z');
    await using _s = s;
    await s.call('POST', '/api/agents', { body: { id: 'late', name: 'Late', handler: 'spend' } });
    const started = deferred();
    const release = deferred();
    h.next({ output: 'over midnight', usage: usage('m', 5, 5, 0.5), started: () => started.resolve(), hold: release.promise });
    const done = nextEvent(s.app, of('agent:completed', 'late'));
    expect((await s.call('POST', '/api/agents/late/run')).status).toBe(202);
    await started.promise;
    clock.set(at('2026-03-02T00:00:01.000Z'));
    release.resolve();
    await done;
    const r = await s.call('GET', '/api/agents/late/usage?from=2026-03-01T00:00:00Z&to=2026-03-03T00:00:00Z');
    expect(r.body.data).toEqual({ runs: 1, inputTokens: 5, outputTokens: 5, costUsd: 0.5, byDay: [{ day: '2026-03-02', runs: 1, inputTokens: 5, outputTokens: 5, costUsd: 0.5 }] });
  });

  it("a budget counts only its own period: yesterday's spend does not pause today", async () => {
    const { s, clock, h } = await serverAt('2026-03-10T22:00:00Z');
    using log = recordEvents(s.app.scheduler.events);
    await thenClose(s, async () => {
      await s.call('POST', '/api/agents', { body: { id: 'p', name: 'P', handler: 'spend', budget: { period: 'day', maxCostUsd: 1 } } });
      await s.call('POST', '/api/agents/p/schedule', { body: { cronExpression: '0 0 1 1 *' } });
      h.next({ usage: usage('m', 1, 1, 0.75) });
      await runToCompletion(s, 'p');
      clock.set(at('2026-03-11T01:00:00Z'));
      h.next({ usage: usage('m', 1, 1, 0.5) });
      await runToCompletion(s, 'p');
      expect((await s.call('GET', '/api/agents/schedule/paused')).body.data).toEqual([]);
      expect((await s.call('POST', '/api/agents/p/run')).status).toBe(202);
    });
    expect(log.events.filter((e) => e.type === 'agent:budget-exceeded' || e.type === 'agent:paused')).toEqual([]);
  });

  it('a manual run right after the crossing run completed is refused (409), not let through before the check', async () => {
    const { s, h } = await serverAt('2026-03-10T10:00:00Z');
    await using _s = s;
    await s.call('POST', '/api/agents', { body: { id: 'q', name: 'Q', handler: 'spend', budget: { period: 'day', maxTokens: 10 } } });
    await s.call('POST', '/api/agents/q/schedule', { body: { cronExpression: '0 0 1 1 *' } });
    h.next({ usage: usage('m', 6, 4, null) });
    await runToCompletion(s, 'q');
    const again = await s.call('POST', '/api/agents/q/run');
    expect(again).toMatchObject({ status: 409, body: { error: 'Agent q is over its budget until 2026-03-11T00:00:00.000Z' } });
  });

  it('a manual resume ends a budget pause early over REST; manual runs stay refused, and the next fire that reports usage pauses it again', async () => {
    const { s, clock, h } = await serverAt('2026-03-10T10:00:00Z');
    await using _s = s;
    using log = recordEvents(s.app.scheduler.events);
    await s.call('POST', '/api/agents', { body: { id: 'r', name: 'R', handler: 'spend', budget: { period: 'day', maxTokens: 10 } } });
    await s.call('POST', '/api/agents/r/schedule', { body: { cronExpression: '0 * * * *', jobId: 'r-job' } });
    const paused = nextEvent(s.app, of('agent:paused', 'r'));
    h.next({ usage: usage('m', 10, 0, null) });
    await runToCompletion(s, 'r');
    await paused;
    const resumed = await s.call('PATCH', '/api/agents/r/schedule/r-job/resume');
    expect(resumed).toMatchObject({ status: 200, body: { data: { agentId: 'r', jobId: 'r-job', status: 'resumed', nextRunAt: '2026-03-10T11:00:00.000Z' } } });
    expect((await s.call('GET', '/api/agents/schedule/paused')).body.data).toEqual([]);
    expect((await s.call('GET', '/api/agents/r/schedule')).body.data.taskDetails).toMatchObject({ isPaused: false, pauseReason: null });
    // The day's totals are still at the limit: a manual run is still a 409.
    expect((await s.call('POST', '/api/agents/r/run')).status).toBe(409);
    const pausedAgain = nextEvent(s.app, of('agent:paused', 'r'));
    h.next({ usage: usage('m', 1, 0, null) });
    clock.set(at('2026-03-10T11:00:00Z'));
    await pausedAgain;
    expect(log.events.filter(of('agent:budget-exceeded', 'r')).map((e) => e.data)).toEqual([
      { agentId: 'r', jobId: 'r-job', period: 'day', costUsd: 0, tokens: 10, resumesAt: '2026-03-11T00:00:00.000Z', timestamp: '2026-03-10T10:00:00.000Z' },
      { agentId: 'r', jobId: 'r-job', period: 'day', costUsd: 0, tokens: 11, resumesAt: '2026-03-11T00:00:00.000Z', timestamp: '2026-03-10T11:00:00.000Z' },
    ]);
    expect((await s.call('GET', '/api/agents/schedule/paused')).body.data).toEqual([{ agentId: 'r', jobId: 'r-job', pauseReason: 'budget', pauseNote: null, pausedUntil: expect.stringMatching(/T00:00:00.000Z$/) }]);
  });

  it('a budget still holds once old runs are trimmed from the history (RUN_HISTORY_LIMIT)', async () => {
    // Runs are trimmed every 64 finished runs down to RUN_HISTORY_LIMIT; the day's spend must not shrink with them.
    const { s, h } = await serverAt('2026-03-10T10:00:00Z', { RUN_HISTORY_LIMIT: '1' });
    using log = recordEvents(s.app.scheduler.events);
    await thenClose(s, async () => {
      await s.call('POST', '/api/agents', { body: { id: 'many', name: 'Many', handler: 'spend', budget: { period: 'day', maxTokens: 70 } } });
      for (let i = 0; i < 70; i++) {
        h.next({ usage: usage('m', 1, 0, null) });
        await runToCompletion(s, 'many');
      }
      const usageNow = (await s.call('GET', '/api/agents/many/usage')).body.data;
      expect.soft({ runs: usageNow.runs, inputTokens: usageNow.inputTokens }).toEqual({ runs: 70, inputTokens: 70 });
      expect.soft((await s.call('POST', '/api/agents/many/run')).status).toBe(409);
    });
    expect(log.events.filter(of('agent:budget-exceeded', 'many')).map((e) => e.data)).toEqual([
      { agentId: 'many', jobId: 'many', period: 'day', costUsd: 0, tokens: 70, resumesAt: '2026-03-11T00:00:00.000Z', timestamp: '2026-03-10T10:00:00.000Z' },
    ]);
  });

  it('deleting an agent paused for its budget leaves no resume behind at the period end', async () => {
    const { s, clock, h } = await serverAt('2026-03-10T10:00:00Z');
    using log = recordEvents(s.app.scheduler.events);
    await thenClose(s, async () => {
      await s.call('POST', '/api/agents', { body: { id: 'gone', name: 'Gone', handler: 'spend', budget: { period: 'day', maxTokens: 1 } } });
      await s.call('POST', '/api/agents/gone/schedule', { body: { cronExpression: '0 0 1 1 *' } });
      const paused = nextEvent(s.app, of('agent:paused', 'gone'));
      h.next({ usage: usage('m', 1, 0, null) });
      await runToCompletion(s, 'gone');
      await paused;
      expect((await s.call('DELETE', '/api/agents/gone')).status).toBe(200);
      clock.set(at('2026-03-11T00:00:00Z'));
      expect((await s.call('GET', '/api/agents/schedule/paused')).body.data).toEqual([]);
      expect((await s.call('GET', '/api/agents/schedule/status')).body.data).toMatchObject({ pausedJobsCount: 0, scheduledTasksCount: 0 });
    });
    expect(log.events.filter(of('agent:resumed', 'gone'))).toEqual([]);
  });

  it('a run that crosses the budget while its job is paused by hand still sends agent:budget-exceeded', async () => {
    // CONTRACT §9: the event is sent when a finished run brings the period's total to the limit (an agent
    // without a schedule gets it too); a manual pause does not make the crossing silent.
    const { s, h } = await serverAt('2026-03-10T10:00:00Z');
    using log = recordEvents(s.app.scheduler.events);
    await thenClose(s, async () => {
      await s.call('POST', '/api/agents', { body: { id: 'mp', name: 'MP', handler: 'spend', budget: { period: 'day', maxTokens: 10 } } });
      await s.call('POST', '/api/agents/mp/schedule', { body: { cronExpression: '0 * * * *', jobId: 'mp-job' } });
      expect((await s.call('PATCH', '/api/agents/mp/schedule/mp-job/pause')).status).toBe(200);
      h.next({ usage: usage('m', 10, 0, null) });
      await runToCompletion(s, 'mp'); // a manual run of a paused job is accepted
      expect((await s.call('POST', '/api/agents/mp/run')).status).toBe(409); // the totals are at the limit
    });
    expect(log.events.filter(of('agent:budget-exceeded', 'mp')).map((e) => e.data)).toEqual([
      { agentId: 'mp', jobId: 'mp-job', period: 'day', costUsd: 0, tokens: 10, resumesAt: '2026-03-11T00:00:00.000Z', timestamp: '2026-03-10T10:00:00.000Z' },
    ]);
  });
});
