import type { Kysely } from 'kysely';
import type { RunRecord, Store } from '../core/store.ts';
import type { Database } from './schema.ts';
import { fromRow, instances, pauses, runs } from './tables.ts';

/** Keys per `IN (…)` list: far under every dialect's bound-parameter limit. */
const IN_CHUNK = 500;
/** Retries follow a run at most MAX_RETRIES times (an agent may set more): the chain is read this deep at most. */
const MAX_RETRY_DEPTH = 20;

/**
 * The ledger's facts (core/ledger.ts) from SQL: the slots' runs by their unique dedupe keys (`jobId@slot`, one
 * indexed lookup each), their retries by `retry:<run id>` round by round, the agent's pauses over the range
 * (pauses_agent_paused) and the instances that were up in it.
 */
export function createLedgerReads(db: Kysely<Database>): Pick<Store, 'ledgerFacts'> {
  async function byKeys(keys: readonly string[]): Promise<RunRecord[]> {
    const out: RunRecord[] = [];
    for (let i = 0; i < keys.length; i += IN_CHUNK) {
      const rows = await db.selectFrom('runs').selectAll().where('dedupe_key', 'in', keys.slice(i, i + IN_CHUNK)).execute();
      for (const r of rows) out.push(fromRow(runs, r));
    }
    return out;
  }
  return {
    async ledgerFacts(agentId, slotKeys, from, to) {
      const found = slotKeys.length > 0 ? await byKeys(slotKeys) : [];
      let last = found;
      for (let depth = 0; depth < MAX_RETRY_DEPTH && last.length > 0; depth++) {
        last = await byKeys(last.map((r) => `retry:${r.id}`));
        found.push(...last);
      }
      const pauseRows = await db.selectFrom('pauses').selectAll().where('agent_id', '=', agentId).where('paused_at', '<', to)
        .where((eb) => eb.or([eb('resumed_at', 'is', null), eb('resumed_at', '>', from)])).orderBy('paused_at').execute();
      const instanceRows = await db.selectFrom('instances').selectAll().where('started_at', '<', to)
        .where((eb) => eb.or([eb('stopped_at', 'is', null), eb('stopped_at', '>=', from)])).orderBy('started_at').execute();
      const oldest = await db.selectFrom('runs').select((eb) => eb.fn.min('scheduled_at').as('at')).where('agent_id', '=', agentId).executeTakeFirst();
      return {
        runs: found.filter((r) => r.agentId === agentId),
        pauses: pauseRows.map((r) => fromRow(pauses, r)),
        instances: instanceRows.map((r) => fromRow(instances, r)),
        oldestRunAt: oldest?.at === null || oldest?.at === undefined ? null : Number(oldest.at),
      };
    },
  };
}
