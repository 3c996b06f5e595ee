import { CompiledQuery, sql, type Kysely } from 'kysely';
import { REPLACED, type ClaimOutcome, type RunClaim, type RunRecord, type SchedulerStore } from '../core/store.ts';
import { claimedAgents, decideClaims, queueOrder } from './claims.ts';
import type { Database } from './schema.ts';
import type { createStatements } from './statements.ts';
import { fromRow, rowValues, runs } from './tables.ts';
import { takeCapped } from './take-capped-sql.ts';
import type { WriteChain } from './write-batch.ts';

/**
 * Claim before run (docs/cluster.md) over SQL: `claim`, `take`, `renewLeases`, `reapExpired`. Each runs
 * on the store's ordered write path, after every write buffered before it, in one transaction, with a
 * fixed number of statements per 500 claims or per call (never one per run).
 */

type ClaimMethods = Pick<SchedulerStore, 'claim' | 'take' | 'renewLeases' | 'reapExpired' | 'nextRevision'>;

/** Ids per `IN (…)` list and rows per INSERT: far under every dialect's bound-parameter limit. */
const CHUNK = 500;

/**
 * The first key of the per-agent advisory locks a claim takes on PostgreSQL (the two-key form, whose
 * key space is apart from the one-key migration lock); the second is hashtext(agent_id). It spells
 * "clai" in ASCII. Two agents whose ids hash alike only share a lock: they claim one after the other.
 */
const CLAIM_LOCK_CLASS = 0x636c6169;

/**
 * Takes the per-agent claim locks of `agentIds` until the transaction ends (PostgreSQL only), in one
 * fixed order (by key), so two transactions that lock sets of agents never wait for each other
 * crosswise. Taken first, before the transaction touches any row, by every claim and by every batch
 * that changes whether a schedule may fire (its revision, enabled or paused; an upsert; a delete):
 * then those writers hold nothing else while they wait, and no cycle of waits can form.
 */
export async function lockClaimAgents(trx: Kysely<Database>, agentIds: readonly string[]): Promise<void> {
  if (agentIds.length === 0) return;
  await sql`SELECT pg_advisory_xact_lock(${sql.lit(CLAIM_LOCK_CLASS)}, hashtext(a)) FROM unnest(CAST(${[...agentIds]} AS text[])) AS a ORDER BY hashtext(a)`.execute(trx);
}

const chunks = <T>(list: readonly T[]): T[][] => {
  const out: T[][] = [];
  for (let i = 0; i < list.length; i += CHUNK) out.push(list.slice(i, i + CHUNK));
  return out;
};

