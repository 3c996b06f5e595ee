import { useMutation, useQuery } from '@tanstack/preact-query';
import { useEffect, useState } from 'preact/hooks';
import { client, keys, messageOf, queryClient, when, type Agent } from './api.ts';
import { cronWords } from './agents.tsx';

const PRIORITIES = ['LOW', 'NORMAL', 'HIGH', 'CRITICAL'] as const;
type Priority = typeof PRIORITIES[number];

/** What a fire does while a run of the agent is still going (the server's `overlap`), with the hint shown under the select. */
const OVERLAPS = {
  'skip': 'drop the fire (the ledger records it as skipped)',
  'queue-one': 'run it after the current one; at most one waits',
  'cancel-previous': 'cancel the running one and start this fire',
  'allow': 'run both at once (still bounded by the slots)',
} as const;
type Overlap = keyof typeof OVERLAPS;
const isOverlap = (v: string): v is Overlap => Object.hasOwn(OVERLAPS, v);

/** The catch-up as the form edits it: a mode and an optional window; `off` is `false` on the server. */
type CatchUpMode = 'off' | 'latest' | 'all';
type CatchUp = false | true | { policy: 'latest' | 'all'; window?: string | undefined };

function catchUpFields(saved: CatchUp): { mode: CatchUpMode; window: string } {
  if (saved === false) return { mode: 'off', window: '' };
  if (saved === true) return { mode: 'latest', window: '' };
  return { mode: saved.policy, window: saved.window ?? '' };
}

/** `latest` without a window is plain `true` (the server's default rule), so a schedule saved unchanged reads back the same. */
function catchUpValue(mode: CatchUpMode, window: string): CatchUp {
  if (mode === 'off') return false;
  const w = window.trim();
  if (w === '') return mode === 'latest' ? true : { policy: mode };
  return { policy: mode, window: w };
}

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
  const [overlap, setOverlap] = useState<Overlap>('skip');
  // The server's default catch-up is `true`: one run for the latest missed slot.
  const [catchUpMode, setCatchUpMode] = useState<CatchUpMode>('latest');
  const [catchUpWindow, setCatchUpWindow] = useState('');
  const [jitter, setJitter] = useState('0');
  // The saved settings arrive after the first render: taken once, so typing is never overwritten.
  const saved = schedule.data?.taskDetails;
  useEffect(() => {
    if (!saved) return;
    setTimezone(saved.timezone);
    setPriority(PRIORITIES[saved.priority - 1] ?? 'NORMAL');
    setOverlap(saved.overlap);
    const c = catchUpFields(saved.catchUp);
    setCatchUpMode(c.mode);
    setCatchUpWindow(c.window);
    setJitter(String(saved.jitterMs));
  }, [saved?.jobId]);
  const typed = useSettled({ cron: cron.trim(), timezone: timezone.trim() || 'UTC' }, 300);
  const preview = useQuery({
    queryKey: keys.preview(agent.id, typed.cron, typed.timezone),
    queryFn: () => client.schedule.preview.query({ agentId: agent.id, cronExpression: typed.cron, timezone: typed.timezone, count: 3 }),
    enabled: typed.cron !== '',
  });
  const done = () => void queryClient.invalidateQueries({ queryKey: keys.agent(agent.id) }).then(() => queryClient.invalidateQueries({ queryKey: keys.agents }));
  const set = useMutation({
    mutationFn: () => client.schedule.set.mutate({
      agentId: agent.id, cronExpression: cron.trim(), timezone: timezone.trim() || 'UTC', priority, overlap,
      catchUp: catchUpValue(catchUpMode, catchUpWindow),
      // An empty field is no jitter; anything else goes as typed, so the server's message names a bad value.
      jitterMs: jitter.trim() === '' ? 0 : Number(jitter),
    }),
    onSuccess: done,
  });
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
      <label for="overlap">Overlap</label>
      <div>
        <select id="overlap" value={overlap} aria-describedby="overlap-hint" onChange={(e) => isOverlap(e.currentTarget.value) && setOverlap(e.currentTarget.value)}>
          {Object.keys(OVERLAPS).map((o) => <option key={o} value={o}>{o}</option>)}
        </select>
        <div id="overlap-hint" class="words">{OVERLAPS[overlap]}</div>
      </div>
      <label for="catchup">Catch-up</label>
      <div>
        <select id="catchup" value={catchUpMode} aria-describedby="catchup-hint" onChange={(e) => setCatchUpMode(e.currentTarget.value as CatchUpMode)}>
          <option value="off">off</option>
          <option value="latest">latest</option>
          <option value="all">all</option>
        </select>
        <div id="catchup-hint" class="words">
          {catchUpMode === 'off' ? 'slots missed while no instance ran stay missed'
            : catchUpMode === 'latest' ? 'after a restart, one run for the latest missed slot' : 'after a restart, one run per missed slot, oldest first'}
        </div>
      </div>
      <label for="catchup-window">Catch-up window</label>
      <input id="catchup-window" value={catchUpWindow} onInput={(e) => setCatchUpWindow(e.currentTarget.value)} placeholder="e.g. 1h (optional)"
        disabled={catchUpMode === 'off'} spellcheck={false} />
      <label for="jitter">Jitter (ms)</label>
      <input id="jitter" type="number" min={0} max={3_600_000} step={1} value={jitter} onInput={(e) => setJitter(e.currentTarget.value)} />
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
