import type { Clock } from './clock.ts';
import type { RunRecord, SchedulerStore } from './store.ts';

/**
 * The second question asked before a run starts (docs/cluster.md, "Claim before run"; the first, the
 * claim, is in claims.ts): may this instance run this queued run now. Asked in bulk, one take per turn.
 */
export interface Taker {
  /**
   * Asks for the queued run `runId` for this instance; resolves with what this take got, by id (a run
   * missing from it was cancelled, or taken by another instance). One promise per take, shared by its runs.
   */
  take(runId: string): Promise<ReadonlyMap<string, RunRecord>>;
  /** Up to `n` due queued runs of any instance, for free slots (shared stores). */
  more(n: number): Promise<RunRecord[]>;
  /**
   * On a store this process alone writes (`!shared`), a queued run it holds is its own to start: the take
   * is decided here and written with the run's other writes, fenced by the epoch it had (see createTaker).
   * Answers false on a shared store, where only the database can decide.
   */
  takeHere(run: RunRecord): boolean;
}

export interface TakerOptions {
  store: SchedulerStore;
  /**
   * Whether a take on an exclusive store is decided in memory and written through the batch (true), or
   * asked of `store.take` like on a shared one (false). @default !store.shared
   */
  takeHere?: boolean;
  clock: Clock;
  instanceId: string;
  /** How long a taken run is this instance's without a renewal: INSTANCE_LEASE_MS. */
  leaseMs: number;
  /** MAX_CONCURRENT_PER_OWNER, for the database to count across the cluster. @default no cap */
  perOwner?: number;
}

/**
 * One take in flight at a time: starts asked while it runs wait for it and go together in the next, so
 * under load a take carries every slot that came free meanwhile (a burst costs a few transactions).
 *
 * On an exclusive store (a SQLite file held by its lock, memory) nobody else can have changed a queued run
 * this process holds, so the answer of `store.take` is known in advance: the start is written as an update
 * in the write batch (docs/cluster.md: "on SQLite the same inside the write transaction"). Asking the database would make every slot wait for the commit of the batch
 * before it — at 5 slots, one transaction per 5 runs where the batch otherwise carries thousands.
 */
export function createTaker({ store, clock, instanceId, leaseMs, perOwner, takeHere = !store.shared }: TakerOptions): Taker {
  let ids: string[] = [];
  let next: Promise<ReadonlyMap<string, RunRecord>> | undefined;
  let resolveNext!: (m: ReadonlyMap<string, RunRecord>) => void;
  let rejectNext!: (err: unknown) => void;
  let inFlight = false;
  let armed = false;

  function send(): void {
    armed = false;
    if (inFlight || ids.length === 0) return;
    inFlight = true;
    const asked = ids;
    const resolve = resolveNext;
    const reject = rejectNext;
    ids = [];
    next = undefined;
    const now = clock.now();
    store.take(instanceId, now, now + leaseMs, asked, 0, perOwner).then(
      (runs) => {
        const byId = new Map<string, RunRecord>();
        for (const r of runs) byId.set(r.id, r);
        resolve(byId);
      },
      reject,
    ).finally(() => {
      inFlight = false;
      if (ids.length > 0) send();
    });
  }

  return {
    take(runId) {
      next ??= new Promise((resolve, reject) => {
        resolveNext = resolve;
        rejectNext = reject;
      });
      ids.push(runId);
      if (!inFlight && !armed) {
        armed = true;
        queueMicrotask(send);
      }
      return next;
    },
    more(n) {
      const now = clock.now();
      return store.take(instanceId, now, now + leaseMs, [], n, perOwner);
    },
    takeHere(run) {
      if (!takeHere) return false;
      // The epoch stays: it fences writers the cluster took a run back from, and no one takes a run back from
      // the only writer. (Bumping it here would also fence this run's own writes of the same batch, which a
      // batch may order before this update.)
      const now = clock.now();
      run.status = 'running';
      run.instanceId = instanceId;
      run.startedAt = now;
      run.leaseUntil = now + leaseMs;
      store.write({ op: 'run.update', id: run.id, set: { status: 'running', instanceId, startedAt: now, leaseUntil: run.leaseUntil }, fence: { runId: run.id, epoch: run.epoch } });
      return true;
    },
  };
}
