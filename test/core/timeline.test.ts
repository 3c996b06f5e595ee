import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { createManualClock } from '../../src/core/clock.ts';
import { MinHeap } from '../../src/core/heap.ts';
import { silentLogger } from '../../src/core/logger.ts';
import { createTimeline, type DueHandlers } from '../../src/core/timeline.ts';

/** A timeline on a manual clock that records what came due, as `fire:agentId@at` and `retry:runId`. */
function setup(onDue?: (what: string) => void) {
  const clock = createManualClock(1000);
  const timeline = createTimeline(clock, silentLogger);
  const seen: string[] = [];
  const handlers: DueHandlers = {
    fire(agentId, _version, at) {
      seen.push(`fire:${agentId}@${at}`);
      onDue?.(agentId);
    },
    retry(runId) {
      seen.push(`retry:${runId}`);
      onDue?.(runId);
    },
  };
  return { clock, timeline, seen, handlers };
}

describe('timeline', () => {
  it('hands items over when due, in time order, coincident ones oldest first, not a millisecond early', () => {
    const { clock, timeline, seen, handlers } = setup();
    timeline.start(handlers);
    timeline.fireAt('b', 1, 3000);
    timeline.retryAt('r1', 2000);
    timeline.fireAt('a', 1, 3000);
    clock.set(1999);
    expect(seen).toEqual([]);
    clock.set(2000);
    expect(seen).toEqual(['retry:r1']);
    clock.set(3000);
    expect(seen).toEqual(['retry:r1', 'fire:b@3000', 'fire:a@3000']);
    expect(timeline.size).toBe(0);
  });

  it('keeps one timer armed, for the earliest item', () => {
    const { clock, timeline, handlers } = setup();
    timeline.start(handlers);
    for (let i = 0; i < 100; i++) timeline.fireAt(`a${i}`, 1, 5000 - i);
    expect(clock.pendingTimers()).toBe(1);
    expect(timeline.size).toBe(100);
  });

  it('collects items before start and arms nothing until then', () => {
    const { clock, timeline, seen, handlers } = setup();
    timeline.fireAt('a', 1, 1500);
    expect(clock.pendingTimers()).toBe(0);
    clock.set(2000);
    expect(seen).toEqual([]);
    timeline.start(handlers);
    clock.advance(0);
    expect(seen).toEqual(['fire:a@1500']);
  });

  it('yields a burst in slices: after a slice of work (SLICE_MS) it lets the event loop run, then goes on', () => {
    const { clock, timeline, seen, handlers } = setup(() => clock.advance(1)); // each item takes 1 ms
    timeline.start(handlers);
    for (let i = 0; i < 100; i++) timeline.fireAt(`a${i}`, 1, 2000);
    clock.set(2000);
    // The clock is looked at every 32nd item: by then more than a slice has passed, so the slice ends there.
    expect(seen).toHaveLength(31);
    expect(clock.pendingTimers()).toBe(1);
    clock.advance(0);
    expect(seen).toHaveLength(62);
    clock.advance(0);
    clock.advance(0);
    expect(seen).toHaveLength(100);
    expect(seen.slice(0, 3)).toEqual(['fire:a0@2000', 'fire:a1@2000', 'fire:a2@2000']);
  });

  it('tells of a burst once, when a slice runs out, and of its end once, after its last item', () => {
    const clock = createManualClock(1000);
    const calls: string[] = [];
    const timeline = createTimeline(clock, silentLogger, { burst: () => (calls.push('begin'), () => calls.push('end')) });
    let fired = 0;
    timeline.start({ fire: () => (fired++, clock.advance(1)), retry: () => {} });
    for (let i = 0; i < 100; i++) timeline.fireAt(`a${i}`, 1, 2000);
    clock.set(2000);
    expect(calls).toEqual(['begin']);
    while (fired < 100) clock.advance(0);
    expect(calls).toEqual(['begin', 'end']);
    // A handful of due items fits in one slice: no burst.
    for (let i = 0; i < 5; i++) timeline.fireAt(`b${i}`, 1, clock.now() + 10);
    clock.advance(10);
    expect(fired).toBe(105);
    expect(calls).toEqual(['begin', 'end']);
  });

  it('goes on after a handler throws', () => {
    const { clock, timeline, seen, handlers } = setup((what) => {
      if (what === 'a') throw new Error('broken');
    });
    timeline.start(handlers);
    timeline.fireAt('a', 1, 2000);
    timeline.fireAt('b', 1, 2000);
    clock.set(2000);
    expect(seen).toEqual(['fire:a@2000', 'fire:b@2000']);
  });

  it('arms nothing once stopped', () => {
    const { clock, timeline, seen, handlers } = setup();
    timeline.start(handlers);
    timeline.fireAt('a', 1, 2000);
    timeline.stop();
    timeline.fireAt('b', 1, 1500);
    expect(clock.pendingTimers()).toBe(0);
    clock.set(10_000);
    expect(seen).toEqual([]);
  });
});

describe('min-heap', () => {
  it('pops by time, ties in insertion order, whatever the order of pushes and pops', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(-1)), { maxLength: 300 }), (ops) => {
        const heap = new MinHeap<{ at: number; seq: number }>();
        const model: { at: number; seq: number }[] = [];
        let seq = 0;
        for (const op of ops) {
          if (op >= 0) {
            const item = { at: op, seq: ++seq };
            heap.push(item);
            model.push(item);
            model.sort((x, y) => x.at - y.at || x.seq - y.seq);
          } else expect(heap.pop()).toBe(model.shift());
          expect(heap.size).toBe(model.length);
          expect(heap.peek()).toBe(model[0]);
        }
      }),
    );
  });
});
