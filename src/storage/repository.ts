import { sql, type Kysely } from 'kysely';
import { EVENT_POLL_MS } from '../core/limits.ts';
import type { Logger } from '../core/logger.ts';
import { silentLogger } from '../core/logger.ts';
import type { EventRecord, Store } from '../core/store.ts';
import { createEventFeed, stampIds } from './event-feed.ts';
import { committedEventsAfter, createReads } from './reads.ts';
import { createIdempotencyMethods } from './idempotency-sql.ts';
import { createLedgerReads } from './ledger-sql.ts';
import { createInstanceMethods } from './instances.ts';
import type { Database } from './schema.ts';
import { createClaimMethods, lockClaimAgents } from './claim-sql.ts';
import { eventStatements, fencedEvents, insertEvents, takeEventIds } from './event-sql.ts';
import { compileBatch, isSharedDatabase, type CompiledBatch } from './sql.ts';
import { createStatements, placeholderOf } from './statements.ts';
import { agents, fromRow, runs, schedules, setColumns, toRow } from './tables.ts';
import { createPromotedListeners, endedRunIds } from './promote.ts';
import { promote } from './promote-sql.ts';
import { BLOCKING_BATCH_BUDGET_MS, createWriteChain } from './write-batch.ts';

/**
 * The store over Kysely (SQLite or PostgreSQL; it never knows which driver is behind it). It composes
 * the shared write path (write-batch.ts), the SQL a batch becomes (sql.ts) and the reads (reads.ts).
 */
export interface Repository extends Store {
  readonly db: Kysely<Database>;
  /**
   * Reads now the events other instances committed, for this one's followers; resolves once they have
   * them. The hook a wake-up from the database (LISTEN/NOTIFY) calls; the poll interval calls it too.
   */
  pollEvents(): Promise<void>;
}

export interface RepositoryOptions {
  /**
   * How often followers of events read what other instances committed, in ms; 0 never.
   * @default EVENT_POLL_MS (250) on PostgreSQL, which several instances share; 0 on SQLite, whose file has one writer
   */
  eventPollMs?: number;
  /**
   * Called after each commit that wrote events, with the last id written: where a notification that
   * wakes the other instances (their `pollEvents`) is sent. It must not throw (an error is logged).
   */
  onEventsCommitted?: (lastId: number) => void;
}

