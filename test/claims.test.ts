import fc from 'fast-check';
import { Kysely } from 'kysely';
import pg from 'pg';
import { describe, expect, it } from 'vitest';
import type { ClaimOutcome, RunRecord, ScheduleRecord } from '../src/core/store.ts';
import { postgresDialect } from '../src/storage/dialects/postgres.ts';
import { migrate } from '../src/storage/migrator.ts';
import { createRepository, type Repository } from '../src/storage/repository.ts';
import type { Database } from '../src/storage/schema.ts';
import { schedules, toRow } from '../src/storage/tables.ts';
import { pgSchema, TEST_POSTGRES_URL } from './harness.ts';

/**
 * Claim before run under contention (docs/cluster.md): several repositories, each with its own pool as
 * separate instances have, on one PostgreSQL schema, claim random overlapping slots, pause agents and
 * take runs with random limits, all at once. Runs never finish here, so every claimed run stays open and
 * the overlap rule is strict: one agent can have been claimed at most once in the whole run.
 */

const AGENTS = ['a0', 'a1', 'a2', 'a3', 'a4'];
const SLOTS = 6;

type Action =
  | { kind: 'claim'; slots: { agent: number; slot: number }[] }
  | { kind: 'take'; mine: boolean; more: number }
  | { kind: 'pause'; agent: number };

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 5, arbitrary: fc.record({ kind: fc.constant('claim' as const), slots: fc.array(fc.record({ agent: fc.nat(AGENTS.length - 1), slot: fc.nat(SLOTS - 1) }), { minLength: 1, maxLength: 8 }) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant('take' as const), mine: fc.boolean(), more: fc.nat(3) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('pause' as const), agent: fc.nat(AGENTS.length - 1) }) },
);
const instance = fc.record({ limit: fc.integer({ min: 1, max: 3 }), actions: fc.array(action, { minLength: 1, maxLength: 6 }) });

const schedule = (agentId: string): ScheduleRecord => ({
  agentId, jobId: agentId, expression: '* * * * *', timezone: 'UTC', priority: 2, enabled: true, paused: false, catchUp: false, nextRunAt: null, pauseReason: null, resumeAt: null, pauseNote: null, jitterMs: 0, catchUpPolicy: 'latest', catchUpWindowMs: null, overlap: 'skip', owner: 'alice', revision: 0, changedAt: 1, createdAt: 1, updatedAt: 1,
});
const fire = (id: string, agentId: string, slot: number): RunRecord => ({
  id, agentId, jobId: agentId, trigger: 'schedule', attempt: 1, status: 'queued', priority: 1 + (slot % 4), scheduledAt: slot, startedAt: null, finishedAt: null,
  durationMs: null, progress: null, error: null, dedupeKey: `${agentId}@${slot}`, waiting: false, instanceId: null, epoch: 0, leaseUntil: null, cancelRequestedAt: null, output: null, outputTruncated: false, usageModel: null, inputTokens: null, outputTokens: null, costUsd: null, createdAt: slot,
});

