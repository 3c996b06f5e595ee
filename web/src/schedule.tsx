import { useMutation, useQuery } from '@tanstack/preact-query';
import { useEffect, useState } from 'preact/hooks';
import { client, keys, messageOf, queryClient, when, type Agent } from './api.ts';
import { cronWords } from './agents.tsx';

const PRIORITIES = ['LOW', 'NORMAL', 'HIGH', 'CRITICAL'] as const;
type Priority = typeof PRIORITIES[number];

/** The value after it has stood still for `ms`: the preview asks the server once per pause in typing. */
function useSettled<T>(value: T, ms: number): T {
  const [settled, setSettled] = useState(value);
  useEffect(() => {
    const t = setTimeout(() => setSettled(value), ms);
    return () => clearTimeout(t);
  }, [value, ms]);
  return settled;
}

/** Set or remove an agent's schedule, with the next fires of what is typed (schedule.preview) under the field. */
export function ScheduleForm({ agent }: { agent: Agent }) {
  const schedule = useQuery({ queryKey: keys.schedule(agent.id), queryFn: () => client.schedule.get.query({ agentId: agent.id }), enabled: agent.scheduleExpression !== null });
  const [cron, setCron] = useState(agent.scheduleExpression ?? '');
  const [timezone, setTimezone] = useState(schedule.data?.taskDetails?.timezone ?? 'UTC');
  const [priority, setPriority] = useState<Priority>('NORMAL');
  // The saved zone and priority arrive after the first render: taken once, so typing is never overwritten.
  const saved = schedule.data?.taskDetails;
  useEffect(() => {
    if (!saved) return;
    setTimezone(saved.timezone);
    setPriority(PRIORITIES[saved.priority - 1] ?? 'NORMAL');
  }, [saved?.jobId]);
  const typed = useSettled({ cron: cron.trim(), timezone: timezone.trim() || 'UTC' }, 300);
  const preview = useQuery({
    queryKey: keys.preview(agent.id, typed.cron, typed.timezone),
    queryFn: () => client.schedule.preview.query({ agentId: agent.id, cronExpression: typed.cron, timezone: typed.timezone, count: 3 }),
    enabled: typed.cron !== '',
  });
  const done = () => void queryClient.invalidateQueries({ queryKey: keys.agent(agent.id) }).then(() => queryClient.invalidateQueries({ queryKey: keys.agents }));
  const set = useMutation({ mutationFn: () => client.schedule.set.mutate({ agentId: agent.id, cronExpression: cron.trim(), timezone: timezone.trim() || 'UTC', priority }), onSuccess: done });
  const remove = useMutation({ mutationFn: () => client.schedule.remove.mutate({ agentId: agent.id }), onSuccess: done });
  const error = set.error ?? remove.error;
  const words = cronWords(cron.trim());

  return (
    <form class="grid schedule" aria-label="Schedule" onSubmit={(e) => { e.preventDefault(); set.mutate(); }}>
      <label for="cron">Cron expression</label>
      <div>
        <input id="cron" value={cron} onInput={(e) => setCron(e.currentTarget.value)} placeholder="*/5 * * * *" spellcheck={false} required />
        {cron.trim() !== '' && (
          <div class="preview" aria-live="polite" aria-label="Next fires">
            {words && <div class="words">{words}</div>}
            {preview.error ? <span class="error">{messageOf(preview.error)}</span>
              : preview.data && <ol>{preview.data.map((f) => <li key={f.at}>{f.local}{f.note && <em> ({f.note})</em>}</li>)}</ol>}
          </div>
        )}
      </div>
      <label for="timezone">Timezone</label>
      <input id="timezone" value={timezone} onInput={(e) => setTimezone(e.currentTarget.value)} placeholder="UTC" />
      <label for="priority">Priority</label>
      <select id="priority" value={priority} onChange={(e) => setPriority(e.currentTarget.value as Priority)}>
        {PRIORITIES.map((p) => <option key={p} value={p}>{p}</option>)}
      </select>
      <span />
      <div class="buttons">
        <button type="submit" disabled={set.isPending}>Set schedule</button>
        <button type="button" disabled={agent.scheduleExpression === null || remove.isPending} onClick={() => remove.mutate()}>Remove schedule</button>
        {schedule.data?.nextRunAt && <small>next: {when(schedule.data.nextRunAt)}</small>}
      </div>
      {error && <p role="alert" class="error wide">{messageOf(error)}</p>}
    </form>
  );
}
