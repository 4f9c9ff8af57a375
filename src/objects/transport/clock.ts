// Time as the transport sees it: injected, so that tests drive it by hand and the Durable Object uses the real one.
import { TransportTimeoutError } from "./errors";

export interface TransportClock {
  /** Milliseconds on a monotonic-enough scale (Date.now() in production). */
  now(): number;
  /** Runs `fn` once after `delayMs`; returns a function that cancels it (a no-op once it ran). */
  schedule(fn: () => void, delayMs: number): () => void;
}

/** The real clock. In workerd Date.now() advances only across I/O, which is all the transport needs. */
export const systemClock: TransportClock = {
  now: () => Date.now(),
  schedule(fn, delayMs) {
    const handle = setTimeout(fn, Math.max(0, delayMs));
    return () => clearTimeout(handle);
  },
};

export function sleepMs(clock: TransportClock, delayMs: number): Promise<void> {
  return new Promise((resolve) => {
    clock.schedule(resolve, delayMs);
  });
}

/**
 * Settles like `promise`, or rejects with a TransportTimeoutError after `timeoutMs`. The timer is always
 * cancelled when the promise settles first, and a late rejection of `promise` is swallowed (it was abandoned).
 */
export function withTimeout<T>(
  promise: Promise<T>,
  options: { timeoutMs: number; clock: TransportClock; what: string },
): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let settled = false;
    const cancelTimer = options.clock.schedule(() => {
      if (settled) {
        return;
      }
      settled = true;
      reject(new TransportTimeoutError(`${options.what} timed out after ${options.timeoutMs} ms`, options.timeoutMs));
    }, options.timeoutMs);
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
