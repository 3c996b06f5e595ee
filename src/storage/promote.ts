import type { RunRecord, WriteOp } from '../core/store.ts';

/**
 * Waiting runs (RunRecord.waiting: a `queue-one` or `cancel-previous` fire, a backfill, an `all` catch-up)
 * are let go by the store, not by whoever happens to finish the run before them: at the end of every
 * batch that ends a run, the oldest waiting run (slot, then id) of each agent that has no open run left
 * stops waiting, in the same transaction. So a run that ends on any instance, by any path (its finish,
 * a cancel, the reaper's retry decision, a restart's recovery), lets the next go exactly once; the
 * store's listeners hear of it after the commit and the instance holds it like a run it claimed.
 */

const ENDED: ReadonlySet<string> = new Set(['completed', 'failed', 'cancelled', 'skipped']);

/** Ids of the runs a batch ends (an update to a final status, or an insert already final after folding). */
export function endedRunIds(ops: readonly WriteOp[]): string[] {
  const ids: string[] = [];
  for (const op of ops) {
    if (op.op === 'run.update' && op.set.status !== undefined && ENDED.has(op.set.status)) ids.push(op.id);
    else if (op.op === 'run.insert' && ENDED.has(op.run.status)) ids.push(op.run.id);
  }
  return ids;
}

/** Listeners of the runs a store let go (SchedulerStore.onPromoted); one that throws is logged by the caller. */
export function createPromotedListeners() {
  const listeners = new Set<(runs: RunRecord[]) => void>();
  return {
    add(listener: (runs: RunRecord[]) => void): () => void {
      listeners.add(listener);
      return () => void listeners.delete(listener);
    },
    tell(runs: RunRecord[], onError: (err: unknown) => void): void {
      if (runs.length === 0) return;
      for (const l of listeners) {
        try {
          l(runs);
        } catch (err) {
          onError(err);
        }
      }
    },
  };
}
