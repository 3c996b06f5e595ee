import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { createParser } from 'eventsource-parser';
import { io } from 'socket.io-client';
import { createAuth } from '../src/services/auth.ts';
import { quick, record, round } from './harness.ts';
import { startServerProcess } from './server.ts';

/**
 * The `llm` handler under load (issue 10): RUNS llm agents streaming TOKENS-token answers from a local
 * fake OpenAI-compatible server, all at once, so the cost of the stream parsing and event throttling is
 * known. Figures: runs/s, agent:progress events/s (one Socket.IO subscriber on every agent), streamed
 * tokens/s, and the server's CPU per streamed token (read from /proc for its process).
 * Baseline, in the same run: the fake's raw stream read by RUNS concurrent bare `fetch` readers with
 * eventsource-parser in this process, so the ratio is the scheduler's overhead on top of reading the stream.
 * Three processes: the fake, the server and this one (the readers, the subscriber); each one's CPU is its own.
 */
const RUNS = quick ? 20 : 200;
const TOKENS = quick ? 200 : 1000;
const SECRET = 'bench-secret-bench-secret-bench-secret!!';
/** Linux reports /proc/<pid>/stat times in USER_HZ ticks, 100 a second on every architecture Node runs on. */
const TICKS_PER_S = 100;
/** A run that has not finished by then is counted as missing; at full speed the whole bench takes seconds. */
const WAIT_MS = 120_000;
/**
 * The paced round's gap between tokens: 500 tokens/s a stream, faster than hosted models (30–150/s) so the
 * round stays short, slow enough that the 100 ms throttle coalesces ~50 tokens an event instead of a whole answer.
 */
const PACE_MS = 2;
/** The fake's answer ("tok0 tok1 … "): what every run's deltas must add up to. */
const OUTPUT_CHARS = Array.from({ length: TOKENS }, (_, i) => `tok${i} `.length).reduce((a, b) => a + b, 0);

/**
 * The fake (test/fake-openai.ts) in its own process, so neither the server's nor the readers' CPU includes it.
 * Model `paced` streams a token every PACE_MS; any other model writes the whole answer at once.
 */
export async function startFakeProcess(tokens: number): Promise<{ baseUrl: string; stop(): Promise<void> }> {
  const fake = new URL('../test/fake-openai.ts', import.meta.url).href;
  const code = `const { startFakeOpenAI } = await import(${JSON.stringify(fake)});
const fake = await startFakeOpenAI((req) => ({ tokens: ${tokens}, ...(req.body?.model === 'paced' && { chunkDelayMs: ${PACE_MS} }) }));
console.log(fake.baseUrl);
process.on('SIGTERM', () => fake.close().then(() => process.exit(0)));`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const baseUrl = await new Promise<string>((resolve, reject) => {
    child.once('exit', (c) => reject(new Error(`fake OpenAI server exited with ${c}`)));
    createInterface({ input: child.stdout! }).once('line', resolve);
  });
  return { baseUrl, stop: () => new Promise<void>((r) => { child.once('exit', () => r()); child.kill('SIGTERM'); }) };
}

/** CPU time (user + system) a process has used, in µs. */
function processCpuUs(pid: number): number {
  // Fields after the command name, which is in parentheses and may itself hold spaces: utime and stime are 14 and 15.
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) / TICKS_PER_S) * 1e6;
}

const ownCpuUs = () => {
  const u = process.cpuUsage();
  return u.user + u.system;
};

