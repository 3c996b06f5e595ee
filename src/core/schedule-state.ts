import { OVERLAP_POLICIES } from './records.ts';
import type { ScheduleState } from './schedules.ts';
import type { ScheduleRecord } from './store.ts';

/** How the scheduler's table of schedules holds each one in memory (schedules.ts): small, and one shape. */
export function createStateBuilder() {
  /**
   * One copy of each distinct expression and timezone string: 100,000 schedules usually share a few
   * dozen, and a copy per schedule would be most of their memory.
   */
  const interned = new Map<string, string>();
  function intern(s: string): string {
    const found = interned.get(s);
    if (found !== undefined) return found;
    interned.set(s, s);
    return s;
  }

  /**
   * The state held for a record, built as one literal in one field order: every schedule shares one
   * hidden class and has no out-of-object property store (adding `version` to a row object later gave each
   * one), the few-valued strings are the shared ones, and a job id equal to its agent's id is that string.
   * At 100,000 schedules this is about a quarter of what they held.
   */
  function stateOf(r: ScheduleRecord, version: number): ScheduleState {
    const agentId = r.agentId;
    return {
      agentId,
      jobId: r.jobId === agentId ? agentId : r.jobId,
      expression: intern(r.expression),
      timezone: intern(r.timezone),
      priority: r.priority,
      enabled: r.enabled,
      paused: r.paused,
      catchUp: r.catchUp,
      catchUpPolicy: r.catchUpPolicy === 'all' ? 'all' : 'latest',
      catchUpWindowMs: r.catchUpWindowMs,
      overlap: OVERLAP_POLICIES.find((o) => o === r.overlap) ?? 'skip',
      owner: intern(r.owner),
      jitterMs: r.jitterMs,
      nextRunAt: r.nextRunAt,
      pauseReason: r.pauseReason,
      resumeAt: r.resumeAt,
      pauseNote: r.pauseNote,
      revision: r.revision,
      changedAt: r.changedAt,
      createdAt: r.createdAt,
      updatedAt: r.updatedAt,
      version,
    };
  }

  return { stateOf };
}
