// The tally of one (pre-)election: who granted, who refused, and whether a majority has decided.
import { quorumSize } from "../replication/quorum.js";
import type { NodeId } from "../replication/types.js";

export type VoteOutcome = "won" | "lost" | "pending";

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
    const quorum = quorumSize(this.voters.size);
    const { granted, rejected } = this.counts();
    if (granted >= quorum) {
      return "won";
    }
    // Lost once a majority can no longer be reached.
    if (this.voters.size - rejected < quorum) {
      return "lost";
    }
    return "pending";
  }
}
