import { useMutation, useQuery } from '@tanstack/preact-query';
import { useState } from 'preact/hooks';
import { client, keys, messageOf, queryClient, type Agent } from './api.ts';
import { Ledger } from './ledger.tsx';
import { Runs, Usage } from './runs.tsx';
import { ScheduleForm } from './schedule.tsx';

/** One agent: its actions (run now, pause, resume, delete), its schedule and what became of its slots, its runs and its usage. */
export function AgentDetail({ agent, onDeleted }: { agent: Agent; onDeleted: () => void }) {
  const schedule = useQuery({ queryKey: keys.schedule(agent.id), queryFn: () => client.schedule.get.query({ agentId: agent.id }), enabled: agent.scheduleExpression !== null });
  const task = schedule.data?.taskDetails ?? null;
  const [confirmDelete, setConfirmDelete] = useState(false);
  const refresh = () => Promise.all([
    queryClient.invalidateQueries({ queryKey: keys.agent(agent.id) }),
    queryClient.invalidateQueries({ queryKey: keys.agents }),
  ]);
  const action = useMutation({
    mutationFn: async (what: 'run' | 'pause' | 'resume' | 'delete'): Promise<unknown> => {
      const jobId = task?.jobId ?? agent.id;
      switch (what) {
        case 'run': return client.agents.run.mutate({ agentId: agent.id });
        case 'pause': return client.schedule.pause.mutate({ agentId: agent.id, jobId });
        case 'resume': return client.schedule.resume.mutate({ agentId: agent.id, jobId });
        case 'delete': return client.agents.delete.mutate({ agentId: agent.id });
      }
    },
    onSuccess: (_answer, what) => (what === 'delete' ? (onDeleted(), queryClient.invalidateQueries({ queryKey: keys.agents })) : refresh()),
  });

  return (
    <section class="detail" aria-labelledby="detail-title">
      <h2 id="detail-title">{agent.name} <small>({agent.handler}, {agent.status})</small></h2>
      {agent.lastError && <p class="error">Last error: {agent.lastError}</p>}
      <div class="buttons" role="group" aria-label="Agent actions">
        <button type="button" onClick={() => action.mutate('run')} disabled={action.isPending}>Run now</button>
        <button type="button" onClick={() => action.mutate('pause')} disabled={!task || task.isPaused || action.isPending}>Pause</button>
        <button type="button" onClick={() => action.mutate('resume')} disabled={!task || !task.isPaused || action.isPending}>Resume</button>
        {confirmDelete
          ? <>
            <button type="button" class="danger" onClick={() => action.mutate('delete')}>Confirm delete</button>
            <button type="button" onClick={() => setConfirmDelete(false)}>Keep it</button>
          </>
          : <button type="button" class="danger" onClick={() => setConfirmDelete(true)}>Delete</button>}
      </div>
      {action.error && <p role="alert" class="error">{messageOf(action.error)}</p>}
      <h3>Schedule</h3>
      <ScheduleForm key={agent.id} agent={agent} />
      {agent.scheduleExpression !== null && (
        <>
          <h3>Fire ledger</h3>
          <Ledger agentId={agent.id} />
        </>
      )}
      <h3>Usage (last 30 days)</h3>
      {agent.budget && (
        <p aria-label="Budget">
          Budget per {agent.budget.period}:{' '}
          {[agent.budget.maxCostUsd !== undefined && `$${agent.budget.maxCostUsd}`, agent.budget.maxTokens !== undefined && `${agent.budget.maxTokens} tokens`].filter(Boolean).join(' or ')}
          {task?.pauseReason === 'budget' && ` — spent: paused until ${task.pausedUntil ?? 'the next period'}`}
        </p>
      )}
      <Usage agentId={agent.id} />
      <h3>Runs</h3>
      <Runs agentId={agent.id} />
    </section>
  );
}
