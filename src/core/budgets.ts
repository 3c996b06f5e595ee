import type { AgentState } from './agent-state.ts';
import type { Clock } from './clock.ts';
import { conflict, errorText } from './errors.ts';
import type { Logger } from './logger.ts';
import type { Schedules } from './schedules.ts';
import type { AgentRecord, Budget, SchedulerStore, UsageDay } from './store.ts';

/** A UTC day in milliseconds. */
export const DAY_MS = 86_400_000;

/** The UTC period of `budget` that holds `now`: [start, end). */
export function periodOf(period: Budget['period'], now: number): { start: number; end: number } {
  if (period === 'day') {
    const start = Math.floor(now / DAY_MS) * DAY_MS;
    return { start, end: start + DAY_MS };
  }
  const d = new Date(now);
  return { start: Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), end: Date.UTC(d.getUTCFullYear(), d.getUTCMonth() + 1, 1) };
}

export interface UsageTotals {
  runs: number;
  inputTokens: number;
  outputTokens: number;
  costUsd: number;
}

export function totalsOf(days: readonly UsageDay[]): UsageTotals {
  const t: UsageTotals = { runs: 0, inputTokens: 0, outputTokens: 0, costUsd: 0 };
  for (const d of days) {
    t.runs += d.runs;
    t.inputTokens += d.inputTokens;
    t.outputTokens += d.outputTokens;
    t.costUsd += d.costUsd;
  }
  return t;
}

/** At the limit counts as over: a budget of $1 is spent once $1 is. */
export const isOver = (budget: Budget, t: UsageTotals): boolean =>
  (budget.maxCostUsd !== undefined && t.costUsd >= budget.maxCostUsd) || (budget.maxTokens !== undefined && t.inputTokens + t.outputTokens >= budget.maxTokens);

/** What crossing a budget tells: the period's figures and when it ends. */
export interface Crossing {
  period: Budget['period'];
  costUsd: number;
  tokens: number;
  resumesAt: number;
}

export interface BudgetsOptions {
  store: SchedulerStore;
  clock: Clock;
  log: Logger;
  agents: AgentState;
  schedules: Schedules;
  /** Pauses the agent's job for its budget until `crossing.resumesAt`, with the events (schedule-commands.ts). */
  pause(agentId: string, crossing: Crossing): Promise<void>;
}

/**
 * Budgets (CONTRACT §9): after a run of an agent with a budget reports usage, the period's totals are read
 * from the database (one indexed read, `usageByDay`) and, at or past a limit, the job is paused until the
 * next period. Nothing is counted in memory: every instance and every restart sees the same totals.
 */
export function createBudgets({ store, clock, log, agents, schedules, pause }: BudgetsOptions) {
  /** One check at a time per agent, in finish order: two runs ending close together pause once. */
  const checking = new Map<string, Promise<void>>();

  async function crossing(agent: AgentRecord): Promise<Crossing | null> {
    const budget = agent.budget;
    if (!budget) return null;
    const { start, end } = periodOf(budget.period, clock.now());
    const totals = totalsOf(await store.usageByDay(agent.id, start, end));
    if (!isOver(budget, totals)) return null;
    return { period: budget.period, costUsd: totals.costUsd, tokens: totals.inputTokens + totals.outputTokens, resumesAt: end };
  }

  async function check(agentId: string): Promise<void> {
    const agent = agents.get(agentId) ?? (await agents.load(agentId));
    const s = schedules.get(agentId);
    if (!agent?.budget || (s?.paused && s.pauseReason === 'budget')) return; // already paused for it
    const over = await crossing(agent);
    if (over) await pause(agentId, over);
  }

  return {
    /** A finished run of `agent` reported usage: its budget is checked once the finish is written. */
    afterUsage(agent: AgentRecord): void {
      const previous = checking.get(agent.id) ?? Promise.resolve();
      const next = previous
        .then(() => check(agent.id))
        .catch((err: unknown) => log.error('budget check failed', { agentId: agent.id, error: errorText(err) }))
        .finally(() => {
          if (checking.get(agent.id) === next) checking.delete(agent.id);
        });
      checking.set(agent.id, next);
    },

    /** A manual run while the agent is over its budget (or its job is paused for it) is a 409. */
    async refuseIfOver(agent: AgentRecord): Promise<void> {
      if (!agent.budget) return;
      const s = schedules.get(agent.id);
      const over = s?.paused && s.pauseReason === 'budget' && s.resumeAt !== null
        ? { resumesAt: s.resumeAt }
        : await crossing(agent);
      if (over) throw conflict(`Agent ${agent.id} is over its budget until ${new Date(over.resumesAt).toISOString()}`);
    },

    /** Resolves once every budget check asked for so far is done (stop waits for them). */
    async settled(): Promise<void> {
      while (checking.size > 0) await Promise.all(checking.values());
    },
  };
}

export type Budgets = ReturnType<typeof createBudgets>;
