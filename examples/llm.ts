/**
 * `npm run example:llm`: creates an `llm` agent through the typed client, runs it now, streams the
 * answer to stdout as its tokens arrive (the `delta` of each agent:progress), then prints what the run
 * used and cost (read back with `runs.get`) and removes the agent. Exits 1 with the error if the run fails.
 *
 *   LLM_BASE_URL     any OpenAI-compatible server (default http://127.0.0.1:11434/v1, a local Ollama)
 *   LLM_MODEL        the model to ask (default llama3.2)
 *   LLM_API_KEY_ENV  the name of the environment variable holding the API key, read by the *server* at
 *                    run time (the key itself never goes through this script); unset: no Authorization
 *   PROMPT           what to ask (default: a one-paragraph question)
 *   SCHEDULER_URL    server to use (default http://127.0.0.1:5000, i.e. a local `npm start`)
 *   TOKEN            a JWT; without it one is signed with the local server's generated secret
 *
 * The server must allow the model server's host: LLM_ALLOWED_HOSTS (default localhost,127.0.0.1,::1), and
 * LLM_PRICES to price models that do not report a cost, e.g.
 * `LLM_PRICES='{"gpt-4o-mini":{"inputPerMTok":0.15,"outputPerMTok":0.6}}'`.
 */
import WebSocket from 'ws';
import { createSchedulerClient } from '../client/index.ts';
import { loadConfig } from '../src/config.ts';
import { loadSecrets } from '../src/runtime/secrets.ts';
import { createAuth } from '../src/services/auth.ts';

const url = process.env['SCHEDULER_URL'] ?? 'http://127.0.0.1:5000';
const baseUrl = process.env['LLM_BASE_URL'] ?? 'http://127.0.0.1:11434/v1';
const model = process.env['LLM_MODEL'] ?? 'llama3.2';
const apiKeyEnv = process.env['LLM_API_KEY_ENV'] || undefined;
const prompt = process.env['PROMPT'] ?? 'In one short paragraph: why do AI agents need a scheduler with retries and budgets?';

async function token(): Promise<string> {
  if (process.env['TOKEN']) return process.env['TOKEN'];
  const config = loadConfig(process.env);
  return createAuth({ secret: loadSecrets(config).jwtSecret, issuer: config.JWT_ISSUER, audience: config.JWT_AUDIENCE }).sign({ sub: 'example' }, '1h');
}

const client = createSchedulerClient({ url, token: await token(), WebSocket: WebSocket as unknown as typeof globalThis.WebSocket });
const agentId = `llm-${Date.now().toString(36)}`;
// No retries: the example shows the first failure (a model server that is not running, a missing key) at once.
await client.agents.create.mutate({ id: agentId, name: 'LLM example', handler: 'llm', config: { baseUrl, model, prompt, ...(apiKeyEnv && { apiKeyEnv }) }, maxRetries: 0 });
console.error(`Asking ${model} at ${baseUrl} (agent ${agentId})…\n`);

const cleanup = async () => {
  await client.agents.delete.mutate({ agentId }).catch(() => {});
  await client.close();
};
process.once('SIGINT', () => void cleanup().then(() => process.exit(130)));

/** Resolves with the run's id once it completed; rejects with its error if it failed. */
const finished = new Promise<string>((resolve, reject) => {
  let started!: () => void;
  const subscribed = new Promise<void>((r) => (started = r));
  const sub = client.events.agent.subscribe({ agentId }, {
    onStarted: () => started(),
    onData: ({ data: event }) => {
      if (event.type === 'agent:progress') {
        if (event.data.delta) process.stdout.write(event.data.delta);
      } else if (event.type === 'agent:completed') {
        sub.unsubscribe();
        resolve(event.data.runId);
      } else if (event.type === 'agent:failed' || event.type === 'agent:cancelled') {
        sub.unsubscribe();
        reject(new Error(event.type === 'agent:failed' ? event.data.error : 'the run was cancelled'));
      }
    },
    onError: reject,
  });
  // Run only once the subscription is live, so no delta is missed.
  subscribed.then(() => client.agents.run.mutate({ agentId })).catch(reject);
});

try {
  const runId = await finished;
  const run = await client.runs.get.query({ runId });
  process.stdout.write('\n\n');
  if (run.outputTruncated) console.log('(the output passed 256 KiB and was cut there)');
  const u = run.usage;
  if (!u) console.log('usage: not reported by the model server');
  else {
    const cost = u.costUsd === null ? 'cost unknown (the server has no LLM_PRICES entry for this model)' : `cost $${u.costUsd.toFixed(6)}`;
    console.log(`usage: ${u.model}, ${u.inputTokens} input + ${u.outputTokens} output tokens, ${cost}`);
  }
} catch (err) {
  console.error(`\nfailed: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await cleanup();
}
