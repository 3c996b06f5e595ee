import type { RunTrigger } from '../schemas/common.ts';
import type { Clock } from './clock.ts';
import type { Fence, RunRecord } from './store.ts';

// How a run record is made and keyed; runs.ts holds what happens to it then.

/** Whose run it is: a schedule, or the run a retry follows, or (for a manual run) a plain literal. */
export type RunOwner = Pick<RunRecord, 'agentId' | 'jobId' | 'priority'>;

/** The dedupe key of the retry that follows run `runId`: whoever queues it (its holder, or the instance that reaped it), it exists once. */
export const retryKey = (runId: string) => `retry:${runId}`;

/** The fence of a held run's writes: they apply only while the run has the epoch this instance saw. */
export const fenceOf = (run: RunRecord): Fence => ({ runId: run.id, epoch: run.epoch });

/** The dedupe key of a run's slot: schedule and catch-up runs carry `jobId@scheduledAt`, unique in the database. */
export const slotKey = (owner: RunOwner, trigger: RunTrigger, scheduledAt: number) =>
  trigger === 'schedule' || trigger === 'catchup' ? `${owner.jobId}@${scheduledAt}` : null;

/** Makes run records for one scheduler: ids from its clock and its own counter. */
export function createRunMaker(clock: Clock): (owner: RunOwner, trigger: RunTrigger, attempt: number, scheduledAt: number, dedupeKey: string | null) => RunRecord {
  let counter = 0;
  let prefix = { at: NaN, text: '' };

  /** Run ids sort by creation time: a millisecond prefix (kept while its millisecond lasts: a burst makes thousands of ids in one), then a per-process counter, then noise. */
  function newId(now: number): string {
    counter = (counter + 1) % 0x1000000;
    if (now !== prefix.at) prefix = { at: now, text: `run_${now.toString(36).padStart(9, '0')}` };
    return `${prefix.text}${counter.toString(36).padStart(5, '0')}${Math.floor(Math.random() * 0x10000).toString(36).padStart(4, '0')}`;
  }

  /**
   * The one place a run record is made, queued and not yet written. Schedule and catch-up runs carry
   * `jobId@scheduledAt`, unique in the database, so a slot never runs twice; a retry carries `retryKey`.
   */
  function newRun(owner: RunOwner, trigger: RunTrigger, attempt: number, scheduledAt: number, dedupeKey: string | null): RunRecord {
    const now = clock.now();
    return {
      id: newId(now),
      agentId: owner.agentId,
      jobId: owner.jobId,
      trigger,
      attempt,
      status: 'queued',
      priority: owner.priority,
      scheduledAt,
      startedAt: null,
      finishedAt: null,
      durationMs: null,
      progress: null,
      error: null,
      dedupeKey,
      waiting: false,
      instanceId: null, // set by the take that hands it to an instance
      epoch: 0,
      leaseUntil: null,
      cancelRequestedAt: null,
      output: null,
      outputTruncated: false,
      usageModel: null,
      inputTokens: null,
      outputTokens: null,
      costUsd: null,
      createdAt: now,
    };
  }

  return newRun;
}
