// How long a request may keep trying, how long each call may take, and how long to wait between calls. Pure
// functions of the policy, the clock reading and a random draw, so that they can be tested without nodes. Durations
// that follow the cluster's timing come from src/objects/timing.ts.
import { readElsewhereAfterMs } from "../../objects/api";

export interface RoutingPolicy {
  /** Deadline of a request that names none (?timeout=). */
  readonly defaultTimeoutMs: number;
  /** The longest deadline a request may ask for. */
  readonly maxTimeoutMs: number;
  /**
   * A guard on node calls per request. The deadline is what ends retries: the backoff below never collapses to
   * zero, so the guard is only reached by a request whose calls fail instantly for longer than any sane deadline.
   */
  readonly maxAttempts: number;
  readonly baseBackoffMs: number;
  readonly maxBackoffMs: number;
  /** The longest one call may take, so that a hung node cannot eat the whole deadline. */
  readonly attemptTimeoutMs: number;
  /**
   * The share of the remaining deadline one call may take when another node could serve it too (reads any node
   * may serve): a lagging or cut-off node then leaves time to read elsewhere.
   */
  readonly anyNodeAttemptShare: number;
  /**
   * Election timeouts one node may spend confirming a read that another node could serve: a node cut off from the
   * majority cannot confirm a read index, and within a few election timeouts a connected node can.
   */
  readonly anyNodeElectionTimeouts: number;
  /** The longest a request waits for an election to complete on one node (waitForLeader). */
  readonly maxElectionWaitMs: number;
  /**
   * The node's own timeout is this much shorter than ours (at least one heartbeat interval, the step in which nodes
   * wait), so that it answers TIMEOUT before we stop listening.
   */
  readonly nodeMarginMs: number;
  /** Per-node deadline of status fan-outs (health, /nodes, /status, /readyz). */
  readonly statusTimeoutMs: number;
}

export const DEFAULT_ROUTING_POLICY: RoutingPolicy = {
  defaultTimeoutMs: 10_000,
  maxTimeoutMs: 60_000,
  maxAttempts: 500,
  baseBackoffMs: 25,
  maxBackoffMs: 1_000,
  attemptTimeoutMs: 5_000,
  anyNodeAttemptShare: 0.5,
  anyNodeElectionTimeouts: 3,
  maxElectionWaitMs: 5_000,
  nodeMarginMs: 50,
  statusTimeoutMs: 2_000,
};

/** Where a call may be served: only by the leader, or by any node (reads at none / linearizable / bookmarked). */
export type Reach = "leader" | "any";

/**
 * How long the next call may take: never past the deadline, never longer than attemptTimeoutMs, and when another
 * node could serve the call, at most a share of what is left and a few election timeouts.
 */
export function attemptBudgetMs(
  policy: RoutingPolicy,
  options: { remainingMs: number; reach: Reach; electionTimeoutMs: number },
): number {
  const { remainingMs, reach } = options;
  if (remainingMs <= 0) {
    return 0;
  }
  if (reach === "leader") {
    return Math.min(remainingMs, policy.attemptTimeoutMs);
  }
  return Math.min(remainingMs * policy.anyNodeAttemptShare, policy.attemptTimeoutMs, anyNodeCapMs(policy, options));
}

/** How long to wait on one node for an election to finish. */
export function electionWaitMs(
  policy: RoutingPolicy,
  options: { remainingMs: number; reach: Reach; electionTimeoutMs: number },
): number {
  const bound = Math.min(options.remainingMs, policy.maxElectionWaitMs);
  if (options.reach === "leader") {
    return Math.max(0, bound);
  }
  return Math.max(0, Math.min(bound, options.remainingMs * policy.anyNodeAttemptShare, anyNodeCapMs(policy, options)));
}

function anyNodeCapMs(policy: RoutingPolicy, timing: { electionTimeoutMs: number }): number {
  return readElsewhereAfterMs(timing, { electionTimeouts: policy.anyNodeElectionTimeouts });
}

/**
 * Exponential backoff with jitter: after the n-th failure, a wait drawn uniformly from [ceiling/2, ceiling), the
 * ceiling doubling from baseBackoffMs up to maxBackoffMs. Half of it is random, so that clients that failed together
 * do not retry together; half is fixed, so that the wait never collapses to zero and the deadline, not a call
 * count, is what ends the retries. Never past the deadline.
 */
export function backoffDelayMs(
  policy: RoutingPolicy,
  options: { failures: number; random: number; remainingMs: number },
): number {
  const exponent = Math.min(Math.max(0, options.failures - 1), 30);
  const ceilingMs = Math.min(policy.maxBackoffMs, policy.baseBackoffMs * 2 ** exponent);
  const waitMs = ceilingMs / 2 + (options.random * ceilingMs) / 2;
  return Math.max(0, Math.min(waitMs, options.remainingMs));
}
