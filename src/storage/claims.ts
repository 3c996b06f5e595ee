import type { ClaimOutcome, RunClaim, RunRecord } from '../core/store.ts';

/**
 * The decision of `SchedulerStore.claim`, shared by every store so they cannot disagree: given what the
 * database holds for the claimed agents and keys (read inside the claiming transaction, under the locks
 * the SQL store takes first), each claim's outcome in order. Claims earlier in the batch count as if
 * already stored: a run claimed `queued` makes its agent busy for the later claims, and any inserted run
 * takes its dedupe key (docs/cluster.md, "Next: claim before run").
 */
export interface ClaimState {
  /** The stored schedule of each agent a claim names with a `revision`; an agent missing here has none. */
  schedules: ReadonlyMap<string, { revision: number; enabled: boolean; paused: boolean }>;
  /** Agents with an open run that is not waiting (queued or running), of those the claims check (`busy` or `overlap`). */
  openAgents: ReadonlySet<string>;
  /** Agents with a waiting run (queued behind their open one), of those the claims check. */
  waitingAgents: ReadonlySet<string>;
  /** The open runs (waiting or not) of each agent a `cancel-previous` claim names. */
  openRuns: ReadonlyMap<string, readonly Pick<RunRecord, 'id' | 'status' | 'waiting'>[]>;
  /** Dedupe keys of the claims that already have a run. */
  takenKeys: ReadonlySet<string>;
}

export function decideClaims(claims: readonly RunClaim[], state: ClaimState): ClaimOutcome[] {
  const open = new Set(state.openAgents);
  const waiting = new Set(state.waitingAgents);
  const keys = new Set(state.takenKeys);
  const cancelled = new Set<string>();
  const skipped = (run: RunRecord, why: string): ClaimOutcome => ({ outcome: 'skipped', run: { ...run, status: 'skipped', error: why, finishedAt: run.createdAt, leaseUntil: null } });
  const claimed = (run: RunRecord, wait: boolean): ClaimOutcome => {
    (wait ? waiting : open).add(run.agentId);
    return { outcome: 'claimed', run: { ...run, waiting: wait } };
  };
  return claims.map(({ run, revision, busy, overlap }): ClaimOutcome => {
    if (revision !== undefined) {
      const s = state.schedules.get(run.agentId);
      if (!s || s.revision !== revision || !s.enabled || s.paused) return { outcome: 'stale', run };
    }
    if (run.dedupeKey !== null && keys.has(run.dedupeKey)) return { outcome: 'taken', run };
    if (run.dedupeKey !== null) keys.add(run.dedupeKey);
    const agent = run.agentId;
    // Busy: a run of the agent is open, or waits for one that is (the store lets it go once those end).
    const isBusy = open.has(agent) || waiting.has(agent);
    if (overlap === undefined) {
      if (busy !== undefined && isBusy) return skipped(run, busy);
      return claimed(run, false);
    }
    if (!isBusy) return claimed(run, false);
    if (overlap === 'wait') return claimed(run, true);
    if (overlap === 'queue-one') return waiting.has(agent) ? skipped(run, busy ?? 'skipped: a run already waits for the one in progress') : claimed(run, true);
    // cancel-previous: every queued run of the agent ends, every running one is asked to stop; this one
    // waits for those to end (or starts now when none was running).
    const stored = cancelled.has(agent) ? [] : (state.openRuns.get(agent) ?? []);
    cancelled.add(agent);
    const dropped = stored.filter((r) => r.status === 'queued').map((r) => r.id);
    const cancels = stored.filter((r) => r.status === 'running').map((r) => r.id);
    waiting.delete(agent);
    if (cancels.length === 0 && dropped.length === stored.length && stored.length > 0) open.delete(agent);
    const out = claimed(run, open.has(agent) || cancels.length > 0);
    return { ...out, ...(dropped.length > 0 && { dropped }), ...(cancels.length > 0 && { cancels }) };
  });
}

/** Agents whose schedule a claim checks, agents whose open runs it checks, and those whose open runs it lists (`cancel-previous`). */
export function claimedAgents(claims: readonly RunClaim[]): { revision: string[]; busy: string[]; listed: string[]; all: string[] } {
  const revision = new Set<string>();
  const busy = new Set<string>();
  const listed = new Set<string>();
  const all = new Set<string>();
  for (const c of claims) {
    all.add(c.run.agentId);
    if (c.revision !== undefined) revision.add(c.run.agentId);
    if (c.busy !== undefined || c.overlap !== undefined) busy.add(c.run.agentId);
    if (c.overlap === 'cancel-previous') listed.add(c.run.agentId);
  }
  return { revision: [...revision], busy: [...busy], listed: [...listed], all: [...all].sort() };
}

/** ORDER BY priority DESC, created_at, id: the order `take` hands out queued runs. */
export function queueOrder(a: RunRecord, b: RunRecord): number {
  return b.priority - a.priority || a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
