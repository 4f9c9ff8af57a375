// The tally of one (pre-)election: who granted, who refused, and whether a majority has decided.
import { voteOutcome, type NodeId, type VoteOutcome } from "../quorum/quorum.js";

export type { VoteOutcome } from "../quorum/quorum.js";

export class VoteTally {
  private readonly answers = new Map<NodeId, boolean>();
  private readonly voters: ReadonlySet<NodeId>;

  constructor(voters: readonly NodeId[]) {
    this.voters = new Set(voters);
  }

  /** Records a voter's answer; the first answer of each voter counts (duplicates are harmless), non-voters never. */
  record(voter: NodeId, granted: boolean): void {
    if (!this.voters.has(voter) || this.answers.has(voter)) {
      return;
    }
    this.answers.set(voter, granted);
  }

  /** Whether `voter` has answered (granted or refused). */
  hasAnswered(voter: NodeId): boolean {
    return this.answers.has(voter);
  }

  counts(): { readonly granted: number; readonly rejected: number } {
    let granted = 0;
    let rejected = 0;
    for (const answer of this.answers.values()) {
      if (answer) {
        granted++;
      } else {
        rejected++;
      }
    }
    return { granted, rejected };
  }

  outcome(): VoteOutcome {
    return voteOutcome({ voterCount: this.voters.size, ...this.counts() });
  }
}
