import type { AgentStatus, RunStatus, RunTrigger } from '../schemas/common.ts';
import type { EventName } from '../schemas/events.ts';

/**
 * The ports storage implements: `SchedulerStore` is what the scheduler needs, `Store` adds what the
 * services read and write. `storage/repository.ts` implements them over Kysely (SQLite, PostgreSQL) and
 * `storage/memory.ts` in memory; one contract suite (test/storage.test.ts) holds all of them to the same
 * behaviour. services/ and transport/ see only these interfaces, never storage/. Times are milliseconds
 * since the epoch.
 */
export interface AgentRecord {
  id: string;
  owner: string;
  name: string;
  handler: string;
  config: Record<string, unknown>;
  description: string | null;
  timeoutMs: number | null;
  maxRetries: number | null;
  status: AgentStatus;
  lastRunAt: number | null;
  lastError: string | null;
  retryCount: number;
  backoffUntil: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface ScheduleRecord {
  agentId: string;
  jobId: string;
  expression: string;
  timezone: string;
  /** 1 (LOW) … 4 (CRITICAL). */
  priority: number;
  enabled: boolean;
  paused: boolean;
  catchUp: boolean;
  nextRunAt: number | null;
  createdAt: number;
  updatedAt: number;
}

export interface RunRecord {
  id: string;
  agentId: string;
  jobId: string;
  trigger: RunTrigger;
  attempt: number;
  status: RunStatus;
  priority: number;
  scheduledAt: number;
  startedAt: number | null;
  finishedAt: number | null;
  durationMs: number | null;
  progress: number | null;
  error: string | null;
  /** `jobId@scheduledAt` for schedule and catch-up fires: unique, so one slot never runs twice. */
  dedupeKey: string | null;
  /** The instance that ran it; null before it starts. */
  instanceId: string | null;
  createdAt: number;
}

export interface EventRecord {
  id: number;
  type: EventName;
  agentId: string | null;
  data: unknown;
  createdAt: number;
}

/**
 * An event as the scheduler writes it: the store gives it its id when its batch commits, from a counter
 * taken inside that transaction, so ids increase in commit order across every instance of a database, and
 * no id is ever handed out (or published) before its event is durable.
 */
export type NewEvent = Omit<EventRecord, 'id'>;

/** One running server process, as the instances table holds it (README, "Running several instances"). */
export interface InstanceRecord {
  id: string;
  host: string;
  pid: number;
  startedAt: number;
  heartbeatAt: number;
  /** Runs it holds now. */
  running: number;
  /** Its MAX_CONCURRENT_AGENTS. */
  maxConcurrent: number;
  /** When it stopped cleanly; null while it runs (or if it died: then its heartbeat stops). */
  stoppedAt: number | null;
}

export type WriteOp =
  | { op: 'run.insert'; run: RunRecord }
  | { op: 'run.update'; id: string; set: Partial<Omit<RunRecord, 'id'>> }
  | { op: 'agent.update'; id: string; set: Partial<Omit<AgentRecord, 'id' | 'owner'>> }
  | { op: 'schedule.upsert'; schedule: ScheduleRecord }
  | { op: 'schedule.update'; agentId: string; set: Partial<Omit<ScheduleRecord, 'agentId'>> }
  | { op: 'schedule.delete'; agentId: string }
  | { op: 'event.insert'; event: NewEvent }
  | { op: 'runs.trim'; agentId: string; keep: number }
  | { op: 'events.trim'; before: number };

/**
 * Reads see every write made before them (buffered or not): no caller ever flushes to read its own
 * writes. `flush` remains for the scheduler, to answer an API call only once its changes are durable.
 */
export interface SchedulerStore {
  loadSchedules(): Promise<ScheduleRecord[]>;
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
}

/** What the services need beyond the scheduler's port. Every agents write goes through the store's one ordered write path. */
export interface Store extends SchedulerStore, AsyncDisposable {
  /** false when the id is taken (by anyone: ids are global). */
  insertAgent(agent: AgentRecord): Promise<boolean>;
  /** Deletes the agent with its schedule and runs, in one transaction (its events age out with the retention). */
  deleteAgent(id: string): Promise<void>;
  /** One owner's agents, or every agent when `owner` is null; oldest first. */
  listAgents(owner: string | null): Promise<AgentRecord[]>;
  getSchedule(agentId: string): Promise<ScheduleRecord | undefined>;
  /** An agent's runs, newest first. */
  listRuns(agentId: string, limit: number): Promise<RunRecord[]>;
  getRun(id: string): Promise<RunRecord | undefined>;
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
}
