import type { AgentStatus } from '../schemas/common.ts';
import type { ActiveRuns } from './active-runs.ts';
import type { Clock } from './clock.ts';
import type { Schedules } from './schedules.ts';
import type { AgentRecord, Fence, SchedulerStore } from './store.ts';

/** The fields of an agent anyone may change (its id and owner never change). */
export type AgentPatch = Partial<Omit<AgentRecord, 'id' | 'owner'>>;

/**
 * The agents the scheduler works with, cached on first use, and every change it makes to them.
 * The cache is the scheduler's working copy: each change is applied to it and written through the
 * store's batch, so reads of the cache never wait on the database.
 */
export type AgentState = ReturnType<typeof createAgentState>;

const ignore = () => {};

export function createAgentState(store: SchedulerStore, clock: Clock, schedules: Schedules, active: ActiveRuns) {
  const cache = new Map<string, AgentRecord>();

  /**
   * Reads asked for in one turn of the event loop share one query: when thousands of schedules fire
   * at once, their agents arrive in a few reads. Every caller of a read hears its answer or its error:
   * one that heard neither (an outage failed the query) would leave its run waiting, and renewed, forever.
   */
  interface Waiter {
    resolve(a: AgentRecord | undefined): void;
    reject(err: unknown): void;
  }
  let loading: Map<string, Waiter[]> | undefined;
  /** The ids of the read being gathered that must be read from the store even though cached (`refresh`). */
  let forced: Set<string> | undefined;
  function read(id: string, fresh: boolean): Promise<AgentRecord | undefined> {
    const cached = fresh ? undefined : cache.get(id);
    if (cached) return Promise.resolve(cached);
    return new Promise((resolve, reject) => {
      if (!loading) {
        const batch = (loading = new Map());
        const stale = (forced = new Set());
        queueMicrotask(() => {
          loading = forced = undefined;
          store.getAgents([...batch.keys()]).then(
            (found) => {
              const byId = new Map(found.map((a) => [a.id, a]));
              for (const [agentId, waiters] of batch) {
                const stored = byId.get(agentId);
                // A refreshed agent is the stored one from now (or none); another keeps the copy cached meanwhile.
                const agent = stale.has(agentId) ? stored : (cache.get(agentId) ?? stored);
                if (agent) cache.set(agentId, agent);
                else cache.delete(agentId);
                for (const w of waiters) w.resolve(agent);
              }
            },
            // The cached copies stay: a run that fails here is finished with its agent, so its retry policy holds.
            (err: unknown) => {
              for (const waiters of batch.values()) for (const w of waiters) w.reject(err);
            },
          );
        });
      }
      if (fresh) forced!.add(id);
      const waiters = loading.get(id);
      if (waiters) waiters.push({ resolve, reject });
      else loading.set(id, [{ resolve, reject }]);
    });
  }
  const load = (id: string) => read(id, false);

  /**
   * Applies `set` to `agent` (a cached copy, or the caller's own record) and writes it, stamped with
   * `updatedAt`. `set` must be a fresh object: it becomes the write op, which the store owns from then on.
   * `fence`: a change that follows from a held run applies only while the run is still this instance's.
   */
  function write(agent: AgentRecord, set: AgentPatch, fence?: Fence): void {
    Object.assign(agent, set);
    agent.updatedAt = set.updatedAt = clock.now();
    store.write(fence ? { op: 'agent.update', id: agent.id, set, fence } : { op: 'agent.update', id: agent.id, set });
  }

  return {
    get: (id: string) => cache.get(id),
    load,
    /** Starts loading an agent a run will need, batched with this tick's other reads. */
    prefetch(id: string): void {
      if (!cache.has(id)) void load(id).catch(ignore);
    },
    write,
    /**
     * The agent as stored now, for a run about to start or be retried on a shared store: another instance
     * may have changed it (its config, limits, retry state) since this one cached it. Batched like `load`.
     */
    refresh: (id: string) => read(id, true),
    forget(id: string): void {
      cache.delete(id);
    },

    /**
     * A change a service makes (name, config, limits …): the whole patch is merged into the cached
     * copy, so no field can go stale there, and written through the same batch as the scheduler's own
     * changes, so the two never overtake each other. Resolves once it is committed.
     */
    async update(id: string, set: AgentPatch): Promise<void> {
      const cached = cache.get(id);
      if (cached) Object.assign(cached, set);
      store.write({ op: 'agent.update', id, set: { ...set } });
      await store.flush();
    },

    /** The status of an agent with nothing running (README, "Agent status"). */
    restingStatus(agent: AgentRecord): AgentStatus {
      const s = schedules.get(agent.id);
      if (s?.paused) return 'PAUSED';
      if (s?.enabled && s.nextRunAt !== null) return 'IDLE';
      if (active.busy(agent.id)) return 'IDLE'; // a retry is pending
      if (agent.lastRunAt !== null && agent.lastError === null) return 'COMPLETED';
      return agent.status === 'ERROR' ? 'ERROR' : 'IDLE';
    },
  };
}
