import { DAY_MS } from '../core/budgets.ts';
import { badRequest, conflict, notFound, tooManyRequests } from '../core/errors.ts';
import { MANUAL_RUNS_PER_MINUTE, MAX_AGENTS_PER_OWNER, SCHEDULER_DEFAULTS } from '../core/limits.ts';
import type { HandlerRegistry } from '../core/handlers.ts';
import type { InstanceRegistry } from '../core/instances.ts';
import type { Scheduler } from '../core/scheduler.ts';
import type { AgentRecord, RunRecord, Store } from '../core/store.ts';
import type { AgentCreateInput, AgentUpdateInput } from '../schemas/agent.ts';
import { PRIORITIES } from '../schemas/common.ts';
import type { PauseInput, ScheduleInput } from '../schemas/schedule.ts';
import type { Principal } from './auth.ts';
import { createEventsService } from './events.ts';
import { createIdempotentRuns } from './idempotency.ts';
import { createScheduleViews } from './schedule-views.ts';
import type { HealthService } from './health.ts';
import { mayAccess, ownedAgent } from './ownership.ts';
import {
  agentView, catchUpSpec, cancelledView, deletedView, instanceView, pausedView, resumedView, runAcceptedView, runDetailView, runView, scheduleSetView, scheduleView, unscheduledView, usageView,
} from './views.ts';

/**
 * The use cases every transport shares, over the storage port and the scheduler. Who may see what is
 * decided in `ownership.ts`; answers are shaped in `views.ts`; `procedures.ts` lists every call.
 * Reads see the store's pending writes, so nothing here flushes to read.
 */
export interface ServicesDeps {
  store: Store;
  scheduler: Scheduler;
  handlers: HandlerRegistry;
  /** The live instances sharing the database (core/instances.ts). */
  instances: Pick<InstanceRegistry, 'live'>;
  /** @default Date.now */
  now?: () => number;
  /** What `/healthz` answers (services/health.ts). @default always `{ ok: true }` */
  health?: Pick<HealthService, 'check'>;
  /** The limits a caller meets here (README "Errors and limits"); app.ts passes the configured ones. @default those of core/limits.ts */
  limits?: Partial<ServiceLimits>;
}

export interface ServiceLimits {
  /** Agents one owner may hold (MAX_AGENTS_PER_OWNER). @default 10000 */
  maxAgentsPerOwner: number;
  /** Manual runs one agent may be asked for in any 60 s (MANUAL_RUNS_PER_MINUTE). @default 60 */
  manualRunsPerMinute: number;
  /** The longest `timeoutMs` a non-admin may give an agent (AGENT_TIMEOUT_MS). @default 900000 */
  agentTimeoutMs: number;
  /** An instance whose heartbeat is older than this is down, for the ledger (INSTANCE_LEASE_MS). @default 30000 */
  leaseMs: number;
}

/** The window MANUAL_RUNS_PER_MINUTE counts over. */
const MINUTE_MS = 60_000;

/**
 * Runs `fn` after every earlier call for the same key has settled: a check-then-write (a count, then an
 * insert) is not raced by a second request of this process. Across instances the database count still
 * holds, give or take the requests in flight on the others at that instant.
 */
function keyedSerial() {
  const tails = new Map<string, Promise<unknown>>();
  return <T>(key: string, fn: () => Promise<T>): Promise<T> => {
    const prev = tails.get(key) ?? Promise.resolve();
    const next = prev.then(fn, fn);
    const tail = next.catch(() => {});
    tails.set(key, tail);
    void tail.then(() => {
      if (tails.get(key) === tail) tails.delete(key);
    });
    return next;
  };
}

export type Services = ReturnType<typeof createServices>;

/** What `agents.usage` covers when no range is given (CONTRACT §9). */
const USAGE_DEFAULT_DAYS = 30;

