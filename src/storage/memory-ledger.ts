import type { RunRecord, Store } from '../core/store.ts';
import { fromRow, instances, pauses, runs, type Row } from './tables.ts';

/** The ledger's facts from the memory store's rows: the same answers as ledger-sql.ts. */
export function createMemoryLedger(tables: { runRows: ReadonlyMap<string, Row>; pauseRows: ReadonlyMap<string, Row>; instanceRows: () => Iterable<Row> }): Pick<Store, 'ledgerFacts'> {
  return {
    async ledgerFacts(agentId, slotKeys, from, to) {
      const byKey = new Map<string, Row>();
      for (const r of tables.runRows.values()) if (r['dedupe_key'] !== null) byKey.set(r['dedupe_key'] as string, r);
      const found: RunRecord[] = [];
      let last = slotKeys.map((k) => byKey.get(k)).filter((r) => r !== undefined);
      while (last.length > 0) {
        found.push(...last.map((r) => fromRow(runs, r)));
        last = last.map((r) => byKey.get(`retry:${r['id'] as string}`)).filter((r) => r !== undefined);
      }
      const agentRuns = [...tables.runRows.values()].filter((r) => r['agent_id'] === agentId);
      return {
        runs: found.filter((r) => r.agentId === agentId),
        pauses: [...tables.pauseRows.values()]
          .filter((p) => p['agent_id'] === agentId && (p['paused_at'] as number) < to && (p['resumed_at'] === null || (p['resumed_at'] as number) > from))
          .sort((a, b) => (a['paused_at'] as number) - (b['paused_at'] as number))
          .map((p) => fromRow(pauses, p)),
        instances: [...tables.instanceRows()]
          .filter((i) => (i['started_at'] as number) < to && (i['stopped_at'] === null || (i['stopped_at'] as number) >= from))
          .sort((a, b) => (a['started_at'] as number) - (b['started_at'] as number))
          .map((i) => fromRow(instances, i)),
        oldestRunAt: agentRuns.length === 0 ? null : Math.min(...agentRuns.map((r) => r['scheduled_at'] as number)),
      };
    },
  };
}
