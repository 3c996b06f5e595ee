import PQueue, { type Queue, type QueueAddOptions } from 'p-queue';

type RunFunction = () => Promise<unknown>;

/**
 * The run queue: p-queue for the concurrency limit, with a queue class of four buckets, one per priority level
 * (LOW 1 … CRITICAL 4). p-queue's default keeps a sorted array (O(n) inserts, ~19k/s at 100k waiting); buckets
 * make enqueue and dequeue O(1). Within a level, owners take turns (CONTRACT §11, "Fair share"): each owner's
 * runs wait oldest first in a FIFO of their own, and the level serves one run of each owner with runs waiting in
 * turn, so one owner's backlog of a thousand never holds another owner's run back by more than one run per owner.
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

/** One priority level: a FIFO per owner, and the owners with runs waiting in turn order (each listed once). */
class FairLevel<T> {
  readonly #byOwner = new Map<string, Fifo<T>>();
  readonly #turns = new Fifo<string>();
  push(item: T, owner: string) {
    let q = this.#byOwner.get(owner);
    if (!q) this.#byOwner.set(owner, (q = new Fifo<T>()));
    if (q.size === 0) this.#turns.push(owner);
    q.push(item);
  }
  shift(): T | undefined {
    const owner = this.#turns.shift();
    if (owner === undefined) return undefined;
    const q = this.#byOwner.get(owner)!;
    const item = q.shift();
    // Its next run waits for the other owners' turns; an owner with nothing left leaves the map.
    if (q.size > 0) this.#turns.push(owner);
    else this.#byOwner.delete(owner);
    return item;
  }
  toArray(): T[] {
    return [...this.#byOwner.values()].flatMap((q) => q.toArray());
  }
}

/** What a queued run carries to the queue class: its level and whose it is (p-queue hands `add`'s options on). */
type RunOptions = QueueAddOptions & { owner?: string };

class PriorityBuckets implements Queue<RunFunction, RunOptions> {
  readonly #buckets = Array.from({ length: PRIORITY_LEVELS }, () => new FairLevel<RunFunction>());
  #size = 0;
  get size() {
    return this.#size;
  }
  #bucket(priority: number | undefined) {
    const level = Math.min(PRIORITY_LEVELS, Math.max(1, Math.round(priority ?? 1)));
    return this.#buckets[level - 1]!;
  }
  enqueue(run: RunFunction, options?: Partial<RunOptions>) {
    this.#bucket(options?.priority).push(run, options?.owner ?? '');
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
  filter(options: Readonly<Partial<RunOptions>>): RunFunction[] {
    return this.#bucket(options.priority).toArray();
  }
  setPriority(): void {
    throw new Error('changing the priority of a queued run is not supported');
  }
}

export interface Executor {
  /**
   * Queues `task` at `priority` (1–4) for `owner`; it starts when a slot is free, highest priority first, then
   * owners in turn, each owner's oldest first. @default owner '' (one owner)
   */
  add(task: () => Promise<void>, priority: number, owner?: string): void;
  /** Starts no further task; those already started go on. */
  pause(): void;
  /**
   * The queue's own counts of tasks started and not yet settled, and of tasks not yet started. They
   * are not the scheduler's figures: a run dropped while queued stays here until its turn (active-runs.ts).
   */
  readonly running: number;
  readonly waiting: number;
  /** Tasks held back because their owner has `maxPerOwner` in the queue or running (not counted in `waiting`). */
  readonly parked: number;
}

export interface ExecutorOptions {
  concurrency: number;
  /**
   * At most this many tasks of one owner queued in p-queue or running at once (MAX_CONCURRENT_PER_OWNER); the
   * rest are parked, oldest first, and go into the queue as that owner's tasks end, so other owners' tasks
   * pass them. @default no cap
   */
  maxPerOwner?: number;
}

/** Tasks handle their own errors; this only keeps a bug from becoming an unhandled rejection. One function for every task. */
const ignore = () => {};

export function createExecutor(options: ExecutorOptions): Executor {
  const queue = new PQueue({ concurrency: options.concurrency, queueClass: PriorityBuckets });
  const cap = options.maxPerOwner;
  /** Per owner: tasks in p-queue or running (only counted under a cap). */
  const admitted = new Map<string, number>();
  const parkedByOwner = new Map<string, Fifo<{ task: () => Promise<void>; priority: number }>>();
  let parked = 0;

  function admit(task: () => Promise<void>, priority: number, owner: string): void {
    admitted.set(owner, (admitted.get(owner) ?? 0) + 1);
    queue.add(() => task().finally(() => ended(owner)), { priority, owner } as RunOptions).catch(ignore);
  }
  function ended(owner: string): void {
    const n = admitted.get(owner)! - 1;
    if (n > 0) admitted.set(owner, n);
    else admitted.delete(owner);
    const waiting = parkedByOwner.get(owner);
    const next = waiting?.shift();
    if (!next) return;
    parked--;
    if (waiting!.size === 0) parkedByOwner.delete(owner);
    admit(next.task, next.priority, owner);
  }

  return {
    add(task, priority, owner = '') {
      if (cap === undefined) return void queue.add(task, { priority, owner } as RunOptions).catch(ignore);
      if ((admitted.get(owner) ?? 0) < cap) return admit(task, priority, owner);
      let q = parkedByOwner.get(owner);
      if (!q) parkedByOwner.set(owner, (q = new Fifo()));
      q.push({ task, priority });
      parked++;
    },
    pause: () => queue.pause(),
    get running() {
      return queue.pending;
    },
    get waiting() {
      return queue.size;
    },
    get parked() {
      return parked;
    },
  };
}
