import { REPLACED, type ClaimOutcome, type RunRecord, type Store } from '../core/store.ts';
import { claimedAgents, decideClaims } from './claims.ts';
import { fromRow, runs, toRow, type Row } from './tables.ts';

/** What the memory store lends its claims and the letting go of waiting runs (memory.ts). */
export interface MemoryClaimTables {
  runRows: ReadonlyMap<string, Row>;
  scheduleRows: ReadonlyMap<string, Row>;
  /** dedupe_key → run id. */
  dedupe: ReadonlyMap<string, string>;
  openRuns(): Row[];
  /** Inserts a run row (checked, indexed, undone with the transaction). */
  insertRun(row: Row): void;
  /** Sets columns of a stored run and answers it as stored. */
  setRun(row: Row, set: Row): RunRecord;
  /** Runs `work` after every buffered write, as one transaction (undone whole if it throws). */
  atomically<T>(work: () => T): Promise<T>;
}

const isWaiting = (r: Row) => r['waiting'] === 1;
const slotOrder = (a: Row, b: Row) => (a['scheduled_at'] as number) - (b['scheduled_at'] as number) || ((a['id'] as string) < (b['id'] as string) ? -1 : 1);

/**
 * `claim` as the SQL store does it (storage/claim-sql.ts), and `promote`: the oldest waiting run of each
 * agent of `endedIds` (every agent when undefined) that has no open run left stops waiting (promote.ts says why).
 */
export function createMemoryClaims(t: MemoryClaimTables): Pick<Store, 'claim'> & { promote(endedIds?: readonly string[]): RunRecord[] } {
  function promote(endedIds?: readonly string[]): RunRecord[] {
    const agents = endedIds === undefined ? undefined : new Set(endedIds.map((id) => t.runRows.get(id)?.['agent_id'] as string | undefined).filter((a) => a !== undefined));
    if (agents?.size === 0) return [];
    const busy = new Set<string>();
    const first = new Map<string, Row>();
    for (const r of t.openRuns()) {
      const agent = r['agent_id'] as string;
      if (agents && !agents.has(agent)) continue;
      if (!isWaiting(r)) busy.add(agent);
      else if (r['status'] === 'queued' && (!first.has(agent) || slotOrder(r, first.get(agent)!) < 0)) first.set(agent, r);
    }
    const out: RunRecord[] = [];
    for (const [agent, r] of first) if (!busy.has(agent)) out.push(t.setRun(r, { waiting: 0 }));
    return out;
  }

  return {
    promote,
    claim: (claims) => {
      // As they are now, not as the caller may change them before their turn (see insertAgent).
      const rows = claims.map((c) => toRow(runs, c.run));
      const asked = claims.map((c, i) => ({ ...c, run: fromRow(runs, rows[i]!) }));
      return t.atomically(() => {
        const wanted = claimedAgents(asked);
        const listed = new Set(wanted.listed);
        const open = new Set<string>();
        const waiting = new Set<string>();
        const openRuns = new Map<string, Pick<RunRecord, 'id' | 'status' | 'waiting'>[]>();
        for (const r of t.openRuns()) {
          const agent = r['agent_id'] as string;
          (isWaiting(r) ? waiting : open).add(agent);
          if (listed.has(agent)) openRuns.set(agent, [...(openRuns.get(agent) ?? []), { id: r['id'] as string, status: r['status'] as RunRecord['status'], waiting: isWaiting(r) }]);
        }
        const schedules = new Map(
          rows.flatMap((r) => {
            const s = t.scheduleRows.get(r['agent_id'] as string);
            return s ? [[s['agent_id'] as string, { revision: s['revision'] as number, enabled: s['enabled'] === 1, paused: s['paused'] === 1 }] as const] : [];
          }),
        );
        const takenKeys = new Set(rows.map((r) => r['dedupe_key'] as string | null).filter((k): k is string => k !== null && t.dedupe.has(k)));
        const outcomes = decideClaims(asked, { schedules, openAgents: open, waitingAgents: waiting, openRuns, takenKeys });
        for (const o of outcomes) {
          if (o.outcome !== 'claimed' && o.outcome !== 'skipped') continue;
          if (t.runRows.has(o.run.id)) throw new Error(`UNIQUE constraint failed: runs.id (${o.run.id})`);
          t.insertRun(toRow(runs, o.run));
          for (const id of o.dropped ?? []) {
            const r = t.runRows.get(id);
            if (r?.['status'] === 'queued') t.setRun(r, { status: 'cancelled', error: REPLACED, finished_at: o.run.createdAt, waiting: 0, epoch: (r['epoch'] as number) + 1 });
          }
          for (const id of o.cancels ?? []) {
            const r = t.runRows.get(id);
            if (r?.['status'] === 'running') t.setRun(r, { cancel_requested_at: o.run.createdAt });
          }
        }
        // `taken` and `stale` answer the run as asked: the caller's own object.
        return outcomes.map((o, i): ClaimOutcome => (o.outcome === 'taken' || o.outcome === 'stale' ? { outcome: o.outcome, run: claims[i]!.run } : o));
      });
    },
  };
}
