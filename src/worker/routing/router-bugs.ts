// Bug-injection switches: each one puts back a routing defect that review or use found, so that a test can show it
// catches that defect. Production wiring passes none; only tests set them.

export interface RouterBugs {
  /**
   * Backups are served by whichever node answers first (no check that it leads), and the router then caches that
   * node as the leader: a dump from a lagging follower misses acknowledged writes.
   */
  readonly backupFromAnyNode?: boolean;
  /**
   * Only a lost answer or TIMEOUT makes a write's outcome unknown: INTERNAL is answered 500, and NOT_MEMBER or an
   * "outcome unknown" answer moves on as if nothing had been applied, so a later refusal comes back as a definite
   * failure (503) although the write may have been applied.
   */
  readonly definiteWriteFailures?: boolean;
  /**
   * Retries stop after a fixed count of calls (8) whatever the deadline; giving up on NOT_LEADER answers says
   * NO_LEADER and quotes a node naming the leader; a read that any node may serve stays on a node that cannot
   * confirm it (waiting for a leader there, retrying there after TIMEOUT) instead of moving on.
   */
  readonly fixedRetryBudget?: boolean;
  /**
   * After NO_LEADER, or an "outcome unknown" answer naming no other leader, from a call only the leader serves, the
   * router waits for the election on that very node (and resends an outcome-unknown write there after a backoff).
   * A leader cut off from its peers never sees the election end: the wait there takes up to the election wait
   * (5 s) or the request's deadline.
   */
  readonly waitsOnFailedLeader?: boolean;
}

export const NO_ROUTER_BUGS: RouterBugs = Object.freeze({});

/** The call budget of the old router, restored by `fixedRetryBudget`. */
export const LEGACY_MAX_ATTEMPTS = 8;
