import type { Clock, TimerHandle } from './clock.ts';
import { errorText } from './errors.ts';
import type { Logger } from './logger.ts';
import type { InstanceRecord, Store } from './store.ts';

/**
 * This process in the instances table (README, "Running several instances"): it registers itself at
 * start, renews its heartbeat with the runs it holds every `heartbeatMs`, and marks itself stopped on a
 * clean shutdown. An instance is live while its heartbeat is at most `leaseMs` old, so one that dies
 * (`kill -9`, a lost network) leaves the live list by itself. The registry also keeps the cluster's
 * capacity — the sum of `maxConcurrent` over live instances — for the status figures, refreshed with
 * each heartbeat so that reading it costs nothing.
 */
export type InstanceStore = Pick<Store, 'upsertInstance' | 'heartbeatInstance' | 'stopInstance' | 'listInstances'>;

/** Who this process is; the host and pid come from the runtime, never from core. */
export interface InstanceIdentity {
  id: string;
  host: string;
  pid: number;
}

export interface InstanceRegistryOptions {
  store: InstanceStore;
  clock: Clock;
  log: Logger;
  identity: InstanceIdentity;
  /** This instance's MAX_CONCURRENT_AGENTS. */
  maxConcurrent: number;
  /** Runs this instance holds now, reported with each heartbeat. */
  running(): number;
  /** How often the row is renewed: INSTANCE_HEARTBEAT_MS (SCHEDULER_DEFAULTS.INSTANCE_HEARTBEAT_MS, 5000). */
  heartbeatMs: number;
  /** How old a heartbeat may be for its instance to count as live: INSTANCE_LEASE_MS (30000); more than `heartbeatMs`. */
  leaseMs: number;
  /** Called when the cluster's capacity changed (an instance came or went), so the status can say so. */
  onCapacityChange?(): void;
  /**
   * Runs with each heartbeat, after the row is renewed: the scheduler renews its runs' leases and reaps
   * those of dead instances (docs/cluster.md, "Leases and fences"). Its failure is logged like the beat's.
   */
  onBeat?(): Promise<void>;
}

export type InstanceRegistry = ReturnType<typeof createInstanceRegistry>;

/**
 * A fresh id per process: a restarted server is a new instance (its old row ages out), so a run's
 * `instanceId` always names the process that ran it.
 */
export function newInstanceId(): string {
  return `inst_${crypto.randomUUID().replace(/-/g, '').slice(0, 20)}`;
}

export function createInstanceRegistry(options: InstanceRegistryOptions) {
  const { store, clock, log, identity, maxConcurrent, heartbeatMs, leaseMs } = options;
  let startedAt: number | null = null;
  let timer: TimerHandle | undefined;
  let stopped = false;
  /** The heartbeat in flight, awaited by stop() so that the stopped mark is the row's last write. */
  let beating: Promise<void> | undefined;
  /** After a failed heartbeat the next one registers again, in case the row is what went missing. */
  let reregister = false;
  let capacity = maxConcurrent;

  const record = (at: number): InstanceRecord => ({
    ...identity, startedAt: startedAt ?? at, heartbeatAt: at, running: options.running(), maxConcurrent, stoppedAt: null,
  });

  /** The live instances as the table holds them now, oldest first. */
  async function live(): Promise<InstanceRecord[]> {
    return store.listInstances(clock.now() - leaseMs);
  }

  async function refreshCapacity(): Promise<void> {
    // This instance counts while it runs, even if its own heartbeat write failed.
    let sum = maxConcurrent;
    for (const i of await live()) if (i.id !== identity.id) sum += i.maxConcurrent;
    if (sum !== capacity) {
      capacity = sum;
      options.onCapacityChange?.();
    }
  }

  async function beat(): Promise<void> {
    const at = clock.now();
    try {
      if (reregister) await store.upsertInstance(record(at));
      else await store.heartbeatInstance(identity.id, at, options.running());
      reregister = false;
      await refreshCapacity();
    } catch (err) {
      reregister = true;
      log.warn('instance heartbeat failed', { instanceId: identity.id, error: errorText(err) });
    }
    if (!options.onBeat) return;
    try {
      await options.onBeat();
    } catch (err) {
      log.warn('renewing or reaping run leases failed', { instanceId: identity.id, error: errorText(err) });
    }
  }

  /** Fixed-rate: the next heartbeat is planned before this one runs; one still going when the next is due is not doubled. */
  function arm(): void {
    timer = clock.setTimer(() => {
      if (stopped) return;
      arm();
      beating ??= beat().finally(() => (beating = undefined));
    }, heartbeatMs);
  }

  return {
    id: identity.id,

    /** Registers this instance and starts its heartbeat. */
    async start(): Promise<void> {
      if (startedAt !== null || stopped) return;
      startedAt = clock.now();
      await store.upsertInstance(record(startedAt));
      await refreshCapacity();
      arm();
    },

    /** Stops the heartbeat and marks the row stopped, so this instance leaves the live list at once. */
    async stop(): Promise<void> {
      if (stopped) return;
      stopped = true;
      timer?.cancel();
      await beating;
      if (startedAt === null) return;
      try {
        await store.stopInstance(identity.id, clock.now());
      } catch (err) {
        // Not fatal: the row ages out with its lease.
        log.warn('could not mark the instance stopped', { instanceId: identity.id, error: errorText(err) });
      }
    },

    live,

    /** Resolves once the heartbeat in flight, if any, is done. */
    idle: (): Promise<void> => beating ?? Promise.resolve(),

    /** The sum of `maxConcurrent` over live instances, as read at start and after each heartbeat. */
    capacity: (): number => capacity,
  };
}
