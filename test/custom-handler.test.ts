import { z } from 'zod';
import { describe, expect, expectTypeOf, it } from 'vitest';
import { defineHandler, type HandlerContext } from '../src/core/handlers.ts';
import { deferred, startServer } from './harness.ts';

describe('handlers registered by an embedding app', () => {
  it('validates their config, runs them with a typed context and reports their progress', async () => {
    const seen = deferred<{ attempt: number; config: { feed: string; depth: number }; aborted: boolean }>();
    const summarise = defineHandler({
      name: 'summarise',
      config: z.object({ feed: z.url(), depth: z.int().min(1).default(2) }),
      async run(ctx) {
        expectTypeOf(ctx).toEqualTypeOf<HandlerContext<{ feed: string; depth: number }>>();
        ctx.log.info('summarising', { feed: ctx.config.feed });
        ctx.progress({ progress: 50, message: 'fetched', currentStep: 1, totalSteps: 2 });
        if (ctx.attempt === 1) throw new Error('model busy');
        seen.resolve({ attempt: ctx.attempt, config: ctx.config, aborted: ctx.signal.aborted });
      },
    });
    await using s = await startServer({ handlers: [summarise], env: { RETRY_BASE_DELAY_MS: '10' } });
    const bad = await s.call('POST', '/api/agents', { body: { name: 'S', handler: 'summarise', config: { feed: 'not a url' } } });
    expect(bad.status).toBe(400);
    expect(bad.body.error).toMatch(/^config\.feed: /);
    const ok = await s.call('POST', '/api/agents', { body: { id: 'sum', name: 'S', handler: 'summarise', config: { feed: 'https://example.com/feed' } } });
    expect(ok.body.data.config).toEqual({ feed: 'https://example.com/feed', depth: 2 });
    await s.call('POST', '/api/agents/sum/run');
    expect(await seen.promise).toEqual({ attempt: 2, config: { feed: 'https://example.com/feed', depth: 2 }, aborted: false });
  });
});
