import PQueue, { type Queue, type QueueAddOptions } from 'p-queue';

type RunFunction = () => Promise<unknown>;

/**
 * The run queue: p-queue for the concurrency limit, with a queue class of four FIFO buckets, one per
 * priority level (LOW 1 … CRITICAL 4). p-queue's default keeps a sorted array (O(n) inserts, ~19k/s
 * at 100k waiting); buckets make enqueue and dequeue O(1) and keep oldest-first within a level.
 */
class Fifo<T> {
  #items: (T | undefined)[] = [];
  #head = 0;
  get size() {
    return this.#items.length - this.#head;
  }
  push(item: T) {
    this.#items.push(item);
  }
  shift(): T | undefined {
    if (this.#head >= this.#items.length) return undefined;
    const item = this.#items[this.#head];
    this.#items[this.#head++] = undefined;
    // Compact once the consumed prefix is both large and most of the array: amortised O(1).
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
  toArray(): T[] {
    return this.#items.slice(this.#head) as T[];
  }
}

export const PRIORITY_LEVELS = 4;

class PriorityBuckets implements Queue<RunFunction, QueueAddOptions> {
  readonly #buckets = Array.from({ length: PRIORITY_LEVELS }, () => new Fifo<RunFunction>());
  #size = 0;
  get size() {
    return this.#size;
  }
  #bucket(priority: number | undefined) {
    const level = Math.min(PRIORITY_LEVELS, Math.max(1, Math.round(priority ?? 1)));
    return this.#buckets[level - 1]!;
  }
  enqueue(run: RunFunction, options?: Partial<QueueAddOptions>) {
    this.#bucket(options?.priority).push(run);
    this.#size++;
  }
  dequeue(): RunFunction | undefined {
    for (let i = PRIORITY_LEVELS - 1; i >= 0; i--) {
      const run = this.#buckets[i]!.shift();
      if (run) {
        this.#size--;
        return run;
      }
    }
    return undefined;
  }
  filter(options: Readonly<Partial<QueueAddOptions>>): RunFunction[] {
    return this.#bucket(options.priority).toArray();
  }
  setPriority(): void {
    throw new Error('changing the priority of a queued run is not supported');
  }
}

export interface Executor {
  /** Queues `task` at `priority` (1–4); it starts when a slot is free, highest priority first, then oldest. */
  add(task: () => Promise<void>, priority: number): void;
  /** Starts no further task; those already started go on. */
  pause(): void;
  /**
   * The queue's own counts of tasks started and not yet settled, and of tasks not yet started. They
   * are not the scheduler's figures: a run dropped while queued stays here until its turn (active-runs.ts).
   */
  readonly running: number;
  readonly waiting: number;
}

/** Tasks handle their own errors; this only keeps a bug from becoming an unhandled rejection. One function for every task. */
const ignore = () => {};

export function createExecutor(options: { concurrency: number }): Executor {
  const queue = new PQueue({ concurrency: options.concurrency, queueClass: PriorityBuckets });
  return {
    add(task, priority) {
      queue.add(task, { priority }).catch(ignore);
    },
    pause: () => queue.pause(),
    get running() {
      return queue.pending;
    },
    get waiting() {
      return queue.size;
    },
  };
}
