// Election rules that do not need the whole node: the randomized timer, the up-to-date check, stickiness, and the
// decision to grant a (pre-)vote. raft-node.ts wires them to role transitions and messages.
import type { NodeId } from "../quorum/quorum.js";

/** A seeded source of randomness, injected so that the core stays deterministic (the timer is its one consumer). */
export interface RandomSource {
  /** An integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number;
}

/**
 * Counts ticks since the last reset and fires after a timeout drawn uniformly from [min, 1.5 * min) (at least two
 * values): randomization makes split votes resolve, because one candidate usually times out a tick or more before
 * the others. Half a timeout of spread is enough for that: with pre-vote, a split needs two voters to time out
 * within one message delay of each other, and candidates ask unanswered voters again every heartbeat; a wider
 * spread only delays the first candidate after a leader is lost (the earliest of the followers' draws).
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

  /** How many timeouts a draw may pick from: half the minimum (rounded up), at least two. */
  spreadTicks(): number {
    return Math.max(2, Math.ceil(this.minTimeoutTicks / 2));
  }

  private drawTimeoutTicks(): number {
    const spread = this.spreadTicks();
    const drawn = this.minTimeoutTicks + this.random.nextInt(spread);
    if (!Number.isInteger(drawn) || drawn < this.minTimeoutTicks || drawn >= this.minTimeoutTicks + spread) {
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
  return (
    candidate.lastTerm > own.lastTerm || (candidate.lastTerm === own.lastTerm && candidate.lastIndex >= own.lastIndex)
  );
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
  if (transfer) {
    return false;
  }
  if (input.inStartupQuietPeriod) {
    return true;
  }
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
  /**
   * Set when this node applied a configuration that no longer lists it (it was removed): whether the candidate is the
   * one and only voter of that configuration. Null for members (and for nodes that do not know they were removed).
   */
  readonly ownRemoval: { readonly candidateIsSoleVoter: boolean } | null;
  /**
   * True while this node is on voting probation (its storage was new, possibly wiped: it may have voted in this very
   * term, and acknowledged entries it no longer holds; see RaftNodeOptions.votingProbation).
   */
  readonly onProbation?: boolean;
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
  if (!canVote) {
    return false;
  }
  if (input.ownRemoval !== null && !input.ownRemoval.candidateIsSoleVoter) {
    return false;
  }
  // On probation a node may have voted in this very term before its storage was wiped, and its empty log vouches for
  // nothing: it refuses every (pre-)vote until its probation ends.
  if (input.onProbation === true) {
    return false;
  }
  return isLogUpToDate(input.candidateLog, input.ownLog);
}

/*
 * Why a removed node votes for the sole voter of the configuration that removed it, and for no one else.
 *
 * Membership takes effect when applied, so a voter that stays may not have learned that our removal committed; its
 * configuration still lists us. When the removal took one of two voters, that voter X cannot win without our vote,
 * and refusing would deadlock the cluster for good (X waits for us; we, removed, never campaign). With three or more
 * voters before the removal, those that stay form a majority of either configuration on their own, so we stay out.
 *
 * Voting for X is safe. Let C_r = {X} be the configuration that removed us, so the one before was C_{r-1} = {us, X}.
 * X belongs to every majority of both, so it holds every entry committed under either, including any later config
 * entry (one commits under C_r, or under C_{r-1} at a leader that lags in applying). And whoever holds a config entry
 * has learned that the previous one committed (it was created by a leader that had applied the previous one, every
 * AppendEntries carries its sender's commit index, and a follower commits up to what it received); a node does not
 * campaign with a committed change unapplied. So once anything after C_r exists, X campaigns under C_r or later,
 * where our vote counts for nothing. Entries committed under older configurations we vouch for exactly as any voter
 * does, through the up-to-date check. Any other candidate we refuse: with our vote it could complete a
 * majority of a configuration two or more changes behind the current one, whose majorities need not meet the
 * current one's (see also etcd-io/etcd#7625 on apply-time membership).
 */
