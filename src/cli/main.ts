import { runCli } from './program.ts';

/**
 * The `agent-scheduler` command (`bin/agent-scheduler.js`, `npm run cli -- …`): the process's streams,
 * environment and Ctrl-C given to `runCli`. The exit code is set rather than forced, so output drains
 * and `serve` keeps running; the server ends the process itself on SIGTERM or SIGINT.
 */
process.exitCode = await runCli(process.argv.slice(2), {
  env: process.env,
  streams: { stdout: process.stdout, stderr: process.stderr },
  onInterrupt(fn) {
    process.on('SIGINT', fn);
    return () => void process.off('SIGINT', fn);
  },
  // Loaded on use: the server and the secrets code are most of the import graph, and most commands need neither.
  serve: async (env) => (await import('../runtime/node.ts')).startNodeServer(env),
  signToken: async (request, env) => (await import('../runtime/token.ts')).signToken(request, env),
});
