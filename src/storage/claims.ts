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
  /** Agents with an open run (queued or running), of those the claims name with `busy`. */
  openAgents: ReadonlySet<string>;
  /** Dedupe keys of the claims that already have a run. */
  takenKeys: ReadonlySet<string>;
}

export function decideClaims(claims: readonly RunClaim[], state: ClaimState): ClaimOutcome[] {
  const open = new Set(state.openAgents);
  const keys = new Set(state.takenKeys);
  return claims.map(({ run, revision, busy }): ClaimOutcome => {
    if (revision !== undefined) {
      const s = state.schedules.get(run.agentId);
      if (!s || s.revision !== revision || !s.enabled || s.paused) return { outcome: 'stale', run };
    }
    if (run.dedupeKey !== null && keys.has(run.dedupeKey)) return { outcome: 'taken', run };
    if (run.dedupeKey !== null) keys.add(run.dedupeKey);
    if (busy !== undefined && open.has(run.agentId)) {
      const skipped: RunRecord = { ...run, status: 'skipped', error: busy, finishedAt: run.createdAt, leaseUntil: null };
      return { outcome: 'skipped', run: skipped };
    }
    if (run.status === 'queued' || run.status === 'running') open.add(run.agentId);
    return { outcome: 'claimed', run: { ...run } };
  });
}

/** Agents whose schedule a claim checks, and agents whose open runs it checks. */
export function claimedAgents(claims: readonly RunClaim[]): { revision: string[]; busy: string[]; all: string[] } {
  const revision = new Set<string>();
  const busy = new Set<string>();
  const all = new Set<string>();
  for (const c of claims) {
    all.add(c.run.agentId);
    if (c.revision !== undefined) revision.add(c.run.agentId);
    if (c.busy !== undefined) busy.add(c.run.agentId);
  }
  return { revision: [...revision], busy: [...busy], all: [...all].sort() };
}

/** ORDER BY priority DESC, created_at, id: the order `take` hands out queued runs. */
export function queueOrder(a: RunRecord, b: RunRecord): number {
  return b.priority - a.priority || a.createdAt - b.createdAt || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}
