// Error translation, written once: the mapping of core refusals and waiter failures to the NodeError every failure
// of a node request becomes (../node-failure).
import { nodeError, type NodeFailure } from "../node-failure";
import type { NodeStatus } from "../../replication/types";
import { TooManyWaitersError, WaitTimeoutError } from "../waiters";

/** A write this node proposed but can no longer follow: it may or may not be applied; resend it with the same id. */
export function outcomeUnknownError(what: string, leader: string | null): NodeFailure {
  return nodeError(
    "OUTCOME_UNKNOWN",
    `${what}; the write may or may not have been applied: resend it with the same request id`,
    { leader, retryable: true },
  );
}

/** NOT_LEADER when the leader is known, NO_LEADER otherwise. */
export function notLeaderError(message: string, leader: string | null): NodeFailure {
  return leader === null
    ? nodeError("NO_LEADER", message, { leader: null })
    : nodeError("NOT_LEADER", message, { leader });
}

/** A proposal, read or transfer the core refused, as the NodeError the caller sees. */
export function proposalFailure(
  error: { code: string; message: string; leader?: string | null },
  status: Pick<NodeStatus, "leader" | "role">,
): NodeFailure {
  switch (error.code) {
    case "NOT_LEADER":
      return notLeaderError(error.message, error.leader ?? status.leader);
    case "QUEUE_FULL":
      return nodeError("QUEUE_FULL", error.message);
    case "TRANSFER_IN_PROGRESS":
      return nodeError("TRANSFER_IN_PROGRESS", error.message, { leader: status.leader });
    case "CONFIG_CHANGE_IN_PROGRESS":
      return nodeError("CONFIG_CHANGE_IN_PROGRESS", error.message, { retryable: true });
    case "REMOVED":
      // A leader whose removal is under way hands leadership over: the request can go to the next leader.
      return status.role === "leader"
        ? nodeError("TRANSFER_IN_PROGRESS", `${error.message}; leadership is being handed over`, { leader: null })
        : nodeError("NOT_MEMBER", error.message, { retryable: false });
    default:
      return nodeError("INVALID_REQUEST", error.message, { retryable: false });
  }
}

/**
 * Awaits a waiter and translates its own failures: a timeout becomes `onTimeout()`, too many waiters QUEUE_FULL;
 * anything else (a NodeFailure a waiter was rejected with) passes through.
 */
export async function awaitWaiter<T>(waiting: Promise<T>, onTimeout: () => NodeFailure): Promise<T> {
  try {
    return await waiting;
  } catch (err) {
    throw translateWaiterError(err, onTimeout);
  }
}

export function translateWaiterError(err: unknown, onTimeout: () => NodeFailure): unknown {
  if (err instanceof WaitTimeoutError) {
    return onTimeout();
  }
  if (err instanceof TooManyWaitersError) {
    return nodeError("QUEUE_FULL", err.message);
  }
  return err;
}
