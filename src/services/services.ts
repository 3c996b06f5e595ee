import { conflict, notFound } from '../core/errors.ts';
import type { HandlerRegistry } from '../core/handlers.ts';
import type { Scheduler } from '../core/scheduler.ts';
import type { AgentRecord } from '../core/store.ts';
import type { AgentCreateInput, AgentUpdateInput } from '../schemas/agent.ts';
import { PRIORITIES } from '../schemas/common.ts';
import type { ScheduleInput } from '../schemas/schedule.ts';
import type { Repository } from '../storage/repository.ts';
import type { Principal } from './auth.ts';
import { agentView, iso, runView, scheduleView } from './views.ts';

/**
 * The use cases every transport shares. Who may see what is decided here, once: an agent belongs to
 * the `sub` that created it, an admin sees all, and another owner's agent answers as a missing one.
 */
export interface ServicesDeps {
  repo: Repository;
  scheduler: Scheduler;
  handlers: HandlerRegistry;
  now?: () => number;
}

export type Services = ReturnType<typeof createServices>;

function randomId(): string {
  return `agent_${crypto.randomUUID().replace(/-/g, '').slice(0, 16)}`;
}

export function createServices({ repo, scheduler, handlers, now = Date.now }: ServicesDeps) {
  async function owned(p: Principal, agentId: string): Promise<AgentRecord> {
    const agent = await repo.getAgent(agentId);
    if (!agent || (!p.admin && agent.owner !== p.sub)) throw notFound(`Agent ${agentId} not found`);
    return agent;
  }

  /** The stored agent once the scheduler's batched writes are committed, so status and times are current. */
  async function current(p: Principal, agentId: string): Promise<AgentRecord> {
    await repo.flush();
    return owned(p, agentId);
  }

  const view = (a: AgentRecord) => agentView(a, scheduler.schedule(a.id));

  return {
    agents: {
      async create(p: Principal, input: AgentCreateInput) {
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
          createdAt: t,
          updatedAt: t,
        };
        // Ids are global: a taken id is a conflict whoever owns it (CONTRACT §2).
        if (!(await repo.insertAgent(agent))) throw conflict(`Agent id "${agent.id}" already exists`);
        return view(agent);
      },
      async list(p: Principal) {
        await repo.flush();
        return (await repo.listAgents(p.admin ? null : p.sub)).map(view);
      },
      async get(p: Principal, agentId: string) {
        return view(await current(p, agentId));
      },
      async update(p: Principal, agentId: string, input: AgentUpdateInput) {
        const agent = await current(p, agentId);
        const set: Partial<AgentRecord> = {};
        if (input.name !== undefined) set.name = input.name;
        if (input.config !== undefined) set.config = handlers.parseConfig(agent.handler, input.config);
        if (input.description !== undefined) set.description = input.description;
        if (input.timeoutMs !== undefined) set.timeoutMs = input.timeoutMs;
        if (input.maxRetries !== undefined) set.maxRetries = input.maxRetries;
        set.updatedAt = now();
        await repo.updateAgentFields(agentId, set);
        const updated = { ...agent, ...set };
        scheduler.agentUpdated(updated);
        return view(updated);
      },
      async remove(p: Principal, agentId: string) {
        await owned(p, agentId);
        await scheduler.forgetAgent(agentId);
        await repo.deleteAgent(agentId);
        return { id: agentId, deleted: true as const };
      },
      async run(p: Principal, agentId: string) {
        const agent = await owned(p, agentId);
        const run = await scheduler.runNow(agent);
        return { runId: run.id };
      },
      async runs(p: Principal, agentId: string, limit: number) {
        await current(p, agentId);
        return (await repo.listRuns(agentId, limit)).map(runView);
      },
    },

    schedule: {
      async set(p: Principal, agentId: string, input: ScheduleInput) {
        const agent = await owned(p, agentId);
        const existed = scheduler.schedule(agentId) !== undefined;
        const s = await scheduler.setSchedule(agent, {
          jobId: input.jobId ?? agentId,
          expression: input.cronExpression,
          timezone: input.timezone,
          priority: PRIORITIES[input.priority],
          enabled: input.enabled,
          catchUp: input.catchUp,
        });
        return {
          created: !existed,
          data: { id: agent.id, name: agent.name, scheduleExpression: s.expression, scheduleEnabled: s.enabled, nextRunAt: iso(s.nextRunAt), jobId: s.jobId, priority: input.priority, timezone: s.timezone },
        };
      },
      async get(p: Principal, agentId: string) {
        const agent = await current(p, agentId);
        return scheduleView(agent, scheduler.schedule(agentId), scheduler.isRunning(agentId));
      },
      async remove(p: Principal, agentId: string) {
        await owned(p, agentId);
        await scheduler.removeSchedule(agentId);
      },
      async pause(p: Principal, agentId: string, jobId: string) {
        await owned(p, agentId);
        await scheduler.pause(agentId, jobId);
        return { agentId, jobId, status: 'paused' as const };
      },
      async resume(p: Principal, agentId: string, jobId: string) {
        await owned(p, agentId);
        const next = await scheduler.resume(agentId, jobId);
        return { agentId, jobId, status: 'resumed' as const, nextRunAt: iso(next) };
      },
    },

    scheduler: {
      status: () => scheduler.stats(),
      /** The figures now, numbered with the last event id, so a stream that starts with them resumes after it. */
      snapshot: () => ({ id: scheduler.lastEventId(), type: 'scheduler:status' as const, agentId: null, data: { stats: scheduler.stats(), timestamp: new Date().toISOString() } }),
      async paused(p: Principal) {
        const jobs = scheduler.pausedJobs();
        if (p.admin) return jobs;
        const mine = new Set((await repo.listAgents(p.sub)).map((a) => a.id));
        return jobs.filter((j) => mine.has(j.agentId));
      },
    },

    runs: {
      async cancel(p: Principal, runId: string) {
        await repo.flush();
        const run = await repo.getRun(runId);
        if (!run) throw notFound(`Run ${runId} not found`);
        const agent = await repo.getAgent(run.agentId);
        if (!agent || (!p.admin && agent.owner !== p.sub)) throw notFound(`Run ${runId} not found`);
        if (!(await scheduler.cancel(runId))) throw conflict(`Run ${runId} has already finished (${run.status})`);
        return { runId, status: 'cancelled' as const };
      },
    },
  };
}
