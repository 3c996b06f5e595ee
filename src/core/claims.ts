import { errorText } from './errors.ts';
import type { Logger } from './logger.ts';
import type { ClaimOutcome, RunClaim, SchedulerStore } from './store.ts';

/**
 * The two questions the scheduler asks the database before a run may start (docs/cluster.md, "Claim
 * before run"): may this run exist (`claim`), and may this instance run it now (`take`). Both are asked in
 * bulk — thousands of fires due at one instant cost one claim transaction per slice of the timeline, and
 * every start of one turn one take — so the database round trip is paid per tick, never per run. On a
 * store this process alone writes, both are answered here from what the scheduler holds and written with
 * the batch (`decideHere`, `takeHere`): the answer is known in advance, and waiting for it cost latency.
 */

export interface Claimer {
  /** Asks for the run; its outcome goes to the scheduler's `settle` with those of the same tick. */
  add(claim: RunClaim): void;
  /** The same, for a caller that answers with the outcome (a manual run). */
  ask(claim: RunClaim): Promise<ClaimOutcome>;
  /** Resolves once every claim asked so far is answered and settled (for stop, and tests). */
  settled(): Promise<void>;
  /**
   * From now on, on an exclusive store, claims of slots after `t` may be decided here (see createClaimer):
   * called at start once every run the predecessor left open is held, with the start's time, past which
   * no predecessor can have recorded a slot.
   */
  decideAfter(t: number): void;
}

interface Waiter {
  resolve(o: ClaimOutcome): void;
  reject(err: unknown): void;
}

/** What an exclusive store's claims are decided from: the scheduler's own state, which is the database's there. */
export interface HeldState {
  /** The schedule of `agentId` as held in memory (schedules.ts). */
  schedule(agentId: string): { revision: number; enabled: boolean; paused: boolean } | undefined;
  /** Whether the agent has a run held (waiting for its retry, queued or running): active-runs.ts. */
  busy(agentId: string): boolean;
}

export interface ClaimerOptions {
  store: SchedulerStore;
  log: Logger;
  /** Gets every outcome, in order, before a caller of `ask` does: a claimed run is held before its runId is answered. */
  settle(outcome: ClaimOutcome): Promise<void> | void;
  /** Runs once claims are on the write path: what it writes commits after them (schedules.ts, `writeFired`). */
  afterSend(): void;
  /** The scheduler's state, for claims decided here. */
  held: HeldState;
  /**
   * Whether claims on an exclusive store are decided in memory and written with the batch (true), or sent
   * to `store.claim` like on a shared one (false). Either way none is decided here before `decideAfter`.
   * @default !store.shared
   */
  decideHere?: boolean;
}

/**
 * Claims asked in one synchronous stretch (one timeline slice, one recovery pass) share one
 * `store.claim`, sent from a microtask at its end; while one claim is on its way, later ones wait and go
 * together in the next (a burst of fires over several slices costs one claim for the first slice and one for
 * the rest, not one per slice, each behind the writes of the runs the one before started). The next claim
 * is sent before the outcomes of the last are settled, so it does not queue behind what those runs write.
 *
 * On an exclusive store (a SQLite file held by its lock, memory) a claim is decided here instead, in the
 * turn it is asked, and its run row is written with the batch: a fire starts its run at once, as it did
 * before claims existed, where a claim transaction made every fire wait for the commit of the batch ahead
 * of it (fire lateness p99 at 1,000 coincident fires went from ~45 ms to 52–80 ms). It is safe because this
 * process is the database's only writer there (docs/cluster.md, "One owner per SQLite file": a second
 * process on the file refuses to start; memory is one process), so the claim transaction could read only
 * what the scheduler already holds:
 *   - the schedule's revision, enabled and paused: changed only through this process's `schedules`;
 *   - an open run of the agent: recovery holds or ends every one left at start, and every later one is
 *     made here and held until it ends — except a run whose claim is still on its way to the database, so
 *     an agent with such a claim has its next claims sent there too, behind it;
 *   - the slot's dedupe key: a slot this process recorded is known (`recorded`, the latest slot per job).
 *     One a predecessor recorded is at or before this start (`decideAfter`), since a slot is recorded only
 *     once the clock has reached it. Claims of slots at or before either bound — catch-up fires, two agents
 *     firing one jobId's slot, a clock set back — go to the database, which may find them taken.
 * Assumed: the wall clock does not step back across a restart past slots the predecessor fired (such a
 * slot would run again; the insert's ON CONFLICT still keeps one row of it).
 * The decision is `store.claim`'s (storage/claims.ts) for the outcomes possible here — `stale`, `skipped`
 * (busy) or `claimed` — written again because core/ does not import storage/; the tests check they agree.
 */
