import type { AgentRecord, RunRecord } from './store.ts';

/**
 * What this instance's scheduler did, told as it happens, for metrics, logs and traces (README "Operating
 * it"). Only this instance's own work is told: the event bus also carries other instances' events on a shared
 * database, so counting from it would count a run once per instance.
 *
 * Every method is optional and called synchronously on the scheduler's path: keep each one cheap, and never
 * throw (a throw is caught, logged and forgotten, so an observer can never stop a run).
 */
export interface RunObserver {
  /** A run's handler is about to be called: the run is `running`, with its `startedAt`. */
  runStarted?(run: Readonly<RunRecord>, agent: Readonly<AgentRecord>): void;
  /**
   * A run this instance held ended, as `run.status` says (`completed`, `failed` or `cancelled`), with its
   * `durationMs` (null when it never started) and the usage it reported. `retryAt` is when its retry is due,
   * or null when none follows. `agent` is undefined when the agent was deleted meanwhile.
   */
  runEnded?(run: Readonly<RunRecord>, agent: Readonly<AgentRecord> | undefined, retryAt: number | null): void;
  /** A fire or manual run was recorded `skipped` (its agent was busy, or a catch-up with catch-up off). */
  runSkipped?(run: Readonly<RunRecord>): void;
  /** Start-up found `count` fires of a schedule missed while no instance ran it (`capped`: at least that many). */
  firesMissed?(agentId: string, count: number, capped: boolean): void;
}

/** One observer that tells each of `observers` in turn; one that throws does not keep the others from hearing. */
export function combineObservers(observers: readonly RunObserver[], onError: (err: unknown) => void): Required<RunObserver> {
  const tell = <K extends keyof RunObserver>(name: K) => {
    const fns = observers.map((o) => o[name]?.bind(o)).filter((f) => f !== undefined) as ((...args: unknown[]) => void)[];
    return (...args: unknown[]) => {
      for (const fn of fns) {
        try {
          fn(...args);
        } catch (err) {
          onError(err);
        }
      }
    };
  };
  return {
    runStarted: tell('runStarted'),
    runEnded: tell('runEnded'),
    runSkipped: tell('runSkipped'),
    firesMissed: tell('firesMissed'),
  } as Required<RunObserver>;
}
