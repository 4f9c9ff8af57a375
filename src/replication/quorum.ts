// Majority arithmetic over the voters of a configuration. Learners never appear here: callers pass voters only.
import { invariant } from "./assert.js";

/** The number of voters that make a majority. */
export function quorumSize(voterCount: number): number {
  invariant(voterCount > 0, "a quorum needs at least one voter");
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The largest value that at least a majority of voters have reached (e.g. the highest index stored on a majority,
 * given every voter's match index).
 */
export function majorityValue(valuesOfVoters: readonly number[]): number {
  const quorum = quorumSize(valuesOfVoters.length);
  const descending = [...valuesOfVoters].sort((a, b) => b - a);
  const value = descending[quorum - 1];
  invariant(value !== undefined, "majorityValue: quorum index out of range");
  return value;
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
