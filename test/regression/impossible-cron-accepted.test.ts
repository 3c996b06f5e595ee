import { describe, expect, it } from 'vitest';
import { startServer } from '../harness.ts';

describe('an impossible cron was accepted with nextRunAt: null', () => {
  it('0 0 30 2 * (February 30th) is a 400 naming the expression; 0 0 29 2 * is fine', async () => {
    await using s = await startServer();
    expect((await s.call('POST', '/api/agents', { body: { id: 'feb', name: 'feb', handler: 'demo' } })).status).toBe(201);
    const bad = await s.call('POST', '/api/agents/feb/schedule', { body: { cronExpression: '0 0 30 2 *' } });
    expect(bad.status).toBe(400);
    expect(bad.body).toEqual({ success: false, error: expect.stringMatching(/cronExpression: "0 0 30 2 \*" never fires/) });
    const ok = await s.call('POST', '/api/agents/feb/schedule', { body: { cronExpression: '0 0 29 2 *' } });
    expect(ok.status).toBe(201);
  });
});
