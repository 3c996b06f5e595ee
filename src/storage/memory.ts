import { silentLogger, type Logger } from '../core/logger.ts';
import type { AgentRecord, EventRecord, Fence, NewEvent, RunRecord, Store, WriteOp } from '../core/store.ts';
import { createMemoryClaims } from './memory-claims.ts';
import { createPromotedListeners, endedRunIds } from './promote.ts';
import { createEventFeed, stampIds } from './event-feed.ts';
import { agents, events, fromRow, pauses, runs, schedules, setColumns, toRow, usageDays, type Row, type TableSpec } from './tables.ts';
import { createMemoryIdempotency } from './memory-idempotency.ts';
import { createMemoryLeases } from './memory-leases.ts';
import { createMemoryLedger } from './memory-ledger.ts';
import { byNewest, createMemoryInstances } from './memory-rows.ts';
import { createMemoryReads } from './memory-reads.ts';
import { foldUsage, type UsageRows } from './memory-usage.ts';
import { createWriteChain } from './write-batch.ts';

/**
 * The store in memory, for tests that need no database file. It holds the same encoded rows the
 * SQL tables hold (tables.ts) and keeps their constraints: primary keys, the unique `dedupe_key`, NOT
 * NULL columns, and a batch applied whole or not at all. Writes go through the same write path as the
 * SQL store (write-batch.ts), so batches fold, order and fail alike. test/storage.test.ts runs the one
 * contract suite over it and over every SQL dialect.
 */
