import { InvalidArgumentError, Option, type Command } from 'commander';
import type { AgentOutput } from '../schemas/agent.ts';
import type { SchedulerStats, ScheduleInfo } from '../schemas/schedule.ts';
import type { UsageReportOutput } from '../schemas/run.ts';
import { duration, fields, table } from './output.ts';
import { examples, intIn, type SessionOf } from './program.ts';
import { seg } from './rest.ts';

/** The REST commands: one row of `transport/rest/routes.ts` each, with a readable answer. */

interface RunRow {
  id: string;
  agentId: string;
  trigger: string;
  attempt: number;
  status: string;
  scheduledAt: string;
  startedAt: string | null;
  durationMs: number | null;
  progress: number | null;
  error: string | null;
}

const PRIORITIES = ['LOW', 'NORMAL', 'HIGH', 'CRITICAL'];

function jsonObject(v: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    parsed = JSON.parse(v);
  } catch {
    throw new InvalidArgumentError(`--config: expected a JSON object, got "${v}" (not JSON)`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new InvalidArgumentError(`--config: expected a JSON object, got ${v}`);
  return parsed as Record<string, unknown>;
}

interface ScheduleSetOptions { priority: string; timezone: string; jobId?: string; jitterMs?: number; overlap?: string; catchUp?: 'off' | 'latest' | 'all'; catchUpWindow?: string }

/** `--catch-up` and its window as the body's `catchUp` (the server checks the window and names `catchUp.window`). */
function catchUpBody(o: ScheduleSetOptions): boolean | { policy: 'latest' | 'all'; window?: string } | undefined {
  if (o.catchUp === 'off') return false;
  const policy = o.catchUp ?? 'latest';
  if (o.catchUpWindow !== undefined) return { policy, window: o.catchUpWindow };
  return o.catchUp === undefined ? undefined : policy === 'latest' ? true : { policy };
}

export function isoInstant(name: string) {
  return (v: string) => {
    const t = Date.parse(v);
    if (Number.isNaN(t)) throw new InvalidArgumentError(`${name}: expected an ISO date or time such as 2026-01-01 or 2026-01-01T09:00:00Z, got "${v}"`);
    // The server takes a full date-time; a bare date means its UTC midnight (as `Date.parse` reads it).
    return new Date(t).toISOString();
  };
}

const agentRows = (agents: AgentOutput[]) =>
  table(['ID', 'NAME', 'HANDLER', 'STATUS', 'SCHEDULE', 'NEXT RUN', 'LAST RUN'], agents.map((a) => [a.id, a.name, a.handler, a.status, a.scheduleEnabled ? a.scheduleExpression : a.scheduleExpression && `${a.scheduleExpression} (off)`, a.nextRunAt, a.lastRunAt]));

export function registerApiCommands(program: Command, sessionOf: SessionOf): void {
  const agents = program.command('agents').description('list, show, create and delete agents');
  agents.addHelpText('after', examples('agent-scheduler agents list', 'agent-scheduler agents create --name Writer --handler demo --config \'{"steps":8,"stepMs":500}\''));

  agents
    .command('list')
    .description("the caller's agents (every agent for an admin token)")
    .addHelpText('after', examples('agent-scheduler agents list', 'agent-scheduler agents list --json | jq -r ".[].id"'))
    .action(async (_o, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<AgentOutput[]>({ method: 'GET', path: '/api/agents' });
      print.result(data, agentRows);
    });

  agents
    .command('get')
    .description('one agent with its schedule, status and last error')
    .argument('<agentId>', 'the agent id')
    .addHelpText('after', examples('agent-scheduler agents get writer'))
    .action(async (agentId: string, _o, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<AgentOutput>({ method: 'GET', path: `/api/agents/${seg(agentId)}` });
      print.result(data, (a) => fields(a));
    });

  agents
    .command('create')
    .description('create an agent (it runs when scheduled or on `run`)')
    .requiredOption('--name <name>', 'a display name')
    .requiredOption('--handler <handler>', 'a registered handler: demo, webhook, llm, or one the server adds')
    .option('--id <id>', 'the agent id (default: generated)')
    .option('--config <json>', "the handler's configuration as a JSON object", jsonObject)
    .option('--description <text>', 'a description')
    .addHelpText('after', examples('agent-scheduler agents create --name Writer --handler demo --id writer --config \'{"steps":4,"stepMs":250}\''))
    .action(async (o: { name: string; handler: string; id?: string; config?: Record<string, unknown>; description?: string }, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<AgentOutput>({ method: 'POST', path: '/api/agents', body: { name: o.name, handler: o.handler, ...(o.id && { id: o.id }), ...(o.config && { config: o.config }), ...(o.description && { description: o.description }) } });
      print.result(data, (a) => `Created agent ${a.id} (${a.name}, handler ${a.handler})`);
    });

  agents
    .command('delete')
    .description('delete an agent with its schedule and runs')
    .argument('<agentId>', 'the agent id')
    .addHelpText('after', examples('agent-scheduler agents delete writer'))
    .action(async (agentId: string, _o, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<{ id: string }>({ method: 'DELETE', path: `/api/agents/${seg(agentId)}` });
      print.result(data, (d) => `Deleted agent ${d.id}`);
    });

  const schedule = program.command('schedule').description("set, show, remove, pause and resume an agent's cron schedule");
  schedule.addHelpText('after', examples("agent-scheduler schedule set writer '0 9 * * 1-5' --timezone Europe/Berlin", 'agent-scheduler schedule pause writer'));

  schedule
    .command('set')
    .description('schedule an agent (creates or replaces its schedule)')
    .argument('<agentId>', 'the agent id')
    .argument('<cron>', "a cron expression in quotes: 5 fields (minute hour day month weekday), an optional leading seconds field, or @hourly, @daily …")
    .addOption(new Option('--priority <priority>', 'the queue priority').choices(PRIORITIES).default('NORMAL'))
    .option('--timezone <tz>', 'an IANA time zone the expression is read in', 'UTC')
    .option('--job-id <jobId>', 'the job id (default: the agent id)')
    .option('--jitter-ms <ms>', 'start each fire up to this long after its slot (0-3600000), the same delay on every instance', intIn('--jitter-ms', 0, 3_600_000))
    .addOption(new Option('--overlap <policy>', 'a fire while a run is going: skip it, queue one after it, cancel the running one, or allow both').choices(['skip', 'queue-one', 'cancel-previous', 'allow']))
    .addOption(new Option('--catch-up <policy>', 'slots missed while no instance ran: none, a run for the latest, or a run each (at most 100)').choices(['off', 'latest', 'all']))
    .option('--catch-up-window <duration>', 'with --catch-up: leave alone missed slots older than this (e.g. 30m, 6h, 7d)')
    .addHelpText('after', examples(
      "agent-scheduler schedule set writer '*/5 * * * *'",
      "agent-scheduler schedule set writer '0 9 * * *' --priority HIGH --timezone America/New_York",
      "agent-scheduler schedule set writer '0 * * * *' --jitter-ms 300000",
      "agent-scheduler schedule set writer '*/15 * * * *' --overlap queue-one --catch-up all --catch-up-window 6h",
    ))
    .action(async (agentId: string, cron: string, o: ScheduleSetOptions, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      if (o.catchUpWindow !== undefined && o.catchUp === 'off') cmd.error('error: --catch-up-window cannot be used with --catch-up off');
      const catchUp = catchUpBody(o);
      const body = {
        cronExpression: cron, priority: o.priority, timezone: o.timezone, ...(o.jobId && { jobId: o.jobId }), ...(o.jitterMs !== undefined && { jitterMs: o.jitterMs }),
        ...(o.overlap && { overlap: o.overlap }), ...(catchUp !== undefined && { catchUp }),
      };
      const { data, message } = await rest<{ id: string; jobId: string; nextRunAt: string | null }>({ method: 'POST', path: `/api/agents/${seg(agentId)}/schedule`, body });
      print.result(data, (d) => `${message ?? 'Scheduled'}: ${d.id} (job ${d.jobId}), next run ${d.nextRunAt ?? '-'}`);
    });

  schedule
    .command('get')
    .description("an agent's schedule: expression, next and last run, retry and pause state")
    .argument('<agentId>', 'the agent id')
    .addHelpText('after', examples('agent-scheduler schedule get writer'))
    .action(async (agentId: string, _o, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<ScheduleInfo>({ method: 'GET', path: `/api/agents/${seg(agentId)}/schedule` });
      print.result(data, (d) => fields(d));
    });

  schedule
    .command('remove')
    .description("remove an agent's schedule (the agent stays)")
    .argument('<agentId>', 'the agent id')
    .addHelpText('after', examples('agent-scheduler schedule remove writer'))
    .action(async (agentId: string, _o, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data, message } = await rest({ method: 'DELETE', path: `/api/agents/${seg(agentId)}/schedule` });
      print.result(data, () => `${message ?? 'Unscheduled'}: ${agentId}`);
    });

  for (const action of ['pause', 'resume'] as const) {
    const command = schedule
      .command(action)
      .description(action === 'pause' ? 'pause a scheduled job: it stops firing until resumed (or until --until)' : 'resume a paused job')
      .argument('<agentId>', 'the agent id')
      .option('--job-id <jobId>', "the job id (default: the agent's current job)");
    if (action === 'pause') {
      command
        .option('--note <text>', 'a note shown with the paused job (at most 500 characters)')
        .option('--until <iso>', 'resume by itself then (ISO date or time, in the future)', isoInstant('--until'));
    }
    command
      .addHelpText('after', examples(`agent-scheduler schedule ${action} writer`, `agent-scheduler schedule ${action} writer --job-id nightly`, ...(action === 'pause' ? ["agent-scheduler schedule pause writer --note 'provider maintenance' --until 2026-06-01T06:00:00Z"] : [])))
      .action(async (agentId: string, o: { jobId?: string; note?: string; until?: string }, cmd: Command) => {
        const { rest, print } = sessionOf(cmd);
        // The job id is the agent's unless its schedule was set with another one: ask rather than guess.
        const jobId = o.jobId ?? (await rest<ScheduleInfo>({ method: 'GET', path: `/api/agents/${seg(agentId)}/schedule` })).data.taskDetails?.jobId ?? agentId;
        const body = o.note !== undefined || o.until !== undefined ? { ...(o.note !== undefined && { note: o.note }), ...(o.until !== undefined && { until: o.until }) } : undefined;
        const { data, message } = await rest<{ nextRunAt?: string | null }>({ method: 'PATCH', path: `/api/agents/${seg(agentId)}/schedule/${seg(jobId)}/${action}`, ...(body && { body }) });
        print.result(data, (d) => `${message ?? action}${d.nextRunAt ? `; next run ${d.nextRunAt}` : ''}`);
      });
  }

  program
    .command('run')
    .description('run an agent now (queued at its priority); prints the run id')
    .argument('<agentId>', 'the agent id')
    .option('--idempotency-key <key>', 'the same key answers the same run for 24 h (safe to retry)')
    .addHelpText('after', examples('agent-scheduler run writer', 'RUN=$(agent-scheduler run writer --json | jq -r .runId)', 'agent-scheduler run writer --idempotency-key report-2026-06-01'))
    .action(async (agentId: string, o: { idempotencyKey?: string }, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<{ runId: string }>({ method: 'POST', path: `/api/agents/${seg(agentId)}/run`, headers: { 'idempotency-key': o.idempotencyKey } });
      print.result(data, (d) => `Started run ${d.runId} of ${agentId}`);
    });

  program
    .command('runs')
    .description("an agent's runs, newest first")
    .argument('<agentId>', 'the agent id')
    .option('--limit <n>', 'how many (1-1000)', intIn('--limit', 1, 1000), 20)
    .addHelpText('after', examples('agent-scheduler runs writer --limit 5'))
    .action(async (agentId: string, o: { limit: number }, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<RunRow[]>({ method: 'GET', path: `/api/agents/${seg(agentId)}/runs`, query: { limit: o.limit } });
      print.result(data, (runs) =>
        table(['RUN', 'STATUS', 'TRIGGER', 'ATTEMPT', 'SCHEDULED', 'DURATION', 'PROGRESS', 'ERROR'], runs.map((r) => [r.id, r.status, r.trigger, r.attempt, r.scheduledAt, r.durationMs === null ? null : duration(r.durationMs), r.progress === null ? null : `${r.progress}%`, r.error])));
    });

  program
    .command('cancel')
    .description('cancel a queued or running run')
    .argument('<runId>', 'the run id (from `run` or `runs`)')
    .addHelpText('after', examples('agent-scheduler cancel 01J9Z6X3M6W1'))
    .action(async (runId: string, _o, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<{ runId: string }>({ method: 'POST', path: `/api/runs/${seg(runId)}/cancel` });
      print.result(data, (d) => `Cancelled run ${d.runId}`);
    });

  program
    .command('status')
    .description('scheduler figures: scheduled, running, queued and paused jobs')
    .addHelpText('after', examples('agent-scheduler status', 'agent-scheduler status --json'))
    .action(async (_o, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<SchedulerStats>({ method: 'GET', path: '/api/agents/schedule/status' });
      print.result(data, (d) => fields(d));
    });

  program
    .command('usage')
    .description("an agent's LLM tokens and cost by UTC day (default: the last 30 days)")
    .argument('<agentId>', 'the agent id')
    .option('--from <iso>', 'start, inclusive (ISO date or time)', isoInstant('--from'))
    .option('--to <iso>', 'end, exclusive (ISO date or time)', isoInstant('--to'))
    .addHelpText('after', examples('agent-scheduler usage writer', 'agent-scheduler usage writer --from 2026-01-01 --to 2026-02-01'))
    .action(async (agentId: string, o: { from?: string; to?: string }, cmd: Command) => {
      const { rest, print } = sessionOf(cmd);
      const { data } = await rest<UsageReportOutput>({ method: 'GET', path: `/api/agents/${seg(agentId)}/usage`, query: { from: o.from, to: o.to } });
      print.result(data, (u) => [
        `${u.runs} runs, ${u.inputTokens} input + ${u.outputTokens} output tokens, $${u.costUsd.toFixed(4)}`,
        ...(u.byDay.length > 0 ? ['', ...table(['DAY', 'RUNS', 'INPUT', 'OUTPUT', 'COST USD'], u.byDay.map((d) => [d.day, d.runs, d.inputTokens, d.outputTokens, d.costUsd.toFixed(4)]))] : []),
      ]);
    });
}
