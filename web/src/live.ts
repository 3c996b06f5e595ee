import { useEffect, useState } from 'preact/hooks';
import { client, keys, queryClient } from './api.ts';

/** The latest run of an agent as its events tell it: what the progress bars draw. */
export interface LiveRun { runId: string; progress: number; status: 'running' | 'completed' | 'failed' | 'cancelled'; message?: string }

/**
 * One `events.agent` subscription per listed agent (tRPC over the page's one WebSocket). Each event refreshes
 * that agent's queries and the list (TanStack invalidation); progress events also move that agent's bar.
 * Subscriptions resume by themselves after a reconnect (the client passes the last event id).
 */
export function useLiveRuns(agentIds: string[]): Record<string, LiveRun> {
  const [live, setLive] = useState<Record<string, LiveRun>>({});
  const idsKey = agentIds.join('\n');
  useEffect(() => {
    const subs = agentIds.map((agentId) => client.events.agent.subscribe({ agentId }, {
      onData: ({ data: event }) => {
        const set = (run: LiveRun) => setLive((prev) => ({ ...prev, [agentId]: run }));
        switch (event.type) {
          case 'agent:started': set({ runId: event.data.runId, progress: 0, status: 'running' }); break;
          case 'agent:progress': {
            const { runId, progress, message } = event.data;
            set({ runId, progress, status: 'running', ...(message !== undefined && { message }) });
            // Progress is frequent: only the bar moves; the lists refresh on start and end.
            return;
          }
          case 'agent:completed': set({ runId: event.data.runId, progress: 100, status: 'completed' }); break;
          case 'agent:failed': setLive((prev) => ({ ...prev, [agentId]: { runId: event.data.runId, progress: prev[agentId]?.progress ?? 0, status: 'failed' } })); break;
          case 'agent:cancelled': setLive((prev) => ({ ...prev, [agentId]: { runId: event.data.runId, progress: prev[agentId]?.progress ?? 0, status: 'cancelled' } })); break;
          default: break;
        }
        void queryClient.invalidateQueries({ queryKey: keys.agent(agentId) });
        void queryClient.invalidateQueries({ queryKey: keys.agents });
      },
    }));
    return () => subs.forEach((s) => s.unsubscribe());
    // Resubscribes only when the set of agents changes, not on every new array.
  }, [idsKey]);
  return live;
}

export type SchedulerStats = { runningAgentsCount: number; queuedTasksCount: number; maxConcurrentAgents: number; scheduledTasksCount: number; pausedJobsCount: number };

/** The scheduler-wide figures (`events.scheduler`: the current ones first, then every change). */
export function useSchedulerStats(): SchedulerStats | null {
  const [stats, setStats] = useState<SchedulerStats | null>(null);
  useEffect(() => {
    const sub = client.events.scheduler.subscribe(undefined, {
      onData: ({ data: event }) => {
        if (event.type === 'scheduler:status') setStats(event.data.stats);
      },
    });
    return () => sub.unsubscribe();
  }, []);
  return stats;
}
