import { describe, expect, it } from 'vitest';
import { createApp, type App } from '../src/app.ts';
import { postgresDialect } from '../src/storage/dialects/postgres.ts';
import { pgSchema, recordEvents, TEST_POSTGRES_URL, TEST_SECRET, testConfig } from './harness.ts';

/**
 * Two instances on one PostgreSQL schema: events one of them commits reach the other's subscribers,
 * with the same ids, in id order, woken by LISTEN/NOTIFY (README, "Running several instances").
 */
async function instance(url: string): Promise<App> {
  const config = testConfig({ DATABASE_URL: url });
  const app = await createApp({ config, dialect: postgresDialect(url), jwtSecret: TEST_SECRET, webhookSecret: 'hook' });
  await app.listen(0, '127.0.0.1');
  return app;
}

const describePg = TEST_POSTGRES_URL ? describe : describe.skip;
if (!TEST_POSTGRES_URL) console.warn('cluster events skipped: TEST_POSTGRES_URL is not set');

describePg('events across instances (skipped without TEST_POSTGRES_URL)', () => {
  it('delivers the events of a run on one instance to the other, same ids, in order', async () => {
    await using db = await pgSchema();
    const a = await instance(db.url);
    const b = await instance(db.url);
    try {
      using onA = recordEvents(a.scheduler.events);
      using onB = recordEvents(b.scheduler.events);
      const admin = { sub: 'alice', admin: false };
      await a.services.agents.create(admin, { id: 'x', name: 'x', handler: 'demo', config: { steps: 2, stepMs: 0 } });
      const done = onB.waitFor((e) => e.type === 'agent:completed' && e.agentId === 'x');
      await a.services.agents.run(admin, 'x');
      await done;
      const mine = onA.events.filter((e) => e.agentId === 'x');
      const seen = onB.events.filter((e) => e.agentId === 'x');
      expect(seen.map((e) => [e.id, e.type])).toEqual(mine.map((e) => [e.id, e.type]));
      expect(seen.map((e) => e.type)).toEqual(['agent:started', 'agent:progress', 'agent:progress', 'agent:completed']);
      const ids = seen.map((e) => e.id);
      expect([...ids].sort((x, y) => x - y)).toEqual(ids);
      expect(new Set(ids).size).toBe(ids.length);
    } finally {
      await b.close(0);
      await a.close(0);
    }
  });
});
