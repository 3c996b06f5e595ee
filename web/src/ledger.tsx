import { useMutation, useQuery } from '@tanstack/preact-query';
import { useState } from 'preact/hooks';
import { client, keys, messageOf, queryClient, when } from './api.ts';

type LedgerEntry = Awaited<ReturnType<typeof client.schedule.ledger.query>>[number];
type Outcome = LedgerEntry['outcome'];

/** Every outcome the server can answer, in the legend's order, with what it means (the squares' colours are in style.css). */
const OUTCOMES: Record<Outcome, string> = {
  'ran': 'fired and ran',
  'caught-up': 'run after a restart (catch-up)',
  'backfilled': 'run by a backfill',
  'pending': 'not come yet, or within its jitter',
  'skipped-overlap': 'skipped: a run was still going',
  'skipped-paused': 'skipped: the schedule was paused',
  'skipped-budget': 'skipped: the budget was spent',
  'missed-downtime': 'missed: no instance was running, or no run was recorded',
  'disabled': 'the schedule was disabled',
};

/** The strip shows this many slots, the newest ones. */
const SLOTS_SHOWN = 48;
const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;
/**
 * The ranges asked for, widest first. The cron spacing is not known here, and a range with more than 1,000 slots
 * is a 400: a day holds 48 slots of anything every half hour; an hour of a `* * * * *` schedule holds 60; a minute
 * is there for the seconds-field schedules, which fit 1,000 slots in no hour.
 */
const SPANS = [DAY, HOUR, MINUTE];

/** A tRPC error the server answered with HTTP 400 (its `data.httpStatus`). */
function isBadRequest(err: unknown): boolean {
  if (typeof err !== 'object' || err === null || !('data' in err)) return false;
  const data = err.data as { httpStatus?: unknown } | null | undefined;
  return data?.httpStatus === 400;
}

/** The last SLOTS_SHOWN slots up to now (oldest first), from the widest range the server accepts. */
async function lastSlots(agentId: string): Promise<LedgerEntry[]> {
  const to = Date.now();
  for (const [i, span] of SPANS.entries()) {
    try {
      const entries = await client.schedule.ledger.query({ agentId, from: new Date(to - span).toISOString(), to: new Date(to).toISOString() });
      return entries.slice(-SLOTS_SHOWN);
    } catch (err) {
      // Too many slots in this range: a narrower one. Any other error, or the narrowest failing, is shown.
      if (!isBadRequest(err) || i === SPANS.length - 1) throw err;
    }
  }
  return [];
}

const slotLabel = (e: LedgerEntry) => `${when(e.scheduledAt)}: ${e.outcome}${e.note ? ` (${e.note})` : ''}`;

/**
 * What became of an agent's latest slots (schedule.ledger), one square per slot, oldest left, and a backfill for
 * a past range. Its key sits under the agent's (keys.ledger), so the run events that refresh the runs
 * (live.ts) refresh it too.
 */
export function Ledger({ agentId }: { agentId: string }) {
  const ledger = useQuery({ queryKey: keys.ledger(agentId), queryFn: () => lastSlots(agentId) });
  return (
    <div class="ledger">
      {ledger.error ? <p role="alert" class="error">{messageOf(ledger.error)}</p>
        : !ledger.data ? <p>Loading ledger…</p>
          : (
            <>
              <ol class="strip" role="list" aria-label="Fire ledger">
                {ledger.data.map((e) => (
                  <li key={e.scheduledAt} role="listitem" data-outcome={e.outcome} class={e.note === 'failed' ? 'failed' : undefined} title={slotLabel(e)} aria-label={slotLabel(e)} />
                ))}
              </ol>
              {ledger.data.length === 0 && <p class="empty">No slots of this schedule have come yet.</p>}
            </>
          )}
      <ul class="legend" aria-label="Ledger legend">
        {Object.entries(OUTCOMES).map(([outcome, meaning]) => (
          <li key={outcome} title={meaning}><span data-outcome={outcome} />{outcome}</li>
        ))}
      </ul>
      <Backfill agentId={agentId} />
    </div>
  );
}

/** `datetime-local` gives the browser's local wall time without a zone; `new Date` reads it as local time. */
const instant = (local: string) => new Date(local).toISOString();

/** One run per slot of the schedule in a past range (schedule.backfill); slots that already have a run are left alone. */
function Backfill({ agentId }: { agentId: string }) {
  const [from, setFrom] = useState('');
  const [to, setTo] = useState('');
  const backfill = useMutation({
    mutationFn: () => client.schedule.backfill.mutate({ agentId, from: instant(from), to: instant(to) }),
    // The agent's key covers the ledger and the runs: the queued runs and their slots show at once.
    onSuccess: () => queryClient.invalidateQueries({ queryKey: keys.agent(agentId) }),
  });
  return (
    <form class="buttons backfill" aria-label="Backfill" onSubmit={(e) => { e.preventDefault(); backfill.mutate(); }}>
      <label for="backfill-from">Backfill from</label>
      <input id="backfill-from" type="datetime-local" value={from} onInput={(e) => setFrom(e.currentTarget.value)} required />
      <label for="backfill-to">to</label>
      <input id="backfill-to" type="datetime-local" value={to} onInput={(e) => setTo(e.currentTarget.value)} aria-label="Backfill to" required />
      <button type="submit" disabled={backfill.isPending}>Backfill</button>
      {/* Always there, so a screen reader announces the answer when it arrives. */}
      <span role="status">{backfill.data && `Queued ${backfill.data.runIds.length} runs (${backfill.data.skipped} slots already had one)`}</span>
      {backfill.error && <p role="alert" class="error">{messageOf(backfill.error)}</p>}
    </form>
  );
}
