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
});
