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
}

/** The queue's hand-over and the leases (SchedulerStore `take`, `renewLeases`, `reapExpired`), as the SQL store does them. */
export function createMemoryLeases({ runRows, openRuns, setRun, atomically }: MemoryLeaseTables): Pick<Store, 'take' | 'renewLeases' | 'reapExpired'> {
  return {
    take: (instanceId, now, leaseUntil, ids, more) =>
      atomically(() => {
        const due = (r: Row | undefined): r is Row => r !== undefined && r['status'] === 'queued' && r['waiting'] === 0 && (r['scheduled_at'] as number) <= now;
        const picked = [...new Set(ids)].map((id) => runRows.get(id)).filter(due);
        const chosen = new Set(picked);
        if (more > 0) {
          const others = openRuns().filter((r) => due(r) && !chosen.has(r)).map((r) => fromRow(runs, r)).sort(queueOrder).slice(0, more);
          for (const r of others) picked.push(runRows.get(r.id)!);
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
