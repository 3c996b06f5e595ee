/**
 * `npm run example:watch`: schedules a `demo` agent every 5 seconds through the typed client and
 * draws each run's live progress as a bar, until three runs have completed (or Ctrl-C).
 *
 *   SCHEDULER_URL  server to use (default http://127.0.0.1:5000, i.e. a local `npm start`)
 *   TOKEN          a JWT; without it one is signed with the local server's generated secret
 */
import WebSocket from 'ws';
import { createSchedulerClient } from '../client/index.ts';
import { loadConfig } from '../src/config.ts';
import { loadSecrets } from '../src/runtime/secrets.ts';
import { createAuth } from '../src/services/auth.ts';

const url = process.env['SCHEDULER_URL'] ?? 'http://127.0.0.1:5000';
const runsWanted = Number(process.env['RUNS'] ?? 3);

async function token(): Promise<string> {
  if (process.env['TOKEN']) return process.env['TOKEN'];
  const config = loadConfig(process.env);
  return createAuth({ secret: loadSecrets(config).jwtSecret, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE }).sign({ sub: 'example' }, '1h');
}

function bar(pct: number, width = 30): string {
  const full = Math.round((pct / 100) * width);
  return `[${'#'.repeat(full)}${'-'.repeat(width - full)}] ${String(Math.round(pct)).padStart(3)}%`;
}

const client = createSchedulerClient({ url, token: await token(), WebSocket: WebSocket as unknown as typeof globalThis.WebSocket });
const agentId = `watch-${Date.now().toString(36)}`;
await client.agents.create.mutate({ id: agentId, name: 'Watched demo', handler: 'demo', config: { steps: 8, stepMs: 300 } });
const scheduled = await client.schedule.set.mutate({ agentId, cronExpression: '*/5 * * * * *', priority: 'HIGH' });
console.log(`Scheduled ${agentId} every 5 s; first run at ${scheduled.nextRunAt}. Watching ${runsWanted} runs…`);

let completed = 0;
const done = new Promise<void>((resolve, reject) => {
  const sub = client.events.agent.subscribe({ agentId }, {
    onData: ({ data: event }) => {
      if (event.type === 'agent:started') process.stdout.write(`\nrun ${event.data.runId} ${bar(0)}`);
      else if (event.type === 'agent:progress') process.stdout.write(`\rrun ${event.data.runId} ${bar(event.data.progress)} ${event.data.message ?? ''}`);
      else if (event.type === 'agent:completed') {
        process.stdout.write(`  done in ${event.data.duration} ms`);
        if (++completed >= runsWanted) {
          sub.unsubscribe();
          resolve();
        }
      } else if (event.type === 'agent:failed') process.stdout.write(`  failed: ${event.data.error}${event.data.willRetry ? ' (will retry)' : ''}`);
    },
    onError: reject,
  });
});

const cleanup = async () => {
  await client.agents.delete.mutate({ agentId }).catch(() => {});
  await client.close();
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));
await done;
console.log('\nDone; removing the example agent.');
await cleanup();
