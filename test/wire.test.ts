import superjson from 'superjson';
import { describe, expect, it, vi } from 'vitest';
import { transformer, wsEncoder } from '../src/transport/trpc/wire.ts';

describe('tRPC wire format', () => {
  it('encodes exactly what JSON.stringify would, for data frames and anything else', () => {
    const event = Object.freeze({ id: 7, type: 'agent:progress', agentId: 'a', data: Object.freeze({ progress: 50, message: 'half "way"' }) });
    const messages = [
      { id: 3, jsonrpc: '2.0', result: { type: 'data', id: '7', data: transformer.serialize(event) } },
      { id: 'x', result: { type: 'data', data: transformer.serialize({ plain: true }) } },
      { id: 1, result: { type: 'started' } },
      { id: 1, error: { message: 'nope', code: -32600 } },
      { id: null, method: 'reconnect' },
    ];
    for (const m of messages) expect(JSON.parse(wsEncoder.encode(m) as string)).toEqual(JSON.parse(JSON.stringify(m)));
  });

  it('serialises one frozen event once, however many subscribers receive it', () => {
    const spy = vi.spyOn(superjson, 'serialize');
    const event = Object.freeze({ id: 8, type: 'agent:started', agentId: 'a', data: Object.freeze({ status: 'started' }) });
    const frames = new Set<string>();
    for (let subscriber = 0; subscriber < 100; subscriber++) {
      frames.add(wsEncoder.encode({ id: 1, result: { type: 'data', id: '8', data: transformer.serialize(event) } }) as string);
    }
    expect(spy).toHaveBeenCalledTimes(1);
    expect(frames.size).toBe(1);
    // A value that can change is never served from the memo.
    const mutable = { n: 1 };
    transformer.serialize(mutable);
    mutable.n = 2;
    expect(superjson.deserialize(transformer.serialize(mutable))).toEqual({ n: 2 });
    spy.mockRestore();
  });
  it('writes a tracked event (a fresh `{ id, data }` per subscriber) as superjson would, serialising the event once', () => {
    const event = Object.freeze({ id: 9, type: 'agent:progress', agentId: 'a', data: Object.freeze({ progress: 10, message: 'a "quote"' }) });
    const spy = vi.spyOn(superjson, 'serialize');
    const frames = new Set<string>();
    for (let subscriber = 0; subscriber < 50; subscriber++) {
      const envelope = { id: '9', data: event };
      const message = { id: subscriber, jsonrpc: '2.0', result: { type: 'data', id: '9', data: transformer.serialize(envelope) } };
      const text = wsEncoder.encode(message) as string;
      frames.add(text.replace(/^\{"id":\d+,/, ''));
      expect(JSON.parse(text)).toEqual(JSON.parse(JSON.stringify(message)));
      expect(superjson.deserialize(JSON.parse(text).result.data)).toEqual(envelope);
    }
    expect(frames.size).toBe(1);
    expect(spy).toHaveBeenCalledTimes(1);
    spy.mockRestore();
    // An event with a Date carries superjson meta: it takes the plain path and still round-trips.
    const dated = Object.freeze({ id: 10, at: new Date(0) });
    const text = wsEncoder.encode({ id: 1, result: { type: 'data', data: transformer.serialize({ id: '10', data: dated }) } }) as string;
    expect(superjson.deserialize(JSON.parse(text).result.data)).toEqual({ id: '10', data: dated });
  });
});
