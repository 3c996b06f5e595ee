import type { Command } from 'commander';
import { isoInstant } from './commands.ts';
import { table } from './output.ts';
import { examples, intIn, type SessionOf } from './program.ts';
import { seg } from './rest.ts';

/** A command over the slots of one agent's schedule in [--from, --to). */
function slotRange(program: Command, name: string, description: string, toHelp: string): Command {
  return program
    .command(name)
    .description(description)
    .argument('<agentId>', 'the agent id')
    .requiredOption('--from <iso>', 'the first slot, inclusive (ISO date or time)', isoInstant('--from'))
    .requiredOption('--to <iso>', toHelp, isoInstant('--to'));
}

/** Looking at a schedule before and after (CONTRACT §11): the next fires with their DST notes, and what became of past slots. */
export function registerScheduleViews(program: Command, sessionOf: SessionOf): void {
  const schedule = program.commands.find((c) => c.name() === 'schedule')!;
  schedule
    .command('preview')
    .description("the next fire times of an agent's schedule, or of an expression before you save it, with DST notes")
    .argument('<agentId>', 'the agent id')
    .option('--count <n>', 'how many (1-100)', intIn('--count', 1, 100), 10)
    .option('--cron <expression>', 'an unsaved cron expression to check instead of the saved one')
    .option('--timezone <tz>', "the IANA time zone to read it in (default: the schedule's, else UTC)")
    .addHelpText('after', examples('agent-scheduler schedule preview writer', "agent-scheduler schedule preview writer --cron '30 2 * * *' --timezone America/New_York --count 3"))
    .action(async (agentId: string, o: { count: number; cron?: string; timezone?: string }, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<{ at: string; local: string; note?: string }[]>({
        method: 'GET', path: `/api/agents/${seg(agentId)}/schedule/preview`, query: { count: o.count, cronExpression: o.cron, timezone: o.timezone },
      });
      print.result(data, (fires) => table(['AT (UTC)', 'LOCAL', 'NOTE'], fires.map((f) => [f.at, f.local, f.note ?? null])));
    });

  slotRange(program, 'ledger', "what became of each slot of an agent's schedule in [from, to): ran, skipped, paused, missed, caught up, pending", 'end, exclusive (ISO date or time; at most 1,000 slots)')
    .addHelpText('after', examples('agent-scheduler ledger writer --from 2026-06-01T08:00:00Z --to 2026-06-01T10:00:00Z'))
    .action(async (agentId: string, o: { from: string; to: string }, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<{ scheduledAt: string; outcome: string; runId?: string; note?: string }[]>({
        method: 'GET', path: `/api/agents/${seg(agentId)}/ledger`, query: { from: o.from, to: o.to },
      });
      print.result(data, (slots) => table(['SLOT', 'OUTCOME', 'NOTE', 'RUN'], slots.map((s) => [s.scheduledAt, s.outcome, s.note ?? null, s.runId ?? null])));
    });

  slotRange(program, 'backfill', "queue one run per slot of an agent's schedule in a past range [from, to); slots that already have a run are left alone", 'end, exclusive, not in the future (ISO date or time; at most 1,000 slots)')
    .addHelpText('after', examples('agent-scheduler backfill writer --from 2026-06-01 --to 2026-06-02'))
    .action(async (agentId: string, o: { from: string; to: string }, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<{ runIds: string[]; skipped: number }>({ method: 'POST', path: `/api/agents/${seg(agentId)}/backfill`, body: { from: o.from, to: o.to } });
      print.result(data, (d) => [`Queued ${d.runIds.length} run(s); ${d.skipped} slot(s) already had one`, ...d.runIds].join('\n'));
    });
}
