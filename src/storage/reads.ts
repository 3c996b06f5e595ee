import { sql, type Kysely } from 'kysely';
import { DAY_MS } from '../core/budgets.ts';
import { OUTPUT_PREVIEW_CHARS } from '../core/limits.ts';
import type { AgentRecord, EventRecord, ScheduleRecord, Store } from '../core/store.ts';
import type { Database } from './schema.ts';
import { agents, events, fromRow, runs, schedules, type Row, type TableSpec } from './tables.ts';

/** Ids per `IN (…)` list: far under every dialect's bound-parameter limit. */
const IN_CHUNK = 500;

type Reads = Pick<
  Store,
  | 'loadSchedules' | 'loadOpenRuns' | 'maxEventId' | 'getAgent' | 'getAgents' | 'listAgents' | 'getSchedule' | 'listRuns' | 'getRun' | 'eventsAfter' | 'oldestEventId'
  | 'nextQueuedAt' | 'clusterFigures' | 'openRuns' | 'cancelRequests' | 'usageByDay' | 'lastOutput' | 'countAgents' | 'countRunsSince'
>;

/** Schedules read per statement when loading them all. */
const SCHEDULE_PAGE = 2000;

/** Every runs column but `output`, which a list reads only the start of (OUTPUT_PREVIEW_CHARS). */
const LISTED_RUN_COLUMNS = runs.names.filter((n) => n !== runs.columns.output.name) as (keyof Database['runs'])[];

/**
 * Every read of the SQL store, straight from the database: the repository makes them wait for
 * buffered writes first (write-batch.ts).
 */
