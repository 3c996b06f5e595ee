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

/**
 * The last value asked and its answer, in front of each memo: every subscriber asks for the same event in turn,
 * and a comparison is cheaper than a WeakMap lookup a delivery.
 */
let lastValue: object | undefined;
let lastOut: ReturnType<typeof superjson.serialize> | undefined;
let lastPart: object | undefined;
let lastText: string | undefined;

/** superjson's output for a frozen value, made once per value. */
function memoised(value: object): ReturnType<typeof superjson.serialize> {
  if (value === lastValue && lastOut) return lastOut;
  let out = serialized.get(value);
  if (!out) {
    out = superjson.serialize(value);
    serialized.set(value, out);
  }
  lastValue = value;
  lastOut = out;
  return out;
}

/** JSON text of a memoised output's part, made once per part. */
function textOf(part: object): string {
  if (part === lastPart && lastText !== undefined) return lastText;
  let text = texts.get(part);
  if (text === undefined) {
    text = JSON.stringify(part);
    texts.set(part, text);
  }
  lastPart = part;
  lastText = text;
  return text;
}

/** The text of a part that `textOf` made already, or undefined. */
function knownText(part: object): string | undefined {
  return part === lastPart ? lastText : texts.get(part);
}

export const transformer = {
  serialize(value: unknown) {
    if (value === null || typeof value !== 'object') return superjson.serialize(value);
    // Only frozen values are memoised: the scheduler freezes every event it emits, and a value that
    // cannot change cannot go stale. Query results are fresh objects and pass straight through.
    if (Object.isFrozen(value)) return memoised(value);
    // tRPC wraps each `tracked` event in a fresh `{ id, data }` per subscriber: the event inside is the frozen one.
    // Its output is what superjson gives for the envelope (an id string needs no meta), around the event's
    // memoised output, whose JSON text the encoder reuses. An event with meta (a Date, an undefined) would need
    // its paths prefixed: it takes the plain path.
    const v = value as { id?: unknown; data?: unknown };
    if (typeof v.id === 'string' && v.data !== null && typeof v.data === 'object' && Object.isFrozen(v.data) && isEnvelope(value)) {
      const inner = memoised(v.data);
      if (inner.meta === undefined && inner.json !== null && typeof inner.json === 'object') {
        textOf(inner.json); // made now, so the encoder finds it
        return { json: { id: v.id, data: inner.json } } as ReturnType<typeof superjson.serialize>;
      }
    }
    return superjson.serialize(value);
  },
  deserialize: superjson.deserialize.bind(superjson) as typeof superjson.deserialize,
};

/** Exactly `{ id, data }`, in that order (superjson keeps key order, and so must the text). */
function isEnvelope(o: object): boolean {
  const keys = Object.keys(o);
  return keys.length === 2 && keys[0] === 'id' && keys[1] === 'data';
}

function only(o: object, keys: string[]): boolean {
  for (const k of Object.keys(o)) if (!keys.includes(k)) return false;
  return true;
}

/** The JSON text of a tracked event's output (see `serialize`), when its inner part's text was made already. */
function envelopeText(data: object): string | undefined {
  const d = data as { json?: { id?: unknown; data?: unknown } };
  const json = d.json;
  if (json === null || typeof json !== 'object' || typeof json.id !== 'string' || json.data === null || typeof json.data !== 'object') return undefined;
  const inner = knownText(json.data);
  if (inner === undefined || !only(d, ['json']) || !isEnvelope(json)) return undefined;
  return `{"json":{"id":${JSON.stringify(json.id)},"data":${inner}}}`;
}

export const wsEncoder = {
  encode(message: unknown): string {
    const m = message as { id?: unknown; jsonrpc?: unknown; result?: { type?: unknown; id?: unknown; data?: unknown } };
    const data = m?.result?.data;
    if (m && typeof m === 'object' && only(m, ['id', 'jsonrpc', 'result']) && m.result && m.result.type === 'data' && only(m.result, ['type', 'id', 'data']) && data !== null && typeof data === 'object') {
      const text = envelopeText(data) ?? textOf(data);
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
