import type { RunTrigger } from '../schemas/common.ts';
import type { AgentRecord, EventRecord, InstanceRecord, NewEvent, PauseRecord, RunRecord, ScheduleRecord, UsageDay } from './records.ts';
export type { AgentRecord, Budget, CatchUpPolicy, EventRecord, InstanceRecord, NewEvent, OverlapPolicy, PauseReason, PauseRecord, RunRecord, ScheduleRecord, UsageDay } from './records.ts';

/**
 * The ports storage implements: `SchedulerStore` is what the scheduler needs, `Store` adds what the
 * services read and write. `storage/repository.ts` implements them over Kysely (SQLite, PostgreSQL) and
 * `storage/memory.ts` in memory; one contract suite (test/storage.test.ts) holds all of them to the same
 * behaviour. services/ and transport/ see only these interfaces, never storage/. Times are milliseconds
 * since the epoch.
 */

/**
 * A write that carries a fence applies only while run `runId` still has `epoch` at that point of the
 * transaction: a late write from an instance the cluster gave up on (its lease ended, the run was reaped
 * and retried elsewhere) changes nothing. Unfenced writes always apply.
 */
export interface Fence {
  runId: string;
  epoch: number;
}

export type WriteOp = (
  | { op: 'run.insert'; run: RunRecord }
  | { op: 'run.update'; id: string; set: Partial<Omit<RunRecord, 'id'>> }
  | { op: 'agent.update'; id: string; set: Partial<Omit<AgentRecord, 'id' | 'owner'>> }
  | { op: 'schedule.upsert'; schedule: ScheduleRecord }
  | { op: 'schedule.update'; agentId: string; set: Partial<Omit<ScheduleRecord, 'agentId'>> }
  | { op: 'schedule.delete'; agentId: string }
  | { op: 'event.insert'; event: NewEvent }
  | { op: 'runs.trim'; agentId: string; keep: number }
  | { op: 'events.trim'; before: number }
  | { op: 'pause.begin'; pause: PauseRecord }
  | { op: 'pause.end'; agentId: string; at: number }
) & { fence?: Fence };

/** A run the scheduler asks the database for; it starts only if the database agrees (docs/cluster.md). */
export interface RunClaim {
  /** The run to insert, `queued`; its dedupe key (if any) makes the slot claimable once in the whole cluster. */
  run: RunRecord;
  /**
   * For schedule and catch-up fires: claimed only while the stored schedule of `run.agentId` has this
   * revision, is enabled and is not paused; otherwise the outcome is `stale` and nothing is written.
   */
  revision?: number;
  /**
   * When set and the agent already has an open run (queued — a pending retry included — or running),
   * the run is inserted `skipped` with this error and `finishedAt` = its `createdAt` instead (under the same
   * dedupe key, so a slot is recorded once whoever saw it). Unset: no overlap check.
   */
  busy?: string;
  /**
   * What the claim does instead of skipping (`busy`) when the agent has an open run (running, or queued and
   * not waiting): `wait` inserts it `waiting` (it starts once the open runs end, oldest slot first: a
   * backfill, an `all` catch-up); `queue-one` the same unless the agent has a waiting run already, when it
   * is recorded skipped with `busy`; `cancel-previous` cancels the agent's waiting runs, requests the cancel
   * of its running ones (`cancelRequestedAt`, their ids in the outcome's `cancels`) and inserts it waiting.
   * Unset: `busy` decides (set: skip; unset: no overlap check, the `allow` policy).
   */
  overlap?: 'wait' | 'queue-one' | 'cancel-previous';
}

/** What became of one claim: `claimed` (inserted queued), `skipped` (inserted skipped), `taken` (its dedupe key already had a run: nothing written), `stale` (see RunClaim.revision). */
export interface ClaimOutcome {
  outcome: 'claimed' | 'skipped' | 'taken' | 'stale';
  /** The run as stored (for `claimed` and `skipped`), or as asked (for `taken` and `stale`). */
  run: RunRecord;
  /** Running runs of the agent whose cancel a `cancel-previous` claim requested: their holder aborts them. */
  cancels?: string[];
  /** Queued runs (waiting or not) of the agent a `cancel-previous` claim ended `cancelled` with REPLACED. */
  dropped?: string[];
}

