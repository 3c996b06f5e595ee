import { useQuery } from '@tanstack/preact-query';
import cronstrue from 'cronstrue';
import { client, keys, when, type Agent } from './api.ts';
import type { LiveRun } from './live.ts';
import { ProgressBar } from './progress.tsx';

/** A cron expression in words ("Every 5 minutes"), or nothing when cronstrue cannot read it. */
export function cronWords(expression: string): string {
  try {
    return cronstrue.toString(expression, { use24HourTimeFormat: true });
  } catch {
    return '';
  }
}

/** The caller's agents, one row each, with the live bar of the latest run. */
export function AgentsTable({ agents, live, selected, onSelect }: { agents: Agent[]; live: Record<string, LiveRun>; selected: string | null; onSelect: (id: string) => void }) {
  if (agents.length === 0) return <p class="empty">No agents yet: create one below.</p>;
  return (
    <table class="agents" aria-label="Agents">
      <thead>
        <tr><th>Name</th><th>Id</th><th>Handler</th><th>Status</th><th>Schedule</th><th>Next run</th><th>Last run</th><th>Paused</th><th>Progress</th></tr>
      </thead>
      <tbody>
        {agents.map((a) => <AgentRow key={a.id} agent={a} live={live[a.id]} selected={selected === a.id} onSelect={onSelect} />)}
      </tbody>
    </table>
  );
}

function AgentRow({ agent, live, selected, onSelect }: { agent: Agent; live: LiveRun | undefined; selected: boolean; onSelect: (id: string) => void }) {
  // The timezone and the pause's reason live on the schedule, not the agent.
  const schedule = useQuery({
    queryKey: keys.schedule(agent.id),
    queryFn: () => client.schedule.get.query({ agentId: agent.id }),
    enabled: agent.scheduleExpression !== null,
  });
  const task = schedule.data?.taskDetails ?? null;
  // A run already going when the page loaded has sent no event yet: its bar starts from the runs list.
  const runs = useQuery({
    queryKey: keys.runs(agent.id),
    queryFn: () => client.agents.runs.query({ agentId: agent.id, limit: 20 }),
    enabled: !live && agent.status === 'RUNNING',
  });
  const running = runs.data?.find((r) => r.status === 'running');
  const bar: LiveRun | undefined = live ?? (running && agent.status === 'RUNNING' ? { runId: running.id, progress: running.progress ?? 0, status: 'running' } : undefined);
  return (
    <tr class={selected ? 'selected' : undefined}>
      <td><button type="button" class="link" aria-pressed={selected} onClick={() => onSelect(agent.id)}>{agent.name}</button></td>
      <td><code>{agent.id}</code></td>
      <td>{agent.handler}</td>
      <td><span class={`status ${agent.status.toLowerCase()}`}>{agent.status}</span></td>
      <td>
        {agent.scheduleExpression
          ? <><code>{agent.scheduleExpression}</code> <span class="words">{cronWords(agent.scheduleExpression)}</span>{task && <small> ({task.timezone})</small>}</>
          : '—'}
      </td>
      <td>{when(agent.nextRunAt)}</td>
      <td>{when(agent.lastRunAt)}</td>
      <td>{task?.isPaused ? <>yes: {task.pauseReason}{task.pauseNote && <> — {task.pauseNote}</>}</> : 'no'}</td>
      <td>{bar ? <ProgressBar agentName={agent.name} run={bar} /> : '—'}</td>
    </tr>
  );
}
