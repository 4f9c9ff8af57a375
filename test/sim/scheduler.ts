// Simulated time: a min-heap of future events ordered by (time, insertion order), so that two events due at the
// same millisecond always run in the same order and a seed replays exactly.

interface Slot<E> {
  readonly atMs: number;
  readonly order: number;
  readonly event: E;
}

export class Scheduler<E> {
  private readonly heap: Slot<E>[] = [];
  private order = 0;
  private currentMs = 0;

  constructor(private readonly maxPendingEvents: number) {
    if (!Number.isInteger(maxPendingEvents) || maxPendingEvents < 1) {
      throw new RangeError("maxPendingEvents must be a positive integer");
    }
  }

  get nowMs(): number {
    return this.currentMs;
  }

  get size(): number {
    return this.heap.length;
  }

  /** Schedules `event` at `atMs` (never in the past). Returns false when the queue is full (the caller decides). */
  schedule(atMs: number, event: E): boolean {
    if (!Number.isInteger(atMs) || atMs < this.currentMs) {
      throw new RangeError(`cannot schedule at ${atMs}ms, now is ${this.currentMs}ms`);
    }
    if (this.heap.length >= this.maxPendingEvents) {
      return false;
    }
    this.heap.push({ atMs, order: this.order, event });
    this.order += 1;
    this.siftUp(this.heap.length - 1);
    return true;
  }

  /** Removes the earliest event and moves time to it; null when nothing is scheduled. */
  pop(): E | null {
    const top = this.heap[0];
    if (top === undefined) {
      return null;
    }
    const last = this.heap.pop() as Slot<E>;
    if (this.heap.length > 0) {
      this.heap[0] = last;
      this.siftDown(0);
    }
    this.currentMs = top.atMs;
    return top.event;
  }

  peekTimeMs(): number | null {
    return this.heap[0]?.atMs ?? null;
  }

  private before(left: Slot<E>, right: Slot<E>): boolean {
    return left.atMs < right.atMs || (left.atMs === right.atMs && left.order < right.order);
  }

  private siftUp(start: number): void {
    let index = start;
    while (index > 0) {
      const parent = (index - 1) >> 1;
      const child = this.heap[index] as Slot<E>;
      const above = this.heap[parent] as Slot<E>;
      if (!this.before(child, above)) {
        return;
      }
      this.heap[index] = above;
      this.heap[parent] = child;
      index = parent;
    }
  }

  private siftDown(start: number): void {
    let index = start;
    const length = this.heap.length;
    for (;;) {
      const left = 2 * index + 1;
      const right = left + 1;
      let smallest = index;
      if (left < length && this.before(this.heap[left] as Slot<E>, this.heap[smallest] as Slot<E>)) {
        smallest = left;
      }
      if (right < length && this.before(this.heap[right] as Slot<E>, this.heap[smallest] as Slot<E>)) {
        smallest = right;
      }
      if (smallest === index) {
        return;
      }
      const held = this.heap[index] as Slot<E>;
      this.heap[index] = this.heap[smallest] as Slot<E>;
      this.heap[smallest] = held;
      index = smallest;
    }
  }
}
