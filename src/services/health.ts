import type { Clock, TimerHandle } from '../core/clock.ts';
import { errorText } from '../core/errors.ts';
import type { Store } from '../core/store.ts';

/**
 * What `/healthz` answers (README, "Running several instances"). Always 200 while the process serves:
 * `{ ok: true }` when all is well, `{ ok: true, degraded: true, reason }` while the database does not
 * answer or the signals connection between instances is down. Still 200, so a load balancer keeps the
 * instance while it rides out a blip (its writes wait and are tried again, storage/write-batch.ts; its
 * signals reconnect by themselves); the reason is for people and monitoring.
 */
export type Health = { ok: true } | { ok: true; degraded: true; reason: string };

export interface HealthDeps {
  store: Pick<Store, 'ping' | 'writeTrouble'>;
  clock: Clock;
  /** Whether signals between instances flow; omitted where there is one instance (nothing to signal). @default always */
  signalsConnected?: () => boolean;
  /** A write batch that failed because the database was away this recently still degrades the answer. @default 5000 */
  windowMs?: number;
  /** At most one probe (`SELECT 1`) this often; checks in between answer from the last one. @default 1000 */
  probeEveryMs?: number;
  /** A probe unanswered after this says the database does not answer. @default 1000 */
  probeTimeoutMs?: number;
}

export type HealthService = ReturnType<typeof createHealth>;

export function createHealth({ store, clock, signalsConnected = () => true, windowMs = 5000, probeEveryMs = 1000, probeTimeoutMs = 1000 }: HealthDeps) {
  /** The last probe that settled: when it began and what it found (null: answered). */
  let last: { at: number; problem: string | null } | undefined;
  /** The probe in flight, if any: a flood of checks never piles probes onto a database that is away. */
  let probing: { at: number; done: Promise<void> } | undefined;

  function probe(): Promise<void> {
    const at = clock.now();
    let timer: TimerHandle | undefined;
    const timeout = new Promise<string>((resolve) => (timer = clock.setTimer(() => resolve(`the database did not answer within ${probeTimeoutMs} ms`), probeTimeoutMs)));
    const answer = store.ping().then(() => null, (err: unknown) => `the database does not answer: ${errorText(err)}`);
    const done = Promise.race([answer, timeout]).then((problem) => {
      timer?.cancel();
      last = { at, problem };
    });
    probing = { at, done };
    // The probe stays "in flight" until the ping itself settles, even after its timeout answered.
    void answer.finally(() => {
      if (probing?.done === done) probing = undefined;
    });
    return done;
  }

  return {
    async check(): Promise<Health> {
      const now = clock.now();
      if (!signalsConnected()) return degraded('the signals connection between instances is down; it reconnects by itself');
      const trouble = store.writeTrouble();
      if (trouble.retrying) return degraded('database unavailable: a write batch waits and tries again');
      if (trouble.lastFailedAt !== null && now - trouble.lastFailedAt < windowMs) return degraded('database unavailable a moment ago: a write batch failed and was tried again');
      if (probing) {
        // One is going: answer from it once it settles, or say it is late.
        if (now - probing.at >= probeTimeoutMs) return degraded(`the database did not answer within ${probeTimeoutMs} ms`);
        await probing.done;
      } else if (!last || now - last.at >= probeEveryMs) await probe();
      return last?.problem ? degraded(last.problem) : { ok: true };
    },
  };
}

const degraded = (reason: string): Health => ({ ok: true, degraded: true, reason });
