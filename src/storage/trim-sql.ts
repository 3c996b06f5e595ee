/** The `runs.trim` op as SQL (sql.ts): the fold of the trimmed runs into usage_days, then their DELETE. */
import { sql, type CompiledQuery, type Kysely } from 'kysely';
import { DAY_MS } from '../core/budgets.ts';
import type { WriteOp } from '../core/store.ts';
import type { Database } from './schema.ts';
import type { fencedWhere } from './sql.ts';

/**
 * The statements of one trim, in order. The newest `keep` runs stay; of the older ones, those still queued
 * or running stay too. What the deleted runs used is folded into usage_days first, in the same transaction:
 * usage and budgets count them still. `fenced` is sql.ts's `fencedWhere`, passed in so this file does not
 * import sql.ts at run time (sql.ts imports it).
 */
export function compileRunsTrim(db: Kysely<Database>, o: Extract<WriteOp, { op: 'runs.trim' }>, fenced: typeof fencedWhere): CompiledQuery[] {
  const kept = (qb: any) => qb.selectFrom('runs').select('id').where('agent_id', '=', o.agentId).orderBy('created_at', 'desc').orderBy('id', 'desc').limit(o.keep);
  const day = sql<number>`finished_at / ${sql.lit(DAY_MS)}`;
  const folded = db
    .selectFrom('runs')
    .select((eb) => [
      'agent_id',
      day.as('day'),
      eb.fn.countAll<number>().as('runs'),
      eb.fn.coalesce(eb.fn.sum<number>('input_tokens'), eb.lit(0)).as('input_tokens'),
      eb.fn.coalesce(eb.fn.sum<number>('output_tokens'), eb.lit(0)).as('output_tokens'),
      eb.fn.coalesce(eb.fn.sum<number>('cost_usd'), eb.lit(0)).as('cost_usd'),
    ])
    .where('agent_id', '=', o.agentId)
    .where('status', 'not in', ['queued', 'running'])
    .where('started_at', 'is not', null)
    .where('finished_at', 'is not', null)
    .where('id', 'not in', kept)
    .groupBy(['agent_id', day]);
  const fold = db
    .insertInto('usage_days')
    .columns(['agent_id', 'day', 'runs', 'input_tokens', 'output_tokens', 'cost_usd'])
    .expression(fenced(folded, o.fence))
    .onConflict((oc) =>
      oc.columns(['agent_id', 'day']).doUpdateSet({
        runs: sql`usage_days.runs + excluded.runs`,
        input_tokens: sql`usage_days.input_tokens + excluded.input_tokens`,
        output_tokens: sql`usage_days.output_tokens + excluded.output_tokens`,
        cost_usd: sql`usage_days.cost_usd + excluded.cost_usd`,
      }),
    )
    .compile();
  const trim = db.deleteFrom('runs').where('agent_id', '=', o.agentId).where('status', 'not in', ['queued', 'running']).where('id', 'not in', kept);
  // The ids it deletes are answered: a run deleted in the batch that ended it no longer vouches for its events' fences (sql.ts).
  return [fold, fenced(trim, o.fence).returning('id').compile()];
}
