import { QueryClient } from '@tanstack/preact-query';
import { createSchedulerClient, type AnyHandlers, type SchedulerClient } from '../../client/index.ts';

/**
 * The page's one client (the typed tRPC client the package ships) and the query keys every panel shares.
 * The token lives in sessionStorage: it goes when the tab closes, and is read per request and per WebSocket
 * connect, so logging in again needs no new client.
 */
const TOKEN_KEY = 'agent-scheduler.token';

export const readToken = (): string => sessionStorage.getItem(TOKEN_KEY) ?? '';
export const saveToken = (token: string): void => sessionStorage.setItem(TOKEN_KEY, token);
export const clearToken = (): void => sessionStorage.removeItem(TOKEN_KEY);

export const client: SchedulerClient<AnyHandlers> = createSchedulerClient<AnyHandlers>({ url: location.origin, token: readToken });

export const queryClient = new QueryClient({
  defaultOptions: { queries: { retry: false, refetchOnWindowFocus: false } },
});

/** Keys by agent first, so one event invalidates everything about that agent at once. */
export const keys = {
  agents: ['agents'] as const,
  agent: (agentId: string) => ['agent', agentId] as const,
  schedule: (agentId: string) => ['agent', agentId, 'schedule'] as const,
  runs: (agentId: string) => ['agent', agentId, 'runs'] as const,
  ledger: (agentId: string) => ['agent', agentId, 'ledger'] as const,
  run: (runId: string) => ['run', runId] as const,
  usage: (agentId: string) => ['agent', agentId, 'usage'] as const,
  preview: (agentId: string, cron: string, timezone: string) => ['preview', agentId, cron, timezone] as const,
  instances: ['instances'] as const,
};

/** A server error's message (tRPC errors carry the server's text), or the thrown value as text. */
export const messageOf = (err: unknown): string => (err instanceof Error ? err.message : String(err));

export type Agent = Awaited<ReturnType<typeof client.agents.list.query>>[number];
export type Run = Awaited<ReturnType<typeof client.agents.runs.query>>[number];

/** `1234` → `1.2 s`; null stays a dash. */
export function duration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return '—';
  return ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`;
}

/** An ISO time as the browser's local time, or a dash. */
export function when(iso: string | null | undefined): string {
  return iso ? new Date(iso).toLocaleString() : '—';
}
