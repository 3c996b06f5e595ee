import type { agents, counters, events, idempotencyKeys, instances, pauses, RowOf, runs, schedules, usageDays } from './tables.ts';

/** The tables as Kysely sees them: column name → stored type, derived from the column specs in tables.ts. */
export interface Database {
  agents: RowOf<typeof agents>;
  schedules: RowOf<typeof schedules>;
  runs: RowOf<typeof runs>;
  events: RowOf<typeof events>;
  instances: RowOf<typeof instances>;
  counters: RowOf<typeof counters>;
  usage_days: RowOf<typeof usageDays>;
  idempotency_keys: RowOf<typeof idempotencyKeys>;
  pauses: RowOf<typeof pauses>;
}
