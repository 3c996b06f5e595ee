import type { Store } from '../core/store.ts';
import { fromRow, instances, toRow, type Row } from './tables.ts';

/** Pieces of the in-memory store (memory.ts): its instances table, and the SQL orderings it mimics. */

/** The instances table in memory: rows of its own, never part of a batch (as in storage/instances.ts). */
export function createMemoryInstances(): Pick<Store, 'upsertInstance' | 'heartbeatInstance' | 'stopInstance' | 'listInstances'> & { rows(): Iterable<Row> } {
  const rows = new Map<string, Row>();
  const set = (id: string, values: Row) => {
    const row = rows.get(id);
    if (row) rows.set(id, { ...row, ...values });
  };
  return {
    /** Every instance row, stopped ones included (the ledger's downtime). */
    rows: () => rows.values(),
    upsertInstance: async (instance) => void rows.set(instance.id, toRow(instances, instance)),
    heartbeatInstance: async (id, at, running) => set(id, { heartbeat_at: at, running }),
    stopInstance: async (id, at) => set(id, { stopped_at: at, running: 0 }),
    listInstances: async (aliveSince) =>
      [...rows.values()]
        .filter((r) => r['stopped_at'] === null && (r['heartbeat_at'] as number) >= aliveSince)
        .sort((a, b) => (a['started_at'] as number) - (b['started_at'] as number) || compareIds(a, b))
        .map((r) => fromRow(instances, r)),
  };
}

/** MAX or MIN of a column, null when there are no rows (a spread would overflow the stack on many). */
export function extreme(values: Iterable<number>, pick: (a: number, b: number) => number): number | null {
  let out: number | null = null;
  for (const v of values) out = out === null ? v : pick(out, v);
  return out;
}

export const compareIds = (a: Row, b: Row) => ((a['id'] as string) < (b['id'] as string) ? -1 : (a['id'] as string) > (b['id'] as string) ? 1 : 0);
/** ORDER BY created_at, id */
export const byOldest = (rows: Row[]) => rows.sort((a, b) => (a['created_at'] as number) - (b['created_at'] as number) || compareIds(a, b));
/** ORDER BY created_at DESC, id DESC */
export const byNewest = (rows: Row[]) => rows.sort((a, b) => (b['created_at'] as number) - (a['created_at'] as number) || compareIds(b, a));
