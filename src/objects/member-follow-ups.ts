// What a membership change still does once it is committed: start the new member, tell a removed member to stop.
// Each is a call to another node, and under load that node may answer late. The change is answered within the
// request's deadline whatever these calls do (it is committed: a 504 would tell the client it may not be), the answer
// names what is still under way, and the calls go on after the answer, each bounded.
import type { LeaveValue, NodeResult } from "./cluster-types";
import { DeadlineExceeded, sleep, withDeadline, type Timers } from "./deadline";

/** Calls this node makes to peers outside the transport (start, leave, forwarded removal) are bounded too. */
export const PEER_CALL_TIMEOUT_MS = 5_000;

/**
 * Telling a removed member to stop is retried: nothing else tells it (the leader stops replicating to it once the
 * removal is applied). Six attempts, the waits between them doubling from half a second: 15.5 s of waiting, each
 * attempt bounded by PEER_CALL_TIMEOUT_MS.
 */
export const LEAVE_NOTICE_RETRY = { attempts: 6, firstBackoffMs: 500 } as const;

/**
 * A follow-up is waited for until this long before the node's deadline at most (a quarter of the timeout when that
 * is shorter): the caller stops listening soon after that deadline (a heartbeat interval later, nodeTimeoutWithinMs),
 * and a committed change whose answer arrives late is a 504 to the client. Ticks 60 to 180 ms late were seen on a
 * loaded machine (test/workers/http-real-cluster.test.ts, STALL_TOLERANT_TIMING).
 */
export const FOLLOW_UP_ANSWER_SLACK_MS = 250;

/** When to stop waiting for the follow-ups of a call that must answer by `deadlineAtMs` and was given `timeoutMs`. */
export function followUpDeadlineAtMs(options: { readonly deadlineAtMs: number; readonly timeoutMs: number }): number {
  return options.deadlineAtMs - Math.min(FOLLOW_UP_ANSWER_SLACK_MS, options.timeoutMs / 4);
}

/** start: the new member's first start; leave: telling the removed member to stop. */
export type FollowUpAction = "start" | "leave";

/** A step of a committed membership change that had not finished when the change was answered. */
export interface PendingFollowUp {
  readonly action: FollowUpAction;
  readonly node: string;
  /** Why it is pending, and what completes it without the caller. */
  readonly detail: string;
}

/**
 * A step of a committed membership change that failed, or that the member refused, before the change was answered,
 * and is not tried again.
 */
export interface FailedFollowUp {
  readonly action: FollowUpAction;
  readonly node: string;
  /** What failed. */
  readonly error: string;
  /** What happens without it. */
  readonly detail: string;
}

/** What of a committed change's follow-ups had not succeeded when it was answered (nothing: both absent). */
export interface FollowUpReport {
  readonly pending?: readonly PendingFollowUp[];
  readonly failed?: readonly FailedFollowUp[];
}

/**
 * The outcome of `work` if it settles by `deadlineAtMs`, "pending" otherwise (it goes on: bound it by its own
 * deadline). `work` must not reject.
 */
export async function settleBy<T>(
  work: Promise<T>,
  options: { readonly deadlineAtMs: number; readonly nowMs: number; readonly what: string; readonly timers?: Timers },
): Promise<T | "pending"> {
  const remainingMs = options.deadlineAtMs - options.nowMs;
  if (remainingMs <= 0) {
    return "pending";
  }
  try {
    return await withDeadline(work, {
      timeoutMs: remainingMs,
      what: options.what,
      ...(options.timers === undefined ? {} : { timers: options.timers }),
    });
  } catch (err) {
    if (err instanceof DeadlineExceeded) {
      return "pending";
    }
    throw err;
  }
}

/**
 * How one attempt ended: delivered (true), not delivered (false, tried again), or "stale": the member answered but
 * ignored it, being a member again (a leave notice of a removal that a re-add undid). Stale ends the retries.
 */
export type AttemptOutcome = boolean | "stale";

export type RetriedOutcome = "delivered" | "stale" | "moot" | "gaveUp";

/**
 * What a member's answer to a leave notice means for the leader: true once it stopped (or had already: NOT_MEMBER,
 * DROPPED), "stale" when it ignored the notice (`removed: false`: a later configuration lists it again, see
 * ClusterNode.leave), false when it refused for another reason (tried again). Every member version that can ignore
 * a notice answers `removed: false` for it, and only for it; older ones answer `removed: true`.
 */
export function leaveNoticeOutcome(answer: NodeResult<LeaveValue>): AttemptOutcome {
  if (answer.ok) {
    return answer.value.removed ? true : "stale";
  }
  return answer.error.code === "NOT_MEMBER" || answer.error.code === "DROPPED";
}

/**
 * Whether a follow-up that went on after the answer ended as it should: delivered or started (true), ignored by a
 * member that is a member again ("stale"), or no longer needed ("moot"). Anything else (gave up, an error) failed.
 */
export function followUpFinished(outcome: unknown): boolean {
  return outcome === true || outcome === "delivered" || outcome === "stale" || outcome === "moot";
}

/**
 * Calls `attempt` until it says it delivered (or that the member ignored it as stale), `moot()` says it no longer
 * matters, or the attempts run out, waiting `firstBackoffMs`, then twice that, ... between attempts (and
 * `startAfterMs` before the first: an attempt made elsewhere already failed). Never rejects (an attempt that throws
 * counts as failed).
 */
export async function retryFollowUp(
  attempt: () => Promise<AttemptOutcome>,
  options: {
    readonly attempts: number;
    readonly firstBackoffMs: number;
    readonly moot: () => boolean;
    readonly startAfterMs?: number;
    readonly timers?: Timers;
  },
): Promise<RetriedOutcome> {
  for (let tried = 0; tried < options.attempts; tried++) {
    const waitMs = tried > 0 ? options.firstBackoffMs * 2 ** (tried - 1) : (options.startAfterMs ?? 0);
    if (waitMs > 0) {
      await sleep(waitMs, options.timers);
    }
    if (options.moot()) {
      return "moot";
    }
    const outcome = await attempt().catch(() => false);
    if (outcome === "stale") {
      return "stale";
    }
    if (outcome) {
      return "delivered";
    }
  }
  return "gaveUp";
}