function randomId(): string {
  return `agent_${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;
}

const ALWAYS_HEALTHY: Pick<HealthService, 'check'> = { check: async () => ({ ok: true }) };

export function createServices({ store, scheduler, handlers, instances, now = Date.now, health = ALWAYS_HEALTHY, limits: given = {} }: ServicesDeps) {
  const limits: ServiceLimits = {
    maxAgentsPerOwner: given.maxAgentsPerOwner ?? MAX_AGENTS_PER_OWNER,
    manualRunsPerMinute: given.manualRunsPerMinute ?? MANUAL_RUNS_PER_MINUTE,
    agentTimeoutMs: given.agentTimeoutMs ?? SCHEDULER_DEFAULTS.AGENT_TIMEOUT_MS,
    leaseMs: given.leaseMs ?? SCHEDULER_DEFAULTS.INSTANCE_LEASE_MS,
  };
  const serial = keyedSerial();
  const idempotent = createIdempotentRuns({ store, now });
  const scheduleViews = createScheduleViews({ store, scheduler, now, leaseMs: limits.leaseMs });
  /** A non-admin's agent may not outlast the server's own run timeout; an admin may set up to the schema's bound. */
  const checkTimeout = (p: Principal, timeoutMs: number | null | undefined) => {
    if (!p.admin && timeoutMs != null && timeoutMs > limits.agentTimeoutMs) {
      throw badRequest(`timeoutMs: expected at most ${limits.agentTimeoutMs} (AGENT_TIMEOUT_MS; only an admin may set more), got ${timeoutMs}`);
    }
  };
  const owned = (p: Principal, agentId: string) => ownedAgent(store, p, agentId);
  const view = (a: AgentRecord) => agentView(a, scheduler.schedule(a.id));
  /**
   * On a shared database, the agent's open runs as stored: one running or queued on another instance
   * decides a pause (409) and is dropped with it, however many finished runs (skipped fires) are newer; on
   * a SQLite file the scheduler holds every open run itself.
   */
  const openRuns = async (agentId: string): Promise<RunRecord[]> => (store.shared ? store.openRuns(agentId) : []);

  return {
    agents: {
      async create(p: Principal, input: AgentCreateInput) {
        checkTimeout(p, input.timeoutMs);
        const config = handlers.parseConfig(input.handler, input.config);
        const t = now();
        const agent: AgentRecord = {
          id: input.id ?? randomId(),
          owner: p.sub,
          name: input.name,
          handler: input.handler,
          config,
          description: input.description ?? null,
          timeoutMs: input.timeoutMs ?? null,
          maxRetries: input.maxRetries ?? null,
          status: 'IDLE',
          lastRunAt: null,
          lastError: null,
          retryCount: 0,
          backoffUntil: null,
          budget: input.budget ?? null,
          createdAt: t,
          updatedAt: t,
        };
        // Counted and inserted in turn per owner, so two creates of one owner at once cannot both pass the count.
        await serial(`owner:${p.sub}`, async () => {
          const held = await store.countAgents(p.sub);
          if (held >= limits.maxAgentsPerOwner) {
            throw conflict(`Too many agents: an owner may hold at most ${limits.maxAgentsPerOwner} (MAX_AGENTS_PER_OWNER); delete one first`);
          }
          // Ids are global: a taken id is a conflict whoever owns it.
          if (!(await store.insertAgent(agent))) throw conflict(`Agent id "${agent.id}" already exists`);
        });
        return view(agent);
      },
      async list(p: Principal) {
        return (await store.listAgents(p.admin ? null : p.sub)).map(view);
      },
      async get(p: Principal, agentId: string) {
        return view(await owned(p, agentId));
      },
      async update(p: Principal, agentId: string, input: AgentUpdateInput) {
        const agent = await owned(p, agentId);
        checkTimeout(p, input.timeoutMs);
        const set: Partial<AgentRecord> = {};
        if (input.name !== undefined) set.name = input.name;
        if (input.config !== undefined) set.config = handlers.parseConfig(agent.handler, input.config);
        if (input.description !== undefined) set.description = input.description;
        if (input.timeoutMs !== undefined) set.timeoutMs = input.timeoutMs;
        if (input.maxRetries !== undefined) set.maxRetries = input.maxRetries;
        // A new budget counts from the next finished run; a job paused for the old one stays paused until resumed or its period ends.
        if (input.budget !== undefined) set.budget = input.budget;
        set.updatedAt = now();
        await scheduler.updateAgent(agentId, set);
        const updated = { ...agent, ...set };
        return view(updated);
      },
      async remove(p: Principal, agentId: string) {
        await owned(p, agentId);
        await scheduler.forgetAgent(agentId);
        // The marker ends every live subscription to the agent, on every instance (services/events.ts).
        const at = now();
        await store.deleteAgent(agentId, { type: 'agent:deleted', agentId: null, data: { agentId, timestamp: new Date(at).toISOString() }, createdAt: at });
        return deletedView(agentId);
      },
      /** A manual run; with an idempotency key, the run that key already made (for 24 h) or a new one. */
      async run(p: Principal, agentId: string, idempotencyKey?: string) {
        const agent = await owned(p, agentId);
        // Counted from the runs table (skipped ones too: each is a stored run), so the limit holds across instances.
        const make = async () => (await serial(`run:${agentId}`, async () => {
          const t = now();
          const recent = await store.countRunsSince(agentId, 'manual', t - MINUTE_MS + 1);
          if (recent >= limits.manualRunsPerMinute) {
            throw tooManyRequests(`Too many manual runs of agent ${agentId}: at most ${limits.manualRunsPerMinute} in any 60 s (MANUAL_RUNS_PER_MINUTE); try again shortly`);
          }
          return scheduler.runNow(agent);
        })).id;
        return runAcceptedView(idempotencyKey === undefined ? await make() : await idempotent(agentId, idempotencyKey, make));
      },
      async runs(p: Principal, agentId: string, limit: number) {
        await owned(p, agentId);
        return (await store.listRuns(agentId, limit)).map(runView);
      },
      /** Usage of the runs that finished in [from, to): by default the last 30 days up to now. */
      async usage(p: Principal, agentId: string, range: { from?: number | undefined; to?: number | undefined }) {
        await owned(p, agentId);
        const to = range.to ?? now() + 1; // exclusive: a run finished this millisecond counts
        const from = range.from ?? to - USAGE_DEFAULT_DAYS * DAY_MS;
        if (from >= to) throw badRequest(`query.from: expected an instant before query.to, got ${new Date(from).toISOString()}`);
        return usageView(await store.usageByDay(agentId, from, to));
      },
    },

    schedule: {
      /** `created` tells a new schedule from a replaced one (REST answers 201 or 200). */
      async set(p: Principal, agentId: string, input: ScheduleInput) {
        const agent = await owned(p, agentId);
        const existed = scheduler.schedule(agentId) !== undefined;
        const s = await scheduler.setSchedule(agent, {
          jobId: input.jobId ?? agentId,
          expression: input.cronExpression,
          timezone: input.timezone,
          priority: PRIORITIES[input.priority],
          enabled: input.enabled,
          ...catchUpSpec(input.catchUp),
          overlap: input.overlap,
          jitterMs: input.jitterMs,
        });
        return { created: !existed, schedule: scheduleSetView(agent, s, input.priority) };
      },
      async get(p: Principal, agentId: string) {
        const agent = await owned(p, agentId);
        return scheduleView(agent, scheduler.schedule(agentId), scheduler.isRunning(agentId));
      },
      async remove(p: Principal, agentId: string) {
        await owned(p, agentId);
        await scheduler.removeSchedule(agentId, await openRuns(agentId));
        return unscheduledView(agentId);
      },
      async pause(p: Principal, agentId: string, jobId: string, how: PauseInput = {}) {
        await owned(p, agentId);
        await scheduler.pause(agentId, jobId, await openRuns(agentId), how);
        return pausedView(agentId, jobId);
      },
      async resume(p: Principal, agentId: string, jobId: string) {
        await owned(p, agentId);
        const next = await scheduler.resume(agentId, jobId);
        return resumedView(agentId, jobId, next);
      },
      ...scheduleViews,
    },

    scheduler: {
      /** On a shared store the whole cluster's figures, read from the database; this process's own otherwise (core/status.ts). */
      status: () => scheduler.figures(),
      async paused(p: Principal) {
        const jobs = scheduler.pausedJobs();
        if (p.admin) return jobs;
        const mine = new Set((await store.listAgents(p.sub)).map((a) => a.id));
        return jobs.filter((j) => mine.has(j.agentId));
      },
    },

    runs: {
      async get(p: Principal, runId: string) {
        const run = await store.getRun(runId);
        if (!run) throw notFound(`Run ${runId} not found`);
        const agent = await store.getAgent(run.agentId);
        if (!agent || !mayAccess(p, agent)) throw notFound(`Run ${runId} not found`);
        return runDetailView(run);
      },
      async cancel(p: Principal, runId: string) {
        const run = await store.getRun(runId);
        if (!run) throw notFound(`Run ${runId} not found`);
        const agent = await store.getAgent(run.agentId);
        if (!agent || !mayAccess(p, agent)) throw notFound(`Run ${runId} not found`);
        if (!(await scheduler.cancel(runId, run))) throw conflict(`Run ${runId} has already finished (${run.status})`);
        return cancelledView(runId);
      },
    },

    instances: {
      /** Who may call it is the procedure's business (admin only); every live instance is listed. */
      async list() {
        return (await instances.live()).map(instanceView);
      },
    },

    events: createEventsService({ store, scheduler }),

    /** `/healthz`: degraded (still 200) while the database or the signals between instances are away. */
    health: () => health.check(),
  };
}
