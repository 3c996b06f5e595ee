import { readFileSync } from 'node:fs';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import { registerApiCommands } from './commands.ts';
import { registerScheduleViews } from './schedule-views.ts';
import { createPrinter, type CliStreams, type Printer } from './output.ts';
import { CliError, createRest, EXIT, type Rest } from './rest.ts';
import { registerWatch } from './watch.ts';

/** `agent-scheduler` (CONTRACT §10 "CLI"): the program, runnable in-process (tests) or from `main.ts`. */

export const DEFAULT_URL = 'http://127.0.0.1:5000';

/** The package's version, for `--version`: read from its package.json wherever it is installed. */
const version = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

export interface CliContext {
  /** Read for SCHEDULER_URL and SCHEDULER_TOKEN, and given to `serve` and `token` as their environment. */
  env: Record<string, string | undefined>;
  streams: CliStreams;
  /** Calls `fn` on Ctrl-C (SIGINT); answers a function that stops listening. `watch` ends on it. */
  onInterrupt(fn: () => void): () => void;
  /** Starts the server as `npm start` does (`serve`); resolves once it listens. */
  serve(env: Record<string, string | undefined>): Promise<void>;
  /** Signs a token as `npm run token` does (`token`). */
  signToken(request: { sub: string; role?: string; ttl?: string }, env: Record<string, string | undefined>): Promise<string>;
  /** @default globalThis.fetch */
  fetch?: typeof fetch;
}

/** What an API command needs: its REST caller, printer and the resolved server URL and token. */
export interface Session {
  rest: Rest;
  print: Printer;
  url: string;
  token: string | undefined;
}

export type SessionOf = (cmd: Command) => Session;

export const examples = (...lines: string[]) => `\nExamples:\n${lines.map((l) => `  $ ${l}`).join('\n')}`;

/** An integer option parsed by commander, so a bad value is a usage error (exit 2) naming the option. */
export const intIn = (name: string, min: number, max: number) => (v: string) => {
  const n = Number(v);
  if (!/^\d+$/.test(v.trim()) || n < min || n > max) throw new InvalidArgumentError(`${name}: expected a whole number from ${min} to ${max}, got "${v}"`);
  return n;
};

export function buildProgram(ctx: CliContext): Command {
  const program = new Command('agent-scheduler')
    .description('Run and drive an agent scheduler: start the server, manage agents and schedules, watch runs live.')
    .version(version, '-V, --version', 'print the version')
    .option('--url <url>', `server base URL (env SCHEDULER_URL, default ${DEFAULT_URL})`)
    .option('--token <jwt>', 'bearer token (env SCHEDULER_TOKEN; the variable keeps it out of `ps`)')
    .option('--json', 'print the REST `data` object as JSON on stdout (watch: one event per line)')
    .exitOverride()
    .configureOutput({
      writeOut: (s) => void ctx.streams.stdout.write(s),
      writeErr: (s) => void ctx.streams.stderr.write(s),
    })
    .showHelpAfterError('(add --help for usage)')
    // Every command's help lists --url, --token and --json, and ends with the variables and exit codes.
    .configureHelp({ showGlobalOptions: true })
    .addHelpText('after', examples('export SCHEDULER_TOKEN=$(agent-scheduler token --sub admin --role admin --ttl 7d)', 'agent-scheduler agents create --name Writer --handler demo --id writer', "agent-scheduler schedule set writer '*/5 * * * *' --priority HIGH", 'agent-scheduler watch'))
    .addHelpText('afterAll', `
Environment:
  SCHEDULER_URL    server base URL (default ${DEFAULT_URL})
  SCHEDULER_TOKEN  bearer token, e.g. from \`agent-scheduler token --sub admin --role admin\`

Exit codes: 0 success, 1 the server refused or could not be reached (reason on stderr), 2 usage error.`);

  const sessionOf: SessionOf = (cmd) => {
    const o = cmd.optsWithGlobals<{ url?: string; token?: string; json?: boolean }>();
    const url = o.url ?? (ctx.env['SCHEDULER_URL'] || DEFAULT_URL);
    if (!/^https?:\/\/[^/]/.test(url)) throw new CliError(`--url: expected an http:// or https:// URL, got "${url}"`, EXIT.usage);
    const token = o.token ?? (ctx.env['SCHEDULER_TOKEN'] || undefined);
    return { url, token, rest: createRest({ url, token, ...(ctx.fetch && { fetch: ctx.fetch }) }), print: createPrinter(ctx.streams, o.json === true) };
  };

  program
    .command('serve')
    .description('start the server exactly as `npm start` does (same environment variables: PORT, HOST, DATABASE_URL, JWT_SECRET …)')
    .option('--port <port>', 'listen port (sets PORT)')
    .option('--host <host>', 'listen address (sets HOST)')
    .addHelpText('after', examples('agent-scheduler serve', 'DATABASE_URL=postgres://localhost/scheduler agent-scheduler serve --port 8080'))
    .action(async (o: { port?: string; host?: string }) => {
      await ctx.serve({ ...ctx.env, ...(o.port !== undefined && { PORT: o.port }), ...(o.host !== undefined && { HOST: o.host }) });
    });

  program
    .command('token')
    .description('print a JWT signed with the configured secret (JWT_SECRET, or the data folder\'s generated one), as `npm run token` does')
    .requiredOption('--sub <subject>', 'the token\'s subject: the owner of the agents it creates')
    .option('--role <role>', '`admin` sees and acts on every agent')
    .option('--ttl <duration>', 'lifetime such as 30m, 1h or 7d', '1h')
    .addHelpText('after', examples('agent-scheduler token --sub alice', 'export SCHEDULER_TOKEN=$(agent-scheduler token --sub admin --role admin --ttl 30d)'))
    .action(async (o: { sub: string; role?: string; ttl: string }, cmd: Command) => {
      const token = await ctx.signToken(o, ctx.env).catch(async (err: unknown) => {
        // A bad --ttl or JWT_* variable is the user's to fix: a usage error (exit 2) in one line. Loaded here, not at start.
        const { ConfigError } = await import('../config.ts');
        throw err instanceof ConfigError ? new CliError(err.message, EXIT.usage) : err;
      });
      const json = cmd.optsWithGlobals<{ json?: boolean }>().json === true;
      ctx.streams.stdout.write(json ? `${JSON.stringify({ token })}\n` : `${token}\n`);
    });

  registerApiCommands(program, sessionOf);
  registerScheduleViews(program, sessionOf);
  registerWatch(program, sessionOf, ctx);
  return program;
}

/** Runs one command line (`argv` without node and the script) and answers its exit code; never exits the process. */
export async function runCli(argv: string[], ctx: CliContext): Promise<number> {
  const program = buildProgram(ctx);
  try {
    await program.parseAsync(argv, { from: 'user' });
    return EXIT.ok;
  } catch (err) {
    // Commander has printed its own message (unknown command, missing argument …); `--help` and `--version` exit 0.
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT.ok : EXIT.usage;
    if (err instanceof CliError) {
      ctx.streams.stderr.write(`error: ${err.message}\n`);
      return err.exitCode;
    }
    ctx.streams.stderr.write(`error: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT.refused;
  }
}
