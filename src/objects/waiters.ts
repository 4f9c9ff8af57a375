// Requests that wait for something the Raft loop will do later (an entry applied, a read index confirmed, a
// leader known). Every waiter has a deadline and the number of waiters is bounded, so nothing hangs or piles up.
import type { Timers } from "./deadline";

export class WaitTimeoutError extends Error {
  constructor(what: string, timeoutMs: number) {
    super(`${what}: no answer within ${timeoutMs} ms`);
    this.name = "WaitTimeoutError";
  }
}

export class TooManyWaitersError extends Error {
  constructor(what: string, limit: number) {
    super(`${what}: more than ${limit} requests are already waiting; retry later`);
    this.name = "TooManyWaitersError";
  }
}

interface Pending<K, T> {
  readonly key: K;
  readonly resolve: (value: T) => void;
  readonly reject: (error: Error) => void;
  readonly cancelTimer: () => void;
}

/** Waiters keyed by something unique (a log index, a read context). */
export class KeyedWaiters<K, T> {
  private readonly pending = new Map<K, Pending<K, T>>();

  constructor(private readonly options: { readonly what: string; readonly limit: number; readonly timers: Timers }) {}

  get size(): number {
    return this.pending.size;
  }

  has(key: K): boolean {
    return this.pending.has(key);
  }

  keys(): IterableIterator<K> {
    return this.pending.keys();
  }

  /** Waits for `resolve(key)` or `reject(key)`, at most `timeoutMs`. */
  wait(key: K, timeoutMs: number): Promise<T> {
    if (this.pending.size >= this.options.limit) {
      return Promise.reject(new TooManyWaitersError(this.options.what, this.options.limit));
    }
    if (this.pending.has(key)) {
      return Promise.reject(new Error(`${this.options.what}: already waiting on ${String(key)}`));
    }
    return new Promise<T>((resolve, reject) => {
      const cancelTimer = this.options.timers.schedule(
        () => {
          this.pending.delete(key);
          reject(new WaitTimeoutError(this.options.what, timeoutMs));
        },
        Math.max(1, timeoutMs),
      );
      this.pending.set(key, { key, resolve, reject, cancelTimer });
    });
  }

  resolve(key: K, value: T): boolean {
    const entry = this.take(key);
    entry?.resolve(value);
    return entry !== undefined;
  }

  reject(key: K, error: Error): boolean {
    const entry = this.take(key);
    entry?.reject(error);
    return entry !== undefined;
  }

  rejectAll(error: Error): void {
    for (const key of [...this.pending.keys()]) {
      this.reject(key, error);
    }
  }

  private take(key: K): Pending<K, T> | undefined {
    const entry = this.pending.get(key);
    if (entry !== undefined) {
      entry.cancelTimer();
      this.pending.delete(key);
    }
    return entry;
  }
}

/** Waiters for a condition on a number that only grows (the applied index): resolved once it reaches theirs. */
export class ThresholdWaiters {
  private readonly pending = new Set<{
    readonly threshold: number;
    readonly resolve: () => void;
    readonly cancelTimer: () => void;
  }>();

  constructor(private readonly options: { readonly what: string; readonly limit: number; readonly timers: Timers }) {}

  wait(threshold: number, current: number, timeoutMs: number): Promise<void> {
    if (current >= threshold) {
      return Promise.resolve();
    }
    if (this.pending.size >= this.options.limit) {
      return Promise.reject(new TooManyWaitersError(this.options.what, this.options.limit));
    }
    return new Promise<void>((resolve, reject) => {
      const entry = {
        threshold,
        resolve,
        cancelTimer: this.options.timers.schedule(
          () => {
            this.pending.delete(entry);
            reject(new WaitTimeoutError(this.options.what, timeoutMs));
          },
          Math.max(1, timeoutMs),
        ),
      };
      this.pending.add(entry);
    });
  }

  /** Wakes every waiter whose threshold `current` has reached. */
  advance(current: number): void {
    for (const entry of [...this.pending]) {
      if (current >= entry.threshold) {
        entry.cancelTimer();
        this.pending.delete(entry);
        entry.resolve();
      }
    }
  }
}