/** Why a `cancel-previous` fire ended the runs before it. */
export const REPLACED = 'cancelled: a newer fire replaced it (overlap cancel-previous)';

/**
 * Reads see every write made before them (buffered or not): no caller ever flushes to read its own
 * writes. `flush` remains for the scheduler, to answer an API call only once its changes are durable.
 */
export interface SchedulerStore {
  /**
   * true when other instances may write the same database (PostgreSQL); false when this process is its
   * only writer (a SQLite file, held by its lock, or memory). On an exclusive store every open run found
   * at start is a leftover of this process's predecessor; on a shared one, only runs whose lease ended are.
   */
  readonly shared: boolean;
  /**
   * Every stored schedule; with `since`, only those whose `changedAt` is at `since` or later (an index serves it).
   * With `each`, a store may hand each record to it as its page is read and answer only the rest (none): the
   * start reads 100,000 schedules without holding them all twice. A caller passing `each` takes both.
   */
  loadSchedules(since?: number, each?: (record: ScheduleRecord) => void): Promise<ScheduleRecord[]>;
  /**
   * A schedule revision no one has had before, from one counter in the database, taken atomically: two
   * instances changing one schedule at once get two revisions, and a schedule removed and set again
   * never goes back to one an earlier fire holds.
   */
  nextRevision(): Promise<number>;
  /** One schedule as stored: what a `stale` claim or a schedule signal makes the scheduler read again. */
  getSchedule(agentId: string): Promise<ScheduleRecord | undefined>;
  /** Runs left `queued` or `running` by the previous process. */
  loadOpenRuns(): Promise<RunRecord[]>;
  maxEventId(): Promise<number>;
  /**
   * Delivers every committed event with an id above `after` — this instance's and, on a shared database,
   * every other instance's — each once and in id order, as batches after their commit. Returns a
   * function that stops the delivery.
   */
  followEvents(after: number, listener: (events: readonly EventRecord[]) => void): () => void;
  getAgent(id: string): Promise<AgentRecord | undefined>;
  /** Many agents in one read (missing ids are left out). */
  getAgents(ids: string[]): Promise<AgentRecord[]>;
  /**
   * Buffers a write; the store owns the op from then on (an update's `set` may be merged into). Writes are applied in order, many to one transaction (one per tick of the event
   * loop): the hot path costs one commit per tick, not one per state change.
   */
  write(op: WriteOp): void;
  /** Resolves once every write buffered before the call is committed. */
  flush(): Promise<void>;
  /**
   * Holds back commits until the answered function is called (briefly: a store bounds how long): writes are
   * still taken and ordered, and commit afterwards. The scheduler holds them while it slices a burst of fires,
   * so its slices are not spaced by transactions. @default none (commits go on as usual)
   */
  holdCommits?(): () => void;
  /**
   * Claims runs in one transaction, after every write buffered before the call and before every later
   * one: each claim's outcome, in order. Checked inside the transaction, so concurrent claimers on one
   * database (instances) can never both get a slot or both start an overlapping run.
   */
  claim(claims: readonly RunClaim[]): Promise<ClaimOutcome[]>;
  /**
   * Hands queued, due (`scheduledAt <= now`) runs to this instance: first those of `ids` still queued, then
   * up to `more` others, highest priority first, then oldest (`createdAt`, then id). Each becomes `running`
   * with `instanceId`, `startedAt = now`, `leaseUntil` and `epoch + 1`, atomically (on PostgreSQL with
   * `FOR UPDATE SKIP LOCKED`, so concurrent takers neither wait for nor share a row). Answers the runs taken,
   * as stored. Ordered with the write path like `claim`.
   * With `perOwner`, a run whose agent's owner already has that many running (in the whole database) is
   * left queued: the cap of MAX_CONCURRENT_PER_OWNER, counted under a lock per owner on PostgreSQL.
   */
  take(instanceId: string, now: number, leaseUntil: number, ids: readonly string[], more: number, perOwner?: number): Promise<RunRecord[]>;
  /**
   * Tells `listener` of the waiting runs the store let go (they are queued and takeable now), after the
   * commit of the batch that ended the run before them (storage/promote.ts). Answers the unsubscribe.
   */
  onPromoted(listener: (runs: RunRecord[]) => void): () => void;
  /** Lets go the oldest waiting run of every agent with no open run (a sweep; listeners hear of them). */
  promoteWaiting(): Promise<void>;
  /**
   * Extends the leases of the runs `runIds` that are running with `instanceId`: the ones the instance
   * knows it holds. Not every row with its id: a take whose commit went through but whose answer was cut
   * (a database outage) leaves a running row the instance never learnt of, and renewing that would keep
   * it running forever, its agent's fires skipped as busy; unrenewed, it is reaped and retried.
   */
  renewLeases(instanceId: string, leaseUntil: number, runIds: readonly string[]): Promise<void>;
  /** Ids of the running runs this instance holds whose cancel another instance recorded (`cancelRequestedAt`), for it to abort. */
  cancelRequests(instanceId: string): Promise<string[]>;
  /**
   * Takes back running runs whose lease ended before `now` (their instance stopped heartbeating):
   * `failed` with `error`, `finishedAt = now`, `epoch + 1`, lease cleared. Answers them as stored now, so the
   * caller applies the retry policy (a retry's dedupe key `retry:<run id>` keeps it single).
   */
  reapExpired(now: number, error: string): Promise<RunRecord[]>;
  /** The earliest `scheduledAt` of a queued run, or null: when an idle instance should look at the queue again. */
  nextQueuedAt(): Promise<number | null>;
  /**
   * The status figures of the whole database in one read (core/status.ts, on a shared store): enabled
   * schedules (paused ones included), paused schedules, running runs, queued runs due by `now` (a retry
   * waiting for its time is not waiting for a slot), and the sum of `maxConcurrent` over instances not
   * stopped whose heartbeat is at `aliveSince` or later.
   */
  clusterFigures(now: number, aliveSince: number): Promise<ClusterFigures>;
  /**
   * The agent's usage of the runs that started and finished in [from, to), by UTC day, in one indexed read
   * (runs_agent_finished): what a budget check and `agents.usage` add up, never by loading runs.
   */
  usageByDay(agentId: string, from: number, to: number): Promise<UsageDay[]>;
  /** The output of the agent's last completed run (by `finishedAt`), or null: a template's `{{lastOutput}}`. */
  lastOutput(agentId: string): Promise<string | null>;
  /**
   * Ends a pause whose end came (a budget's next period, or the `until` it was given), once in the whole cluster:
   * sets `set` on the schedule only while it is still paused under `revision` (any change bumps it). true when this call ended it (it then sends the events); false when a
   * resume, another instance or a change came first. After every write buffered before the call.
   */
  endTimedPause(agentId: string, revision: number, set: Partial<ScheduleRecord>): Promise<boolean>;
}

