import type { IncomingMessage, ServerResponse } from 'node:http';
import { getErrorShape, getTRPCErrorFromUnknown, transformTRPCResponse, TRPCError, type AnyTRPCProcedure } from '@trpc/server';
import { getHTTPStatusCode } from '@trpc/server/http';
import { principalFor } from '../../services/auth.ts';
import { procedures as table, type AnyProcedure } from '../../services/procedures.ts';
import type { TrpcContext } from './init.ts';
import { appRouter } from './router.ts';

/** The rows the router is built from, by dotted path, as the router's procedures are. */
const rows = table as unknown as Record<string, AnyProcedure>;

/**
 * A query's usual success, made without tRPC's procedure: the steps of the procedure router.ts builds (the
 * caller's principal, the input parsed by its schema, the row's call and reply), without the middleware chain,
 * which copies the call's options and context at every step. Anything that throws or does not parse answers
 * undefined, and the call is made again through tRPC, so that every error is tRPC's own, shape and status: a
 * query only reads, so asking twice changes nothing. `onRead` is told when tRPC would have read the input.
 */
async function direct(row: AnyProcedure, ctx: TrpcContext, raw: unknown, onRead: () => void): Promise<{ data: unknown } | undefined> {
  if (row.kind !== 'query') return undefined;
  try {
    const principal = await principalFor(ctx.auth, row.access, ctx.token);
    let input: unknown;
    if (row.input) {
      onRead();
      const parsed = await row.input.safeParseAsync(raw);
      if (!parsed.success) return undefined;
      input = parsed.data;
    }
    const answer = await row.call({ ...ctx, principal }, input as never);
    return { data: row.reply ? row.reply(answer) : answer };
  } catch {
    return undefined;
  }
}

/** A batch's paths as the client sends them: procedure names (letters, digits, `_`, `.`) joined by commas. */
const PLAIN_PATHS = /^\/trpc\/([A-Za-z0-9_.]+(?:,[A-Za-z0-9_.]+)*)$/;
type Outcome = [error: TRPCError, result: undefined] | [error: undefined, result: { data: unknown }];

/**
 * The typed client's and the dashboard's reads, `GET /trpc/<query>[,<query>…]` with JSON input in the URL,
 * answered without the standalone adapter, which builds a fetch `Request` and `Response` and pipes a web
 * stream for every call (~300 µs of CPU each). The steps are tRPC's own for this case (resolveResponse), with
 * the same functions (the error shape, the status, the transformer), so an answer is the same: status,
 * `content-type`, `vary` and the body (sent with its length rather than in chunks). Anything else — a mutation or subscription,
 * an unknown or encoded path, input that does not parse, an oversized batch, a streaming `accept`, a
 * content-type other than JSON's, connection params — returns false before any call runs, and the adapter serves it.
 */
