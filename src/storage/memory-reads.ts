import { OUTPUT_PREVIEW_CHARS } from '../core/limits.ts';
import type { Store } from '../core/store.ts';
import type { createMemoryInstances } from './memory-rows.ts';
import { byNewest, byOldest, extreme } from './memory-rows.ts';
import { lastOutput, usageByDay, type UsageRows } from './memory-usage.ts';
import { agents, events, fromRow, runs, schedules, type Row, type TableSpec } from './tables.ts';

/** The in-memory store's tables, as its reads see them (memory.ts owns them and every write to them). */
export interface MemoryTables {
  agentRows: ReadonlyMap<string, Row>;
  scheduleRows: ReadonlyMap<string, Row>;
  runRows: Map<string, Row>;
  eventRows: ReadonlyMap<number, Row>;
  usageRows: UsageRows;
  /** The queued and running runs (an index memory.ts keeps). */
  openRuns(): Row[];
  maxEventId(): number;
  instances: ReturnType<typeof createMemoryInstances>;
}

const records = <R>(t: TableSpec<R>, rows: Iterable<Row>): R[] => Array.from(rows, (r) => fromRow(t, r));
const maybe = <R>(t: TableSpec<R>, row: Row | undefined) => (row ? fromRow(t, row) : undefined);

/** Every read of the in-memory store, as reads.ts is for SQL: the same answers, from the rows in memory. */
export function createMemoryReads({ agentRows, scheduleRows, runRows, eventRows, usageRows, openRuns, maxEventId, instances }: MemoryTables) {
  return {
    loadSchedules: async (since?: number) => records(schedules, since === undefined ? scheduleRows.values() : [...scheduleRows.values()].filter((r) => (r['changed_at'] as number) >= since)),
    openRuns: async (agentId: string) => records(runs, byOldest(openRuns().filter((r) => r['agent_id'] === agentId))),
    cancelRequests: async (instanceId: string) =>
      openRuns().filter((r) => r['status'] === 'running' && r['instance_id'] === instanceId && r['cancel_requested_at'] != null).map((r) => r['id'] as string),
    loadOpenRuns: async () => records(runs, byOldest([...runRows.values()].filter((r) => r['status'] === 'queued' || r['status'] === 'running'))),
    maxEventId: async () => maxEventId(),
    getAgent: async (id: string) => maybe(agents, agentRows.get(id)),
    getAgents: async (ids: string[]) => records(agents, [...new Set(ids)].map((id) => agentRows.get(id)).filter((r) => r !== undefined)),
    listAgents: async (owner: string | null) => records(agents, byOldest([...agentRows.values()].filter((r) => owner === null || r['owner'] === owner))),
    getSchedule: async (agentId: string) => maybe(schedules, scheduleRows.get(agentId)),
    countAgents: async (owner: string) => [...agentRows.values()].filter((r) => r['owner'] === owner).length,
    countRunsSince: async (agentId: string, trigger: string, since: number) =>
      [...runRows.values()].filter((r) => r['agent_id'] === agentId && r['trigger'] === trigger && (r['created_at'] as number) >= since).length,
    // As in SQL: a list carries only the start of each output.
    listRuns: async (agentId: string, limit: number) =>
      records(runs, byNewest([...runRows.values()].filter((r) => r['agent_id'] === agentId)).slice(0, limit)).map((r) =>
        r.output === null ? r : { ...r, output: r.output.slice(0, OUTPUT_PREVIEW_CHARS) },
      ),
    usageByDay: async (agentId: string, from: number, to: number) => usageByDay(usageRows, runRows, agentId, from, to),
    lastOutput: async (agentId: string) => lastOutput(runRows, agentId),
    getRun: async (id: string) => maybe(runs, runRows.get(id)),
    eventsAfter: async (after: number, agentId: string | null, limit: number) =>
      records(events, [...eventRows.values()].filter((r) => (r['id'] as number) > after && r['agent_id'] === agentId).sort((a, b) => (a['id'] as number) - (b['id'] as number)).slice(0, limit)),
    oldestEventId: async () => extreme(eventRows.keys(), Math.min),
    nextQueuedAt: async () => extreme(Array.from(openRuns().filter((r) => r['status'] === 'queued' && r['waiting'] === 0), (r) => r['scheduled_at'] as number), Math.min),
    clusterFigures: async (now: number, aliveSince: number) => {
      const figures = { scheduled: 0, paused: 0, running: 0, queued: 0, capacity: 0 };
      for (const r of scheduleRows.values()) {
        if (r['enabled'] === 1) figures.scheduled++;
        if (r['paused'] === 1) figures.paused++;
      }
      for (const r of openRuns()) {
        if (r['status'] === 'running') figures.running++;
        else if ((r['scheduled_at'] as number) <= now) figures.queued++;
      }
      for (const i of await instances.listInstances(aliveSince)) figures.capacity += i.maxConcurrent;
      return figures;
    },
  } satisfies Partial<Store>;
}