export function createClaimMethods(db: Kysely<Database>, st: ReturnType<typeof createStatements>, chain: WriteChain, shared: boolean): ClaimMethods {
  const lockClause = sql.raw(shared ? ' FOR UPDATE SKIP LOCKED' : '');
  const returningInsert = `ON CONFLICT ("dedupe_key") DO NOTHING RETURNING "id"`;

  return {
    claim(claims) {
      // As they are now, not as the caller may change them before their turn.
      const asked: RunClaim[] = claims.map((c) => ({ ...c, run: { ...c.run } }));
      if (asked.length === 0) return chain.serial(async () => []);
      return chain.serial(() =>
        db.transaction().execute(async (trx) => {
          const agents = claimedAgents(asked);
          // Concurrency on PostgreSQL (READ COMMITTED): the claims of one agent, and the changes to its
          // schedule's right to fire, take turns on one transaction-scoped advisory lock per agent
          // (lockClaimAgents). Every read below starts after the previous holder committed, so it sees
          // the runs that holder inserted (the overlap check) and the revision it wrote (the stale check);
          // a change that comes later waits until this claim has committed. The lock also orders claimers
          // of one slot (a dedupe key belongs to one agent), so ON CONFLICT never waits on another
          // claimer's uncommitted row. Row locks (schedules FOR SHARE) would do the same for the stale
          // check, but a batch that updates several schedules' next_run_at would then lock rows in its own
          // order against the claim's: a deadlock. SQLite has one writer and its transaction is enough; the
          // statements are the same without the lock.
          if (shared) await lockClaimAgents(trx, agents.all);
          const schedules = new Map<string, { revision: number; enabled: boolean; paused: boolean }>();
          for (const ids of chunks(agents.revision)) {
            const rows = await trx.selectFrom('schedules').select(['agent_id', 'revision', 'enabled', 'paused']).where('agent_id', 'in', ids).execute();
            for (const r of rows) schedules.set(r.agent_id, { revision: Number(r.revision), enabled: Number(r.enabled) === 1, paused: Number(r.paused) === 1 });
          }
          const open = new Set<string>();
          const waiting = new Set<string>();
          for (const ids of chunks(agents.busy)) {
            const rows = await trx.selectFrom('runs').select(['agent_id', 'waiting']).distinct().where('agent_id', 'in', ids).where('status', 'in', ['queued', 'running']).execute();
            for (const r of rows) (Number(r.waiting) === 1 ? waiting : open).add(r.agent_id);
          }
          const openRuns = new Map<string, Pick<RunRecord, 'id' | 'status' | 'waiting'>[]>();
          for (const ids of chunks(agents.listed)) {
            const rows = await trx.selectFrom('runs').select(['agent_id', 'id', 'status', 'waiting']).where('agent_id', 'in', ids).where('status', 'in', ['queued', 'running']).execute();
            for (const r of rows) {
              const list = openRuns.get(r.agent_id) ?? [];
              list.push({ id: r.id, status: r.status as RunRecord['status'], waiting: Number(r.waiting) === 1 });
              openRuns.set(r.agent_id, list);
            }
          }
          const keys = [...new Set(asked.map((c) => c.run.dedupeKey).filter((k): k is string => k !== null))];
          const taken = new Set<string>();
          for (const list of chunks(keys)) {
            for (const r of await trx.selectFrom('runs').select('dedupe_key').where('dedupe_key', 'in', list).execute()) taken.add(r.dedupe_key!);
          }
          const outcomes = decideClaims(asked, { schedules, openAgents: open, waitingAgents: waiting, openRuns, takenKeys: taken });
          const written = outcomes.filter((o) => o.outcome === 'claimed' || o.outcome === 'skipped');
          const inserted = new Set<string>();
          for (const list of chunks(written)) {
            const query = st.insert(runs.table, runs.names, list.length, returningInsert);
            const result = await trx.executeQuery(CompiledQuery.raw(query, list.flatMap((o) => rowValues(runs, o.run))) as CompiledQuery<{ id: string }>);
            for (const r of result.rows) inserted.add(r.id);
          }
          // cancel-previous: the runs it replaces end in the same transaction (fenced by status, as a take would be).
          for (const o of outcomes) {
            if (!inserted.has(o.run.id)) continue;
            if (o.dropped) {
              await trx.updateTable('runs').set({ status: 'cancelled', error: REPLACED, finished_at: o.run.createdAt, waiting: 0, epoch: sql`"epoch" + 1` as never })
                .where('id', 'in', o.dropped).where('status', '=', 'queued').execute();
            }
            if (o.cancels) await trx.updateTable('runs').set({ cancel_requested_at: o.run.createdAt }).where('id', 'in', o.cancels).where('status', '=', 'running').execute();
          }
          // A row not inserted met its dedupe key inserted by a writer that does not take the claim lock
          // (a plain run.insert of the write path): the slot is taken.
          return outcomes.map((o, i): ClaimOutcome => {
            if (o.outcome === 'stale' || o.outcome === 'taken') return { outcome: o.outcome, run: claims[i]!.run };
            return inserted.has(o.run.id) ? o : { outcome: 'taken', run: claims[i]!.run };
          });
        }),
      );
    },

    take(instanceId, now, leaseUntil, ids, more, perOwner) {
      const wanted = [...new Set(ids)];
      const start = sql`UPDATE "runs" SET "status" = 'running', "instance_id" = ${instanceId}, "started_at" = ${now}, "lease_until" = ${leaseUntil}, "epoch" = "epoch" + 1`;
      const byId = (list: readonly string[]) =>
        sql<Record<string, unknown>>`${start} WHERE "id" IN (SELECT "id" FROM "runs" WHERE "id" IN (${sql.join(list)}) AND "status" = 'queued' AND "waiting" = 0 AND "scheduled_at" <= ${now}${lockClause}) RETURNING *`;
      const next = (n: number) =>
        sql<Record<string, unknown>>`${start} WHERE "id" IN (SELECT "id" FROM "runs" WHERE "status" = 'queued' AND "waiting" = 0 AND "scheduled_at" <= ${now} ORDER BY "priority" DESC, "created_at", "id" LIMIT ${n}${lockClause}) RETURNING *`;
      const inOrder = (rows: Record<string, unknown>[]) => {
        const order = new Map(wanted.map((id, i) => [id, i]));
        return rows.map((r) => fromRow(runs, r)).sort((a, b) => order.get(a.id)! - order.get(b.id)!);
      };
      // The usual take (the runs of one turn, or a few more for free slots) is one statement, atomic by itself: no
      // BEGIN and COMMIT around it, two round trips fewer on PostgreSQL for every slot that comes free.
      if (perOwner === undefined && (more === 0 ? wanted.length > 0 && wanted.length <= CHUNK : wanted.length === 0)) {
        return chain.serial(async () => (more === 0 ? inOrder((await byId(wanted).execute(db)).rows) : (await next(more).execute(db)).rows.map((r) => fromRow(runs, r)).sort(queueOrder)));
      }
      return chain.serial(() =>
        db.transaction().execute(async (trx) => {
          if (perOwner !== undefined) return takeCapped(trx, shared, { instanceId, now, leaseUntil }, wanted, more, perOwner);
          const got: Record<string, unknown>[] = [];
          for (const list of chunks(wanted)) got.push(...(await byId(list).execute(trx)).rows);
          const taken = inOrder(got);
          // The runs just taken are running now, in this transaction: the second pick cannot see them again.
          if (more > 0) taken.push(...(await next(more).execute(trx)).rows.map((r) => fromRow(runs, r)).sort(queueOrder));
          return taken;
        }),
      );
    },

    // On the write path, not beside it like the instance heartbeat: it updates many of the rows this
    // instance's own batches update, and two transactions that lock the same rows in different orders
    // can deadlock. It waits only for the batch in flight (batches are bounded, see write-batch.ts).
    renewLeases(instanceId, leaseUntil, runIds) {
      const ids = [...new Set(runIds)];
      return chain.serial(async () => {
        for (const list of chunks(ids)) {
          await db.updateTable('runs').set({ lease_until: leaseUntil }).where('id', 'in', list).where('status', '=', 'running').where('instance_id', '=', instanceId).execute();
        }
      });
    },

    // One UPDATE … RETURNING of the counter row: on PostgreSQL its row lock makes concurrent takers get
    // distinct values; on SQLite there is one writer. Outside the write chain: it writes no row a batch
    // writes, so an API change does not cut the batch of its turn in two (and the counter is never rolled back).
    async nextRevision() {
      const { rows } = await sql<{ value: unknown }>`UPDATE "counters" SET "value" = "value" + 1 WHERE "name" = 'schedule_revision' RETURNING "value"`.execute(db);
      if (rows[0]?.value == null) throw new Error("counters has no row 'schedule_revision' (migration 0005 makes it)");
      return Number(rows[0].value);
    },

    reapExpired(now, error) {
      // On PostgreSQL the rows are picked FOR UPDATE SKIP LOCKED: a reaper never waits, so it cannot
      // deadlock with a late holder's batch that is finishing the same runs in another order (a run
      // it skips is reaped next time, if its lease has still ended), and two reapers share no run.
      return chain.serial(async () => {
        const { rows } = await sql<Record<string, unknown>>`UPDATE "runs" SET "status" = 'failed', "error" = ${error}, "finished_at" = ${now}, "lease_until" = NULL, "epoch" = "epoch" + 1 WHERE "id" IN (SELECT "id" FROM "runs" WHERE "status" = 'running' AND "lease_until" < ${now}${lockClause}) RETURNING *`.execute(db);
        return rows.map((r) => fromRow(runs, r));
      });
    },
  };
}
