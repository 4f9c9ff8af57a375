// Majority arithmetic over the voters of a configuration, used both by elections (the vote tally) and by
// replication (the commit index, CheckQuorum, read-index rounds and the leader lease), as etcd's quorum package is.
// It is the lowest layer of the pure core: it imports nothing, so election and replication can both depend on it
// while the imports between them run one way (replication -> election -> quorum). Learners never appear here:
// callers pass voters only.

/** A node's name in the cluster configuration. */
export type NodeId = string;

/** The number of voters that make a majority. */
export function quorumSize(voterCount: number): number {
  if (!Number.isInteger(voterCount) || voterCount <= 0) {
    // A configuration without voters cannot decide anything: a caller passed learners only, or nothing.
    throw new RangeError(`a quorum needs at least one voter, got ${String(voterCount)}`);
  }
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The largest value that at least a majority of voters have reached (e.g. the highest index stored on a majority,
 * given every voter's match index).
 */
export function majorityValue(valuesOfVoters: readonly number[]): number {
  const quorum = quorumSize(valuesOfVoters.length);
  const descending = [...valuesOfVoters].sort((a, b) => b - a);
  // quorum <= length, so the element exists.
  return descending[quorum - 1] as number;
}

/** True when at least a majority of `voters` satisfy `predicate`. */
export function isQuorum<T>(voters: readonly T[], predicate: (voter: T) => boolean): boolean {
  let count = 0;
  for (const voter of voters) {
    if (predicate(voter)) {
      count++;
    }
  }
  return count >= quorumSize(voters.length);
}

export type VoteOutcome = "won" | "lost" | "pending";

/**
 * The outcome of a vote among `voterCount` voters: won once a majority granted, lost once a majority can no longer be
 * reached (too many refused), pending otherwise.
 */
export function voteOutcome(counts: {
  readonly voterCount: number;
  readonly granted: number;
  readonly rejected: number;
}): VoteOutcome {
  const quorum = quorumSize(counts.voterCount);
  if (counts.granted >= quorum) {
    return "won";
  }
  if (counts.voterCount - counts.rejected < quorum) {
    return "lost";
  }
  return "pending";
}
