import superjson from 'superjson';

/**
 * One live event goes to every subscriber: it is serialised once, not once per subscriber.
 * The transformer memoises superjson's output by the identity of the value (every subscriber yields
 * the same event object from the bus), and the WebSocket encoder memoises that output's JSON text, so
 * each frame is a short envelope around a string made once. Messages of any other shape are encoded
 * as tRPC's default JSON encoder would.
 */
const serialized = new WeakMap<object, ReturnType<typeof superjson.serialize>>();
const texts = new WeakMap<object, string>();

export const transformer = {
  serialize(value: unknown) {
    // Only frozen values are memoised: the scheduler freezes every event it emits, and a value that
    // cannot change cannot go stale. Query results are fresh objects and pass straight through.
    if (value === null || typeof value !== 'object' || !Object.isFrozen(value)) return superjson.serialize(value);
    let out = serialized.get(value);
    if (!out) {
      out = superjson.serialize(value);
      serialized.set(value, out);
    }
    return out;
  },
  deserialize: superjson.deserialize.bind(superjson) as typeof superjson.deserialize,
};

function only(o: object, keys: string[]): boolean {
  for (const k of Object.keys(o)) if (!keys.includes(k)) return false;
  return true;
}

export const wsEncoder = {
  encode(message: unknown): string {
    const m = message as { id?: unknown; jsonrpc?: unknown; result?: { type?: unknown; id?: unknown; data?: unknown } };
    const data = m?.result?.data;
    if (m && typeof m === 'object' && only(m, ['id', 'jsonrpc', 'result']) && m.result && m.result.type === 'data' && only(m.result, ['type', 'id', 'data']) && data !== null && typeof data === 'object') {
      let text = texts.get(data);
      if (text === undefined) {
        text = JSON.stringify(data);
        texts.set(data, text);
      }
      const head = m.jsonrpc === undefined ? '' : `"jsonrpc":${JSON.stringify(m.jsonrpc)},`;
      const rid = m.result.id === undefined ? '' : `"id":${JSON.stringify(m.result.id)},`;
      return `{"id":${JSON.stringify(m.id ?? null)},${head}"result":{"type":"data",${rid}"data":${text}}}`;
    }
    return JSON.stringify(message);
  },
  decode(data: string | ArrayBuffer | Uint8Array): unknown {
    if (typeof data !== 'string') throw new Error('expected a text frame');
    return JSON.parse(data);
  },
};
