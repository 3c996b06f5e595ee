/**
 * A binary min-heap ordered by `at`, then by insertion order (so coincident items pop oldest first).
 * The scheduler's timeline keeps one of these for every timed thing (next fires, pending retries) and
 * arms a single platform timer for its head: a live croner job per schedule costs ~83 KB, an entry ~100 B.
 */
export interface HeapItem {
  at: number;
  /** Insertion order: breaks ties between items due at the same instant. */
  seq: number;
}

export class MinHeap<T extends HeapItem> {
  #items: T[] = [];

  get size(): number {
    return this.#items.length;
  }

  peek(): T | undefined {
    return this.#items[0];
  }

  push(item: T): void {
    const a = this.#items;
    // Sift up by moving parents down into the hole, then placing the item once: one write per level.
    let i = a.length;
    a.push(item);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      const p = a[parent]!;
      if (!less(item, p)) break;
      a[i] = p;
      i = parent;
    }
    a[i] = item;
  }

  pop(): T | undefined {
    const a = this.#items;
    const top = a[0];
    const last = a.pop();
    const n = a.length;
    if (n === 0 || last === undefined) return top;
    // Sift the last item down from the root the same way: children move up into the hole.
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      if (l >= n) break;
      const r = l + 1;
      const c = r < n && less(a[r]!, a[l]!) ? r : l;
      const child = a[c]!;
      if (!less(child, last)) break;
      a[i] = child;
      i = c;
    }
    a[i] = last;
    return top;
  }
}

function less(x: HeapItem, y: HeapItem): boolean {
  return x.at < y.at || (x.at === y.at && x.seq < y.seq);
}
