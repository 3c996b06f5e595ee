import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * A fake OpenAI-compatible server (`POST …/chat/completions`) on 127.0.0.1, for the `llm` handler's tests and
 * its benchmark. Each request is answered as a `FakeReply` says: an error status, or a completion streamed as
 * server-sent events the way OpenAI sends them — content chunks, a `finish_reason` chunk, a usage chunk with
 * empty `choices` (asked for by `stream_options.include_usage`), then `data: [DONE]`. A request that does not
 * ask to stream gets one `application/json` completion instead.
 */

export interface FakeReply {
  status?: number;                    // default 200
  headers?: Record<string, string>;   // extra response headers (e.g. 'retry-after')
  body?: string;                      // for non-2xx: the raw body sent
  chunks?: string[];                  // content deltas streamed as SSE chunks
  tokens?: number;                    // alternatively: stream this many one-token chunks ("tok0 ", "tok1 ", …)
  usage?: { prompt_tokens: number; completion_tokens: number } | null; // final usage chunk; default computed, null = none
  done?: boolean;                     // send `data: [DONE]` at the end; default true
  dropAfter?: number;                 // destroy the socket after this many chunks
  chunkDelayMs?: number;              // wait between chunks (real timers; default 0)
  hang?: boolean;                     // send headers then nothing (for cancel/timeout tests)
}

export interface RecordedRequest { method: string; url: string; headers: Record<string, string | string[] | undefined>; body: any }

export interface FakeOpenAI extends AsyncDisposable {
  /** e.g. http://127.0.0.1:PORT/v1 */
  baseUrl: string;
  requests: RecordedRequest[];
  /** Resolves when the n-th (1-based) request's connection was closed by the client before the reply ended. */
  clientClosed(n: number): Promise<void>;
  close(): Promise<void>;
}

/** The content a reply streams when it names neither `chunks` nor `tokens`. */
const DEFAULT_CHUNKS = ['Hello', ', ', 'world', '!'];

/** What the default usage counts as the prompt's tokens: its words, a stand-in for a real tokenizer. */
function promptTokens(body: any): number {
  const messages: unknown[] = Array.isArray(body?.messages) ? body.messages : [];
  let n = 0;
  for (const m of messages) {
    const content = (m as { content?: unknown })?.content;
    if (typeof content === 'string') n += content.split(/\s+/).filter(Boolean).length;
  }
  return n;
}

const sse = (value: unknown) => `data: ${JSON.stringify(value)}\n\n`;

function contentOf(reply: FakeReply): string[] {
  if (reply.chunks) return reply.chunks;
  if (reply.tokens !== undefined) return Array.from({ length: reply.tokens }, (_, i) => `tok${i} `);
  return DEFAULT_CHUNKS;
}

function deferred() {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

export async function startFakeOpenAI(reply: FakeReply | ((req: RecordedRequest, n: number) => FakeReply)): Promise<FakeOpenAI> {
  const requests: RecordedRequest[] = [];
  const closed = new Map<number, ReturnType<typeof deferred>>();
  /** Replies cut by `dropAfter`: their close is not the client's. */
  const cutByUs = new WeakSet<ServerResponse>();
  const closedOf = (n: number) => {
    let d = closed.get(n);
    if (!d) closed.set(n, (d = deferred()));
    return d;
  };

  const answer = (req: RecordedRequest, n: number, res: ServerResponse) => {
    let r: FakeReply;
    try {
      r = typeof reply === 'function' ? reply(req, n) : reply;
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' });
      res.end(`fake reply failed: ${err instanceof Error ? err.message : String(err)}`);
      return;
    }
    const status = r.status ?? 200;
    if (status < 200 || status > 299) {
      res.writeHead(status, { 'content-type': 'application/json', ...r.headers });
      res.end(r.body ?? JSON.stringify({ error: { message: `fake error ${status}`, type: 'fake' } }));
      return;
    }

    const model = typeof req.body?.model === 'string' ? req.body.model : 'fake-model';
    const content = contentOf(r);
    const usage = r.usage === undefined ? { prompt_tokens: promptTokens(req.body), completion_tokens: content.length } : r.usage;
    const base = { id: `chatcmpl-fake-${n}`, created: 0, model };

    if (req.body?.stream !== true && !r.hang) {
      res.writeHead(status, { 'content-type': 'application/json', ...r.headers });
      res.end(JSON.stringify({
        ...base,
        object: 'chat.completion',
        choices: [{ index: 0, message: { role: 'assistant', content: content.join('') }, finish_reason: 'stop' }],
        ...(usage && { usage }),
      }));
      return;
    }

    res.writeHead(status, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', ...r.headers });
    if (r.hang) {
      res.flushHeaders();
      return;
    }
    const events = content.map((c, i) =>
      sse({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: i === 0 ? { role: 'assistant', content: c } : { content: c }, finish_reason: null }] }));
    const done = r.done ?? true;
    // `done: false` is a stream cut short cleanly: no finish_reason and no [DONE] (the usage chunk still comes).
    const tail = [
      ...(done ? [sse({ ...base, object: 'chat.completion.chunk', choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] })] : []),
      ...(usage ? [sse({ ...base, object: 'chat.completion.chunk', choices: [], usage })] : []),
      ...(done ? ['data: [DONE]\n\n'] : []),
    ];
    const drop = r.dropAfter;
    // Destroyed once what was written before it has left: the client reads those chunks, then a cut connection.
    const cut = (last: string) =>
      res.write(last, () => {
        cutByUs.add(res);
        res.socket?.destroy();
      });

    const delay = r.chunkDelayMs ?? 0;
    if (delay <= 0) {
      // One write for the whole answer: the benchmark streams long answers to many runs at once.
      if (drop !== undefined) cut(events.slice(0, drop).join(''));
      else res.end(events.join('') + tail.join(''));
      return;
    }
    let i = 0;
    const next = () => {
      if (res.destroyed) return;
      if (drop !== undefined && i >= drop) return void cut('');
      if (i >= events.length) return void res.end(tail.join(''));
      res.write(events[i++]!);
      setTimeout(next, delay);
    };
    next();
  };

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    const n = requests.length + 1;
    const parts: Buffer[] = [];
    req.on('data', (c: Buffer) => parts.push(c));
    req.on('end', () => {
      const raw = Buffer.concat(parts).toString('utf8');
      let body: unknown = raw;
      try {
        body = JSON.parse(raw);
      } catch {
        // not JSON: recorded as the text
      }
      const recorded: RecordedRequest = { method: req.method ?? '', url: req.url ?? '', headers: { ...req.headers }, body };
      requests.push(recorded);
      res.on('close', () => {
        if (!res.writableFinished && !cutByUs.has(res)) closedOf(n).resolve();
      });
      answer(recorded, n, res);
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;

  const close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return {
    baseUrl: `http://127.0.0.1:${port}/v1`,
    requests,
    clientClosed: (n) => closedOf(n).promise,
    close,
    [Symbol.asyncDispose]: close,
  };
}
