import { describe, expect, it } from 'vitest';
import { HandlerError } from '../../src/core/handlers.ts';
import { OUTPUT_MAX_BYTES } from '../../src/core/limits.ts';
import { costOf, priceOf } from '../../src/core/outputs.ts';
import type { ScheduleSpec } from '../../src/core/scheduler.ts';
import { createHarness } from '../harness.ts';

/** CONTRACT §9: what a run produced and used, and failures that say how to retry them. */
const hourly = (jobId: string): ScheduleSpec => ({ jobId, expression: '0 * * * *', timezone: 'UTC', priority: 2, enabled: true, catchUp: true });
const PRICES = { 'gpt-test': { inputPerMTok: 2.5, outputPerMTok: 10 } };

describe('run outputs', () => {
  it('keeps what a handler returns: a string as it is, anything else as JSON, nothing as null', async () => {
    await using h = await createHarness();
    const agent = await h.addAgent('a');
    h.script(async () => 'the answer', async () => ({ items: [1, 2], ok: true }), async () => undefined);
    for (let i = 0; i < 3; i++) await h.runUntil(agent, 'agent:completed');
    const [none, json, text] = await h.repo.listRuns('a', 10);
    expect(text!.output).toBe('the answer');
    expect(json!.output).toBe('{"items":[1,2],"ok":true}');
    expect(none!.output).toBeNull();
    expect((await h.repo.getRun(text!.id))!.outputTruncated).toBe(false);
  });

  it('keeps the first 256 KiB of a longer output, cut on a character boundary, and flags it; a list reads only its first 500 characters', async () => {
    await using h = await createHarness();
    const agent = await h.addAgent('a');
    // 'é' is two bytes of UTF-8: the cap falls inside one when preceded by an odd number of ASCII bytes.
    const long = 'x' + 'é'.repeat(OUTPUT_MAX_BYTES);
    h.script(async () => long);
    await h.runUntil(agent, 'agent:completed');
    const [listed] = await h.repo.listRuns('a', 1);
    expect(listed!.output).toBe(long.slice(0, 500));
    const run = (await h.repo.getRun(listed!.id))!;
    expect(run.outputTruncated).toBe(true);
    expect(new TextEncoder().encode(run.output!).length).toBeLessThanOrEqual(OUTPUT_MAX_BYTES);
    expect(new TextEncoder().encode(run.output!).length).toBeGreaterThan(OUTPUT_MAX_BYTES - 2);
    expect(long.startsWith(run.output!)).toBe(true);
    expect(run.output!.endsWith('é')).toBe(true);
  });

  it("gives a handler its agent's last completed output (`{{lastOutput}}`), or '' before there is one", async () => {
    await using h = await createHarness();
    const agent = await h.addAgent('a');
    const seen: string[] = [];
    h.script(
      async (ctx) => (seen.push(await ctx.lastOutput()), 'first'),
      async (ctx) => {
        seen.push(await ctx.lastOutput());
        throw new Error('no output from a failure');
      },
      async (ctx) => (seen.push(await ctx.lastOutput()), 'third'),
    );
    await h.runUntil(agent, 'agent:completed');
    await h.scheduler.updateAgent('a', { maxRetries: 0 });
    await h.runUntil(agent, 'agent:failed');
    await h.scheduler.setSchedule(agent, hourly('a')); // clears the exhausted state
    await h.runUntil(agent, 'agent:completed');
    expect(seen).toEqual(['', 'first', 'first']);
  });
});

describe('run usage', () => {
  it('records reported usage on the run and its completed event, pricing it from LLM_PRICES when no cost is given', async () => {
    await using h = await createHarness({ prices: PRICES });
    const agent = await h.addAgent('a');
    h.script(
      async (ctx) => ctx.reportUsage({ model: 'gpt-test', inputTokens: 1000, outputTokens: 500 }),
      async (ctx) => ctx.reportUsage({ model: 'gpt-test', inputTokens: 1, outputTokens: 1, costUsd: 0.5 }),
      async (ctx) => ctx.reportUsage({ model: 'unpriced', inputTokens: 10, outputTokens: 20 }),
      async () => 'no usage',
    );
    const events = [];
    for (let i = 0; i < 4; i++) events.push(await h.runUntil(agent, 'agent:completed'));
    const usages = events.map((e) => (e.type === 'agent:completed' ? e.data.usage : 'not completed'));
    expect(usages).toEqual([
      { model: 'gpt-test', inputTokens: 1000, outputTokens: 500, costUsd: (1000 * 2.5 + 500 * 10) / 1e6 },
      { model: 'gpt-test', inputTokens: 1, outputTokens: 1, costUsd: 0.5 },
      { model: 'unpriced', inputTokens: 10, outputTokens: 20, costUsd: null },
      null,
    ]);
    const stored = (await h.repo.listRuns('a', 10)).reverse();
    expect(stored.map((r) => [r.usageModel, r.inputTokens, r.outputTokens, r.costUsd])).toEqual([
      ['gpt-test', 1000, 500, 0.0075],
      ['gpt-test', 1, 1, 0.5],
      ['unpriced', 10, 20, null],
      [null, null, null, null],
    ]);
  });

  it('keeps the usage of a failed attempt and sends it on agent:failed', async () => {
    await using h = await createHarness({ prices: PRICES, maxRetries: 0 });
    const agent = await h.addAgent('a');
    h.script(async (ctx) => {
      ctx.reportUsage({ model: 'gpt-test', inputTokens: 100, outputTokens: 0 });
      throw new Error('stream dropped');
    });
    const failed = await h.runUntil(agent, 'agent:failed');
    expect(failed.type === 'agent:failed' && failed.data.usage).toEqual({ model: 'gpt-test', inputTokens: 100, outputTokens: 0, costUsd: 0.00025 });
    expect((await h.repo.listRuns('a', 1))[0]!.inputTokens).toBe(100);
  });
});

