import { createActiveRuns } from './active-runs.ts';
import { createAgentState, type AgentPatch } from './agent-state.ts';
import type { RetryPolicy } from './backoff.ts';
import { createBudgets } from './budgets.ts';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import { errorText } from './errors.ts';
import { createEventLog, iso } from './event-log.ts';
import { createEventBus, type EventBus } from './events.ts';
import { createExecutor } from './executor.ts';
import type { HandlerRegistry } from './handlers.ts';
import { SCHEDULER_DEFAULTS, SHUTDOWN_GRACE_MS } from './limits.ts';
import { silentLogger, type Logger } from './logger.ts';
import { catchUpMissedFires, recoverOpenRuns, type Recovery } from './recovery.ts';
import { createTaker } from './taker.ts';
import { newInstanceId } from './instances.ts';
import type { Prices } from './outputs.ts';
import { createRunHandler } from './run-handler.ts';
import { createRuns, type Runs } from './runs.ts';
import { combineObservers, type RunObserver } from './observer.ts';
import { createSchedules } from './schedules.ts';
import { createRunCommands } from './run-commands.ts';
import { createScheduleCommands } from './schedule-commands.ts';
import { createSharedStore } from './shared-store.ts';
import { createStatus, type Lifecycle, type Status } from './status.ts';
import type { ScheduleRecord, SchedulerStore } from './store.ts';
import { createTimeline, type DueHandlers } from './timeline.ts';

export { RunAbort, type AbortKind } from './run-handler.ts';
export type { ScheduleSpec } from './schedules.ts';


export interface SchedulerOptions {
  store: SchedulerStore;
  handlers: HandlerRegistry;
  /** @default systemClock */
  clock?: Clock;
  /** @default silentLogger */
  logger?: Logger;
  /** Runs at once. @default 5 (SCHEDULER_DEFAULTS.MAX_CONCURRENT_AGENTS) */
  maxConcurrent?: number;
  /**
   * One owner's running runs at most (MAX_CONCURRENT_PER_OWNER): in this process's queue, and on a shared
   * store across the cluster (the take counts the owner's running runs in the database). @default no cap
   */
  maxConcurrentPerOwner?: number;
  /** Retries after the first attempt, unless the agent sets `maxRetries`. @default 3 (SCHEDULER_DEFAULTS.MAX_RETRIES) */
  maxRetries?: number;
  /** @default { baseDelayMs: 1000, maxDelayMs: 300000 } (SCHEDULER_DEFAULTS.RETRY_BASE_DELAY_MS, RETRY_MAX_DELAY_MS) */
  retry?: RetryPolicy;
  /** A run still going after this is aborted and fails, unless the agent sets `timeoutMs`. @default 900000 (SCHEDULER_DEFAULTS.AGENT_TIMEOUT_MS) */
  timeoutMs?: number;
  /** Runs kept per agent. @default 1000 (SCHEDULER_DEFAULTS.RUN_HISTORY_LIMIT) */
  runHistoryLimit?: number;
  /** Stored events older than this are deleted. @default 86400000, one day (SCHEDULER_DEFAULTS.EVENT_RETENTION_MS) */
  eventRetentionMs?: number;
  /** Least time between two `scheduler:status` events. @default 250 (SCHEDULER_DEFAULTS.STATUS_INTERVAL_MS) */
  statusIntervalMs?: number;
  /** The instance this scheduler runs in: runs are taken, leased and recorded under it (core/instances.ts). @default a fresh id (newInstanceId) */
  instanceId?: string | null;
  /** How long a taken run stays this instance's without a renewal. @default 30000 (SCHEDULER_DEFAULTS.INSTANCE_LEASE_MS) */
  leaseMs?: number;
  /** Told after every schedule change this scheduler answered, so other instances look (app.ts sends the `schedules` signal). @default none */
  onScheduleChange?(agentId: string): void;
  /** Asked to cancel a run another instance is running: app.ts sends the `cancel` signal, and its holder aborts it. @default none */
  onCancelElsewhere?(runId: string): void;
  /** The status's `maxConcurrentAgents`: the sum over live instances. @default () => maxConcurrent (this one alone) */
  capacity?: () => number;
  /** USD per million tokens by model (LLM_PRICES): prices a usage report that gives no cost. @default {} */
  prices?: Prices;
  /** Told of this instance's runs as they start, end or are skipped, and of missed fires (metrics, logs, traces). @default none */
  observers?: readonly RunObserver[];
}

export type Scheduler = ReturnType<typeof createScheduler>;

