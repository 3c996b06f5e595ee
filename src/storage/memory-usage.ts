/** The usage reads of the in-memory store (memory.ts), and the fold of a trimmed run into usage_days. */
import { DAY_MS } from '../core/budgets.ts';
import type { UsageDay } from '../core/store.ts';
import type { Row } from './tables.ts';

/** usage_days, keyed `agentId day`. */
export type UsageRows = Map<string, Row>;

/**
 * The usage_days row, and its key, that a trimmed run of `agentId` adds to; undefined for a run that never
 * ran (as in SQL: only runs with both `started_at` and `finished_at` are folded).
 */
export function foldUsage(usageRows: UsageRows, agentId: string, r: Row): { key: string; row: Row } | undefined {
  if (r['started_at'] === null || r['finished_at'] === null) return undefined;
  const day = Math.floor((r['finished_at'] as number) / DAY_MS);
  const key = `${agentId} ${day}`;
  const u = usageRows.get(key) ?? { agent_id: agentId, day, runs: 0, input_tokens: 0, output_tokens: 0, cost_usd: 0 };
  return {
    key,
    row: {
      ...u,
      runs: (u['runs'] as number) + 1,
      input_tokens: (u['input_tokens'] as number) + ((r['input_tokens'] as number | null) ?? 0),
      output_tokens: (u['output_tokens'] as number) + ((r['output_tokens'] as number | null) ?? 0),
      cost_usd: (u['cost_usd'] as number) + ((r['cost_usd'] as number | null) ?? 0),
    },
  };
}

/** Store.usageByDay over the store's usage_days and runs rows. */
export function usageByDay(usageRows: UsageRows, runRows: Map<string, Row>, agentId: string, from: number, to: number): UsageDay[] {
  const days = new Map<number, UsageDay>();
  // Trimmed runs, by whole days: a day counts when its start is in the range (as in SQL).
  for (const u of usageRows.values()) {
    const day = u['day'] as number;
    if (u['agent_id'] !== agentId || day * DAY_MS < from || day * DAY_MS >= to) continue;
    days.set(day, { day, runs: u['runs'] as number, inputTokens: u['input_tokens'] as number, outputTokens: u['output_tokens'] as number, costUsd: u['cost_usd'] as number });
  }
  for (const r of runRows.values()) {
    const at = r['finished_at'] as number | null;
    if (r['agent_id'] !== agentId || at === null || at < from || at >= to || r['started_at'] === null) continue;
    const day = Math.floor(at / DAY_MS);
    const d = days.get(day) ?? { day, runs: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 };
    d.runs++;
    d.inputTokens += (r['input_tokens'] as number | null) ?? 0;
    d.outputTokens += (r['output_tokens'] as number | null) ?? 0;
    d.costUsd += (r['cost_usd'] as number | null) ?? 0;
    days.set(day, d);
  }
  return [...days.values()].sort((a, b) => a.day - b.day);
}

/** Store.lastOutput: the output of the agent's last completed run (latest finished_at, then highest id). */
export function lastOutput(runRows: Map<string, Row>, agentId: string): string | null {
  let last: Row | undefined;
  for (const r of runRows.values()) {
    if (r['agent_id'] !== agentId || r['status'] !== 'completed' || r['finished_at'] === null) continue;
    if (!last || (r['finished_at'] as number) > (last['finished_at'] as number) || (r['finished_at'] === last['finished_at'] && (r['id'] as string) > (last['id'] as string))) last = r;
  }
  return last ? ((last['output'] as string | null) ?? null) : null;
}