export function createClaimer({ store, log, settle, afterSend, held, decideHere = !store.shared }: ClaimerOptions): Claimer {
  let batch: RunClaim[] | undefined;
  let waiters: (Waiter | undefined)[] | undefined;
  let inFlight = false;
  let armed = false;
  /** Claims decided here since the last `afterSend`: their schedules' next fires are still to be written. */
  let decided = false;
  /** Batches asked or sent and not yet settled, and settlings still running: `settled` waits for them. */
  let pending = 0;
  let idle: Promise<void> = Promise.resolve();
  let markIdle: (() => void) | undefined;
  /** Slots up to this may have a run a predecessor recorded; undefined: nothing is decided here yet. */
  let floor: number | undefined;
  /** The latest slot recorded per job that fired (a fire's dedupe key is `jobId@slot`, runs.ts): a later slot is new. */
  const recorded = new Map<string, number>();
  /** Agents with claims in a batch or on their way to the database, by how many. */
  const sentAgents = new Map<string, number>();

  function begin(): void {
    if (pending++ === 0) idle = new Promise<void>((resolve) => (markIdle = resolve));
  }
  function end(): void {
    if (--pending === 0) markIdle?.();
  }
  function settleAll(after: Promise<void>[] | undefined): void {
    if (after) void Promise.all(after).then(end);
    else end();
  }

  function release(claims: readonly RunClaim[]): void {
    for (const { run } of claims) {
      const n = sentAgents.get(run.agentId)! - 1;
      if (n === 0) sentAgents.delete(run.agentId);
      else sentAgents.set(run.agentId, n);
    }
  }

  /** The end of a synchronous stretch: the batch goes (if none is on its way), and the next fires of what was decided here are written. */
  function turnEnd(): void {
    armed = false;
    send();
    if (decided && !batch) {
      // With a batch still waiting, its send writes them, after its claim (see createSchedules' `writeFired`).
      decided = false;
      afterSend();
    }
  }

  function send(): void {
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
        release(claims); // held now (or recorded): the next claim of these agents may be decided here
        settleAll(after);
      },
      (err: unknown) => {
        inFlight = false;
        send();
        release(claims);
        // The fires of this claim are lost (the next ones are planned); a manual run answers the error.
        log.error('claiming runs failed', { claims: claims.length, error: errorText(err) });
        if (asked) for (const w of asked) w?.reject(err);
        settleAll(undefined);
      },
    );
    decided = false;
    afterSend();
  }

  function arm(): void {
    if (!armed) {
      armed = true;
      queueMicrotask(turnEnd);
    }
  }

  /** The outcome `store.claim` would give, when this process can know it; undefined sends the claim to the database. */
  function decide({ run, revision, busy, overlap }: RunClaim): ClaimOutcome | undefined {
    if (floor === undefined || sentAgents.has(run.agentId)) return undefined;
    // A fire that waits, queues or replaces while the agent is busy is the database's to decide (storage/claims.ts).
    if (overlap !== undefined && held.busy(run.agentId)) return undefined;
    if (run.dedupeKey !== null) {
      if (run.trigger !== 'schedule' || run.scheduledAt <= floor) return undefined;
      const last = recorded.get(run.jobId);
      if (last !== undefined && run.scheduledAt <= last) return undefined;
    }
    if (revision !== undefined) {
      const s = held.schedule(run.agentId);
      if (!s || s.revision !== revision || !s.enabled || s.paused) return { outcome: 'stale', run };
    }
    if (run.dedupeKey !== null) recorded.set(run.jobId, run.scheduledAt);
    if (overlap === undefined && busy !== undefined && held.busy(run.agentId)) {
      return { outcome: 'skipped', run: { ...run, status: 'skipped', error: busy, finishedAt: run.createdAt, leaseUntil: null } };
    }
    return { outcome: 'claimed', run };
  }

  /** Settles a claim decided here: its row goes into the write batch, then the scheduler holds it. */
  function here(o: ClaimOutcome): void {
    if (o.outcome !== 'stale') store.write({ op: 'run.insert', run: o.run });
    decided = true;
    arm();
    let p: Promise<void> | void = undefined;
    try {
      p = settle(o);
    } catch (err) {
      log.error('a claimed run could not be held', { runId: o.run.id, error: errorText(err) });
    }
    if (p) {
      begin();
      void p.then(end, end);
    }
  }

  /** Queues a claim for the database; answers its index in the batch. */
  function toDatabase(claim: RunClaim): number {
    const { run } = claim;
    sentAgents.set(run.agentId, (sentAgents.get(run.agentId) ?? 0) + 1);
    // A later fire of the same job at or before this slot is sent behind it (it may find the slot taken).
    if (run.dedupeKey !== null && floor !== undefined && run.scheduledAt > floor && run.scheduledAt > (recorded.get(run.jobId) ?? -Infinity)) recorded.set(run.jobId, run.scheduledAt);
    if (!batch) {
      batch = [];
      begin();
      if (!inFlight) arm();
    }
    return batch.push(claim) - 1;
  }

  return {
    settled: () => idle,
    add(claim) {
      if (decideHere) {
        const o = decide(claim);
        if (o) return here(o);
      }
      toDatabase(claim);
    },
    ask(claim) {
      if (decideHere) {
        const o = decide(claim);
        if (o) {
          here(o);
          return Promise.resolve(o);
        }
      }
      return new Promise<ClaimOutcome>((resolve, reject) => {
        const i = toDatabase(claim);
        (waiters ??= [])[i] = { resolve, reject };
      });
    },
    decideAfter(t) {
      if (decideHere) floor = t;
    },
  };
}
