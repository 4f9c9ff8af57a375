// Classifies what went wrong with one node-to-node RPC call, so the transport knows whether to retry, whether
// to make a new stub, and what to tell the node. Pure: no platform imports, so it runs in Node tests too.
//
// Workers RPC errors carry boolean flags (Cloudflare docs, "Durable Objects error handling"):
//   .retryable  — a transient infrastructure error; safe to retry an idempotent call, with backoff.
//   .overloaded — the target object is overloaded; retrying makes it worse, so never retry.
//   .remote     — the exception was thrown inside the target object (its code, or it exceeded a limit).
// A stub is broken after most exceptions: the transport makes a new one after every failed call.
import { DeadlineExceeded } from "../deadline";

/**
 * - "retryable": an infrastructure error with `.retryable` (and not `.overloaded`); the only kind retried.
 * - "overloaded": the peer is overloaded (`.overloaded`, even if also `.retryable`); back off, do not retry.
 * - "remote": the peer's own code threw (`.remote`, not retryable); retrying would throw again.
 * - "timeout": our own per-call or overall deadline passed (DeadlineExceeded); the call may still complete on the peer.
 * - "broken": anything else (no flags: lost connection, disposed stub, a bug on our side); not retried now.
 */
export type FailureClass = "retryable" | "overloaded" | "remote" | "timeout" | "broken";

/** Raised by the fault-injection hook (test configuration only) to stand for a lost call. */
export class FaultInjectedError extends Error {
  override readonly name = "FaultInjectedError";
}

/** A failed delivery after retries, with the class of its last error and how many attempts were made. */
export class DeliveryError extends Error {
  override readonly name = "DeliveryError";
  readonly classification: FailureClass;
  readonly attempts: number;

  constructor(options: { classification: FailureClass; attempts: number; cause: unknown }) {
    super(`${options.classification} after ${options.attempts} attempt(s): ${describeError(options.cause)}`, {
      cause: options.cause,
    });
    this.classification = options.classification;
    this.attempts = options.attempts;
  }
}

function hasTrueFlag(err: object, flag: "retryable" | "overloaded" | "remote"): boolean {
  return (err as Record<string, unknown>)[flag] === true;
}

/** Sorts a thrown value into one of the five failure classes (see FailureClass). */
export function classifyError(err: unknown): FailureClass {
  if (err instanceof DeadlineExceeded) {
    return "timeout";
  }
  if (err instanceof DeliveryError) {
    return err.classification;
  }
  if (typeof err !== "object" || err === null) {
    return "broken";
  }
  // Overloaded wins over retryable: the docs say never retry an overloaded object.
  if (hasTrueFlag(err, "overloaded")) {
    return "overloaded";
  }
  if (hasTrueFlag(err, "retryable")) {
    return "retryable";
  }
  if (hasTrueFlag(err, "remote")) {
    return "remote";
  }
  return "broken";
}

/** A one-line description of any thrown value, for logs and failure reports. */
export function describeError(err: unknown): string {
  if (err instanceof Error) {
    return `${err.name}: ${err.message}`;
  }
  if (typeof err === "string") {
    return err;
  }
  try {
    return JSON.stringify(err) ?? String(err);
  } catch {
    return String(err);
  }
}
