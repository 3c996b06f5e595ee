import type { AgentStatus, RunStatus, RunTrigger } from '../schemas/common.ts';
import type { EventName } from '../schemas/events.ts';

/**
 * The records the store ports (store.ts) read and write, one per table; times are milliseconds since the
 * epoch. storage/tables.ts maps each field to its column.
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
  /** What the agent may spend per UTC day or month (CONTRACT §9); null: no limit. */
  budget: Budget | null;
  createdAt: number;
  updatedAt: number;
}

/** An agent's spending limit: crossing either figure within a period pauses its job until the next period. */
export interface Budget {
  period: 'day' | 'month';
  maxCostUsd?: number;
  maxTokens?: number;
}

/**
 * One pause of a schedule, kept for the ledger (CONTRACT §11: "why didn't it run at 09:00?"): from `pausedAt`
 * until `resumedAt` (null while it lasts). Pausing a paused job again ends one and begins the next.
 */
export interface PauseRecord {
  /** `<agentId>:<pausedAt>:<n>`: unique, and an agent's pauses sort by it within one process. */
  id: string;
  agentId: string;
  jobId: string;
  reason: PauseReason;
  note: string | null;
  pausedAt: number;
  resumedAt: number | null;
}

/** Why a schedule is paused: by a caller (`pause`), or by its agent's budget until `resumeAt`. */
export type PauseReason = 'manual' | 'budget';

/**
 * What a fire does while the agent has a run in progress (CONTRACT §11, "Overlap"): `skip` records it
 * skipped; `queue-one` lets it wait and start after the run (at most one waits); `cancel-previous`
 * cancels the run in progress and starts after it ends; `allow` starts it beside the other.
 */
export const OVERLAP_POLICIES = ['skip', 'queue-one', 'cancel-previous', 'allow'] as const;
export type OverlapPolicy = (typeof OVERLAP_POLICIES)[number];

/** Which missed slots a catch-up runs: the latest one, or every one (oldest first, at most CATCH_UP_ALL_MAX). */
export type CatchUpPolicy = 'latest' | 'all';

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
  /** With `catchUp`: the latest missed slot (as the seed), or all of them. */
  catchUpPolicy: CatchUpPolicy;
  /** With `catchUp`: missed slots older than this (ms before the catch-up) are left alone; null: no limit. */
  catchUpWindowMs: number | null;
  /** What a fire does while a run of the agent is in progress. */
  overlap: OverlapPolicy;
  /** The agent's owner (an agent's owner never changes): the queue serves owners in turn without reading the agent. */
  owner: string;
  /** Each fire starts up to this long after its slot, by a delay fixed per (job, slot) (core/jitter.ts); 0: on the slot. */
  jitterMs: number;
  nextRunAt: number | null;
  /** Why it is paused; null while it is not. */
  pauseReason: PauseReason | null;
  /** When a pause ends by itself: a budget pause at the next period's start, a pause given `until` then; null otherwise. */
  resumeAt: number | null;
  /** The note a pause was given (`{ note }`), shown with the paused job; null while not paused or without one. */
  pauseNote: string | null;
  /**
   * Bumped by every change made through the API (set, pause, resume, remove): a fire claims its slot
   * only under the revision it was planned with, so no instance starts a fire that an answered change
   * forbids (docs/cluster.md).
   */
  revision: number;
  /**
   * When the API last changed the schedule (set, pause, resume; or retries exhausted it), unlike
   * `updatedAt`, which every fire moves: other instances reconcile only the schedules changed since
   * they last looked (`loadSchedules(since)`, docs/cluster.md).
   */
  changedAt: number;
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
  /** `jobId@scheduledAt` for schedule, catch-up and backfill runs: unique, so one slot never runs twice. */
  dedupeKey: string | null;
  /**
   * Queued behind the agent's run in progress (a `queue-one` or `cancel-previous` fire, a backfill, an
   * `all` catch-up): no instance takes it until the store lets it go, when the agent's open runs have
   * ended, oldest slot first (`run.insert`/`run.update` batches and `promoteWaiting`).
   */
  waiting: boolean;
  /** The instance that ran it; null before it starts. */
  instanceId: string | null;
  /**
   * Bumped each time the database hands the run to an instance (`take`) or takes it back (`reapExpired`):
   * the holder's writes about the run carry it as their fence.
   */
  epoch: number;
  /** Until when the holder's claim on a running run holds; renewed with its heartbeat. Null unless running. */
  leaseUntil: number | null;
  /**
   * When a cancel of the running run was answered by an instance that does not hold it: the holder finds
   * it (`cancelRequests`) within a second even if the `cancel` signal was lost. Null otherwise.
   */
  cancelRequestedAt: number | null;
  /**
   * What the run produced (CONTRACT §9), at most OUTPUT_MAX_BYTES of UTF-8; null when nothing. In lists
   * (`listRuns`) only its first OUTPUT_PREVIEW_CHARS characters are read.
   */
  output: string | null;
  /** The output was cut at OUTPUT_MAX_BYTES. */
  outputTruncated: boolean;
  /** What the run used (its `usage`); all four null when nothing was reported. */
  usageModel: string | null;
  inputTokens: number | null;
  outputTokens: number | null;
  costUsd: number | null;
  createdAt: number;
}

/** An agent's usage over a range, by UTC day of the runs' `finishedAt` (days without runs left out). */
export interface UsageDay {
  /** Days since the epoch (UTC). */
  day: number;
  runs: number;
  inputTokens: number;
  outputTokens: number;
  /** A run without a cost counts as 0. */
  costUsd: number;
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
