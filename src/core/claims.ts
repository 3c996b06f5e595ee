import type { Clock } from './clock.ts';
import { errorText } from './errors.ts';
import type { Logger } from './logger.ts';
import type { ClaimOutcome, RunClaim, RunRecord, SchedulerStore } from './store.ts';

/**
 * The two questions the scheduler asks the database before a run may start (docs/cluster.md, "Claim
 * before run"): may this run exist (`claim`), and may this instance run it now (`take`). Both are asked in
 * bulk — thousands of fires due at one instant cost one claim transaction per slice of the timeline, and
 * every start of one turn one take — so the database round trip is paid per tick, never per run.
 */

export interface Claimer {
  /** Asks for the run; its outcome goes to the scheduler's `settle` with those of the same tick. */
  add(claim: RunClaim): void;
  /** The same, for a caller that answers with the outcome (a manual run). */
  ask(claim: RunClaim): Promise<ClaimOutcome>;
  /** Resolves once every claim asked so far is answered and settled (for stop, and tests). */
  settled(): Promise<void>;
}

interface Waiter {
  resolve(o: ClaimOutcome): void;
  reject(err: unknown): void;
}

/**
 * Claims asked in one synchronous stretch (one timeline slice, one recovery pass) share one
 * `store.claim`, sent from a microtask at its end; while one claim is on its way, later ones wait and go
 * together in the next (a burst of fires over several slices costs one claim for the first slice and one for
 * the rest, not one per slice, each behind the writes of the runs the one before started). The next claim
 * is sent before the outcomes of the last are settled, so it does not queue behind what those runs write.
 * `settle` sees every outcome, in order, before a caller of `ask` does, so a claimed run is held before its
 * runId is answered. `afterSend` runs once a claim is on the write path: what it writes commits after it.
 */
export function createClaimer(store: SchedulerStore, log: Logger, settle: (outcome: ClaimOutcome) => Promise<void> | void, afterSend: () => void): Claimer {
  let batch: RunClaim[] | undefined;
  let waiters: (Waiter | undefined)[] | undefined;
  let inFlight = false;
  let armed = false;
  /** Resolves once nothing is asked, sent or being settled (`settled`). */
  let idle: Promise<void> = Promise.resolve();
  let markIdle: (() => void) | undefined;

  function send(): void {
    armed = false;
    if (inFlight || !batch) return;
    inFlight = true;
    const claims = batch;
    const asked = waiters;
    batch = waiters = undefined;
    store.claim(claims).then(
      (outcomes) => {
        inFlight = false;
        send(); // what was asked meanwhile goes now, ahead of the writes of the runs settled below
        // What settling started (a stale fire's schedule read again) is waited for by `settled()` too.
        let after: Promise<void>[] | undefined;
        for (let i = 0; i < outcomes.length; i++) {
          const o = outcomes[i]!;
          try {
            const p = settle(o);
            if (p) (after ??= []).push(p);
          } catch (err) {
            log.error('a claimed run could not be held', { runId: o.run.id, error: errorText(err) });
          }
          asked?.[i]?.resolve(o);
        }
        done(after);
      },
      (err: unknown) => {
        inFlight = false;
        send();
        // The fires of this claim are lost (the next ones are planned); a manual run answers the error.
        log.error('claiming runs failed', { claims: claims.length, error: errorText(err) });
        if (asked) for (const w of asked) w?.reject(err);
        done(undefined);
      },
    );
    afterSend();
  }

  function done(after: Promise<void>[] | undefined): void {
    const finish = () => {
      if (!inFlight && !batch && markIdle) {
        const m = markIdle;
        markIdle = undefined;
        m();
      }
    };
    if (after) void Promise.all(after).then(finish);
    else finish();
  }

  function add(claim: RunClaim): number {
    if (!batch) {
      batch = [];
      if (!markIdle) idle = new Promise<void>((resolve) => (markIdle = resolve));
      if (!inFlight && !armed) {
        armed = true;
        queueMicrotask(send);
      }
    }
    return batch.push(claim) - 1;
  }

  return {
    add: (claim) => void add(claim),
    settled: () => idle,
    ask(claim) {
      return new Promise<ClaimOutcome>((resolve, reject) => {
        const i = add(claim);
        (waiters ??= [])[i] = { resolve, reject };
      });
    },
  };
}

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
export function createTaker({ store, clock, instanceId, leaseMs, takeHere = !store.shared }: TakerOptions): Taker {
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
    store.take(instanceId, now, now + leaseMs, asked, 0).then(
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
      return store.take(instanceId, now, now + leaseMs, [], n);
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
