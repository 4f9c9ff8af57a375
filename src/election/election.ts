// Election rules that do not need the whole node: the randomized timer, the up-to-date check, stickiness, and the
// decision to grant a (pre-)vote. raft-node.ts wires them to role transitions and messages.
import type { NodeId, RandomSource } from "../replication/types.js";

/**
 * Counts ticks since the last reset and fires after a timeout drawn uniformly from [min, 2 * min): randomization
 * makes split votes resolve, because one candidate usually times out well before the others.
 */
export class ElectionTimer {
  elapsedTicks = 0;
  private timeoutTicks: number;

  constructor(
    private readonly minTimeoutTicks: number,
    private readonly random: RandomSource,
  ) {
    this.timeoutTicks = this.drawTimeoutTicks();
  }

  /** Restarts the count and draws a new timeout. */
  reset(): void {
    this.elapsedTicks = 0;
    this.timeoutTicks = this.drawTimeoutTicks();
  }

  tick(): void {
    this.elapsedTicks++;
  }

  /** The leader is alive: start counting again, keeping the drawn timeout (as etcd does). */
  heardFromLeader(): void {
    this.elapsedTicks = 0;
  }

  hasTimedOut(): boolean {
    return this.elapsedTicks >= this.timeoutTicks;
  }

  /** The timeout of the current round, for status and tests. */
  currentTimeoutTicks(): number {
    return this.timeoutTicks;
  }

  private drawTimeoutTicks(): number {
    const drawn = this.minTimeoutTicks + this.random.nextInt(this.minTimeoutTicks);
    if (!Number.isInteger(drawn) || drawn < this.minTimeoutTicks || drawn >= 2 * this.minTimeoutTicks) {
      throw new RangeError(`RandomSource.nextInt(${this.minTimeoutTicks}) returned a value out of range`);
    }
    return drawn;
  }
}

export interface LogPosition {
  readonly lastIndex: number;
  readonly lastTerm: number;
}

/** Raft §5.4.1: the candidate's log is at least as up to date as ours (later last term, or same term and not shorter). */
export function isLogUpToDate(candidate: LogPosition, own: LogPosition): boolean {
  return candidate.lastTerm > own.lastTerm || (candidate.lastTerm === own.lastTerm && candidate.lastIndex >= own.lastIndex);
}

export interface StickinessInput {
  /** The leader this node follows (itself when it leads), or null. */
  readonly leader: NodeId | null;
  /** Ticks since this node last heard from that leader (a leader counts itself as always heard). */
  readonly ticksSinceLeaderContact: number;
  readonly minElectionTimeoutTicks: number;
  /** True during the quiet period after a restart (lease reads): the node may have followed a leader it forgot. */
  readonly inStartupQuietPeriod: boolean;
}

/**
 * Leader stickiness: a node that heard from a live leader within the minimum election timeout ignores (pre-)vote
 * requests, so that a node that was partitioned away cannot disrupt a healthy cluster. A campaign started by a
 * leadership transfer is exempt (the leader itself asked for it).
 */
export function ignoresCampaign(input: StickinessInput, transfer: boolean): boolean {
  if (transfer) return false;
  if (input.inStartupQuietPeriod) return true;
  return input.leader !== null && input.ticksSinceLeaderContact < input.minElectionTimeoutTicks;
}

export interface VoteDecisionInput {
  readonly preVote: boolean;
  readonly candidate: NodeId;
  readonly requestTerm: number;
  readonly candidateLog: LogPosition;
  readonly ownTerm: number;
  readonly ownVote: NodeId | null;
  readonly ownLeader: NodeId | null;
  readonly ownLog: LogPosition;
}

/**
 * Whether to grant a (pre-)vote, once the term has been settled (a real vote request with a higher term has already
 * made us a follower of that term, with no vote and no leader). Like etcd: we can vote for the candidate we already
 * voted for, or for anyone when we neither voted nor know a leader in this term; a pre-vote for a future term is
 * granted on the log alone, because it changes nothing.
 */
export function decideVote(input: VoteDecisionInput): boolean {
  const canVote =
    input.ownVote === input.candidate ||
    (input.ownVote === null && input.ownLeader === null) ||
    (input.preVote && input.requestTerm > input.ownTerm);
  return canVote && isLogUpToDate(input.candidateLog, input.ownLog);
}