describe.skipIf(!TEST_POSTGRES_URL)('claims under contention on postgres', () => {
  it('claims each slot once, never two open runs of one agent, never a stale fire after an answered pause, takes each run once and no taker above its limit', async () => {
    await using schema = await pgSchema();
    const setup = new Kysely<Database>({ dialect: postgresDialect(schema.url) });
    await migrate(setup, { schema: schema.schema });
    const repos: Repository[] = Array.from({ length: 8 }, () => createRepository(new Kysely<Database>({ dialect: postgresDialect(schema.url) })));
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(instance, { minLength: 4, maxLength: 8 }), async (instances) => {
          await setup.deleteFrom('runs').execute();
          await setup.deleteFrom('schedules').execute();
          await setup.insertInto('schedules').values(AGENTS.map((a) => toRow(schedules, schedule(a)) as Database['schedules'])).execute();

          const outcomes: { claim: ClaimOutcome; startedAt: number }[] = [];
          const taken: { instance: number; run: RunRecord }[] = [];
          /** When a pause of each agent was answered (its flush resolved). */
          const pausedAt = new Map<string, number>();
          let clock = 0;
          const tick = () => ++clock;

          await Promise.all(
            instances.map(async ({ limit, actions }, n) => {
              const repo = repos[n]!;
              const mine: string[] = [];
              let running = 0;
              let seq = 0;
              for (const a of actions) {
                if (a.kind === 'claim') {
                  const startedAt = tick();
                  const got = await repo.claim(a.slots.map((s) => ({ run: fire(`i${n}-${seq++}`, AGENTS[s.agent]!, s.slot), revision: 0, busy: 'busy' })));
                  for (const claim of got) {
                    outcomes.push({ claim, startedAt });
                    if (claim.outcome === 'claimed') mine.push(claim.run.id);
                  }
                } else if (a.kind === 'take') {
                  const free = limit - running;
                  const got = await repo.take(`i${n}`, 1_000, 2_000, a.mine ? mine.slice(0, free) : [], a.mine ? 0 : Math.min(a.more, free));
                  running += got.length;
                  for (const run of got) taken.push({ instance: n, run });
                  expect(running).toBeLessThanOrEqual(limit);
                } else {
                  const agentId = AGENTS[a.agent]!;
                  repo.write({ op: 'schedule.update', agentId, set: { paused: true, revision: 1 } });
                  await repo.flush();
                  if (!pausedAt.has(agentId)) pausedAt.set(agentId, tick());
                }
              }
            }),
          );

          // Each slot was claimed (or recorded skipped) at most once, by whoever saw it.
          const written = outcomes.filter((o) => o.claim.outcome === 'claimed' || o.claim.outcome === 'skipped');
          const keys = written.map((o) => o.claim.run.dedupeKey);
          expect(new Set(keys).size).toBe(keys.length);
          // Nothing finishes here, so a second claimed run of one agent would have overlapped the first.
          const claimedAgents = outcomes.filter((o) => o.claim.outcome === 'claimed').map((o) => o.claim.run.agentId);
          expect(new Set(claimedAgents).size).toBe(claimedAgents.length);
          // A claim begun after a pause was answered finds its revision stale.
          for (const o of outcomes) {
            const paused = pausedAt.get(o.claim.run.agentId);
            if (paused !== undefined && o.startedAt > paused) expect(o.claim.outcome).toBe('stale');
          }
          // The database agrees with the answers.
          const rows = await setup.selectFrom('runs').select(['id', 'status', 'instance_id', 'epoch']).execute();
          expect(rows.map((r) => r.id).sort()).toEqual(written.map((o) => o.claim.run.id).sort());
          // No run handed out twice; each held by the instance that took it, once (epoch 1).
          const takenIds = taken.map((t) => t.run.id);
          expect(new Set(takenIds).size).toBe(takenIds.length);
          for (const t of taken) expect(rows.find((r) => r.id === t.run.id)).toMatchObject({ status: 'running', instance_id: `i${t.instance}`, epoch: 1 });
          expect(rows.filter((r) => r.status === 'running')).toHaveLength(taken.length);
          for (const [n, { limit }] of instances.entries()) expect(rows.filter((r) => r.instance_id === `i${n}`).length).toBeLessThanOrEqual(limit);
        }),
        { numRuns: 25 },
      );
    } finally {
      await Promise.all(repos.map((r) => r[Symbol.asyncDispose]()));
      await setup.destroy();
    }
  }, 120_000);

  it('makes a claim wait for a pause in progress on another instance, then answers its fire stale', async () => {
    await using schema = await pgSchema();
    // Appended as text: URLSearchParams would re-encode the space in `options` as '+', which the driver keeps.
    const named = (name: string) => `${schema.url}&application_name=${name}`;
    const tag = `claim-race-${Math.random().toString(36).slice(2, 8)}`;
    const setup = new Kysely<Database>({ dialect: postgresDialect(schema.url) });
    await migrate(setup, { schema: schema.schema });
    await setup.insertInto('schedules').values(toRow(schedules, schedule('a0')) as Database['schedules']).execute();
    const pauser = createRepository(new Kysely<Database>({ dialect: postgresDialect(named(`${tag}-pauser`)) }));
    const claimer = createRepository(new Kysely<Database>({ dialect: postgresDialect(named(`${tag}-claimer`)) }));
    const side = new pg.Client(schema.url);
    await side.connect();
    // Apart from `side`: inside a transaction the server's activity view is a snapshot kept until it ends.
    const watcher = new pg.Client(schema.url);
    await watcher.connect();
    /** Resolves once a connection of `who` waits for a lock (polling the server's own view of it). */
    const waitingOnLock = async (who: string, orDone: { done: boolean } = { done: false }) => {
      const deadline = Date.now() + 10_000;
      while (!orDone.done) {
        const { rows } = await watcher.query(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND wait_event_type = 'Lock'`, [`${tag}-${who}`]);
        if (rows.length > 0) return;
        if (Date.now() > deadline) throw new Error(`${who} never waited for a lock`);
        await new Promise((r) => setTimeout(r, 10));
      }
    };
    try {
      // Hold the event counter, so the pause's batch makes its change and then stops, uncommitted,
      // where it takes its event ids.
      await side.query('BEGIN');
      await side.query(`SELECT value FROM counters WHERE name = 'event_id' FOR UPDATE`);
      pauser.write({ op: 'schedule.update', agentId: 'a0', set: { paused: true, revision: 1 } });
      pauser.write({ op: 'event.insert', event: { type: 'agent:paused', agentId: 'a0', data: {}, createdAt: 1 } });
      const paused = pauser.flush();
      await waitingOnLock('pauser');
      const state = { done: false };
      const claimed = claimer.claim([{ run: fire('r1', 'a0', 10), revision: 0, busy: 'busy' }]).finally(() => (state.done = true));
      // Either the claim waits for the pause (as it must), or it answered without waiting (and is wrong).
      await waitingOnLock('claimer', state);
      await side.query('COMMIT');
      await paused;
      expect((await claimed).map((o) => o.outcome)).toEqual(['stale']);
      expect(await claimer.getRun('r1')).toBeUndefined();
    } finally {
      await side.end();
      await watcher.end();
      await Promise.all([pauser, claimer].map((r) => r[Symbol.asyncDispose]()));
      await setup.destroy();
    }
  });
});
