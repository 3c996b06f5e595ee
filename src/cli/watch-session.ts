import WebSocket from 'ws';
import { createSchedulerClient, type SchedulerClient } from '../../client/index.ts';
import type { AgentOutput } from '../schemas/agent.ts';
import type { StreamEvent } from '../services/events.ts';
import type { CliContext } from './program.ts';
import { CliError, EXIT, seg, type Rest } from './rest.ts';
import { createWatchView, type AgentNames, type ViewMode } from './watch-view.ts';

/** One `watch` (see watch.ts): REST for the agents, the typed client's subscriptions for their events. */
export interface WatchOptions {
  rest: Rest;
  url: string;
  token: string;
  agentId: string | undefined;
  mode: ViewMode;
  ctx: CliContext;
}

async function listAgents(rest: Rest, agentId: string | undefined): Promise<AgentOutput[]> {
  if (agentId !== undefined) return [(await rest<AgentOutput>({ method: 'GET', path: `/api/agents/${seg(agentId)}` })).data];
  return (await rest<AgentOutput[]>({ method: 'GET', path: '/api/agents' })).data;
}

export async function watch({ rest, url, token, agentId, mode, ctx }: WatchOptions): Promise<void> {
  // Over REST first: a bad token, a wrong URL or a missing agent fail here, with the server's reason and exit 1.
  const names: AgentNames = new Map();
  for (const a of await listAgents(rest, agentId)) names.set(a.id, a.name);

  const client: SchedulerClient = createSchedulerClient({ url, token, WebSocket: WebSocket as unknown as typeof globalThis.WebSocket });
  const view = createWatchView(mode, ctx.streams, names);
  const note = (text: string) => void ctx.streams.stderr.write(`${text}\n`);
  const subscriptions: { unsubscribe(): void }[] = [];
  let fail: (err: CliError) => void = () => {};
  let finish: () => void = () => {};
  const ended = new Promise<void>((resolve, reject) => {
    finish = resolve;
    fail = reject;
  });
  const onError = (err: unknown) => fail(new CliError(`The subscription failed: ${err instanceof Error ? err.message : String(err)}`, EXIT.refused));

  // Nothing is missed between "Watching" and the first event: every agent stream starts after the id of
  // the figures the scheduler stream opens with, so what happens while the streams start is replayed.
  let pendingStarts = names.size;
  const started = () => {
    if (--pendingStarts !== 0) return;
    note(agentId !== undefined ? `Watching ${agentId} (Ctrl-C to stop)` : `Watching ${names.size} agent${names.size === 1 ? '' : 's'} and new ones (Ctrl-C to stop)`);
  };
  const watchAgent = (id: string, after: number, announce: boolean) => {
    subscriptions.push(
      client.events.agent.subscribe({ agentId: id, lastEventId: after }, {
        ...(announce && { onStarted: started }),
        onData: ({ data }) => view.event(data as StreamEvent),
        onError,
      }),
    );
  };

  let lastFigures: number | undefined;
  let lost = false;
  let listing = false;
  let again = false;
  // One listing at a time; figure changes during it ask for one more, so none is lost and none piles up.
  const refresh = async (since: number) => {
    if (listing) return void (again = true);
    listing = true;
    try {
      do {
        again = false;
        for (const a of await listAgents(rest, undefined)) {
          if (names.has(a.id)) continue;
          names.set(a.id, a.name);
          watchAgent(a.id, since, false);
        }
      } while (again);
    } catch (err) {
      note(`Could not list agents: ${err instanceof Error ? err.message : String(err)}`);
    } finally {
      listing = false;
    }
  };
  subscriptions.push(
    client.events.scheduler.subscribe(undefined, {
      onData: ({ data }) => {
        const since = lastFigures;
        lastFigures = data.id;
        if (since === undefined) {
          // The opening figures: start the agents' streams after them.
          if (names.size === 0) {
            pendingStarts = 1;
            started();
          }
          for (const id of [...names.keys()]) watchAgent(id, data.id, true);
        } else if (agentId === undefined) void refresh(since);
      },
      onError,
      // The one WebSocket carries every stream; the client reconnects by itself and resumes each from its last id.
      onConnectionStateChange(state) {
        if (state.state === 'connecting' && state.error) {
          if (!lost) note(`Connection lost (${state.error.message}); reconnecting…`);
          lost = true;
        } else if (state.state === 'pending' && lost) {
          lost = false;
          note('Reconnected');
        }
      },
    }),
  );

  const stopListening = ctx.onInterrupt(() => finish());
  try {
    await ended;
  } finally {
    stopListening();
    for (const s of subscriptions) s.unsubscribe();
    view.stop();
    await client.close();
  }
}
