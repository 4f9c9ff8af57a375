// Every await on a node has a deadline: a node that never answers costs at most the time we gave it.

export class DeadlineExceeded extends Error {
  override readonly name = "DeadlineExceeded";

  constructor(readonly afterMs: number) {
    super(`no answer within ${Math.round(afterMs)} ms`);
  }
}

/** Runs `fn` once after `delayMs`; returns a function that cancels it. The router's clock seam for timers. */
export type ScheduleTimer = (fn: () => void, delayMs: number) => () => void;

/** Real timers (the worker's). */
export const realTimer: ScheduleTimer = (fn, delayMs) => {
  const handle = setTimeout(fn, Math.max(0, delayMs));
  return () => clearTimeout(handle);
};

/** Settles like `promise`, or rejects with DeadlineExceeded after `ms`. The timer never outlives the race. */
export function withDeadline<T>(promise: Promise<T>, ms: number, timer: ScheduleTimer = realTimer): Promise<T> {
  let cancel: (() => void) | null = null;
  const expired = new Promise<never>((_, reject) => {
    cancel = timer(() => reject(new DeadlineExceeded(ms)), Math.max(0, ms));
  });
  return Promise.race([promise, expired]).finally(() => {
    if (cancel !== null) {
      cancel();
    }
  });
}

export function sleep(ms: number, timer: ScheduleTimer = realTimer): Promise<void> {
  return new Promise((resolve) => {
    timer(resolve, Math.max(0, ms));
  });
}
