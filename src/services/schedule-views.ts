import { occurrencesBetween, validateCron } from '../core/cron.ts';
import { BACKFILL_MAX_SLOTS } from '../core/limits.ts';
import { badRequest, notFound } from '../core/errors.ts';
import { computeLedger, ledgerSlots } from '../core/ledger.ts';
import { previewFires } from '../core/preview.ts';
import type { Scheduler } from '../core/scheduler.ts';
import type { Store } from '../core/store.ts';
import type { PreviewQuery } from '../schemas/schedule.ts';
import type { Principal } from './auth.ts';
import { ownedAgent } from './ownership.ts';

/** Looking at a schedule before and after (CONTRACT §11): its next fires with DST notes, and what became of past slots. */
export function createScheduleViews({ store, scheduler, now, leaseMs }: { store: Store; scheduler: Scheduler; now: () => number; leaseMs: number }) {
  return {
    /** What became of each slot of the agent's schedule in [from, to) (core/ledger.ts); slots before the schedule existed are not its. */
    async ledger(p: Principal, agentId: string, from: number, to: number) {
      await ownedAgent(store, p, agentId);
      if (from >= to) throw badRequest(`query.from: expected an instant before query.to, got ${new Date(from).toISOString()}`);
      const s = scheduler.schedule(agentId);
      if (!s) throw notFound(`No scheduled task found for agent ${agentId}`);
      const slots = ledgerSlots(s.expression, s.timezone, from, to);
      const facts = await store.ledgerFacts(agentId, slots.map((t) => `${s.jobId}@${t}`), from, to);
      // Slots up to the instant the schedule was made are not its fires (the first is the next one after),
      // unless a backfill gave them a run.
      return computeLedger(slots, facts, { schedule: s, now: now(), leaseMs })
        .filter((e) => e.scheduledAt > s.createdAt || e.runId !== undefined)
        .map((e) => ({ ...e, scheduledAt: new Date(e.scheduledAt).toISOString() }));
    },
    /**
     * Queues one run per slot of the agent's schedule in [from, to) (trigger `backfill`); slots that
     * already have a run are left alone (so a backfill repeated over the same range runs each slot once).
     */
    async backfill(p: Principal, agentId: string, from: number, to: number) {
      await ownedAgent(store, p, agentId);
      if (from >= to) throw badRequest(`body.from: expected an instant before body.to, got ${new Date(from).toISOString()}`);
      if (to > now()) throw badRequest(`body.to: expected an instant not in the future, got ${new Date(to).toISOString()}`);
      const s = scheduler.schedule(agentId);
      if (!s) throw notFound(`No scheduled task found for agent ${agentId}`);
      const slots = occurrencesBetween(s.expression, s.timezone, from, to, BACKFILL_MAX_SLOTS);
      if (slots === null) throw badRequest(`body.to: the range holds more than ${BACKFILL_MAX_SLOTS} slots of "${s.expression}"; backfill a shorter one`);
      const queued = await scheduler.backfill(agentId, slots);
      return { runIds: queued.map((r) => r.id), skipped: slots.length - queued.length };
    },
    /** The next fires of the agent's schedule, or of an expression not saved yet (its zone: the one given, else the schedule's, else UTC). */
    async preview(p: Principal, agentId: string, q: PreviewQuery) {
      await ownedAgent(store, p, agentId);
      const saved = scheduler.schedule(agentId);
      const expression = q.cronExpression ?? saved?.expression;
      if (expression === undefined) throw badRequest('query.cronExpression: the agent has no schedule; give the expression to preview');
      const timezone = q.timezone ?? saved?.timezone ?? 'UTC';
      validateCron(expression, timezone);
      return previewFires(expression, timezone, now(), q.count).map((f) => ({ at: new Date(f.at).toISOString(), local: f.local, ...(f.note && { note: f.note }) }));
    },
  };
}
