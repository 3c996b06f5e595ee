import { occurrencesBetween } from './cron.ts';
import { badRequest } from './errors.ts';
import { LEDGER_MAX_SLOTS } from './limits.ts';
import { BUSY } from './runs.ts';
import type { LedgerFacts, PauseRecord, RunRecord, ScheduleRecord } from './store.ts';

/**
 * The fire ledger (CONTRACT §11): for every slot a schedule had in a range, what became of it — "why didn't it run
 * at 09:00?". Computed, never stored per slot: from the cron slots, the runs that carry each slot's key, the pauses
 * (with their reasons and notes), and the times no instance was up (the instances' start, heartbeat and stop).
 */
export type LedgerOutcome =
  | 'ran' | 'skipped-overlap' | 'skipped-paused' | 'skipped-budget' | 'missed-downtime' | 'caught-up' | 'backfilled' | 'disabled' | 'pending';

export interface LedgerEntry {
  scheduledAt: number;
  outcome: LedgerOutcome;
  runId?: string;
  /** `ran`: the final status (after retries); a pause's note; why a slot was missed. */
  note?: string;
}


/** The slots of `expression` in [from, to), at most LEDGER_MAX_SLOTS (more is a 400 naming the range). */
export function ledgerSlots(expression: string, timezone: string, from: number, to: number): number[] {
  const slots = occurrencesBetween(expression, timezone, from, to, LEDGER_MAX_SLOTS);
  if (slots === null) throw badRequest(`query.to: the range holds more than ${LEDGER_MAX_SLOTS} slots of "${expression}"; ask for a shorter one`);
  return slots;
}

export interface LedgerContext {
  schedule: Pick<ScheduleRecord, 'jobId' | 'enabled' | 'changedAt' | 'jitterMs'>;
  now: number;
  /** An instance whose last heartbeat is this recent is up now (INSTANCE_LEASE_MS). */
  leaseMs: number;
}

const inPause = (p: PauseRecord, t: number) => p.pausedAt <= t && (p.resumedAt === null || t < p.resumedAt);

export function computeLedger(slots: readonly number[], facts: LedgerFacts, { schedule, now, leaseMs }: LedgerContext): LedgerEntry[] {
  const byKey = new Map<string, RunRecord>();
  for (const r of facts.runs) if (r.dedupeKey !== null) byKey.set(r.dedupeKey, r);
  /** The last run of a slot's retry chain: its status is how the slot ended. */
  const finalOf = (run: RunRecord) => {
    let last = run;
    for (let next = byKey.get(`retry:${last.id}`); next; next = byKey.get(`retry:${last.id}`)) last = next;
    return last;
  };
  // When each instance was up: from its start to its clean stop, or to its last heartbeat (one that still beats is up).
  const up = facts.instances.map((i) => [i.startedAt, i.stoppedAt ?? (i.heartbeatAt >= now - leaseMs ? Infinity : i.heartbeatAt)] as const);
  const someoneUp = (t: number) => up.some(([from, to]) => from <= t && t < to);

  return slots.map((t): LedgerEntry => {
    const run = byKey.get(`${schedule.jobId}@${t}`);
    if (run) {
      const entry = { scheduledAt: t, runId: run.id };
      if (run.status === 'skipped') {
        const why = run.error ?? 'skipped';
        // A fire that found the previous run (or its retry) still going; a catch-up recorded, not run.
        if (run.trigger === 'schedule' || run.trigger === 'manual') return { ...entry, outcome: why === BUSY ? 'skipped-overlap' : 'missed-downtime', note: why };
        return { ...entry, outcome: 'missed-downtime', note: why };
      }
      const note = finalOf(run).status;
      if (run.trigger === 'catchup') return { ...entry, outcome: 'caught-up', note };
      if (run.trigger === 'backfill') return { ...entry, outcome: 'backfilled', note };
      return { ...entry, outcome: 'ran', note };
    }
    // A slot not come yet, or within its jitter, still to be fired.
    if (t + schedule.jitterMs >= now) return { scheduledAt: t, outcome: 'pending' };
    const pause = facts.pauses.find((p) => inPause(p, t));
    if (pause) return { scheduledAt: t, outcome: pause.reason === 'budget' ? 'skipped-budget' : 'skipped-paused', ...(pause.note !== null && { note: pause.note }) };
    if (!schedule.enabled && t >= schedule.changedAt) return { scheduledAt: t, outcome: 'disabled' };
    if (!someoneUp(t)) return { scheduledAt: t, outcome: 'missed-downtime', note: 'no instance was running' };
    if (facts.oldestRunAt !== null && t < facts.oldestRunAt) return { scheduledAt: t, outcome: 'ran', note: 'not in the kept run history (RUN_HISTORY_LIMIT)' };
    return { scheduledAt: t, outcome: 'missed-downtime', note: 'no run was recorded for this slot' };
  });
}
