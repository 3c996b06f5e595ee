import { notFound } from '../core/errors.ts';
import type { AgentRecord, Store } from '../core/store.ts';
import type { Principal } from './auth.ts';

/**
 * Who may see what, decided once for every service: an agent belongs to the `sub` that created it,
 * an admin sees all, and another owner's agent answers exactly as a missing one (so ids do not leak).
 */
export const mayAccess = (p: Principal, agent: AgentRecord): boolean => p.admin || agent.owner === p.sub;

/** The agent, or NOT_FOUND when it is missing or not the principal's. */
export async function ownedAgent(store: Pick<Store, 'getAgent'>, p: Principal, agentId: string): Promise<AgentRecord> {
  const agent = await store.getAgent(agentId);
  if (!agent || !mayAccess(p, agent)) throw notFound(`Agent ${agentId} not found`);
  return agent;
}