/**
 * The scheduler composes its parts and offers the commands the services call (README, "How the engine
 * works"). The parts share state only through the objects handed to them here:
 *   timeline.ts     everything waited for, in one heap with one timer
 *   schedules.ts    the schedules in memory: next fires, versions, pause
 *   active-runs.ts  the runs held (waiting, queued, running), and the running/queued figures
 *   agent-state.ts  the agent cache, its writes and the status rules
 *   runs.ts         run records, the queue, finishing and the retry decision
 *   claims.ts       what the database must agree to first: a run exists (claim), it starts here (take)
 *   run-handler.ts  a run's handler: started, progress, timeout and abort
 *   recovery.ts     start-up: runs left open, fires missed
 *   status.ts       the figures and the throttled `scheduler:status` event
 *   shared-store.ts on a shared database: the queue of every instance, leases, other instances' changes
 *   schedule-commands.ts  set, remove, pause and resume a schedule
 *   run-commands.ts       run now, backfill, cancel a run, forget an agent
 *   event-log.ts    events stored, then published as the store delivers them numbered
 */
export function createScheduler(options: SchedulerOptions) {
  const { store, handlers } = options;
  const clock = options.clock ?? systemClock;
  const log = options.logger ?? silentLogger;
  const maxConcurrent = options.maxConcurrent ?? SCHEDULER_DEFAULTS.MAX_CONCURRENT_AGENTS;
  const eventRetentionMs = options.eventRetentionMs ?? SCHEDULER_DEFAULTS.EVENT_RETENTION_MS;

  const lifecycle: Lifecycle = { started: false, stopping: false };
  const bus: EventBus = createEventBus((err) => log.error('event listener failed', { error: errorText(err) }));
  const events = createEventLog(store, clock, bus);
  const observer = combineObservers(options.observers ?? [], (err) => log.error('run observer failed', { error: errorText(err) }));
  const executor = createExecutor({ concurrency: maxConcurrent, ...(options.maxConcurrentPerOwner !== undefined && { maxPerOwner: options.maxConcurrentPerOwner }) });
  const timeline = createTimeline(clock, log, { burst: () => store.holdCommits?.() ?? (() => {}) });
  const schedules = createSchedules(store, clock, timeline);
  // The figures change with every run's state; `status` is built below, once what it reads exists.
  const active = createActiveRuns(() => status.changed());
  const status: Status = createStatus({
    clock, events, lifecycle, schedules, active,
    capacity: options.capacity ?? (() => maxConcurrent),
    intervalMs: options.statusIntervalMs ?? SCHEDULER_DEFAULTS.STATUS_INTERVAL_MS,
    // On a shared store the figures are the cluster's, live instances being those within a lease (core/instances.ts).
    ...(store.shared && { cluster: (now: number) => store.clusterFigures(now, now - (options.leaseMs ?? SCHEDULER_DEFAULTS.INSTANCE_LEASE_MS)), bus }),
  });
  const agents = createAgentState(store, clock, schedules, active);
  const instanceId = options.instanceId ?? newInstanceId();
  const leaseMs = options.leaseMs ?? SCHEDULER_DEFAULTS.INSTANCE_LEASE_MS;
  // A run starts only once the database handed it to this instance (docs/cluster.md, "Claim before run").
  const taker = createTaker({ store, clock, instanceId, leaseMs, ...(options.maxConcurrentPerOwner !== undefined && { perOwner: options.maxConcurrentPerOwner }) });
  // A run's handler finishes it, and finishing may queue its retry for the handler: the loop is closed here.
  const runner = createRunHandler({
    store, clock, log, handlers, agents, active, events,
    finish: (a, agent, outcome) => runs.finish(a, agent, outcome),
    timeoutMs: options.timeoutMs ?? SCHEDULER_DEFAULTS.AGENT_TIMEOUT_MS,
    taker,
    observer,
    ...(options.prices && { prices: options.prices }),
  });
  const runs: Runs = createRuns({
    store, clock, agents, schedules, active, timeline, executor, events,
    execute: runner.execute,
    stale: (agentId) => shared.reloadSchedule(agentId).catch((err: unknown) => log.error('could not read a schedule again', { agentId, error: errorText(err) })),
    log,
    maxRetries: options.maxRetries ?? SCHEDULER_DEFAULTS.MAX_RETRIES,
    retry: options.retry ?? { baseDelayMs: SCHEDULER_DEFAULTS.RETRY_BASE_DELAY_MS, maxDelayMs: SCHEDULER_DEFAULTS.RETRY_MAX_DELAY_MS },
    runHistoryLimit: options.runHistoryLimit ?? SCHEDULER_DEFAULTS.RUN_HISTORY_LIMIT,
    onUsage: (agent) => budgets.afterUsage(agent),
    observer,
  });
  const recovery: Recovery = { store, log, agents, active, runs, schedules, observer };
  const shared = createSharedStore({ store, clock, log, lifecycle, schedules, active, agents, executor, runner, taker, status, recovery, instanceId, leaseMs, maxConcurrent });

  const due: DueHandlers = {
    fire(agentId, version, at) {
      // The slot is the next fire the schedule was planned with: a jittered fire comes due after it (core/jitter.ts),
      // and its run still carries the slot as `scheduledAt` (and as its dedupe key, the same on every instance).
      const slot = schedules.get(agentId)?.nextRunAt ?? at;
      const s = schedules.fired(agentId, version, at);
      if (s) runs.offer(s, 'schedule', slot);
    },
    retry: runs.retryDue,
    resume(agentId, version) {
      commands.resumeOnTime(agentId, version).catch((err: unknown) => log.error('could not end a pause on time', { agentId, error: errorText(err) }));
    },
  };

  async function start(): Promise<void> {
    if (lifecycle.started) return;
    const now = clock.now();
    // Live events from the last one stored on: those of this process once committed, and on a shared
    // database those of every other instance, in id order.
    events.follow(await store.maxEventId());
    const loadedAt = clock.now(); // the load below is the first full read
    await schedules.load();
    lifecycle.started = true;
    timeline.start(due);
    await recoverOpenRuns(recovery, now);
    catchUpMissedFires(recovery, now);
    events.startTrimming(eventRetentionMs);
    status.changed();
    if (store.shared) shared.start(loadedAt);
    await store.flush();
  }

  /**
   * Stops taking new runs, lets running ones finish for up to `graceMs`, then aborts them as
   * interrupted (they fail and their retry is stored, to be picked up by the next start).
   */
  async function stop(graceMs = SHUTDOWN_GRACE_MS): Promise<void> {
    if (lifecycle.stopping) return;
    lifecycle.stopping = true;
    timeline.stop();
    shared.stop();
    events.stopTrimming();
    status.stop();
    executor.pause();
    if (runner.executing > 0) {
      let graceTimer: TimerHandle | undefined;
      await Promise.race([runner.idle(), new Promise<void>((r) => (graceTimer = clock.setTimer(r, graceMs)))]);
      graceTimer?.cancel();
    }
    runner.abortRunning('shutdown', 'interrupted by shutdown');
    await runner.idle();
    await budgets.settled();
    await runs.claimsSettled(); // runs claimed meanwhile stay queued in the database, for the next start
    await store.flush(); // the last events are published as this batch commits, before it resolves
    runs.detach();
    events.stopFollowing();
  }

  const commands = createScheduleCommands({ store, clock, schedules, agents, active, runs, events, status, fresh: shared.fresh, onScheduleChange: options.onScheduleChange });
  const budgets = createBudgets({ store, clock, log, agents, schedules, pause: commands.pauseForBudget });
  const runCommands = createRunCommands({ store, clock, lifecycle, schedules, agents, active, runs, status, budgets, ...(options.onCancelElsewhere && { onCancelElsewhere: options.onCancelElsewhere }) });

  return {
    events: bus,
    start,
    stop,
    /** This process's own figures, at once (its heartbeat reports its running runs from them). */
    stats: status.stats,
    /** The figures a status request answers: on a shared store the whole cluster's, read from the database (core/status.ts). */
    figures: status.figures,
    /** Says the figures may have changed from outside (an instance came or went): `scheduler:status` follows if they did. */
    figuresChanged: () => status.changed(),
    /** Resolves once every fire and manual run asked for so far has its claim answered (tests wait on it). */
    settled: () => runs.claimsSettled(),
    /** This scheduler's instance id: the one its runs are taken and leased under. */
    instanceId,
    maintainLeases: shared.maintainLeases,
    /** Reads one schedule again (a `schedules` signal from another instance), or all of them. */
    reloadSchedule: shared.reloadSchedule,
    reloadSchedules: shared.reloadSchedules,
    [Symbol.asyncDispose]: () => stop(),
    setSchedule: commands.setSchedule,
    removeSchedule: commands.removeSchedule,
    pause: commands.pause,
    resume: commands.resume,

    backfill: runCommands.backfill,
    runNow: runCommands.runNow,
    cancel: runCommands.cancel,
    forgetAgent: runCommands.forgetAgent,

    /**
     * Changes an agent's own fields (name, config, limits …) on behalf of a service: merged whole into
     * the scheduler's copy and written in order with the scheduler's writes; resolves once committed.
     */
    updateAgent: (agentId: string, set: AgentPatch): Promise<void> => agents.update(agentId, set),

    isRunning: (agentId: string) => active.ofAgent(agentId)?.state === 'running',
    schedule: (agentId: string): Readonly<ScheduleRecord> | undefined => schedules.get(agentId),
    pausedJobs: () => [...schedules.values()].filter((s) => s.paused).map((s) => ({ agentId: s.agentId, jobId: s.jobId, pauseReason: s.pauseReason ?? 'manual', pauseNote: s.pauseNote, pausedUntil: iso(s.resumeAt) })),
    lastEventId: () => events.lastId,
  };
}