export function createReads(db: Kysely<Database>): Reads {
  const maybe = <R>(t: TableSpec<R>, row: Row | undefined) => (row ? fromRow(t, row) : undefined);
  return {
    // In pages by agent id (the primary key): 100,000 rows read at once made 100,000 transient row objects
    // beside the records, and the heap grown for that peak stayed the process's size.
    async loadSchedules(since, each) {
      const out: ScheduleRecord[] = [];
      const take = each ?? ((r: ScheduleRecord) => void out.push(r));
      for (let after: string | null = null; ;) {
        let query = db.selectFrom('schedules').selectAll().orderBy('agent_id').limit(SCHEDULE_PAGE);
        if (since !== undefined) query = query.where('changed_at', '>=', since); // index schedules_changed
        if (after !== null) query = query.where('agent_id', '>', after);
        const rows = await query.execute();
        for (const r of rows) take(fromRow(schedules, r));
        if (rows.length < SCHEDULE_PAGE) return out;
        after = rows[rows.length - 1]!.agent_id;
      }
    },
    // Over the partial index of open runs (runs_open): a few rows, read twice a second while the instance runs something.
    async cancelRequests(instanceId) {
      const rows = await db.selectFrom('runs').select('id').where('status', '=', 'running').where('instance_id', '=', instanceId).where('cancel_requested_at', 'is not', null).execute();
      return rows.map((r) => r.id);
    },
    // The partial index runs_open_agent holds exactly these rows: finished runs, however many, cost nothing.
    async openRuns(agentId) {
      const rows = await db.selectFrom('runs').selectAll().where('agent_id', '=', agentId).where('status', 'in', ['queued', 'running']).orderBy('created_at').orderBy('id').execute();
      return rows.map((r) => fromRow(runs, r));
    },
    async loadOpenRuns() {
      const rows = await db.selectFrom('runs').selectAll().where('status', 'in', ['queued', 'running']).orderBy('created_at').orderBy('id').execute();
      return rows.map((r) => fromRow(runs, r));
    },
    // The counter, not MAX(id): it is the last id handed out even when retention has emptied the table.
    async maxEventId() {
      const row = await db.selectFrom('counters').select('value').where('name', '=', 'event_id').executeTakeFirst();
      return row ? Number(row.value) : 0;
    },
    async getAgent(id) {
      return maybe(agents, await db.selectFrom('agents').selectAll().where('id', '=', id).executeTakeFirst());
    },
    async getAgents(ids) {
      const out: AgentRecord[] = [];
      for (let i = 0; i < ids.length; i += IN_CHUNK) {
        const rows = await db.selectFrom('agents').selectAll().where('id', 'in', ids.slice(i, i + IN_CHUNK)).execute();
        for (const r of rows) out.push(fromRow(agents, r));
      }
      return out;
    },
    async listAgents(owner) {
      let query = db.selectFrom('agents').selectAll().orderBy('created_at').orderBy('id');
      if (owner !== null) query = query.where('owner', '=', owner);
      return (await query.execute()).map((r) => fromRow(agents, r));
    },
    async getSchedule(agentId) {
      return maybe(schedules, await db.selectFrom('schedules').selectAll().where('agent_id', '=', agentId).executeTakeFirst());
    },
    async listRuns(agentId, limit) {
      const rows = await db
        .selectFrom('runs')
        .select(LISTED_RUN_COLUMNS)
        .select(sql<string | null>`substr(output, 1, ${sql.lit(OUTPUT_PREVIEW_CHARS)})`.as('output'))
        .where('agent_id', '=', agentId).orderBy('created_at', 'desc').orderBy('id', 'desc').limit(limit).execute();
      return rows.map((r) => fromRow(runs, r));
    },
    async countAgents(owner) {
      const row = await db.selectFrom('agents').select((eb) => eb.fn.countAll().as('n')).where('owner', '=', owner).executeTakeFirst();
      return Number(row?.n ?? 0);
    },
    async countRunsSince(agentId, trigger, since) {
      const row = await db.selectFrom('runs').select((eb) => eb.fn.countAll().as('n')).where('agent_id', '=', agentId).where('created_at', '>=', since).where('trigger', '=', trigger).executeTakeFirst();
      return Number(row?.n ?? 0);
    },
    async getRun(id) {
      return maybe(runs, await db.selectFrom('runs').selectAll().where('id', '=', id).executeTakeFirst());
    },
    async eventsAfter(after, agentId, limit) {
      let query = db.selectFrom('events').selectAll().where('id', '>', after).orderBy('id').limit(limit);
      query = agentId === null ? query.where('agent_id', 'is', null) : query.where('agent_id', '=', agentId);
      return (await query.execute()).map((r) => fromRow(events, r));
    },
    async nextQueuedAt() {
      const row = await db.selectFrom('runs').select((eb) => eb.fn.min('scheduled_at').as('at')).where('status', '=', 'queued').where('waiting', '=', 0).executeTakeFirst();
      return row?.at == null ? null : Number(row.at);
    },
    // One statement: one pass over schedules (enabled and paused are 0/1, so their sums are the counts) and
    // three scalar subqueries; the runs counts use the partial index of open runs (runs_open).
    async clusterFigures(now, aliveSince) {
      const row = await db
        .selectFrom('schedules')
        .select((eb) => [
          eb.fn.coalesce(eb.fn.sum('enabled'), eb.lit(0)).as('scheduled'),
          eb.fn.coalesce(eb.fn.sum('paused'), eb.lit(0)).as('paused'),
          eb.selectFrom('runs').select((e) => e.fn.countAll().as('n')).where('status', '=', 'running').as('running'),
          eb.selectFrom('runs').select((e) => e.fn.countAll().as('n')).where('status', '=', 'queued').where('scheduled_at', '<=', now).as('queued'),
          eb.selectFrom('instances').select((e) => e.fn.coalesce(e.fn.sum('max_concurrent'), e.lit(0)).as('n')).where('stopped_at', 'is', null).where('heartbeat_at', '>=', aliveSince).as('capacity'),
        ])
        .executeTakeFirstOrThrow();
      return { scheduled: Number(row.scheduled), paused: Number(row.paused), running: Number(row.running), queued: Number(row.queued), capacity: Number(row.capacity) };
    },
    // Over runs_agent_finished: the runs that started and finished in the range, summed per UTC day in SQL
    // (integer division of the millisecond time), never loaded.
    // One statement over two indexed reads: the runs still kept (runs_agent_finished), summed per UTC day of
    // their finish, and the days the history trim folded deleted runs into (usage_days, by its primary key; a
    // folded day counts when its start is in the range). Summed in SQL, never loaded run by run.
    async usageByDay(agentId, from, to) {
      const day = sql<number>`finished_at / ${sql.lit(DAY_MS)}`;
      const kept = db
        .selectFrom('runs')
        .select((eb) => [
          day.as('day'),
          eb.fn.countAll<number>().as('runs'),
          eb.fn.coalesce(eb.fn.sum<number>('input_tokens'), eb.lit(0)).as('input_tokens'),
          eb.fn.coalesce(eb.fn.sum<number>('output_tokens'), eb.lit(0)).as('output_tokens'),
          eb.fn.coalesce(eb.fn.sum<number>('cost_usd'), eb.lit(0)).as('cost_usd'),
        ])
        .where('agent_id', '=', agentId)
        .where('finished_at', '>=', from)
        .where('finished_at', '<', to)
        .where('started_at', 'is not', null)
        .groupBy(day);
      const folded = db
        .selectFrom('usage_days')
        .select(['day', 'runs', 'input_tokens', 'output_tokens', 'cost_usd'])
        .where('agent_id', '=', agentId)
        .where('day', '>=', Math.ceil(from / DAY_MS))
        .where('day', '<', Math.ceil(to / DAY_MS));
      const rows = await db
        .selectFrom(kept.unionAll(folded as never).as('u'))
        .select((eb) => [
          'u.day',
          eb.fn.sum<number>('u.runs').as('runs'),
          eb.fn.sum<number>('u.input_tokens').as('input'),
          eb.fn.sum<number>('u.output_tokens').as('output'),
          eb.fn.sum<number>('u.cost_usd').as('cost'),
        ])
        .groupBy('u.day')
        .orderBy('u.day')
        .execute();
      return rows.map((r) => ({ day: Number(r.day), runs: Number(r.runs), inputTokens: Number(r.input), outputTokens: Number(r.output), costUsd: Number(r.cost) }));
    },
    async lastOutput(agentId) {
      const row = await db
        .selectFrom('runs')
        .select('output')
        .where('agent_id', '=', agentId)
        .where('status', '=', 'completed')
        .where('finished_at', 'is not', null)
        .orderBy('finished_at', 'desc')
        .orderBy('id', 'desc')
        .limit(1)
        .executeTakeFirst();
      return row?.output ?? null;
    },
    async oldestEventId() {
      const row = await db.selectFrom('events').select((eb) => eb.fn.min('id').as('min')).executeTakeFirst();
      return row?.min == null ? null : Number(row.min);
    },
  };
}

/**
 * Committed events of every agent with id > `after`, in id order: what an event follower reads to fill a
 * gap (event-feed.ts). It does not wait for buffered writes: a follower wants what is committed, and
 * the buffered events reach it through their own commit.
 */
export function committedEventsAfter(db: Kysely<Database>) {
  return async (after: number, limit: number): Promise<EventRecord[]> =>
    (await db.selectFrom('events').selectAll().where('id', '>', after).orderBy('id').limit(limit).execute()).map((r) => fromRow(events, r));
}
