import type { AgentStatus, RunStatus, RunTrigger } from '../schemas/common.ts';
import type { EventName } from '../schemas/events.ts';

/**
 * The port the scheduler needs from storage; `storage/repository.ts` implements it over Kysely, and
 * tests may implement it in memory. Times are milliseconds since the epoch.
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
  createdAt: number;
}

export interface EventRecord {
  id: number;
  type: EventName;
  agentId: string | null;
  data: unknown;
  createdAt: number;
}

export type WriteOp =
  | { op: 'run.insert'; run: RunRecord }
  | { op: 'run.update'; id: string; set: Partial<Omit<RunRecord, 'id'>> }
  | { op: 'agent.update'; id: string; set: Partial<Omit<AgentRecord, 'id' | 'owner'>> }
  | { op: 'schedule.upsert'; schedule: ScheduleRecord }
  | { op: 'schedule.update'; agentId: string; set: Partial<Omit<ScheduleRecord, 'agentId'>> }
  | { op: 'schedule.delete'; agentId: string }
  | { op: 'event.insert'; event: EventRecord }
  | { op: 'runs.trim'; agentId: string; keep: number }
  | { op: 'events.trim'; before: number };

export interface SchedulerStore {
  loadSchedules(): Promise<ScheduleRecord[]>;
  /** Runs left `queued` or `running` by the previous process. */
  loadOpenRuns(): Promise<RunRecord[]>;
  maxEventId(): Promise<number>;
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
