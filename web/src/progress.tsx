import type { LiveRun } from './live.ts';

/** A run's progress as a bar with its number: `role="progressbar"`, named after the agent. */
export function ProgressBar({ agentName, run }: { agentName: string; run: LiveRun }) {
  const value = Math.max(0, Math.min(100, Math.round(run.progress)));
  return (
    <div class={`progress ${run.status}`} title={run.message ?? run.status}>
      <div role="progressbar" aria-label={`Progress of ${agentName}`} aria-valuemin={0} aria-valuemax={100} aria-valuenow={value} aria-valuetext={`${value}% ${run.status}`}>
        <span style={{ width: `${value}%` }} />
      </div>
      <small>{value}% {run.status === 'running' ? '' : run.status}</small>
    </div>
  );
}
