import { describe, expect, it } from 'vitest';
import { silentLogger } from '../src/core/logger.ts';
import type { WriteOp } from '../src/core/store.ts';
import { createWriteChain } from '../src/storage/write-batch.ts';

/** An op on its own row: nothing folds, so every op written is one op applied. */
const op = (i: number): WriteOp => ({ op: 'agent.update', id: `a${i}`, set: { name: `n${i}` } }) as WriteOp;
const ids = (ops: WriteOp[]) => ops.map((o) => (o as { id: string }).id);

describe('write chain', () => {
  it('holds commits while held, then commits everything written meanwhile, in order', async () => {
    const batches: WriteOp[][] = [];
    const chain = createWriteChain(async (ops) => void batches.push(ops), silentLogger);
    const end = chain.hold();
    for (let i = 0; i < 3; i++) chain.write(op(i));
    // Turns of the event loop pass (a burst's slices); nothing commits while the hold lasts.
    for (let turn = 0; turn < 5; turn++) await new Promise((r) => setImmediate(r));
    expect(batches).toEqual([]);
    const flushed = chain.flush();
    end();
    await flushed;
    expect(ids(batches.flat())).toEqual(['a0', 'a1', 'a2']);
  });

  it('ends a hold that is never released by itself, so writes are never kept back for good', async () => {
    const batches: WriteOp[][] = [];
    const chain = createWriteChain(async (ops) => void batches.push(ops), silentLogger);
    chain.hold(); // its end is lost
    chain.write(op(1));
    await chain.flush(); // resolves once the hold lapses (MAX_HOLD_MS)
    expect(ids(batches.flat())).toEqual(['a1']);
  });

  it('cuts batches to what its time budget fits, as measured, never below the floor', async () => {
    const batches: WriteOp[][] = [];
    // Each op costs at least 0.05 ms: a 1 ms budget fits fewer ops than the floor, so batches are cut to it.
    const chain = createWriteChain(async (ops) => {
      const until = performance.now() + ops.length * 0.05;
      while (performance.now() < until);
      batches.push(ops);
    }, silentLogger, { budgetMs: 1 });
    for (let i = 0; i < 600; i++) chain.write(op(i));
    await chain.flush();
    for (let i = 600; i < 1200; i++) chain.write(op(i));
    await chain.flush();
    const after = batches.slice(batches.findIndex((b) => ids(b).includes('a600')));
    expect(Math.max(...after.map((b) => b.length))).toBe(128);
    expect(ids(batches.flat())).toEqual(Array.from({ length: 1200 }, (_, i) => `a${i}`));
  });
});