/** One bare reader: POST the same request the handler sends, parse the SSE stream, count the tokens. */
async function readStream(baseUrl: string, model: string): Promise<number> {
  const res = await fetch(`${baseUrl.replace(/\/+$/, '')}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ model, stream: true, stream_options: { include_usage: true }, max_tokens: TOKENS, messages: [{ role: 'user', content: 'x' }] }),
  });
  if (!res.ok || !res.body) throw new Error(`fake answered ${res.status}`);
  let chunks = 0;
  let text = '';
  let usageTokens: number | undefined;
  const parser = createParser({
    onEvent(event) {
      if (event.data === '[DONE]') return;
      const chunk = JSON.parse(event.data) as { choices?: { delta?: { content?: string } }[]; usage?: { completion_tokens?: number } };
      const delta = chunk.choices?.[0]?.delta?.content;
      if (delta) {
        chunks++;
        text += delta;
      }
      if (chunk.usage?.completion_tokens !== undefined) usageTokens = chunk.usage.completion_tokens;
    },
  });
  const decoder = new TextDecoder();
  for await (const bytes of res.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(bytes, { stream: true }));
  if (text.length !== OUTPUT_CHARS) throw new Error(`the fake streamed ${text.length} characters, not ${OUTPUT_CHARS}`);
  return usageTokens ?? chunks;
}

export async function baseline(baseUrl: string, model: string): Promise<{ tokensPerS: number; cpuUsPerToken: number }> {
  await Promise.all(Array.from({ length: Math.min(RUNS, 10) }, () => readStream(baseUrl, model))); // warm-up: JIT, connections
  const cpu0 = ownCpuUs();
  const t0 = performance.now();
  const tokens = (await Promise.all(Array.from({ length: RUNS }, () => readStream(baseUrl, model)))).reduce((a, b) => a + b, 0);
  const seconds = (performance.now() - t0) / 1000;
  return { tokensPerS: tokens / seconds, cpuUsPerToken: (ownCpuUs() - cpu0) / tokens };
}

export async function benchLlm(tmp: string): Promise<void> {
  const fake = await startFakeProcess(TOKENS);
  const server = await startServerProcess({
    DATABASE_URL: `file:${tmp}/llm.db`,
    JWT_SECRET: SECRET,
    MAX_CONCURRENT_AGENTS: String(RUNS),
    LLM_ALLOWED_HOSTS: '127.0.0.1',
    // The one subscriber follows every agent of both rounds; the per-socket cap (100 by default) would refuse most.
    MAX_SUBSCRIPTIONS_PER_SOCKET: String(2 * RUNS),
  });
  const token = await createAuth({ secret: SECRET }).sign({ sub: 'bench' }, '1h');
  const socket = io(server.url, { auth: { token }, transports: ['websocket'] });
  const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
  try {
    const burstBase = await baseline(fake.baseUrl, 'bench');
    const pacedBase = await baseline(fake.baseUrl, 'paced');

    /** RUNS agents asking `model`, each followed by the one Socket.IO subscriber. */
    const agents = async (prefix: string, model: string) => {
      const ids = Array.from({ length: RUNS }, (_, i) => `${prefix}-${i}`);
      const config = { baseUrl: fake.baseUrl, model, prompt: 'x', maxTokens: TOKENS };
      for (const id of ids) {
        const res = await fetch(`${server.url}/api/agents`, { method: 'POST', headers, body: JSON.stringify({ id, name: id, handler: 'llm', config, maxRetries: 0 }) });
        if (res.status !== 201) throw new Error(`creating ${id}: ${res.status} ${await res.text()}`);
      }
      const acks = (await Promise.all(ids.map((id) => socket.emitWithAck('subscribe-agent-updates', id)))) as { success: boolean; error?: string }[];
      const refused = acks.find((a) => !a.success);
      if (refused) throw new Error(`subscribing: ${refused.error}`);
      return ids;
    };
    if (!socket.connected) {
      await new Promise<void>((resolve, reject) => {
        socket.once('connect', resolve);
        socket.once('connect_error', reject);
      });
    }
    const burstIds = await agents('llm', 'bench');
    const pacedIds = await agents('paced', 'paced');

    /** Runs every agent of `ids` at once; counts what the subscriber receives, and the server's CPU meanwhile. */
    const measure = async (ids: string[]) => {
      const w = { progress: 0, deltaChars: 0, tokens: 0, completed: 0, failed: [] as string[], lastAt: 0 };
      const done = new Promise<void>((resolve) => {
        const end = () => {
          w.lastAt = performance.now();
          if (w.completed + w.failed.length === ids.length) resolve();
        };
        socket.on('agent:progress', (e: { delta?: string }) => {
          w.progress++;
          w.deltaChars += e.delta?.length ?? 0;
        });
        socket.on('agent:completed', (e: { usage?: { outputTokens?: number } | null }) => {
          w.completed++;
          w.tokens += e.usage?.outputTokens ?? 0;
          end();
        });
        socket.on('agent:failed', (e: { error: string }) => {
          w.failed.push(e.error);
          end();
        });
      });
      const cpu0 = processCpuUs(server.child.pid!);
      const t0 = performance.now();
      const answers = await Promise.all(ids.map((id) => fetch(`${server.url}/api/agents/${id}/run`, { method: 'POST', headers })));
      const refused = answers.find((r) => r.status !== 202);
      if (refused) throw new Error(`run now: ${refused.status} ${await refused.text()}`);
      await Promise.race([done, new Promise((r) => setTimeout(r, WAIT_MS))]);
      const cpuUs = processCpuUs(server.child.pid!) - cpu0;
      socket.removeAllListeners('agent:progress').removeAllListeners('agent:completed').removeAllListeners('agent:failed');
      const seconds = Math.max(0.001, ((w.lastAt || performance.now()) - t0) / 1000);
      const missing = ids.length - w.completed - w.failed.length;
      const deltas = w.deltaChars === w.completed * OUTPUT_CHARS ? 'every delta arrived' : `${w.deltaChars} of ${w.completed * OUTPUT_CHARS} delta characters arrived`;
      const outcome = `${w.completed} completed, ${w.failed.length} failed${w.failed[0] ? ` (${w.failed[0]})` : ''}, ${missing} missing, in ${round(seconds, 2)} s; ${deltas}`;
      return { ...w, seconds, cpuUs, outcome };
    };

    // Warm-up: every agent runs once (the server's JIT, its connections to the fake), then the measured rounds.
    const warm = await measure(burstIds);
    if (warm.failed.length > 0 || warm.completed < burstIds.length) throw new Error(`llm warm-up: ${warm.outcome}`);
    const burst = await measure(burstIds);
    const paced = await measure(pacedIds);

    const readers = `${RUNS} bare fetch + eventsource-parser readers`;
    record({ name: `llm: ${RUNS} runs × ${TOKENS} tokens at once`, value: round(burst.completed / burst.seconds), unit: 'runs/s', baseline: null, baselineValue: null, target: null, met: null, note: burst.outcome });
    record({ name: 'llm: agent:progress events', value: round(burst.progress / burst.seconds), unit: 'events/s', baseline: null, baselineValue: null, target: null, met: null, note: `${burst.progress} events, ${round(burst.progress / Math.max(1, burst.completed), 1)} a run (each answer comes in one write)` });
    record({ name: 'llm: streamed tokens', value: round(burst.tokens / burst.seconds), unit: 'tokens/s', baseline: readers, baselineValue: round(burstBase.tokensPerS), target: null, met: null });
    const perToken = burst.cpuUs / Math.max(1, burst.tokens);
    record({ name: 'llm: server CPU per streamed token', value: round(perToken, 2), unit: 'µs/token', baseline: 'bare reader CPU', baselineValue: round(burstBase.cpuUsPerToken, 2), target: '≤ 5 µs', met: perToken <= 5, lowerIsBetter: true, note: `${round(burst.cpuUs / 1000)} ms of server CPU for ${burst.tokens} tokens` });
    record({ name: `llm paced (${PACE_MS} ms a token): agent:progress events`, value: round(paced.progress / paced.seconds), unit: 'events/s', baseline: null, baselineValue: null, target: null, met: null, note: `${paced.progress} events, ${round(paced.progress / Math.max(1, paced.completed), 1)} a run (the throttle allows 10 a run-second, plus the last); ${paced.outcome}` });
    record({ name: `llm paced (${PACE_MS} ms a token): server CPU per streamed token`, value: round(paced.cpuUs / Math.max(1, paced.tokens), 2), unit: 'µs/token', baseline: 'bare reader CPU, paced', baselineValue: round(pacedBase.cpuUsPerToken, 2), target: null, met: null, lowerIsBetter: true, note: `${round(paced.cpuUs / 1000)} ms of server CPU for ${paced.tokens} tokens; readers ${round(pacedBase.tokensPerS)} tokens/s, server ${round(paced.tokens / paced.seconds)}` });
  } finally {
    socket.close();
    await server.stop();
    await fake.stop();
  }
}