export function createMemoryStore(logger: Logger = silentLogger): Store {
  const agentRows = new Map<string, Row>();
  const scheduleRows = new Map<string, Row>();
  const runRows = new Map<string, Row>();
  const eventRows = new Map<number, Row>();
  /** usage_days, keyed `agentId day`. */
  const usageRows: UsageRows = new Map();
  const pauseRows = new Map<string, Row>();
  /** The counters row 'event_id': the last event id handed out. */
  let eventCounter = 0;
  /** The counters row 'schedule_revision': the last schedule revision handed out. */
  let revisionCounter = 0;
  /** The events of the batch being applied, in order, and its trims: both come last, as in SQL (sql.ts). */
  let batchEvents: { event: NewEvent; fence: Fence | undefined }[] = [];
  let batchTrims: number[] = [];
  /** dedupe_key → run id: the unique index of runs. */
  const dedupe = new Map<string, string>();
  /** Ids of runs queued or running: the partial indexes the claim, the take and the reaper read. */
  const open = new Set<string>();

  /** Undo steps of the transaction in progress, newest last. */
  let undo: (() => void)[] = [];

  function transaction<T>(work: () => T): T {
    undo = [];
    try {
      return work();
    } catch (err) {
      for (let i = undo.length - 1; i >= 0; i--) undo[i]!();
      throw err;
    } finally {
      undo = [];
    }
  }

  function put<K>(map: Map<K, Row>, key: K, row: Row): void {
    const prev = map.get(key);
    undo.push(() => (prev ? map.set(key, prev) : map.delete(key)));
    map.set(key, row);
    if (map === runRows) index(prev, row);
  }

  function remove<K>(map: Map<K, Row>, key: K): void {
    const prev = map.get(key);
    if (!prev) return;
    undo.push(() => map.set(key, prev));
    map.delete(key);
    if (map === runRows) index(prev, undefined);
  }

  const isOpen = (row: Row | undefined) => row !== undefined && (row['status'] === 'queued' || row['status'] === 'running');

  /** Keeps `dedupe` and `open` in step with a run row that changes from `prev` to `next`. */
  function index(prev: Row | undefined, next: Row | undefined): void {
    const wasOpen = isOpen(prev);
    const nowOpen = isOpen(next);
    if (wasOpen !== nowOpen) {
      const id = (next ?? prev)!['id'] as string;
      if (nowOpen) open.add(id);
      else open.delete(id);
      undo.push(() => (wasOpen ? open.add(id) : open.delete(id)));
    }
    const before = prev?.['dedupe_key'] as string | null | undefined;
    const after = next?.['dedupe_key'] as string | null | undefined;
    if (before === after) return;
    if (after != null && dedupe.has(after)) throw new Error(`UNIQUE constraint failed: runs.dedupe_key (${after})`);
    if (before != null) dedupe.delete(before);
    if (after != null) dedupe.set(after, next!['id'] as string);
    undo.push(() => {
      if (after != null) dedupe.delete(after);
      if (before != null) dedupe.set(before, prev!['id'] as string);
    });
  }

  function checked(t: TableSpec, row: Row): Row {
    for (const c of t.list) if (!c.codec.nullable && row[c.name] == null) throw new Error(`NOT NULL constraint failed: ${t.table}.${c.name}`);
    return row;
  }

  /** An UPDATE of one row by its key: a missing row is no error, as in SQL. */
  function update<K>(t: TableSpec, map: Map<K, Row>, key: K, set: Row): void {
    const row = map.get(key);
    if (!row) return;
    const next: Row = { ...row };
    for (const column in set) next[column] = set[column] ?? null;
    put(map, key, checked(t, next));
  }

  /** A fence holds while its run has its epoch, at this point of the transaction (sql.ts does the same). */
  const holds = (fence: Fence | undefined) => fence === undefined || runRows.get(fence.runId)?.['epoch'] === fence.epoch;

  function apply(op: WriteOp): void {
    // Events are fenced when they are inserted, last (see insertEvents).
    if (op.op !== 'event.insert' && !holds(op.fence)) return;
    switch (op.op) {
      case 'run.insert': {
        const row = checked(runs, toRow(runs, op.run));
        if (runRows.has(op.run.id)) throw new Error(`UNIQUE constraint failed: runs.id (${op.run.id})`);
        // ON CONFLICT (dedupe_key) DO NOTHING: a second run for one job slot is dropped.
        if (row['dedupe_key'] != null && dedupe.has(row['dedupe_key'] as string)) return;
        put(runRows, op.run.id, row);
        return;
      }
      case 'run.update': return update(runs, runRows, op.id, setColumns(runs, op.set));
      case 'agent.update': return update(agents, agentRows, op.id, setColumns(agents, op.set));
      case 'schedule.update': return update(schedules, scheduleRows, op.agentId, setColumns(schedules, op.set));
      case 'schedule.upsert': {
        const row = checked(schedules, toRow(schedules, op.schedule));
        // A replaced schedule keeps its row's created_at.
        const prev = scheduleRows.get(op.schedule.agentId);
        if (prev) row['created_at'] = prev['created_at'];
        put(scheduleRows, op.schedule.agentId, row);
        return;
      }
      case 'schedule.delete': return remove(scheduleRows, op.agentId);
      case 'event.insert':
        batchEvents.push({ event: op.event, fence: op.fence });
        return;
      case 'runs.trim': {
        // The newest `keep` runs stay; of the older ones, those still queued or running stay too.
        const older = byNewest([...runRows.values()].filter((r) => r['agent_id'] === op.agentId)).slice(op.keep);
        for (const r of older) {
          if (r['status'] === 'queued' || r['status'] === 'running') continue;
          // As in SQL: what a deleted run used is folded into its agent's day first.
          const usage = foldUsage(usageRows, op.agentId, r);
          if (usage) put(usageRows, usage.key, checked(usageDays, usage.row));
          remove(runRows, r['id'] as string);
        }
        return;
      }
      case 'events.trim':
        batchTrims.push(op.before);
        return;
      case 'pause.begin':
        return put(pauseRows, op.pause.id, checked(pauses, toRow(pauses, op.pause)));
      case 'pause.end':
        for (const [id, p] of pauseRows) if (p['agent_id'] === op.agentId && p['resumed_at'] === null) put(pauseRows, id, { ...p, resumed_at: op.at });
        return;
    }
  }

  /**
   * Gives the batch's events their ids from the counter and inserts them, last in the transaction as in
   * SQL. A fenced event whose fence no longer holds is dropped before ids are taken, so ids have no holes.
   */
  function insertEvents(): EventRecord[] {
    const kept = batchEvents.filter((e) => holds(e.fence)).map((e) => e.event);
    batchEvents = [];
    const stamped = stampIds(kept, eventCounter + kept.length);
    const before = eventCounter;
    undo.push(() => (eventCounter = before));
    eventCounter += stamped.length;
    for (const e of stamped) {
      if (eventRows.has(e.id)) throw new Error(`UNIQUE constraint failed: events.id (${e.id})`);
      put(eventRows, e.id, checked(events, toRow(events, e)));
    }
    return stamped;
  }

  const feed = createEventFeed({
    // One writer: only a follower that starts behind reads, once.
    read: async (after, limit) =>
      records(events, [...eventRows.values()].filter((r) => (r['id'] as number) > after).sort((a, b) => (a['id'] as number) - (b['id'] as number)).slice(0, limit)),
    logger,
  });
  const promotedListeners = createPromotedListeners();
  let promoted: RunRecord[] = [];
  const tellPromoted = () => {
    const let_go = promoted;
    promoted = [];
    promotedListeners.tell(let_go, (err) => logger.error('a listener of promoted runs failed', { error: err instanceof Error ? err.message : String(err) }));
  };
  const chain = createWriteChain(async (ops) => {
    batchEvents = [];
    batchTrims = [];
    const ended = endedRunIds(ops);
    promoted = [];
    const committed = transaction(() => {
      ops.forEach(apply);
      if (ended.length > 0) promoted = memoryClaims.promote(ended);
      const stamped = batchEvents.length > 0 ? insertEvents() : undefined;
      if (stamped?.length === 0) return undefined;
      for (const before of batchTrims) for (const [id, r] of eventRows) if ((r['created_at'] as number) < before) remove(eventRows, id);
      return stamped;
    });
    tellPromoted();
    if (committed) feed.committed(committed);
  }, logger);
  const atomically = <T>(work: () => T): Promise<T> => chain.serial(async () => transaction(work));
  const memoryClaims = createMemoryClaims({ runRows, scheduleRows, dedupe, openRuns: () => openRuns(), insertRun: (row) => put(runRows, row['id'] as string, checked(runs, row)), setRun: (row, set) => setRun(row, set), atomically });
  const promoteNow = () => {
    promoted = memoryClaims.promote();
    tellPromoted();
  };
  const records = <R>(t: TableSpec<R>, rows: Iterable<Row>): R[] => Array.from(rows, (r) => fromRow(t, r));
  const openRuns = () => Array.from(open, (id) => runRows.get(id)!);
  const memoryInstances = createMemoryInstances();
  const { deleteAgent: forgetKeys, ...idempotency } = createMemoryIdempotency();
  /** Sets columns of a stored run and answers it as stored. */
  const setRun = (row: Row, set: Row): RunRecord => {
    const next = { ...row, ...set };
    put(runRows, row['id'] as string, checked(runs, next));
    return fromRow(runs, next);
  };

  return {
    write: chain.write,
    flush: chain.flush,
    holdCommits: chain.hold,
    followEvents: feed.follow,
    ...chain.seeingWrites(createMemoryReads({ agentRows, scheduleRows, runRows, eventRows, usageRows, openRuns, maxEventId: () => eventCounter, instances: memoryInstances })),
    shared: false,
    // The counters row 'schedule_revision' (one process: a plain counter is atomic).
    nextRevision: async () => ++revisionCounter,
    claim: memoryClaims.claim,
    onPromoted: promotedListeners.add,
    promoteWaiting: () => atomically(() => promoteNow()),
    ...createMemoryLeases({ runRows, openRuns, setRun, atomically, ownerOf: (agentId) => (agentRows.get(agentId)?.['owner'] as string | undefined) ?? '' }),
    endTimedPause: (agentId, revision, set) =>
      chain.serial(async () => {
        const row = scheduleRows.get(agentId);
        if (!row || row['revision'] !== revision || row['paused'] !== 1) return false;
        transaction(() => put(scheduleRows, agentId, checked(schedules, { ...row, ...setColumns(schedules, set) })));
        return true;
      }),
    insertAgent(agent: AgentRecord) {
      const row = toRow(agents, agent); // as it is now, not as the caller may change it before its turn
      return chain.serial(async () => {
        if (agentRows.has(agent.id)) return false;
        transaction(() => put(agentRows, agent.id, checked(agents, row)));
        return true;
      });
    },
    // As in SQL: the schedule, runs, usage, events, idempotency keys and agent go.
    deleteAgent: (id: string, marker?: NewEvent) =>
      chain.serial(async () => {
        const stamped = transaction(() => {
          remove(scheduleRows, id);
          for (const [runId, r] of runRows) if (r['agent_id'] === id) remove(runRows, runId);
          for (const [key, u] of usageRows) if (u['agent_id'] === id) remove(usageRows, key);
          for (const [key, p] of pauseRows) if (p['agent_id'] === id) remove(pauseRows, key);
          for (const [eventId, e] of eventRows) if (e['agent_id'] === id) remove(eventRows, eventId);
          remove(agentRows, id);
          forgetKeys(id);
          if (!marker) return [];
          batchEvents = [{ event: marker, fence: undefined }];
          return insertEvents();
        });
        if (stamped.length > 0) feed.committed(stamped);
      }),
    ...memoryInstances,
    ...idempotency,
    ...chain.seeingWrites(createMemoryLedger({ runRows, pauseRows, instanceRows: memoryInstances.rows })),
    ping: async () => {},
    writeTrouble: chain.trouble,
    [Symbol.asyncDispose]: () => chain.settle(),
  };
}
