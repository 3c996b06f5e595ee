import type { WriteOp } from '../core/store.ts';

/**
 * A batch as it is applied: folded, then ordered so ops of one kind sit together (`prepare`). One pass
 * over the ops with a map per table, no key strings and no sort: at thousands of ops per tick this is
 * on the hot path of every run.
 *
 * Folding: an update of a row whose last op in the batch was its insert or an update is merged into
 * that op, so a run that is queued, started, reports progress and completes in one tick costs one
 * INSERT, not five statements. Only ops of the same row are ever merged, so the order of effects holds.
 */

/** Ops merge only under the same fence (or none): a fenced op folded into another would apply or fail with it. */
const sameFence = (a: WriteOp, b: WriteOp) => a.fence === b.fence || (a.fence !== undefined && b.fence !== undefined && a.fence.runId === b.fence.runId && a.fence.epoch === b.fence.epoch);

function mergeInto(prev: WriteOp, op: WriteOp): boolean {
  if (op.op === 'run.update' && prev.op === 'run.insert') {
    // A run's own fenced update also folds into its unfenced insert of the same batch when the fence is the
    // epoch it is inserted with: no op of a batch changes an epoch, and a row this transaction wrote is
    // changed by no other until it commits, so the fence holds at the update's point exactly when the insert
    // took place (both or neither). The run is then written once, already started or finished.
    if (!sameFence(prev, op) && !(prev.fence === undefined && op.fence !== undefined && op.fence.runId === prev.run.id && op.fence.epoch === prev.run.epoch)) return false;
    Object.assign(prev.run, op.set);
    return true;
  }
  if (!sameFence(prev, op)) return false;
  if (op.op === 'run.update' && prev.op === 'run.update') Object.assign(prev.set, op.set);
  else if (op.op === 'agent.update' && prev.op === 'agent.update') Object.assign(prev.set, op.set);
  else if (op.op === 'schedule.update' && prev.op === 'schedule.upsert') Object.assign(prev.schedule, op.set);
  else if (op.op === 'schedule.update' && prev.op === 'schedule.update') Object.assign(prev.set, op.set);
  else return false;
  return true;
}

/**
 * The op as the store keeps it, taken when it is written: inserts carry records the caller goes on using
 * (a run record changes as the run goes), so they are copied then, and what a batch writes is the record
 * as it was at its write, whichever batch it lands in. An update's `set` belongs to the store once written
 * (the port's contract), so it is kept, and merged into in place.
 */
export function ownCopy(op: WriteOp): WriteOp {
  switch (op.op) {
    case 'run.insert': return { ...op, run: { ...op.run } };
    case 'schedule.upsert': return { ...op, schedule: { ...op.schedule } };
    default: return op;
  }
}

/** The table of the row an op touches (runs 0, agents 1, schedules 2, pauses 3), or -1: the trims touch many. */
function tableOf(op: WriteOp): number {
  switch (op.op) {
    case 'run.insert':
    case 'run.update': return 0;
    case 'agent.update': return 1;
    case 'schedule.upsert':
    case 'schedule.update':
    case 'schedule.delete': return 2;
    case 'pause.begin':
    case 'pause.end': return 3;
    default: return -1;
  }
}

/** The key of that row within its table. */
function idOf(op: WriteOp): string {
  switch (op.op) {
    case 'run.insert': return op.run.id;
    case 'run.update':
    case 'agent.update': return op.id;
    case 'schedule.upsert': return op.schedule.agentId;
    case 'pause.begin': return op.pause.agentId;
    default: return (op as { agentId: string }).agentId;
  }
}

/**
 * Order of statement kinds inside one generation of a batch. Inserts come before updates so that an
 * update of a row inserted by an earlier generation never misses it. Events and their trims touch no
 * other row; each store writes them after everything else, once the batch's event ids are taken
 * (sql.ts says why).
 */
const KIND_ORDER: Record<WriteOp['op'], number> = {
  'run.insert': 0,
  'schedule.upsert': 1,
  'run.update': 2,
  'agent.update': 3,
  'schedule.update': 4,
  'schedule.delete': 5,
  'event.insert': 6,
  'runs.trim': 7,
  'events.trim': 8,
  'pause.end': 9,
  'pause.begin': 10,
};
const KINDS = 11;

/**
 * Folds a batch (of ops as `ownCopy` kept them), then orders it so ops of one kind sit together and share multi-row statements. Ops on
 * different rows are independent; ops on the same row keep their order, because an op's generation (how
 * many earlier ops of the folded batch touch its row) sorts before its kind. A stable bucket sort.
 */
export function prepare(ops: readonly WriteOp[]): WriteOp[] {
  const last = [new Map<string, number>(), new Map<string, number>(), new Map<string, number>(), new Map<string, number>()];
  const out: WriteOp[] = [];
  const generation: number[] = [];
  let generations = 1;
  for (const op of ops) {
    const table = tableOf(op);
    if (table < 0) {
      out.push(op);
      generation.push(0);
      continue;
    }
    const rows = last[table]!;
    const id = idOf(op);
    const at = rows.get(id);
    if (at !== undefined && mergeInto(out[at]!, op)) continue; // the row's last op stays where it was
    const g = at === undefined ? 0 : generation[at]! + 1;
    if (g >= generations) generations = g + 1;
    rows.set(id, out.length);
    generation.push(g);
    out.push(op);
  }
  const buckets: (WriteOp[] | undefined)[] = new Array(generations * KINDS);
  for (let i = 0; i < out.length; i++) {
    const op = out[i]!;
    const b = generation[i]! * KINDS + KIND_ORDER[op.op];
    (buckets[b] ??= []).push(op);
  }
  const planned: WriteOp[] = [];
  for (const bucket of buckets) if (bucket) for (const op of bucket) planned.push(op);
  return planned;
}
