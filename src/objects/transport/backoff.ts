// Bounded retries with exponential backoff and full jitter (AWS Architecture Blog, "Exponential Backoff And
// Jitter"): delay = random() * min(cap, base * 2^attempt). Only "retryable" failures are retried — never
// "overloaded" ones (Cloudflare: retrying an overloaded object makes it worse) — and never past the deadline.
import { DeadlineExceeded, sleep, withDeadline } from "../deadline";
import type { TransportClock } from "./clock";
import { classifyError, DeliveryError, type FailureClass } from "./errors";

export interface BackoffOptions {
  /** The ceiling of the first retry's delay. */
  readonly baseDelayMs: number;
  /** No delay ever exceeds this. */
  readonly maxDelayMs: number;
}

/** Largest exponent used: 2^30 times any sane base already exceeds every sane cap. */
const MAX_BACKOFF_EXPONENT = 30;

function assertNonNegativeFinite(value: number, name: string): void {
  if (!Number.isFinite(value) || value < 0) {
    throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
  }
}

function assertPositiveInteger(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  }
}

function assertBackoffOptions(options: BackoffOptions): void {
  assertNonNegativeFinite(options.baseDelayMs, "baseDelayMs");
  assertNonNegativeFinite(options.maxDelayMs, "maxDelayMs");
}

/** The delay before retry number `attempt + 1` (attempt 0 is the first call), drawn with full jitter. */
export function backoffDelayMs(attempt: number, options: BackoffOptions, random: () => number): number {
  if (!Number.isInteger(attempt) || attempt < 0) {
    throw new RangeError(`attempt must be an integer >= 0, got ${attempt}`);
  }
  assertBackoffOptions(options);
  const ceilingMs = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt, MAX_BACKOFF_EXPONENT));
  const draw = random();
  if (!(draw >= 0 && draw < 1)) {
    throw new RangeError(`random() must return a number in [0, 1), got ${draw}`);
  }
  return Math.floor(draw * ceilingMs);
}

export interface RetryOptions extends BackoffOptions {
  /** Total attempts, the first one included (1 = no retry). */
  readonly maxAttempts: number;
  /** Each attempt is abandoned (and classified "timeout") after this long. */
  readonly timeoutMs: number;
  /** No attempt starts, and none runs, beyond this many ms after withRetry was called. */
  readonly deadlineMs: number;
  readonly random: () => number;
  readonly clock: TransportClock;
  /** Defaults to classifyError. */
  readonly classify?: (err: unknown) => FailureClass;
  /** Called after each failed attempt, before deciding whether to retry (e.g. to drop a broken stub). */
  readonly onAttemptFailed?: (failure: { attempt: number; error: unknown; classification: FailureClass }) => void;
  /** Used in timeout messages. */
  readonly what?: string;
}

function assertRetryOptions(options: RetryOptions): void {
  assertBackoffOptions(options);
  assertPositiveInteger(options.maxAttempts, "maxAttempts");
  if (!(options.timeoutMs > 0)) {
    throw new RangeError(`timeoutMs must be > 0, got ${options.timeoutMs}`);
  }
  if (!(options.deadlineMs > 0)) {
    throw new RangeError(`deadlineMs must be > 0, got ${options.deadlineMs}`);
  }
}

/**
 * Calls `fn(attempt)` until it resolves, retrying only failures classified "retryable", at most `maxAttempts`
 * times, each attempt bounded by `timeoutMs` and all of them by `deadlineMs`. Rejects with a DeliveryError
 * carrying the last error's class, the number of attempts made, and the last error as `cause`.
 * An abandoned attempt (timed out) keeps running in the background: `fn` must be safe to run concurrently
 * with its own retry, which Raft messages are (duplicates are ignored).
 */
export async function withRetry<T>(fn: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  assertRetryOptions(options);
  const classify = options.classify ?? classifyError;
  const what = options.what ?? "call";
  const deadlineAtMs = options.clock.now() + options.deadlineMs;
  for (let attempt = 0; ; attempt++) {
    const remainingMs = deadlineAtMs - options.clock.now();
    const attemptTimeoutMs = Math.min(options.timeoutMs, remainingMs);
    let error: unknown;
    if (attemptTimeoutMs <= 0) {
      // Reached only after a sleep that ended at the deadline: report the deadline, not the previous error.
      error = new DeadlineExceeded(what, options.deadlineMs, `the deadline of ${options.deadlineMs} ms passed`);
    } else {
      try {
        return await withDeadline(invoke(fn, attempt), { timeoutMs: attemptTimeoutMs, timers: options.clock, what });
      } catch (err) {
        error = err;
      }
    }
    const classification = classify(error);
    options.onAttemptFailed?.({ attempt, error, classification });
    const attemptsMade = attempt + 1;
    if (classification !== "retryable" || attemptsMade >= options.maxAttempts) {
      throw new DeliveryError({ classification, attempts: attemptsMade, cause: error });
    }
    const delayMs = backoffDelayMs(attempt, options, options.random);
    if (options.clock.now() + delayMs >= deadlineAtMs) {
      throw new DeliveryError({ classification, attempts: attemptsMade, cause: error });
    }
    await sleep(delayMs, options.clock);
  }
}

/** Turns a synchronous throw from `fn` into a rejection, so it is classified like any other failure. */
function invoke<T>(fn: (attempt: number) => Promise<T>, attempt: number): Promise<T> {
  try {
    return fn(attempt);
  } catch (err) {
    return Promise.reject(err);
  }
}