export function createRepository(db: Kysely<Database>, logger: Logger = silentLogger, options: RepositoryOptions = {}): Repository {
  const statements = createStatements(placeholderOf(db));
  const shared = isSharedDatabase(db);
  const pollMs = options.eventPollMs ?? (shared ? EVENT_POLL_MS : 0);
  let pollTimer: ReturnType<typeof setInterval> | undefined;
  const feed = createEventFeed({
    read: committedEventsAfter(db),
    logger,
    // Polls only while someone follows: a repository nobody follows (tests, tools) costs no reads.
    onActive(active) {
      clearInterval(pollTimer);
      pollTimer = active && pollMs > 0 ? setInterval(() => void feed.poll(), pollMs) : undefined;
    },
  });

  /** One transaction; the events get their ids last (sql.ts says why) and are delivered once it has committed. */
  const promotedListeners = createPromotedListeners();
  const tellPromoted = (rows: Record<string, unknown>[]) =>
    promotedListeners.tell(rows.map((r) => fromRow(runs, r)), (err) => logger.error('a listener of promoted runs failed', { error: err instanceof Error ? err.message : String(err) }));

  async function execute({ queries, events: written, eventFences, guarded, trims, vouches, trimmed }: CompiledBatch, ended: readonly string[]): Promise<void> {
    let promoted: Record<string, unknown>[] = [];
    const records = await db.transaction().execute(async (trx) => {
      if (shared && guarded) await lockClaimAgents(trx, guarded);
      // Fences known to hold, run id → epoch: no op of a batch changes an epoch, and no other transaction
      // changes a row this one inserted or updated until it commits, so they hold when the events are written.
      const holding = eventFences && vouches ? new Map<string, number>() : undefined;
      for (let i = 0; i < queries.length; i++) {
        const result = await trx.executeQuery(queries[i]!);
        if (!holding) continue;
        const vouched = vouches![i];
        if (vouched && Number(result.numAffectedRows ?? -1) === vouched.length) for (const f of vouched) holding.set(f.runId, f.epoch);
        else if (trimmed?.includes(i)) for (const row of result.rows as { id: string }[]) holding.delete(row.id);
      }
      promoted = await promote(trx, ended);
      let stamped: EventRecord[] | undefined;
      const events = eventFences ? await fencedEvents((query) => trx.executeQuery(query), db, written, eventFences, holding) : written;
      if (events.length > 0) {
        const last = (await trx.executeQuery(takeEventIds(statements, events.length))).rows[0]?.value;
        if (last == null) throw new Error("counters has no row 'event_id' (migration 0003 makes it)");
        stamped = stampIds(events, Number(last));
        for (const query of eventStatements(statements, stamped)) await trx.executeQuery(query);
      }
      for (const query of trims) await trx.executeQuery(query);
      return stamped;
    });
    tellPromoted(promoted);
    if (!records) return;
    feed.committed(records);
    try {
      options.onEventsCommitted?.(records[records.length - 1]!.id);
    } catch (err) {
      logger.error('onEventsCommitted failed', { error: err instanceof Error ? err.message : String(err) });
    }
  }
  // SQLite blocks the thread while it commits: its batches are cut to a time budget. PostgreSQL does not.
  const chain = createWriteChain((ops) => execute(compileBatch(db, statements, ops), endedRunIds(ops)), logger, shared ? {} : { budgetMs: BLOCKING_BATCH_BUDGET_MS });

  return {
    db,
    shared,
    ...createClaimMethods(db, statements, chain, shared),
    onPromoted: promotedListeners.add,
    // The sweep (a heartbeat's, a start's): on the chain, after the writes before it, like a batch.
    promoteWaiting: () => chain.serial(async () => tellPromoted(await promote(db))),
    write: chain.write,
    flush: chain.flush,
    holdCommits: chain.hold,
    ...chain.seeingWrites(createReads(db)),
    followEvents: feed.follow,
    pollEvents: feed.poll,

    // The agents rows are written on the same ordered chain as the batches: an insert or a delete lands
    // after every write buffered before it and before every later one.
    insertAgent(agent) {
      const row = toRow(agents, agent) as Database['agents']; // as it is now, not as the caller may change it before its turn
      return chain.serial(async () => {
        const result = await db.insertInto('agents').values(row).onConflict((oc) => oc.column('id').doNothing()).executeTakeFirst();
        return Number(result.numInsertedOrUpdatedRows ?? 0n) === 1;
      });
    },
    deleteAgent: (id, marker) =>
      chain.serial(async () => {
        const stamped = await db.transaction().execute(async (trx) => {
          // After any claim of the agent in progress, so none inserts runs of an agent deleted meanwhile.
          if (shared) await lockClaimAgents(trx, [id]);
          await trx.deleteFrom('schedules').where('agent_id', '=', id).execute();
          await trx.deleteFrom('runs').where('agent_id', '=', id).execute();
          await trx.deleteFrom('usage_days').where('agent_id', '=', id).execute();
          // Its events go with it: a new agent under the same id (anyone's) must never replay them.
          await trx.deleteFrom('events').where('agent_id', '=', id).execute();
          await trx.deleteFrom('idempotency_keys').where('agent_id', '=', id).execute();
          await trx.deleteFrom('pauses').where('agent_id', '=', id).execute();
          await trx.deleteFrom('agents').where('id', '=', id).execute();
          return marker ? await insertEvents((query) => trx.executeQuery(query), statements, [marker]) : [];
        });
        if (stamped.length === 0) return;
        feed.committed(stamped);
        options.onEventsCommitted?.(stamped[stamped.length - 1]!.id); // the other instances end their subscriptions sooner
      }),
    // On the chain, after every buffered write: the condition sees the pause as this instance wrote it.
    endTimedPause: (agentId, revision, set) =>
      chain.serial(async () => {
        const result = await db
          .updateTable('schedules')
          .set(setColumns(schedules, set) as never)
          .where('agent_id', '=', agentId)
          .where('revision', '=', revision)
          .where('paused', '=', 1)
          .executeTakeFirst();
        return Number(result.numUpdatedRows) === 1;
      }),
    ...createInstanceMethods(db),
    ...createIdempotencyMethods(db),
    ...chain.seeingWrites(createLedgerReads(db)),
    // Beside the chain, which may be waiting out an outage: /healthz asks whether the database answers now.
    ping: async () => void (await sql`SELECT 1`.execute(db)),
    writeTrouble: chain.trouble,
    async [Symbol.asyncDispose]() {
      await chain.settle();
      clearInterval(pollTimer);
      pollTimer = undefined;
      await db.destroy();
    },
  };
}
