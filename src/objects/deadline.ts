// Every wait on something that may never answer (a node, a peer, an RPC stub) has a deadline: it costs at most the
// time we gave it. One helper for the objects (peer transport, calls between nodes) and the worker (the router, which
// reaches it through api.ts). Timers come through a seam, so that the simulator and the transport tests run it on
// simulated time. Imports nothing: both layers may use it.

/** Runs `fn` once after `delayMs`; returns a function that cancels it (a no-op once it ran). */
export type ScheduleTimer = (fn: () => void, delayMs: number) => () => void;

/** Where deadlines run: setTimeout on the platform, simulated time in the simulator (a TransportClock is one). */
export interface Timers {
  readonly schedule: ScheduleTimer;
}

/** Real timers (the worker's and the Durable Objects'). */
export const realTimers: Timers = {
  schedule(fn, delayMs) {
    const handle = setTimeout(fn, Math.max(0, delayMs));
    return () => clearTimeout(handle);
  },
};

/** A wait ran out of time. The awaited work may still complete (a write may still be applied). */
export class DeadlineExceeded extends Error {
  override readonly name = "DeadlineExceeded";

  constructor(
    what: string,
    readonly timeoutMs: number,
    reason = `no answer within ${Math.round(timeoutMs)} ms`,
  ) {
    super(`${what}: ${reason}`);
  }
}

export interface DeadlineOptions {
  readonly timeoutMs: number;
  /** What is awaited, named in the DeadlineExceeded message ("node n2", "deliver to n3"). */
  readonly what: string;
  /** Real timers unless given: the simulator and tests pass simulated ones. */
  readonly timers?: Timers;
  /** The error to reject with instead of DeadlineExceeded (a node answers its callers with a TIMEOUT NodeError). */
  readonly onTimeout?: () => Error;
}

/**
 * Settles like `promise`, or rejects with DeadlineExceeded (or `onTimeout()`) after `timeoutMs`. The timer never outlives the wait, and
 * a late rejection of `promise` is swallowed (it was abandoned).
 */
export function withDeadline<T>(promise: PromiseLike<T>, options: DeadlineOptions): Promise<T> {
  const timers = options.timers ?? realTimers;
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const cancelTimer = timers.schedule(
      () => {
        if (settled) {
          return;
        }
        settled = true;
        reject(options.onTimeout?.() ?? new DeadlineExceeded(options.what, options.timeoutMs));
      },
      Math.max(0, options.timeoutMs),
    );
    promise.then(
      (value) => {
        if (settled) {
          return;
        }
        settled = true;
        cancelTimer();
        resolve(value);
      },
      (err: unknown) => {
        if (settled) {
          return;
        }
        settled = true;
        cancelTimer();
        reject(err);
      },
    );
  });
}

/** Resolves after `delayMs` (at once when it is not positive). */
export function sleep(delayMs: number, timers: Timers = realTimers): Promise<void> {
  return new Promise((resolve) => {
    timers.schedule(resolve, Math.max(0, delayMs));
  });
}
