import type { Command } from 'commander';
import { examples, type CliContext, type SessionOf } from './program.ts';
import { usageError } from './rest.ts';
import type { ViewMode } from './watch-view.ts';

/**
 * `watch [agentId]`: live progress through the typed client's tRPC subscriptions (`events.agent`, one per
 * agent on one WebSocket). Without an agent id it watches every agent the token sees, and picks up agents
 * created later: each change of the scheduler figures (`events.scheduler`, which every run start and end
 * moves) lists the agents again, and a new one is subscribed from the figure event before, so its
 * `agent:started` is replayed rather than missed. Ends with exit code 0 on Ctrl-C.
 */
export function registerWatch(program: Command, sessionOf: SessionOf, ctx: CliContext): void {
  program
    .command('watch')
    .description('live progress of running runs: one bar per run on a terminal, one line per event otherwise (--json: NDJSON events); Ctrl-C ends it')
    .argument('[agentId]', 'watch only this agent (default: every agent the token sees, new ones included)')
    .addHelpText('after', examples('agent-scheduler watch', 'agent-scheduler watch writer', 'agent-scheduler watch writer --json | jq -c "select(.type == \\"agent:completed\\")"'))
    .action(async (agentId: string | undefined, _o, cmd: Command) => {
      const { rest, print, url, token } = sessionOf(cmd);
      if (!token) throw usageError('No token: pass --token or set SCHEDULER_TOKEN');
      const mode: ViewMode = print.json ? 'json' : ctx.streams.stdout.isTTY ? 'bars' : 'lines';
      // Loaded on use: the tRPC client, superjson and ws are needed by this command only.
      const { watch } = await import('./watch-session.ts');
      await watch({ rest, url, token, agentId, mode, ctx });
    });
}
