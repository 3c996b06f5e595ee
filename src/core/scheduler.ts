import type { AgentStatus, RunTrigger } from '../schemas/common.ts';
import type { EventMap, EventName, StoredEvent } from '../schemas/events.ts';
import type { SchedulerStats } from '../schemas/schedule.ts';
import { retryDelay, type RetryPolicy } from './backoff.ts';
import { systemClock, type Clock, type TimerHandle } from './clock.ts';
import { nextOccurrence, validateCron } from './cron.ts';
import { conflict, DomainError, errorText, notFound, badRequest } from './errors.ts';
import { createEventBus, type EventBus } from './events.ts';
import { createExecutor } from './executor.ts';
import type { HandlerRegistry, ProgressUpdate } from './handlers.ts';
import { MinHeap } from './heap.ts';
import { silentLogger, type Logger } from './logger.ts';
import type { AgentRecord, RunRecord, ScheduleRecord, SchedulerStore } from './store.ts';

export interface SchedulerOptions {
  store: SchedulerStore;
  handlers: HandlerRegistry;
  /** @default systemClock */
  clock?: Clock;
  /** @default silentLogger */
  logger?: Logger;
  /** Runs at once. @default 5 (MAX_CONCURRENT_AGENTS) */
  maxConcurrent?: number;
  /** Retries after the first attempt, unless the agent sets `maxRetries`. @default 3 */
  maxRetries?: number;
  /** @default { baseDelayMs: 1000, maxDelayMs: 300000 } */
  retry?: RetryPolicy;
  /** A run still going after this is aborted and fails, unless the agent sets `timeoutMs`. @default 900000 */
  timeoutMs?: number;
  /** Runs kept per agent. @default 1000 */
  runHistoryLimit?: number;
  /** Stored events older than this are deleted. @default 86400000 (one day; the contract asks for ≥ 1 h) */
  eventRetentionMs?: number;
  /** Least time between two `scheduler:status` events. @default 250 (CONTRACT §5) */
  statusIntervalMs?: number;
}

export interface ScheduleSpec {
  jobId: string;
  expression: string;
  timezone: string;
  priority: number;
  enabled: boolean;
  catchUp: boolean;
}

/** Why a run's signal fired: the reason object on `signal.reason`. */
export type AbortKind = 'timeout' | 'cancel' | 'deleted' | 'shutdown';
export class RunAbort extends Error {
  override name = 'RunAbort';
  constructor(
    readonly kind: AbortKind,
    message: string,
  ) {
    super(message);
  }
}

/** A run the scheduler is responsible for: waiting for its retry time, queued for a slot, or running. */
interface ActiveRun {
  run: RunRecord;
  state: 'waiting' | 'queued' | 'running';
  controller: AbortController;
}

interface Job extends ScheduleRecord {
  /** Bumped on every change, so heap entries from before it are ignored when they come due. */
  version: number;
}

type TimedItem = { at: number } & ({ kind: 'fire'; agentId: string; version: number } | { kind: 'retry'; runId: string });
type Timed = TimedItem & { seq: number };

/** How many finished runs of one agent between two history trims. */
const TRIM_EVERY = 64;
/** The most missed fires counted one by one when recording what a restart missed. */
const MISSED_COUNT_LIMIT = 10_000;
const COMPLETED = Object.freeze({ ok: true as const });
/** Longest stretch a burst of due fires holds the event loop before yielding. */
const TICK_SLICE_MS = 5;
/** How often expired events are deleted. */
const EVENT_TRIM_INTERVAL_MS = 10 * 60_000;

export type Scheduler = ReturnType<typeof createScheduler>;

