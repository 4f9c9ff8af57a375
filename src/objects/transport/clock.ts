// Time as the transport sees it: injected, so that tests drive it by hand and the Durable Object uses the real one.
// Waits with a deadline and sleeps take this clock's timers (../deadline.ts).
import { realTimers, type Timers } from "../deadline";

export interface TransportClock extends Timers {
  /** Milliseconds on a monotonic-enough scale (Date.now() in production). */
  now(): number;
}

/** The real clock. In workerd Date.now() advances only across I/O, which is all the transport needs. */
export const systemClock: TransportClock = {
  now: () => Date.now(),
  schedule: realTimers.schedule,
};

/** A deadline waiting in a CoalescedClock; `fn` is null once it ran or was cancelled. */
interface CoalescedTimer {
  readonly dueMs: number;
  readonly seq: number;
  fn: (() => void) | null;
}

/** A heap left with more cancelled timers than this (and than live ones) is rebuilt from the live ones. */
const COMPACT_ABOVE_TIMERS = 64;

/**
 * A clock whose timers share one timer of the underlying clock, armed for the earliest deadline. Every call to a peer
 * sets a deadline and nearly always cancels it (the answer comes first): on the platform that was a setTimeout and a
 * clearTimeout per call, which cost more than the call's own work. Here a cancelled deadline is only marked, and the
 * underlying timer is re-armed only when a deadline comes before the one it is armed for. Each object needs its own:
 * a platform timer runs its callback in the context of the object that set it.
 */
export class CoalescedClock implements TransportClock {
  /** A binary min-heap by (dueMs, seq): ties run in scheduling order. */
  private readonly heap: CoalescedTimer[] = [];
  private live = 0;
  private nextSeq = 0;
  private armed: { readonly dueMs: number; readonly cancel: () => void } | null = null;

  constructor(
    private readonly base: TransportClock = systemClock,
    private readonly maxTimers = 100_000,
  ) {}

  now(): number {
    return this.base.now();
  }

  readonly schedule = (fn: () => void, delayMs: number): (() => void) => {
    if (this.live >= this.maxTimers) {
      throw new RangeError(`more than ${this.maxTimers} timers pending`);
    }
    const timer: CoalescedTimer = { dueMs: this.base.now() + Math.max(0, delayMs), seq: this.nextSeq++, fn };
    this.push(timer);
    this.live++;
    this.arm();
    return () => {
      if (timer.fn === null) {
        return;
      }
      timer.fn = null;
      this.live--;
      if (this.heap.length > COMPACT_ABOVE_TIMERS && this.heap.length > 2 * this.live) {
        this.compact();
      }
    };
  };

  /** Timers scheduled and neither run nor cancelled. */
  get pendingTimers(): number {
    return this.live;
  }

  /** Arms the underlying timer for the earliest live deadline, unless it is armed for that one or an earlier one. */
  private arm(): void {
    this.dropCancelledHead();
    const first = this.heap[0];
    if (first === undefined || (this.armed !== null && this.armed.dueMs <= first.dueMs)) {
      // Nothing to wait for, or armed early enough: an armed timer with nothing due is left to fire (cheaper than clearing it).
      return;
    }
    this.armed?.cancel();
    const dueMs = first.dueMs;
    const cancel = this.base.schedule(() => this.fire(dueMs), Math.max(0, dueMs - this.base.now()));
    this.armed = { dueMs, cancel };
  }

  private fire(dueMs: number): void {
    // A timer cleared too late to stop its callback is not the armed one: it runs only what is due by the clock.
    const armed = this.armed?.dueMs === dueMs;
    if (armed) {
      this.armed = null;
    }
    const nowMs = armed ? Math.max(this.base.now(), dueMs) : this.base.now();
    const due: (() => void)[] = [];
    for (let first = this.heap[0]; first !== undefined && first.dueMs <= nowMs; first = this.heap[0]) {
      this.pop();
      if (first.fn !== null) {
        due.push(first.fn);
        first.fn = null;
        this.live--;
      }
    }
    this.arm();
    // Each callback runs as if its own timer fired: one that throws does not keep the others from running.
    let failure: { readonly error: unknown } | null = null;
    for (const fn of due) {
      try {
        fn();
      } catch (error) {
        failure ??= { error };
      }
    }
    if (failure !== null) {
      throw failure.error;
    }
  }

  private dropCancelledHead(): void {
    while (this.heap[0] !== undefined && this.heap[0].fn === null) {
      this.pop();
    }
  }

  private compact(): void {
    const live = this.heap.filter((timer) => timer.fn !== null);
    this.heap.length = 0;
    for (const timer of live) {
      this.push(timer);
    }
  }

  private push(timer: CoalescedTimer): void {
    const heap = this.heap;
    heap.push(timer);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!earlier(heap[i]!, heap[parent]!)) {
        break;
      }
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }

  private pop(): void {
    const heap = this.heap;
    const last = heap.pop();
    if (last === undefined || heap.length === 0) {
      return;
    }
    heap[0] = last;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let smallest = i;
      if (left < heap.length && earlier(heap[left]!, heap[smallest]!)) {
        smallest = left;
      }
      if (right < heap.length && earlier(heap[right]!, heap[smallest]!)) {
        smallest = right;
      }
      if (smallest === i) {
        return;
      }
      [heap[i], heap[smallest]] = [heap[smallest]!, heap[i]!];
      i = smallest;
    }
  }
}

function earlier(a: CoalescedTimer, b: CoalescedTimer): boolean {
  return a.dueMs < b.dueMs || (a.dueMs === b.dueMs && a.seq < b.seq);
}