/** What `SchedulerStore.clusterFigures` counts. */
export interface ClusterFigures {
  scheduled: number;
  paused: number;
  running: number;
  queued: number;
  capacity: number;
}

/** What the services need beyond the scheduler's port. Every agents write goes through the store's one ordered write path. */
export interface Store extends SchedulerStore, AsyncDisposable {
  /** false when the id is taken (by anyone: ids are global). */
  insertAgent(agent: AgentRecord): Promise<boolean>;
  /**
   * Deletes the agent with its schedule, runs, usage and events, in one transaction: an id taken again starts with nothing of them.
   * `marker` (the `agent:deleted` event) is numbered and stored in that transaction, so it comes after every event of the
   * agent and before any of an agent made under the same id later, on every instance (services/events.ts ends streams on it).
   */
  deleteAgent(id: string, marker?: NewEvent): Promise<void>;
  /** One owner's agents, or every agent when `owner` is null; oldest first. */
  listAgents(owner: string | null): Promise<AgentRecord[]>;
  /** An agent's runs, newest first. */
  listRuns(agentId: string, limit: number): Promise<RunRecord[]>;
  /** How many agents `owner` holds: one indexed count (agents_owner), for MAX_AGENTS_PER_OWNER. */
  countAgents(owner: string): Promise<number>;
  /** How many runs of `agentId` with `trigger` were created at `since` or later: one indexed count (runs_agent_created), the same on every instance. */
  countRunsSince(agentId: string, trigger: RunTrigger, since: number): Promise<number>;
  getRun(id: string): Promise<RunRecord | undefined>;
  /** The agent's queued and running runs, oldest first, however many finished runs are newer (an index serves it). */
  openRuns(agentId: string): Promise<RunRecord[]>;
  /** Events with id > `after`, oldest first; for one agent, or scheduler-wide ones when agentId is null. */
  eventsAfter(after: number, agentId: string | null, limit: number): Promise<EventRecord[]>;
  oldestEventId(): Promise<number | null>;
  /** Registers this instance (or re-registers it after its row was lost). */
  upsertInstance(instance: InstanceRecord): Promise<void>;
  /** Renews this instance's heartbeat with the runs it holds. */
  heartbeatInstance(id: string, at: number, running: number): Promise<void>;
  /** Marks a cleanly stopped instance, so it leaves the live list at once. */
  stopInstance(id: string, at: number): Promise<void>;
  /** Instances not stopped whose heartbeat is at `aliveSince` or later, oldest first. */
  listInstances(aliveSince: number): Promise<InstanceRecord[]>;
  /**
   * One round trip to the database that waits for nothing buffered (services/health.ts, `/healthz`);
   * rejects when the database does not answer. The memory store answers at once.
   */
  ping(): Promise<void>;
  /** The write path's trouble, for `/healthz`: when a batch last failed because the database was away (Date.now), and whether one waits to be tried again now. */
  writeTrouble(): WriteTrouble;
  /**
   * Takes a manual run's idempotency key for the caller, atomically across instances: `reserved` when the key was
   * free, expired (made before `expiredBefore`) or left unfinished by a request that stopped (no run, reserved
   * before `staleBefore`); else the run the key already names (null while its request is still making it).
   */
  reserveIdempotencyKey(agentId: string, key: string, now: number, expiredBefore: number, staleBefore: number): Promise<{ reserved: true } | { reserved: false; runId: string | null }>;
  /** Records the run a reserved key made. */
  setIdempotencyRun(agentId: string, key: string, runId: string): Promise<void>;
  /** Frees a reserved key whose run could not be made (a 429, say), so the same key can be tried again. */
  releaseIdempotencyKey(agentId: string, key: string): Promise<void>;
  /** Deletes keys made before `before`: they name nothing any more. */
  pruneIdempotencyKeys(before: number): Promise<void>;
  /** What the ledger of `agentId`'s slots in [from, to) is computed from (core/ledger.ts), in a few indexed reads. */
  ledgerFacts(agentId: string, slotKeys: readonly string[], from: number, to: number): Promise<LedgerFacts>;
}

/** The stored facts a ledger is computed from: no row per slot is ever written for it. */
export interface LedgerFacts {
  /** The runs whose dedupe key is one of the slot keys asked for, and the retries that followed them (`retry:<id>`). */
  runs: RunRecord[];
  /** The agent's pauses that overlap the range. */
  pauses: PauseRecord[];
  /** Every instance that was up at some time in the range, stopped ones included. */
  instances: InstanceRecord[];
  /** The `scheduledAt` of the agent's oldest kept run (older ones were trimmed), or null with none. */
  oldestRunAt: number | null;
}

export interface WriteTrouble {
  lastFailedAt: number | null;
  retrying: boolean;
}
