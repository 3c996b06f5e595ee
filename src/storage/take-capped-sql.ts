import { sql, type Kysely } from 'kysely';
import type { RunRecord } from '../core/store.ts';
import type { Database } from './schema.ts';
import { fromRow, runs } from './tables.ts';

/**
 * `take` under MAX_CONCURRENT_PER_OWNER (SchedulerStore.take's `perOwner`): the owners of the candidate
 * runs are locked first (PostgreSQL: one transaction-scoped advisory lock per owner, taken in key order,
 * so two takers never wait crosswise), then their running runs are counted — a statement that starts
 * after the lock, so it sees every run another taker of the same owner started — and only as many of
 * each owner's candidates are started as the owner has room for. The others stay queued, for the next
 * take of any instance once one of the owner's runs ends. SQLite has one writer: the same without locks.
 */

/** The first key of the per-owner advisory locks ("ownr" in ASCII), apart from the claim locks' class. */
const OWNER_LOCK_CLASS = 0x6f776e72;
/** Candidates read per free slot for `more`: room for owners at their cap among the oldest queued runs. */
const CANDIDATES_PER_SLOT = 4;

type Candidate = { id: string; owner: string; more?: boolean };

export async function takeCapped(
  trx: Kysely<Database>, shared: boolean,
  at: { instanceId: string; now: number; leaseUntil: number }, ids: readonly string[], more: number, perOwner: number,
): Promise<RunRecord[]> {
  const due = sql`r."status" = 'queued' AND r."waiting" = 0 AND r."scheduled_at" <= ${at.now}`;
  const candidates: Candidate[] = [];
  if (ids.length > 0) {
    const { rows } = await sql<Candidate>`SELECT r."id", a."owner" FROM "runs" r JOIN "agents" a ON a."id" = r."agent_id" WHERE r."id" IN (${sql.join([...ids])}) AND ${due}`.execute(trx);
    const order = new Map(ids.map((id, i) => [id, i]));
    candidates.push(...rows.sort((x, y) => order.get(x.id)! - order.get(y.id)!));
  }
  const byId = new Set(candidates.map((c) => c.id));
  if (more > 0) {
    const { rows } = await sql<Candidate>`SELECT r."id", a."owner" FROM "runs" r JOIN "agents" a ON a."id" = r."agent_id" WHERE ${due}
      ORDER BY r."priority" DESC, r."created_at", r."id" LIMIT ${more * CANDIDATES_PER_SLOT + ids.length}`.execute(trx);
    for (const r of rows) if (!byId.has(r.id)) candidates.push({ id: r.id, owner: r.owner, more: true });
  }
  if (candidates.length === 0) return [];
  const owners = [...new Set(candidates.map((c) => c.owner))];
  if (shared) await sql`SELECT pg_advisory_xact_lock(${sql.lit(OWNER_LOCK_CLASS)}, hashtext(o)) FROM unnest(CAST(${owners} AS text[])) AS o ORDER BY hashtext(o)`.execute(trx);
  const { rows: counted } = await sql<{ owner: string; n: unknown }>`SELECT a."owner", count(*) AS n FROM "runs" r JOIN "agents" a ON a."id" = r."agent_id"
    WHERE r."status" = 'running' AND a."owner" IN (${sql.join(owners)}) GROUP BY a."owner"`.execute(trx);
  const room = new Map(owners.map((o) => [o, perOwner]));
  for (const c of counted) room.set(c.owner, perOwner - Number(c.n));
  const chosen: string[] = [];
  let extra = 0;
  for (const c of candidates) {
    const left = room.get(c.owner)!;
    if (left <= 0 || (c.more && extra >= more)) continue;
    room.set(c.owner, left - 1);
    chosen.push(c.id);
    if (c.more) extra++;
  }
  if (chosen.length === 0) return [];
  const lock = sql.raw(shared ? ' FOR UPDATE SKIP LOCKED' : '');
  const { rows } = await sql<Record<string, unknown>>`UPDATE "runs" SET "status" = 'running', "instance_id" = ${at.instanceId}, "started_at" = ${at.now}, "lease_until" = ${at.leaseUntil}, "epoch" = "epoch" + 1
    WHERE "id" IN (SELECT "id" FROM "runs" WHERE "id" IN (${sql.join(chosen)}) AND "status" = 'queued' AND "waiting" = 0${lock}) RETURNING *`.execute(trx);
  const order = new Map(chosen.map((id, i) => [id, i]));
  return rows.map((r) => fromRow(runs, r)).sort((x, y) => order.get(x.id)! - order.get(y.id)!);
}