export function createQueryPath({ maxBatch, createContext }: { maxBatch: number; createContext: (req: IncomingMessage) => TrpcContext }) {
  const config = appRouter._def._config;
  // At run time the router keeps its procedures flat, by dotted path (its type shows them nested).
  const procedures = appRouter._def.procedures as unknown as Record<string, AnyTRPCProcedure>;
  const isObject = (v: unknown): v is Record<string, unknown> => !!v && !Array.isArray(v) && typeof v === 'object';
  const isPromise = (v: unknown) => (isObject(v) || typeof v === 'function') && typeof (v as { then?: unknown }).then === 'function' && typeof (v as { catch?: unknown }).catch === 'function';
  const isAsyncIterable = (v: unknown) => isObject(v) && Symbol.asyncIterator in v;
  const isDataStream = (v: unknown) => isObject(v) && (isAsyncIterable(v) || Object.values(v).some(isPromise) || Object.values(v).some(isAsyncIterable));
  const streamError = () => new TRPCError({ code: 'UNSUPPORTED_MEDIA_TYPE', message: 'Cannot use stream-like response in non-streaming request - use httpBatchStreamLink' });

  return (req: IncomingMessage, res: ServerResponse, url: URL): Promise<void> | false => {
    const h = req.headers;
    // A content-type other than JSON's picks another of tRPC's parsers (or its error).
    const type = h['content-type'];
    if (req.method !== 'GET' || (type !== undefined && type.toLowerCase().split(';', 1)[0]!.trim() !== 'application/json')) return false;
    if (h['trpc-accept'] !== undefined || h.accept?.includes('application/jsonl')) return false;
    const match = PLAIN_PATHS.exec(url.pathname);
    if (!match || url.searchParams.has('connectionParams')) return false;
    const isBatch = url.searchParams.get('batch') === '1';
    const paths = isBatch ? match[1]!.split(',') : [match[1]!];
    if (paths.length > maxBatch) return false;
    for (const path of paths) if (!Object.hasOwn(procedures, path) || procedures[path]!._def.type !== 'query') return false;
    // The inputs, decoded as tRPC would; any failure is the adapter's to answer.
    const inputs: Record<number, unknown> = Object.create(null);
    try {
      const text = url.searchParams.get('input');
      const raw: unknown = text ? JSON.parse(text) : undefined;
      if (raw !== undefined && !isBatch) inputs[0] = config.transformer.input.deserialize(raw);
      else if (raw !== undefined) {
        if (!isObject(raw)) return false;
        paths.forEach((_, i) => raw[i] !== undefined && (inputs[i] = config.transformer.input.deserialize(raw[i])));
      }
    } catch {
      return false;
    }
    return answer(req, res, paths, inputs, isBatch);
  };

  async function answer(req: IncomingMessage, res: ServerResponse, paths: string[], inputs: Record<number, unknown>, isBatch: boolean): Promise<void> {
    const ctx = createContext(req);
    // tRPC reads a request's inputs once, for all its calls, when the first call asks; an error shape gets the input
    // only if some call read them.
    let read = false;
    const getRawInput = (i: number) => async () => {
      read = true;
      return inputs[i];
    };
    const outcomes = await Promise.all(paths.map(async (path, i): Promise<Outcome> => {
      const answered = await direct(rows[path]!, ctx, inputs[i], () => (read = true));
      if (answered) return [undefined, answered];
      try {
        return [undefined, { data: await procedures[path]!({ path, getRawInput: getRawInput(i), ctx, type: 'query', signal: undefined, batchIndex: i }) }];
      } catch (cause) {
        return [getTRPCErrorFromUnknown(cause), undefined];
      }
    }));
    const shape = (error: TRPCError, i: number | undefined) =>
      ({ error: getErrorShape({ config, ctx, error, input: i !== undefined && read ? inputs[i] : undefined, path: i !== undefined ? paths[i] : undefined, type: 'query' }) });
    let json: unknown[];
    let errors: (TRPCError | undefined)[];
    if (!isBatch) {
      const [error, result] = outcomes[0]!;
      if (result && isDataStream(result.data)) {
        // tRPC throws this one outside the call: its shape has no path and no input.
        const e = streamError();
        json = [shape(e, undefined)];
        errors = [e];
      } else {
        json = [error ? shape(error, 0) : { result: { data: result!.data } }];
        errors = error ? [error] : [];
      }
    } else {
      const checked = outcomes.map(([error, result]): Outcome => (result && isDataStream(result.data) ? [streamError(), undefined] : error ? [error, undefined] : [undefined, result!]));
      json = checked.map(([error, result], i) => (error ? shape(error, i) : { result: { data: result!.data } }));
      errors = checked.map(([error]) => error);
    }
    // A batch's list has a hole for each call that succeeded, as tRPC's has.
    const status = getHTTPStatusCode(json as Parameters<typeof getHTTPStatusCode>[0], errors as TRPCError[]);
    // A success is `{ result: { data } }` with its data serialised, as transformTRPCResponse makes it (which copies
    // each item with a spread helper that cost more than the call); an error item goes through tRPC's own.
    const item = (j: unknown) => {
      const r = (j as { result?: { data: unknown } }).result;
      return r ? { result: { data: config.transformer.output.serialize(r.data) } } : transformTRPCResponse(config, j as Parameters<typeof transformTRPCResponse>[1]);
    };
    const body = JSON.stringify(isBatch ? json.map((j) => (j === undefined ? j : item(j))) : item(json[0]));
    if (res.statusCode === 200) res.statusCode = status;
    res.setHeader('content-type', 'application/json');
    res.setHeader('vary', 'trpc-accept, accept');
    // One write with its length, where the adapter streams a chunk and then the end (chunked framing, three buffers
    // to the socket): the same answer to any HTTP client, in one buffer.
    res.setHeader('content-length', Buffer.byteLength(body));
    res.end(body);
  }
}
