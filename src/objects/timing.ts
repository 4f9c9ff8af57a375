// Durations derived from the cluster's timing (its heartbeat interval and election timeout), in one place, each with
// the reason for its ratio, so that a change to the configuration moves every one of them together and nobody
// multiplies the configuration on their own. The core counts ticks: one tick is one heartbeat interval (config.ts).

/** The two numbers every duration below derives from (a ClusterConfig has both). */
export interface ClusterTiming {
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
}

/**
 * How long an election normally takes to end: two election timeouts. A timer fires after one to two timeouts
 * (randomized), and a split vote costs one more round; voters that cannot reach each other stay leaderless longer.
 * Health stops counting a leaderless voter after it; a client told to retry after an election waits this long.
 */
export function electionWindowMs(timing: ClusterTiming): number {
  return 2 * timing.electionTimeoutMs;
}

/** Retry-After of an election-related 503: one election window, in whole seconds (at least 1). */
export function electionRetryAfterSeconds(timing: ClusterTiming): number {
  return Math.max(1, Math.ceil(electionWindowMs(timing) / 1000));
}

/**
 * A node is in touch with its leader when it heard from it within one election timeout: the same bound after which
 * a follower would campaign, so a node past it may be about to lose that leader.
 */
export function isInTouchWithLeader(timing: ClusterTiming, lastLeaderContactMs: number): boolean {
  return lastLeaderContactMs <= timing.electionTimeoutMs;
}

/**
 * After a restart a node stays quiet (no stale-contact findings) for one election window plus a tick: long enough
 * for the cluster to elect a leader and for that leader's first heartbeat to arrive.
 */
export function startupQuietWindowMs(timing: ClusterTiming): number {
  return electionWindowMs(timing) + timing.heartbeatIntervalMs;
}

/**
 * "Recently" heard from a quorum, in ticks: three quarters of an election timeout (at least two ticks). Shorter than
 * CheckQuorum's full timeout, so a cut-off leader lets go of its writes before it steps down; long enough that a busy
 * machine's late heartbeats are not taken for a cut.
 */
export function recentContactTicks(timing: ClusterTiming): number {
  return Math.max(2, Math.ceil((timing.electionTimeoutMs * 3) / 4 / timing.heartbeatIntervalMs));
}

/**
 * The node-to-node transport's bounds. One call may take an election timeout (within 50 ms to 1 s): a peer slower
 * than that is as good as gone for Raft, and waiting longer only delays the retry. A delivery, retries included, may
 * take one and a half (75 ms to 1.5 s): one retry fits, and a message older than that is superseded by the next
 * heartbeat. The breaker leaves a failing peer alone for an election timeout (at least 100 ms): by then an election
 * may have changed who needs to talk to it.
 */
export function peerTransportTiming(timing: ClusterTiming): {
  readonly callTimeoutMs: number;
  readonly deadlineMs: number;
  readonly breakerOpenMs: number;
} {
  return {
    callTimeoutMs: Math.max(50, Math.min(1000, timing.electionTimeoutMs)),
    deadlineMs: Math.max(75, Math.min(1500, timing.electionTimeoutMs * 1.5)),
    breakerOpenMs: Math.max(100, timing.electionTimeoutMs),
  };
}

/**
 * The timeout to hand a node that the caller waits `callerTimeoutMs` for: shorter by a margin of at least one
 * heartbeat interval (the step in which nodes wait), so that the node answers TIMEOUT itself, a definite answer,
 * before the caller stops listening. At least 1 ms.
 */
export function nodeTimeoutWithinMs(
  timing: Pick<ClusterTiming, "heartbeatIntervalMs">,
  options: { readonly callerTimeoutMs: number; readonly minMarginMs: number },
): number {
  const marginMs = Math.max(options.minMarginMs, timing.heartbeatIntervalMs);
  return Math.max(1, Math.floor(options.callerTimeoutMs - marginMs));
}

/**
 * How long one node may spend on a read that another node could serve: `electionTimeouts` election timeouts (at least
 * 1 ms). A node cut off from the majority cannot confirm a read index, and within a few election timeouts a connected
 * node can: past that, another node is the better bet.
 */
export function readElsewhereAfterMs(
  timing: Pick<ClusterTiming, "electionTimeoutMs">,
  options: { readonly electionTimeouts: number },
): number {
  return Math.max(1, options.electionTimeouts * timing.electionTimeoutMs);
}

/**
 * How often to ask a node whether it has applied up to an index: once a heartbeat interval. Followers learn of new
 * commits with the leader's heartbeats (or appends), so asking more often learns nothing new.
 */
export function appliedPollIntervalMs(timing: Pick<ClusterTiming, "heartbeatIntervalMs">): number {
  return timing.heartbeatIntervalMs;
}
