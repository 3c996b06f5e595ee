import { useMutation, useQuery } from '@tanstack/preact-query';
import { useState } from 'preact/hooks';
import { client, duration, keys, messageOf, queryClient, when, type Run } from './api.ts';

/** Tokens and cost of one run, or a dash when it reported none. */
function usageText(run: Run): string {
  if (!run.usage) return '—';
  const cost = run.usage.costUsd === null ? '' : `, $${run.usage.costUsd.toFixed(4)}`;
  return `${run.usage.inputTokens} in / ${run.usage.outputTokens} out${cost}`;
}

/** An agent's latest runs; a click on one shows its whole output (runs.get). Queued and running ones can be cancelled. */
export function Runs({ agentId }: { agentId: string }) {
  const runs = useQuery({ queryKey: keys.runs(agentId), queryFn: () => client.agents.runs.query({ agentId, limit: 20 }) });
  const [open, setOpen] = useState<string | null>(null);
  const cancel = useMutation({
    mutationFn: (runId: string) => client.runs.cancel.mutate({ runId }),
    onSettled: () => queryClient.invalidateQueries({ queryKey: keys.agent(agentId) }),
  });
  if (runs.error) return <p role="alert" class="error">{messageOf(runs.error)}</p>;
  if (!runs.data) return <p>Loading runs…</p>;
  if (runs.data.length === 0) return <p class="empty">No runs yet.</p>;
  return (
    <>
      {cancel.error && <p role="alert" class="error">{messageOf(cancel.error)}</p>}
      <table class="runs" aria-label="Runs">
        <thead>
          <tr><th>Status</th><th>Trigger</th><th>Attempt</th><th>Started</th><th>Finished</th><th>Duration</th><th>Error</th><th>Output</th><th>Tokens / cost</th><th /></tr>
        </thead>
        <tbody>
          {runs.data.map((r) => (
            <tr key={r.id} class={open === r.id ? 'selected' : undefined}>
              <td><span class={`status ${r.status}`}>{r.status}</span></td>
              <td>{r.trigger}</td>
              <td>{r.attempt}</td>
              <td>{when(r.startedAt)}</td>
              <td>{when(r.finishedAt)}</td>
              <td>{duration(r.durationMs)}</td>
              <td class="error">{r.error ?? ''}</td>
              <td>
                <button type="button" class="link" aria-label={`Output of run ${r.id}`} onClick={() => setOpen(open === r.id ? null : r.id)}>
                  {r.outputPreview ? `${r.outputPreview.slice(0, 60)}${r.outputPreview.length > 60 || r.outputTruncated ? '…' : ''}` : 'details'}
                </button>
              </td>
              <td>{usageText(r)}</td>
              <td>{(r.status === 'running' || r.status === 'queued') && <button type="button" onClick={() => cancel.mutate(r.id)} aria-label={`Cancel run ${r.id}`}>Cancel</button>}</td>
            </tr>
          ))}
        </tbody>
      </table>
      {open && <RunOutput runId={open} />}
    </>
  );
}

function RunOutput({ runId }: { runId: string }) {
  const run = useQuery({ queryKey: keys.run(runId), queryFn: () => client.runs.get.query({ runId }) });
  if (run.error) return <p role="alert" class="error">{messageOf(run.error)}</p>;
  if (!run.data) return <p>Loading output…</p>;
  return (
    <figure class="output">
      <figcaption>Output of run <code>{runId}</code> ({run.data.status})</figcaption>
      <pre aria-label={`Full output of run ${runId}`}>{run.data.output ?? '(no output)'}</pre>
    </figure>
  );
}

/** Tokens and cost by UTC day (agents.usage). */
export function Usage({ agentId }: { agentId: string }) {
  const usage = useQuery({ queryKey: keys.usage(agentId), queryFn: () => client.agents.usage.query({ agentId }) });
  if (usage.error) return <p role="alert" class="error">{messageOf(usage.error)}</p>;
  if (!usage.data) return null;
  const u = usage.data;
  return (
    <p class="usage" aria-label="Usage">
      {u.runs} runs · {u.inputTokens} input tokens · {u.outputTokens} output tokens · ${u.costUsd.toFixed(4)}
    </p>
  );
}
