import type { RunRecord, Store } from '../core/store.ts';
import { queueOrder } from './claims.ts';
import { fromRow, runs, type Row } from './tables.ts';

/** What the memory store lends the lease methods: its runs, its open-run index, and one transaction on its write chain. */
export interface MemoryLeaseTables {
  runRows: ReadonlyMap<string, Row>;
  openRuns(): Row[];
  /** Sets columns of a stored run and answers it as stored. */
  setRun(row: Row, set: Row): RunRecord;
  /** Runs `work` after every buffered write, as one transaction (undone whole if it throws). */
  atomically<T>(work: () => T): Promise<T>;
  /** The owner of an agent ('' when it is gone). */
  ownerOf(agentId: string): string;
}

/** The queue's hand-over and the leases (SchedulerStore `take`, `renewLeases`, `reapExpired`), as the SQL store does them. */
export function createMemoryLeases({ runRows, openRuns, setRun, atomically, ownerOf }: MemoryLeaseTables): Pick<Store, 'take' | 'renewLeases' | 'reapExpired'> {
  return {
    take: (instanceId, now, leaseUntil, ids, more, perOwner) =>
      atomically(() => {
        const due = (r: Row | undefined): r is Row => r !== undefined && r['status'] === 'queued' && r['waiting'] === 0 && (r['scheduled_at'] as number) <= now;
        // MAX_CONCURRENT_PER_OWNER: each owner's room is the cap less its running runs (take-capped-sql.ts does the same).
        const room = new Map<string, number>();
        if (perOwner !== undefined) for (const r of openRuns()) if (r['status'] === 'running') { const o = ownerOf(r['agent_id'] as string); room.set(o, (room.get(o) ?? perOwner) - 1); }
        const fits = (r: Row) => {
          if (perOwner === undefined) return true;
          const o = ownerOf(r['agent_id'] as string);
          const left = room.get(o) ?? perOwner;
          if (left <= 0) return false;
          room.set(o, left - 1);
          return true;
        };
        const picked = [...new Set(ids)].map((id) => runRows.get(id)).filter(due).filter(fits);
        const chosen = new Set(picked);
        if (more > 0) {
          const others = openRuns().filter((r) => due(r) && !chosen.has(r)).map((r) => fromRow(runs, r)).sort(queueOrder);
          for (const r of others) {
            if (picked.length - chosen.size >= more) break;
            const row = runRows.get(r.id)!;
            if (fits(row)) picked.push(row);
          }
        }
        return picked.map((r) => setRun(r, { status: 'running', instance_id: instanceId, started_at: now, lease_until: leaseUntil, epoch: (r['epoch'] as number) + 1 }));
      }),
    renewLeases: (instanceId, leaseUntil, runIds) =>
      atomically(() => {
        for (const id of new Set(runIds)) {
          const r = runRows.get(id);
          if (r?.['status'] === 'running' && r['instance_id'] === instanceId) setRun(r, { lease_until: leaseUntil });
        }
      }),
    reapExpired: (now, error) =>
      atomically(() =>
        openRuns()
          .filter((r) => r['status'] === 'running' && r['lease_until'] !== null && (r['lease_until'] as number) < now)
          .map((r) => setRun(r, { status: 'failed', error, finished_at: now, epoch: (r['epoch'] as number) + 1, lease_until: null })),
      ),
  };
}