export function createScheduler(options: SchedulerOptions) {
  const store = options.store;
  const handlers = options.handlers;
  const clock = options.clock ?? systemClock;
  const log = options.logger ?? silentLogger;
  const maxConcurrent = options.maxConcurrent ?? 5;
  const defaultMaxRetries = options.maxRetries ?? 3;
  const retryPolicy = options.retry ?? { baseDelayMs: 1000, maxDelayMs: 300_000 };
  const defaultTimeoutMs = options.timeoutMs ?? 900_000;
  const runHistoryLimit = options.runHistoryLimit ?? 1000;
  const eventRetentionMs = options.eventRetentionMs ?? 86_400_000;
  const statusIntervalMs = options.statusIntervalMs ?? 250;

  const bus: EventBus = createEventBus((err) => log.error('event listener failed', { error: errorText(err) }));
  const executor = createExecutor({ concurrency: maxConcurrent });
  const jobs = new Map<string, Job>(); // by agentId: an agent has at most one schedule
  const heap = new MinHeap<Timed>();
  const activeByAgent = new Map<string, ActiveRun>();
  const activeById = new Map<string, ActiveRun>();
  const agents = new Map<string, AgentRecord>(); // cache of agents the scheduler has touched
  const finishedSinceTrim = new Map<string, number>();
  const settling = new Set<Promise<void>>();

  let seq = 0;
  let lastEventId = 0;
  let runCounter = 0;
  let running = 0;
  let queued = 0;
  let started = false;
  let stopping = false;
  let timer: TimerHandle | undefined;
  let timerAt = Infinity;
  let eventTrimTimer: TimerHandle | undefined;
  let statusTimer: TimerHandle | undefined;
  let lastStatusAt = -Infinity;
  let lastStatusJson = '';

  /**
   * One copy of each distinct expression and timezone string: 100,000 schedules usually share a few
   * dozen, and a copy per schedule would be most of their memory.
   */
  const interned = new Map<string, string>();
  function intern(s: string): string {
    const found = interned.get(s);
    if (found !== undefined) return found;
    interned.set(s, s);
    return s;
  }

  // ---------- ids, events, status ----------

  /** Run ids sort by creation time: a millisecond prefix, then a per-process counter, then noise. */
  function newRunId(): string {
    runCounter = (runCounter + 1) % 0x1000000;
    const rand = Math.floor(Math.random() * 0x10000);
    return `run_${clock.now().toString(36).padStart(9, '0')}${runCounter.toString(36).padStart(5, '0')}${rand.toString(36).padStart(4, '0')}`;
  }

  function emit<K extends EventName>(type: K, agentId: string | null, data: EventMap[K]): void {
    const id = ++lastEventId;
    // Frozen: one event object goes to every subscriber, and transports may cache its serialised form.
    Object.freeze(data);
    store.write({ op: 'event.insert', event: { id, type, agentId, data, createdAt: clock.now() } });
    bus.emit(Object.freeze({ id, type, agentId, data }) as StoredEvent);
  }

  const iso = (ms: number | null) => (ms === null ? null : new Date(ms).toISOString());
  const nowIso = () => new Date(clock.now()).toISOString();

  function stats(): SchedulerStats {
    let scheduled = 0;
    let paused = 0;
    for (const job of jobs.values()) {
      if (job.enabled) scheduled++;
      if (job.paused) paused++;
    }
    return {
      isRunning: started && !stopping,
      scheduledTasksCount: scheduled,
      runningAgentsCount: running,
      queuedTasksCount: queued,
      maxConcurrentAgents: maxConcurrent,
      pausedJobsCount: paused,
    };
  }

  /** Emits `scheduler:status` when the figures changed, at most once per `statusIntervalMs` (trailing edge). */
  function statusChanged(): void {
    if (statusTimer || !started) return;
    const wait = Math.max(0, lastStatusAt + statusIntervalMs - clock.now());
    statusTimer = clock.setTimer(() => {
      statusTimer = undefined;
      const s = stats();
      const json = JSON.stringify(s);
      if (json === lastStatusJson) return;
      lastStatusJson = json;
      lastStatusAt = clock.now();
      emit('scheduler:status', null, { stats: s, timestamp: nowIso() });
    }, wait);
  }

  // ---------- agents and status ----------

  /**
   * Agents the scheduler works with, read on first use. Reads asked for in one turn of the event loop
   * share one query: when thousands of schedules fire at once, their agents arrive in a few reads.
   */
  let loading: Map<string, ((a: AgentRecord | undefined) => void)[]> | undefined;
  function loadAgent(id: string): Promise<AgentRecord | undefined> {
    const cached = agents.get(id);
    if (cached) return Promise.resolve(cached);
    return new Promise((resolve, reject) => {
      if (!loading) {
        const batch = (loading = new Map());
        queueMicrotask(() => {
          loading = undefined;
          store.getAgents([...batch.keys()]).then((found) => {
            const byId = new Map(found.map((a) => [a.id, a]));
            for (const [agentId, waiters] of batch) {
              const agent = agents.get(agentId) ?? byId.get(agentId);
              if (agent && !agents.has(agentId)) agents.set(agentId, agent);
              for (const w of waiters) w(agent);
            }
          }, reject);
        });
      }
      const waiters = loading.get(id);
      if (waiters) waiters.push(resolve);
      else loading.set(id, [resolve]);
    });
  }

  function updateAgent(agent: AgentRecord, set: Partial<AgentRecord>): void {
    Object.assign(agent, set, { updatedAt: clock.now() });
    store.write({ op: 'agent.update', id: agent.id, set: { ...set, updatedAt: agent.updatedAt } });
  }

  /** The status of an agent with nothing running, from CONTRACT §4's definitions. */
  function restingStatus(agent: AgentRecord): AgentStatus {
    const job = jobs.get(agent.id);
    if (job?.paused) return 'PAUSED';
    if (job?.enabled && job.nextRunAt !== null) return 'IDLE';
    if (activeByAgent.has(agent.id)) return 'IDLE'; // a retry is pending
    if (agent.lastRunAt !== null && agent.lastError === null) return 'COMPLETED';
    return agent.status === 'ERROR' ? 'ERROR' : 'IDLE';
  }

  // ---------- the timer over the heap ----------

  function push(item: TimedItem): void {
    (item as Timed).seq = ++seq; // callers pass a fresh literal: numbered in place, not copied
    heap.push(item as Timed);
    if (item.at < timerAt) arm();
  }

  function arm(): void {
    if (stopping || !started) return;
    const head = heap.peek();
    const at = head ? head.at : Infinity;
    if (at === timerAt && timer) return;
    timer?.cancel();
    timer = undefined;
    timerAt = at;
    if (at === Infinity) return;
    timer = clock.setTimer(tick, at - clock.now());
  }

  /**
   * Pops every item that is due and acts on it; one tick's writes share one transaction. A burst
   * (thousands of schedules due at one instant) is cut into slices of at most TICK_SLICE_MS, with the
   * event loop free in between, so API calls and started runs are not held up behind the whole burst.
   */
  function tick(): void {
    timer = undefined;
    timerAt = Infinity;
    const sliceStart = clock.now();
    let n = 0;
    for (let head = heap.peek(); head && head.at <= clock.now(); head = heap.peek()) {
      if (++n % 32 === 0 && clock.now() - sliceStart >= TICK_SLICE_MS) {
        timerAt = head.at;
        timer = clock.setTimer(tick, 0);
        return;
      }
      heap.pop();
      try {
        if (head.kind === 'fire') fire(head.agentId, head.version, head.at);
        else retryDue(head.runId);
      } catch (err) {
        log.error('scheduler tick failed', { error: errorText(err) });
      }
    }
    arm();
  }

  function fire(agentId: string, version: number, at: number): void {
    const job = jobs.get(agentId);
    if (!job || job.version !== version || !job.enabled || job.paused) return;
    // The next slot is computed from now, not from `at`: if the process was blocked past several
    // slots, they are not fired in a burst.
    setNext(job, nextOccurrence(job.expression, job.timezone, Math.max(at, clock.now())));
    const dedupeKey = `${job.jobId}@${at}`;
    if (activeByAgent.has(agentId)) {
      recordSkipped(job, 'schedule', at, 'skipped: the previous run or its retry is still in progress');
      return;
    }
    startRun(job.agentId, job.jobId, 'schedule', 1, job.priority, at, dedupeKey);
  }

  function setNext(job: Job, next: number | null): void {
    job.nextRunAt = next;
    job.version++;
    job.updatedAt = clock.now();
    store.write({ op: 'schedule.update', agentId: job.agentId, set: { nextRunAt: next, updatedAt: job.updatedAt } });
    if (next !== null && job.enabled && !job.paused) push({ kind: 'fire', agentId: job.agentId, version: job.version, at: next });
  }

  function recordSkipped(job: { agentId: string; jobId: string; priority: number }, trigger: RunTrigger, at: number, why: string): RunRecord {
    const now = clock.now();
    const run: RunRecord = {
      id: newRunId(),
      agentId: job.agentId,
      jobId: job.jobId,
      trigger,
      attempt: 1,
      status: 'skipped',
      priority: job.priority,
      scheduledAt: at,
      startedAt: null,
      finishedAt: now,
      durationMs: null,
      progress: null,
      error: why,
      dedupeKey: trigger === 'manual' ? null : `${job.jobId}@${at}`,
      createdAt: now,
    };
    store.write({ op: 'run.insert', run });
    return run;
  }

  // ---------- runs ----------

  function startRun(agentId: string, jobId: string, trigger: RunTrigger, attempt: number, priority: number, scheduledAt: number, dedupeKey: string | null): RunRecord {
    const run: RunRecord = {
      id: newRunId(),
      agentId,
      jobId,
      trigger,
      attempt,
      status: 'queued',
      priority,
      scheduledAt,
      startedAt: null,
      finishedAt: null,
      durationMs: null,
      progress: null,
      error: null,
      dedupeKey,
      createdAt: clock.now(),
    };
    store.write({ op: 'run.insert', run });
    const active: ActiveRun = { run, state: 'waiting', controller: new AbortController() };
    if (!agents.has(agentId)) void loadAgent(agentId).catch(() => {}); // prefetch, batched with this tick's other fires
    track(active);
    if (scheduledAt > clock.now()) push({ kind: 'retry', runId: run.id, at: scheduledAt });
    else enqueue(active);
    return run;
  }

  function track(active: ActiveRun): void {
    activeByAgent.set(active.run.agentId, active);
    activeById.set(active.run.id, active);
  }

  function untrack(active: ActiveRun): void {
    if (active.state === 'queued') queued--;
    if (active.state === 'running') running--;
    if (activeByAgent.get(active.run.agentId) === active) activeByAgent.delete(active.run.agentId);
    activeById.delete(active.run.id);
    statusChanged();
  }

  function enqueue(active: ActiveRun): void {
    active.state = 'queued';
    queued++;
    statusChanged();
    executor.add(() => execute(active), active.run.priority);
  }

  function retryDue(runId: string): void {
    const active = activeById.get(runId);
    if (!active || active.state !== 'waiting') return;
    enqueue(active);
  }

  async function execute(active: ActiveRun): Promise<void> {
    if (activeById.get(active.run.id) !== active || active.state !== 'queued') return; // dropped while queued
    const { run, controller } = active;
    queued--;
    running++;
    active.state = 'running';
    statusChanged();
    let settle!: () => void;
    const done = new Promise<void>((r) => (settle = r));
    settling.add(done);
    try {
      // No await when the agent is known: the run starts within its fire's slice, not after the whole burst.
      const agent = agents.get(run.agentId) ?? (await loadAgent(run.agentId));
      const handler = agent ? handlers.get(agent.handler) : undefined;
      if (!agent || !handler) {
        finish(active, agent, { kind: 'cancelled', error: agent ? `unknown handler "${agent.handler}"` : 'agent no longer exists' });
        return;
      }
      const startedAt = clock.now();
      run.status = 'running';
      run.startedAt = startedAt;
      store.write({ op: 'run.update', id: run.id, set: { status: 'running', startedAt } });
      updateAgent(agent, { status: 'RUNNING' });
      emit('agent:started', agent.id, { agentId: agent.id, jobId: run.jobId, runId: run.id, attempt: run.attempt, status: 'started', timestamp: iso(startedAt)! });

      const timeoutMs = agent.timeoutMs ?? defaultTimeoutMs;
      const timeout = clock.setTimer(() => controller.abort(new RunAbort('timeout', `timed out after ${timeoutMs} ms`)), timeoutMs);
      // One promise settles on whichever comes first, the handler or its signal: an abort frees the slot
      // even if the handler ignores it.
      const signal = controller.signal;
      const outcome = await new Promise<{ ok: true } | { ok: false; err: unknown }>((resolve) => {
        if (signal.aborted) return resolve({ ok: false, err: signal.reason });
        signal.addEventListener('abort', () => resolve({ ok: false, err: signal.reason }), { once: true });
        let running: Promise<void>;
        try {
          running = handler.run({
            agentId: agent.id,
            jobId: run.jobId,
            runId: run.id,
            attempt: run.attempt,
            scheduledAt: run.scheduledAt,
            config: agent.config,
            signal,
            progress: (update) => progress(active, update),
            log,
          });
        } catch (err) {
          return resolve({ ok: false, err });
        }
        Promise.resolve(running).then(
          () => resolve(COMPLETED),
          (err: unknown) => resolve({ ok: false, err }),
        );
      });
      timeout.cancel();
      if (outcome.ok && !controller.signal.aborted) finish(active, agent, { kind: 'completed' });
      else {
        const reason = controller.signal.aborted ? controller.signal.reason : outcome.ok ? undefined : outcome.err;
        if (reason instanceof RunAbort && (reason.kind === 'cancel' || reason.kind === 'deleted')) finish(active, agent, { kind: 'cancelled', error: reason.message });
        else finish(active, agent, { kind: 'failed', error: errorText(reason) });
      }
    } catch (err) {
      log.error('run failed to execute', { runId: run.id, error: errorText(err) });
      finish(active, agents.get(run.agentId), { kind: 'failed', error: errorText(err) });
    } finally {
      settle();
      settling.delete(done);
    }
  }

  function progress(active: ActiveRun, update: ProgressUpdate): void {
    if (active.state !== 'running' || activeById.get(active.run.id) !== active) return; // late report after the run ended
    const pct = Number.isFinite(update.progress) ? Math.min(100, Math.max(0, update.progress)) : 0;
    active.run.progress = pct;
    store.write({ op: 'run.update', id: active.run.id, set: { progress: pct } });
    emit('agent:progress', active.run.agentId, {
      agentId: active.run.agentId,
      jobId: active.run.jobId,
      runId: active.run.id,
      progress: pct,
      ...(update.message !== undefined && { message: String(update.message) }),
      ...(update.currentStep !== undefined && { currentStep: String(update.currentStep) }),
      ...(update.totalSteps !== undefined && { totalSteps: update.totalSteps }),
      timestamp: nowIso(),
    });
  }

  type Outcome = { kind: 'completed' } | { kind: 'failed'; error: string } | { kind: 'cancelled'; error: string };

  /** Records how a run ended and applies the retry policy. Synchronous: all its writes land in one batch. */
  function finish(active: ActiveRun, agent: AgentRecord | undefined, outcome: Outcome): void {
    const { run } = active;
    if (activeById.get(run.id) !== active) return;
    const now = clock.now();
    const wasRunning = active.state === 'running';
    untrack(active);
    run.status = outcome.kind;
    run.finishedAt = now;
    run.durationMs = run.startedAt === null ? null : now - run.startedAt;
    run.error = outcome.kind === 'completed' ? null : outcome.error;
    store.write({ op: 'run.update', id: run.id, set: { status: run.status, finishedAt: now, durationMs: run.durationMs, error: run.error } });
    noteFinished(run.agentId);
    if (!agent) return;
    const base = { agentId: agent.id, jobId: run.jobId, runId: run.id, timestamp: iso(now)! };

    if (outcome.kind === 'completed') {
      Object.assign(agent, { lastRunAt: wasRunning ? run.startedAt : agent.lastRunAt, lastError: null, retryCount: 0, backoffUntil: null });
      updateAgent(agent, { lastRunAt: agent.lastRunAt, lastError: null, retryCount: 0, backoffUntil: null, status: restingStatus(agent) });
      emit('agent:completed', agent.id, { ...base, attempt: run.attempt, status: 'completed', duration: run.durationMs ?? 0 });
      return;
    }
    if (outcome.kind === 'cancelled') {
      if (wasRunning) updateAgent(agent, { lastRunAt: run.startedAt });
      updateAgent(agent, { status: restingStatus(agent), backoffUntil: null });
      emit('agent:cancelled', agent.id, { ...base, status: 'cancelled' });
      return;
    }

    // failed: retry after base·2^(n-1), or give up after maxRetries retries.
    const retriesDone = run.attempt - 1;
    const maxRetries = agent.maxRetries ?? defaultMaxRetries;
    const job = jobs.get(agent.id);
    const lastRunAt = wasRunning ? run.startedAt : agent.lastRunAt;
    if (retriesDone < maxRetries && !job?.paused) {
      const n = retriesDone + 1;
      const at = now + retryDelay(n, retryPolicy);
      updateAgent(agent, { lastRunAt, lastError: outcome.error, retryCount: n, backoffUntil: at });
      startRun(agent.id, run.jobId, 'retry', run.attempt + 1, run.priority, at, null);
      updateAgent(agent, { status: 'IDLE' });
      emit('agent:failed', agent.id, { ...base, attempt: run.attempt, status: 'failed', error: outcome.error, willRetry: true, nextRetryAt: iso(at) });
      return;
    }
    updateAgent(agent, { lastRunAt, lastError: outcome.error, retryCount: retriesDone, backoffUntil: null, status: 'ERROR' });
    if (job?.enabled) {
      // Retries exhausted: the schedule is removed from firing but kept, so its expression stays visible.
      job.enabled = false;
      store.write({ op: 'schedule.update', agentId: job.agentId, set: { enabled: false } });
      setNext(job, null);
    }
    emit('agent:failed', agent.id, { ...base, attempt: run.attempt, status: 'failed', error: outcome.error, willRetry: false, nextRetryAt: null });
  }

  function noteFinished(agentId: string): void {
    const n = (finishedSinceTrim.get(agentId) ?? 0) + 1;
    if (n >= TRIM_EVERY) {
      finishedSinceTrim.delete(agentId);
      store.write({ op: 'runs.trim', agentId, keep: runHistoryLimit });
    } else finishedSinceTrim.set(agentId, n);
  }

  /** Ends a run that has not started (waiting for its retry, or queued for a slot) as cancelled. */
  function dropPending(active: ActiveRun, why: string): void {
    const agent = agents.get(active.run.agentId);
    finish(active, agent, { kind: 'cancelled', error: why });
  }

  // ---------- start and stop ----------

  async function start(): Promise<void> {
    if (started) return;
    const now = clock.now();
    lastEventId = await store.maxEventId();
    // The loaded records become the jobs in place: at 100,000 schedules a copy each is 100,000 more objects to collect.
    for (const s of await store.loadSchedules()) {
      const job = s as Job;
      job.expression = intern(s.expression);
      job.timezone = intern(s.timezone);
      job.version = 0;
      jobs.set(s.agentId, job);
    }
    started = true;

    // Runs the previous process left open: running ones were interrupted, queued ones queue again.
    for (const run of await store.loadOpenRuns()) {
      // No await when the agent is known: the run starts within its fire's slice, not after the whole burst.
      const agent = agents.get(run.agentId) ?? (await loadAgent(run.agentId));
      const active: ActiveRun = { run, state: 'waiting', controller: new AbortController() };
      track(active);
      if (run.status === 'running') {
        active.state = 'running';
        running++;
        finish(active, agent, { kind: 'failed', error: 'interrupted by restart' });
      } else if (!agent) {
        finish(active, agent, { kind: 'cancelled', error: 'agent no longer exists' });
      } else if (run.scheduledAt > now) {
        push({ kind: 'retry', runId: run.id, at: run.scheduledAt });
      } else {
        enqueue(active);
      }
    }

    // Fires missed while the process was down: one catch-up run (or none with catchUp: false), recorded either way.
    for (const job of jobs.values()) {
      if (!job.enabled || job.paused) continue;
      if (job.nextRunAt === null || job.nextRunAt > now) {
        if (job.nextRunAt === null) setNext(job, nextOccurrence(job.expression, job.timezone, now));
        else push({ kind: 'fire', agentId: job.agentId, version: job.version, at: job.nextRunAt });
        continue;
      }
      let last = job.nextRunAt;
      let missed = 1;
      for (let t = nextOccurrence(job.expression, job.timezone, last); t !== null && t <= now && missed < MISSED_COUNT_LIMIT; t = nextOccurrence(job.expression, job.timezone, t)) {
        last = t;
        missed++;
      }
      const counted = missed >= MISSED_COUNT_LIMIT ? `${MISSED_COUNT_LIMIT}+` : String(missed);
      if (!job.catchUp) recordSkipped(job, 'catchup', last, `missed ${counted} fire(s) while the server was down; catch-up is off`);
      else if (activeByAgent.has(job.agentId)) recordSkipped(job, 'catchup', last, `missed ${counted} fire(s) while the server was down; skipped: the previous run or its retry is still in progress`);
      else {
        startRun(job.agentId, job.jobId, 'catchup', 1, job.priority, last, `${job.jobId}@${last}`);
        log.info('catch-up run queued', { agentId: job.agentId, missed: counted });
      }
      setNext(job, nextOccurrence(job.expression, job.timezone, now));
    }

    store.write({ op: 'events.trim', before: now - eventRetentionMs });
    const trimEvents = () => {
      store.write({ op: 'events.trim', before: clock.now() - eventRetentionMs });
      eventTrimTimer = clock.setTimer(trimEvents, EVENT_TRIM_INTERVAL_MS);
    };
    eventTrimTimer = clock.setTimer(trimEvents, EVENT_TRIM_INTERVAL_MS);
    arm();
    statusChanged();
    await store.flush();
  }

  /**
   * Stops taking new runs, lets running ones finish for up to `graceMs`, then aborts them as
   * interrupted (they fail and their retry is stored, to be picked up by the next start).
   */
  async function stop(graceMs = 10_000): Promise<void> {
    if (stopping) return;
    stopping = true;
    timer?.cancel();
    eventTrimTimer?.cancel();
    statusTimer?.cancel();
    executor.pause();
    if (settling.size > 0) {
      let graceTimer: TimerHandle | undefined;
      await Promise.race([Promise.all(settling), new Promise<void>((r) => (graceTimer = clock.setTimer(r, graceMs)))]);
      graceTimer?.cancel();
    }
    for (const active of activeById.values()) {
      if (active.state === 'running') active.controller.abort(new RunAbort('shutdown', 'interrupted by shutdown'));
    }
    await Promise.all(settling);
    await store.flush();
  }

  // ---------- the operations services call ----------

  function requireJob(agentId: string, jobId: string): Job {
    const job = jobs.get(agentId);
    if (!job || job.jobId !== jobId) throw notFound(`No scheduled task found for agent ${agentId} with job ${jobId}`);
    return job;
  }

  return {
    events: bus,
    start,
    stop,
    stats,
    [Symbol.asyncDispose]: () => stop(),

    /** Creates or replaces the agent's schedule (validated: a bad expression or timezone is a 400). */
    async setSchedule(agent: AgentRecord, spec: ScheduleSpec): Promise<ScheduleRecord> {
      validateCron(spec.expression, spec.timezone);
      if (!Number.isInteger(spec.priority) || spec.priority < 1 || spec.priority > 4) throw badRequest(`priority: expected 1 to 4, got ${spec.priority}`);
      // The caller's fresh record serves when the scheduler holds no copy: no read per schedule.
      const cached = agents.get(agent.id) ?? agent;
      const now = clock.now();
      const previous = jobs.get(agent.id);
      const nextRunAt = spec.enabled ? nextOccurrence(spec.expression, spec.timezone, now) : null;
      const job: Job = {
        agentId: agent.id,
        ...spec,
        expression: intern(spec.expression),
        timezone: intern(spec.timezone),
        paused: false,
        nextRunAt,
        createdAt: previous?.createdAt ?? now,
        updatedAt: now,
        version: (previous?.version ?? 0) + 1,
      };
      const { version: _v, ...record } = job;
      store.write({ op: 'schedule.upsert', schedule: record });
      jobs.set(agent.id, job);
      if (nextRunAt !== null) push({ kind: 'fire', agentId: agent.id, version: job.version, at: nextRunAt });
      // A new schedule clears an exhausted agent's error state (lastError stays visible); RUNNING stays RUNNING.
      if (cached.status !== 'RUNNING') {
        const wasError = cached.status === 'ERROR';
        if (wasError) cached.status = 'IDLE';
        updateAgent(cached, { ...(wasError && { retryCount: 0, backoffUntil: null }), status: restingStatus(cached) });
      }
      statusChanged();
      await store.flush();
      return record;
    },

    async removeSchedule(agentId: string): Promise<void> {
      const job = jobs.get(agentId);
      if (!job) throw notFound(`No scheduled task found for agent ${agentId}`);
      jobs.delete(agentId);
      store.write({ op: 'schedule.delete', agentId });
      const active = activeByAgent.get(agentId);
      if (active && active.state !== 'running') dropPending(active, 'dropped: agent unscheduled');
      const agent = await loadAgent(agentId);
      if (agent && agent.status !== 'RUNNING') updateAgent(agent, { status: restingStatus(agent) });
      statusChanged();
      await store.flush();
    },

    async pause(agentId: string, jobId: string): Promise<void> {
      const job = requireJob(agentId, jobId);
      const active = activeByAgent.get(agentId);
      if (active?.state === 'running') throw conflict(`Cannot pause agent ${agentId} while it is running`);
      if (!job.paused) {
        if (active) dropPending(active, 'dropped: job paused');
        job.paused = true;
        job.version++;
        job.updatedAt = clock.now();
        store.write({ op: 'schedule.update', agentId, set: { paused: true, updatedAt: job.updatedAt } });
        const agent = await loadAgent(agentId);
        if (agent) updateAgent(agent, { status: 'PAUSED', retryCount: 0, backoffUntil: null });
        emit('agent:paused', agentId, { agentId, jobId, status: 'paused', timestamp: nowIso() });
        statusChanged();
      }
      await store.flush();
    },

    async resume(agentId: string, jobId: string): Promise<number | null> {
      const job = requireJob(agentId, jobId);
      if (!job.paused) throw badRequest(`Job ${jobId} is not paused`);
      job.paused = false;
      store.write({ op: 'schedule.update', agentId, set: { paused: false } });
      // Runs missed while paused are not made up: the next occurrence after now.
      setNext(job, job.enabled ? nextOccurrence(job.expression, job.timezone, clock.now()) : null);
      const agent = await loadAgent(agentId);
      if (agent && agent.status !== 'RUNNING') updateAgent(agent, { status: restingStatus(agent) });
      emit('agent:resumed', agentId, { agentId, jobId, status: 'resumed', nextRunAt: iso(job.nextRunAt), timestamp: nowIso() });
      statusChanged();
      await store.flush();
      return job.nextRunAt;
    },

    /** One run now through the same queue and retry policy; skipped (and recorded) if one is in progress. */
    async runNow(agent: AgentRecord): Promise<RunRecord> {
      if (stopping) throw new DomainError('CONFLICT', 'The scheduler is shutting down');
      await loadAgent(agent.id);
      const job = jobs.get(agent.id);
      const jobId = job?.jobId ?? agent.id;
      const priority = job?.priority ?? 2;
      const now = clock.now();
      const run = activeByAgent.has(agent.id)
        ? recordSkipped({ agentId: agent.id, jobId, priority }, 'manual', now, 'skipped: the previous run or its retry is still in progress')
        : startRun(agent.id, jobId, 'manual', 1, priority, now, null);
      await store.flush();
      return run;
    },

    /** Cancels a run the scheduler holds; false when it holds no such run (finished or unknown). */
    async cancel(runId: string): Promise<boolean> {
      const active = activeById.get(runId);
      if (!active) return false;
      if (active.state === 'running') {
        active.controller.abort(new RunAbort('cancel', 'cancelled'));
        await Promise.resolve(); // let the race in execute() settle, so the run is cancelled on return
      } else dropPending(active, 'cancelled');
      await store.flush();
      return true;
    },

    /** Forget an agent that is being deleted: abort its run, drop its retry and schedule. */
    async forgetAgent(agentId: string): Promise<void> {
      const active = activeByAgent.get(agentId);
      if (active?.state === 'running') active.controller.abort(new RunAbort('deleted', 'agent deleted'));
      else if (active) dropPending(active, 'agent deleted');
      jobs.delete(agentId);
      agents.delete(agentId);
      statusChanged();
      await store.flush();
    },

    /** Keeps the scheduler's cached copy of an agent in step with an update made by a service. */
    agentUpdated(agent: AgentRecord): void {
      const cached = agents.get(agent.id);
      if (cached) Object.assign(cached, { name: agent.name, config: agent.config, description: agent.description, timeoutMs: agent.timeoutMs, maxRetries: agent.maxRetries });
    },

    isRunning: (agentId: string) => activeByAgent.get(agentId)?.state === 'running',
    schedule: (agentId: string): Readonly<ScheduleRecord> | undefined => jobs.get(agentId),
    pausedJobs: () => [...jobs.values()].filter((j) => j.paused).map((j) => ({ agentId: j.agentId, jobId: j.jobId })),
    lastEventId: () => lastEventId,
  };
}