describe('failures that say how to retry them', () => {
  it('a not-retryable failure ends the run without retries, and the schedule goes on', async () => {
    await using h = await createHarness();
    const agent = await h.addAgent('a');
    await h.scheduler.setSchedule(agent, hourly('a'));
    h.script(async () => {
      throw new HandlerError('llm answered 400 Bad Request', { retryable: false });
    });
    const failed = await h.runUntil(agent, 'agent:failed');
    expect(failed.type === 'agent:failed' && [failed.data.willRetry, failed.data.nextRetryAt, failed.data.error]).toEqual([false, null, 'llm answered 400 Bad Request']);
    await h.repo.flush();
    expect((await h.repo.listRuns('a', 10)).map((r) => r.status)).toEqual(['failed']);
    const schedule = h.scheduler.schedule('a')!;
    expect([schedule.enabled, schedule.nextRunAt]).toEqual([true, Date.parse('2026-01-01T01:00:00Z')]);
    const stored = (await h.repo.getAgent('a'))!;
    expect([stored.status, stored.lastError, stored.retryCount]).toEqual(['IDLE', 'llm answered 400 Bad Request', 0]);
  });

  it("waits at least a failure's retryAfterMs before its retry, never past the policy's cap", async () => {
    await using h = await createHarness({ retry: { baseDelayMs: 1000, maxDelayMs: 60_000 } });
    const agent = await h.addAgent('a');
    h.script(
      async () => {
        throw new HandlerError('llm answered 429', { retryAfterMs: 30_000 });
      },
      async () => {
        throw new HandlerError('llm answered 429', { retryAfterMs: 500 }); // under the backoff (2 s): the backoff wins
      },
      async () => {
        throw new HandlerError('llm answered 429', { retryAfterMs: 3_600_000 }); // past the cap
      },
    );
    const delays: number[] = [];
    let failed = await h.runUntil(agent, 'agent:failed');
    for (let i = 0; i < 3; i++) {
      if (failed.type !== 'agent:failed') throw new Error('expected agent:failed');
      delays.push(Date.parse(failed.data.nextRetryAt!) - h.clock.now());
      const next = h.waitFor((e) => e.type === 'agent:failed' || e.type === 'agent:completed');
      h.clock.advance(delays[i]!);
      failed = await next;
    }
    expect(delays).toEqual([30_000, 2_000, 60_000]);
  });
});

describe('prices', () => {
  it('price a model by its own entry, else by the longest entry it extends with -, : or @ (a dated or tagged name)', () => {
    const prices = { 'gpt-4o': { inputPerMTok: 2.5, outputPerMTok: 10 }, 'gpt-4o-mini': { inputPerMTok: 0.15, outputPerMTok: 0.6 }, llama3: { inputPerMTok: 0, outputPerMTok: 0 } };
    expect(priceOf('gpt-4o-mini', prices)).toBe(prices['gpt-4o-mini']);
    expect(priceOf('gpt-4o-mini-2024-07-18', prices)).toBe(prices['gpt-4o-mini']);
    expect(priceOf('gpt-4o-2024-08-06', prices)).toBe(prices['gpt-4o']);
    expect(priceOf('llama3:latest', prices)).toBe(prices.llama3);
    expect(priceOf('llama3.2', prices)).toBeUndefined(); // not a tag of llama3: another model
    expect(priceOf('gpt-4', prices)).toBeUndefined();
    expect(costOf({ model: 'gpt-4o-mini-2024-07-18', inputTokens: 1_000_000, outputTokens: 1_000_000 }, prices)).toBeCloseTo(0.75);
  });
});
