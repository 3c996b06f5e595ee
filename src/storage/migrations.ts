import { sql, type Kysely, type Migration } from 'kysely';

/**
 * Every table, defined in code (nothing is read from disk at run time). Only portable types and
 * constraints: the same migrations build the schema on SQLite and PostgreSQL.
 */
export const migrations: Record<string, Migration> = {
  '0001_init': {
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('agents')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('owner', 'varchar(255)', (c) => c.notNull())
        .addColumn('name', 'varchar(200)', (c) => c.notNull())
        .addColumn('handler', 'varchar(100)', (c) => c.notNull())
        .addColumn('config', 'text', (c) => c.notNull())
        .addColumn('description', 'text')
        .addColumn('timeout_ms', 'bigint')
        .addColumn('max_retries', 'integer')
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('last_run_at', 'bigint')
        .addColumn('last_error', 'text')
        .addColumn('retry_count', 'integer', (c) => c.notNull().defaultTo(0))
        .addColumn('backoff_until', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('agents_owner').on('agents').columns(['owner', 'created_at']).execute();

      await db.schema
        .createTable('schedules')
        .addColumn('agent_id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('job_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('expression', 'varchar(200)', (c) => c.notNull())
        .addColumn('timezone', 'varchar(100)', (c) => c.notNull())
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('enabled', 'integer', (c) => c.notNull())
        .addColumn('paused', 'integer', (c) => c.notNull())
        .addColumn('catch_up', 'integer', (c) => c.notNull())
        .addColumn('next_run_at', 'bigint')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addColumn('updated_at', 'bigint', (c) => c.notNull())
        .execute();

      await db.schema
        .createTable('runs')
        .addColumn('id', 'varchar(40)', (c) => c.primaryKey())
        .addColumn('agent_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('job_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('trigger', 'varchar(16)', (c) => c.notNull())
        .addColumn('attempt', 'integer', (c) => c.notNull())
        .addColumn('status', 'varchar(16)', (c) => c.notNull())
        .addColumn('priority', 'integer', (c) => c.notNull())
        .addColumn('scheduled_at', 'bigint', (c) => c.notNull())
        .addColumn('started_at', 'bigint')
        .addColumn('finished_at', 'bigint')
        .addColumn('duration_ms', 'bigint')
        .addColumn('progress', 'real')
        .addColumn('error', 'text')
        // job@scheduledAt for fires and catch-ups: one slot can never be run twice, even by two instances.
        .addColumn('dedupe_key', 'varchar(120)', (c) => c.unique())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('runs_agent_created').on('runs').columns(['agent_id', 'created_at']).execute();
      await db.schema.createIndex('runs_status').on('runs').column('status').execute();

      await db.schema
        .createTable('events')
        .addColumn('id', 'bigint', (c) => c.primaryKey())
        .addColumn('type', 'varchar(32)', (c) => c.notNull())
        .addColumn('agent_id', 'varchar(64)')
        .addColumn('data', 'text', (c) => c.notNull())
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .execute();
      await db.schema.createIndex('events_agent').on('events').columns(['agent_id', 'id']).execute();
      await db.schema.createIndex('events_created').on('events').column('created_at').execute();
    },
  },
  '0002_partial_open_runs_index': {
    // Only queued and running runs are ever looked up by status (at start). A partial index holds just
    // those, so the common case — a run inserted already finished within one batch — never touches it.
    async up(db: Kysely<any>) {
      await db.schema.dropIndex('runs_status').execute();
      await db.schema.createIndex('runs_open').on('runs').column('status').where(sql.ref('status'), 'in', ['queued', 'running']).execute();
    },
  },
  '0003_instances_and_event_ids': {
    // Several instances on one database: each registers itself and heartbeats; a run records the
    // instance that ran it; event ids come from one counter row updated inside each committing
    // transaction, so ids increase in commit order across instances (a row lock orders them).
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('instances')
        .addColumn('id', 'varchar(64)', (c) => c.primaryKey())
        .addColumn('host', 'varchar(255)', (c) => c.notNull())
        .addColumn('pid', 'integer', (c) => c.notNull())
        .addColumn('started_at', 'bigint', (c) => c.notNull())
        .addColumn('heartbeat_at', 'bigint', (c) => c.notNull())
        .addColumn('running', 'integer', (c) => c.notNull())
        .addColumn('max_concurrent', 'integer', (c) => c.notNull())
        .addColumn('stopped_at', 'bigint')
        .execute();
      await db.schema.alterTable('runs').addColumn('instance_id', 'varchar(64)').execute();
      await db.schema.createTable('counters').addColumn('name', 'varchar(32)', (c) => c.primaryKey()).addColumn('value', 'bigint', (c) => c.notNull()).execute();
      await sql`INSERT INTO counters (name, value) SELECT 'event_id', COALESCE(MAX(id), 0) FROM events`.execute(db);
    },
  },
  '0004_claims_leases_fences': {
    // Claim before run (docs/cluster.md): a schedule's revision guards its fires; a run's epoch fences
    // its holder's writes and its lease says until when the holder counts as alive.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('schedules').addColumn('revision', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('runs').addColumn('epoch', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('runs').addColumn('lease_until', 'bigint').execute();
      // The queue as `take` reads it: queued runs in hand-out order, so taking the next few of a long
      // backlog walks the index head instead of sorting every due run (on PostgreSQL, EXPLAIN shows an
      // index scan of runs_queue under LockRows and Limit, no sort). Partial, like runs_open: a run
      // leaves it when it starts.
      await db.schema
        .createIndex('runs_queue')
        .on('runs')
        .columns(['priority desc', 'created_at', 'id'])
        .where(sql.ref('status'), '=', 'queued')
        .execute();
      // The overlap check of a claim: does this agent have an open run? (An index-only scan.)
      await db.schema.createIndex('runs_open_agent').on('runs').column('agent_id').where(sql.ref('status'), 'in', ['queued', 'running']).execute();
    },
  },
  '0005_cancel_requests_revisions_changes': {
    // The cluster's gaps closed (docs/cluster.md): a cancel answered elsewhere is recorded on the run for
    // its holder; schedule revisions come from one counter; reconciles read only what the API changed.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('runs').addColumn('cancel_requested_at', 'bigint').execute();
      await db.schema.alterTable('schedules').addColumn('changed_at', 'bigint', (c) => c.notNull().defaultTo(0)).execute();
      await sql`UPDATE schedules SET changed_at = updated_at`.execute(db);
      await db.schema.createIndex('schedules_changed').on('schedules').column('changed_at').execute();
      await sql`INSERT INTO counters (name, value) SELECT 'schedule_revision', COALESCE(MAX(revision), 0) FROM schedules`.execute(db);
    },
  },
  '0006_outputs_usage_budgets': {
    // AI agents (CONTRACT §9): what a run produced and used, an agent's budget, why a schedule is paused
    // and when a budget pause ends.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('runs').addColumn('output', 'text').execute();
      await db.schema.alterTable('runs').addColumn('output_truncated', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.alterTable('runs').addColumn('usage_model', 'varchar(200)').execute();
      await db.schema.alterTable('runs').addColumn('input_tokens', 'bigint').execute();
      await db.schema.alterTable('runs').addColumn('output_tokens', 'bigint').execute();
      await db.schema.alterTable('runs').addColumn('cost_usd', 'double precision').execute();
      // The usage roll-up and the budget check: one agent's finished runs over a time range.
      await db.schema.createIndex('runs_agent_finished').on('runs').columns(['agent_id', 'finished_at']).execute();
      await db.schema.alterTable('agents').addColumn('budget', 'text').execute();
      await db.schema.alterTable('schedules').addColumn('pause_reason', 'varchar(16)').execute();
      await db.schema.alterTable('schedules').addColumn('resume_at', 'bigint').execute();
      await sql`UPDATE schedules SET pause_reason = 'manual' WHERE paused = 1`.execute(db);
    },
  },
  '0007_usage_days': {
    // Usage outlives the run history: the trim folds the runs it deletes into one row per agent and UTC day.
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('usage_days')
        .addColumn('agent_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('day', 'integer', (c) => c.notNull())
        .addColumn('runs', 'integer', (c) => c.notNull())
        .addColumn('input_tokens', 'bigint', (c) => c.notNull())
        .addColumn('output_tokens', 'bigint', (c) => c.notNull())
        .addColumn('cost_usd', 'double precision', (c) => c.notNull())
        .addPrimaryKeyConstraint('usage_days_pk', ['agent_id', 'day'])
        .execute();
    },
  },
  '0008_idempotency_keys': {
    // A manual run's Idempotency-Key answers the same run for 24 h, on every instance (CONTRACT §11).
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('idempotency_keys')
        .addColumn('agent_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('key', 'varchar(200)', (c) => c.notNull())
        .addColumn('run_id', 'varchar(64)')
        .addColumn('created_at', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('idempotency_keys_pk', ['agent_id', 'key'])
        .execute();
    },
  },
  '0009_pause_notes': {
    // A pause may carry a note and an end (`{ note, until }`, CONTRACT §11); the end is resume_at, as a budget pause's.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('schedules').addColumn('pause_note', 'varchar(500)').execute();
    },
  },
  '0010_schedule_jitter': {
    // Each fire may start up to jitter_ms after its slot, by a delay every instance computes alike (core/jitter.ts).
    async up(db: Kysely<any>) {
      await db.schema.alterTable('schedules').addColumn('jitter_ms', 'integer', (c) => c.notNull().defaultTo(0)).execute();
    },
  },
  '0011_pauses': {
    // Every pause with its reason, note and end, for the ledger: "why didn't it run at 09:00?" (CONTRACT §11).
    async up(db: Kysely<any>) {
      await db.schema
        .createTable('pauses')
        .addColumn('id', 'varchar(120)', (c) => c.primaryKey())
        .addColumn('agent_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('job_id', 'varchar(64)', (c) => c.notNull())
        .addColumn('reason', 'varchar(16)', (c) => c.notNull())
        .addColumn('note', 'varchar(500)')
        .addColumn('paused_at', 'bigint', (c) => c.notNull())
        .addColumn('resumed_at', 'bigint')
        .execute();
      await db.schema.createIndex('pauses_agent_paused').on('pauses').columns(['agent_id', 'paused_at']).execute();
    },
  },
  '0012_schedule_owner': {
    // The agent's owner beside its schedule (it never changes): the queue's fair share needs it for a fire
    // without reading the agent first (core/executor.ts).
    async up(db: Kysely<any>) {
      await db.schema.alterTable('schedules').addColumn('owner', 'varchar(200)', (c) => c.notNull().defaultTo('')).execute();
      await sql`UPDATE schedules SET owner = (SELECT agents.owner FROM agents WHERE agents.id = schedules.agent_id)
        WHERE EXISTS (SELECT 1 FROM agents WHERE agents.id = schedules.agent_id)`.execute(db);
    },
  },
  '0013_overlap_catch_up_backfill': {
    // A schedule's overlap and catch-up policies, and runs that wait behind their agent's run in progress
    // (CONTRACT §11). Partial index: a store lets the waiting runs of an agent go, oldest slot first, and
    // with none waiting (the usual case) that look-up reads an empty index.
    async up(db: Kysely<any>) {
      await db.schema.alterTable('schedules').addColumn('catch_up_policy', 'varchar(8)', (c) => c.notNull().defaultTo('latest')).execute();
      await db.schema.alterTable('schedules').addColumn('catch_up_window_ms', 'bigint').execute();
      await db.schema.alterTable('schedules').addColumn('overlap', 'varchar(16)', (c) => c.notNull().defaultTo('skip')).execute();
      await db.schema.alterTable('runs').addColumn('waiting', 'integer', (c) => c.notNull().defaultTo(0)).execute();
      await db.schema.createIndex('runs_waiting').on('runs').columns(['agent_id', 'scheduled_at', 'id']).where(sql.ref('waiting'), '=', 1).execute();
    },
  },
};
