// The Raft node: role transitions, message dispatch, the leader's replication and commit rule, and the Ready/advance
// hand-off to the shell (etcd raft.go + rawnode.go). Pure and deterministic: time is tick(), randomness is
// config.random, I/O is what the shell does with each Ready.
import { ElectionTimer, decideVote, ignoresCampaign, type StickinessInput } from "../election/election.js";
import { VoteTally } from "../election/votes.js";
import { invariant } from "./assert.js";
import { resolveRaftConfig, type ResolvedRaftConfig } from "./config.js";
import { RaftLog } from "./log.js";
import {
  EMPTY_MEMBERSHIP,
  applyConfigChange,
  decodeMembership,
  encodeMembership,
  isLearner,
  isMember,
  isVoter,
  membersExcept,
  validateBootstrapMembership,
} from "./membership.js";
import { isWellFormedMessage } from "./messages.js";
import { Progress } from "./progress.js";
import { majorityValue, isQuorum } from "../quorum/quorum.js";
import { ForwardedReads, LeaderReads, type LeaderRead } from "./read-index.js";
import { assertReplicaStatusTransition, isReconnection, targetReplicaStatus } from "./replica-status.js";
import type {
  AppendEntries,
  AppendResponse,
  ConfigChange,
  ElectionStatus,
  EntryKind,
  FailedRead,
  HardState,
  Heartbeat,
  HeartbeatResponse,
  InstallSnapshot,
  LogEntry,
  Membership,
  Message,
  NodeId,
  NodeStatus,
  PersistedState,
  PreVoteRequest,
  PreVoteResponse,
  ProposalError,
  ProposalResult,
  RaftConfig,
  RaftEvent,
  RaftNodeApi,
  ReadIndexRequest,
  ReadIndexResponse,
  ReadRequestResult,
  ReadState,
  Ready,
  ReplicaView,
  Role,
  SnapshotMeta,
  TransferAbortReason,
  VoteRequest,
  VoteResponse,
} from "./types.js";

export interface RaftNodeOptions {
  readonly config: RaftConfig;
  readonly persisted: PersistedState;
  /** Initial membership of a brand-new cluster member; ignored once the node has a snapshot (it holds the membership). */
  readonly bootstrap?: Membership | null;
  /**
   * Voting probation, for a node whose storage is new: it may be a voter whose storage was wiped, which may have voted
   * in a term still running and may have acknowledged entries that are now committed on fewer nodes. On probation it
   * neither campaigns nor votes until the shell concluded its census (concludeVotingCensus: every other member told
   * its persisted term, and whether it holds any log) and, when some member holds a log, a leader caught it up (it
   * holds the commit index of an AppendEntries it accepted). The shell persists the flag and clears it on the
   * votingProbationEnded event.
   */
  readonly votingProbation?: boolean;
}

const OK: ReadRequestResult = Object.freeze({ ok: true });
/**
 * A compaction held by the shell (holdCompaction) gives way once the log past the last compaction reaches this many
 * times snapshotThresholdEntries: the log in memory grows by at most that much while an image is being prepared.
 */
export const COMPACTION_HOLD_MAX_THRESHOLDS = 4;

/** A TimeoutNow from `leader` in `term`, to act on once the committed config change is applied, until `untilTick`. */
interface DeferredTimeoutNow {
  readonly term: number;
  readonly leader: NodeId;
  readonly untilTick: number;
}

/** A removed leader's hand-over to the most up-to-date remaining voter. */
interface RemovalHandover {
  readonly target: NodeId;
  /** The index of the config entry that removed us: the target must know it is committed before it campaigns. */
  readonly removalIndex: number;
  /** The first heartbeat round that told the target a commit index >= removalIndex; null until one was sent. */
  commitRound: number | null;
  elapsedTicks: number;
}

export class RaftNode implements RaftNodeApi {
  private readonly config: ResolvedRaftConfig;
  private readonly id: NodeId;
  private readonly log: RaftLog;
  private readonly timer: ElectionTimer;

  // Hard state.
  private term: number;
  private vote: NodeId | null;
  private commit: number;
  /** The hard state last handed to the shell (or loaded from it). */
  private lastHandedOutHardState: HardState;
  /** Applied by the shell (acknowledged through advance()). */
  private applied: number;
  /** Handed to the shell in committedEntries (>= applied while a Ready is out). */
  private appliedHandedOut: number;

  private role: Role = "follower";
  private leader: NodeId | null = null;
  /** The membership as of `applied` (config entries take effect when applied). */
  private membership: Membership;
  private wasMember: boolean;
  private removed = false;
  private votingProbation: boolean;
  /** On probation: the shell's census concluded (see concludeVotingCensus). */
  private probationCensusDone = false;
  /** On probation: nothing is left to catch up (a leader caught us up, or the census found no log anywhere). */
  private probationCaughtUp = false;
  /** The term of the leader that caught us up (before the census, it may be a deposed one: see concludeVotingCensus). */
  private probationCaughtUpTerm = 0;

  private nowTicks = 0;
  private heartbeatElapsedTicks = 0;
  private checkQuorumElapsedTicks = 0;
  private votes: VoteTally | null = null;
  /** Whether the current campaign was started by a leadership transfer (its requests are asked again as such). */
  private campaignIsTransfer = false;
  private readonly progress = new Map<NodeId, Progress>();
  private transferee: NodeId | null = null;
  private transferElapsedTicks = 0;
  /**
   * Leader only: the index of a config entry in our log, not yet applied, that removes us. From then on we accept no
   * proposals, so that our log does not outgrow what the remaining voters hold when the removal commits.
   */
  private selfRemovalIndex: number | null = null;
  /** Leader only: set once we applied our own removal and are handing leadership over (see beginRemovalHandover). */
  private removalHandover: RemovalHandover | null = null;
  /** A TimeoutNow may still be in flight: its campaign would ignore stickiness, so leases are off for the term. */
  private timeoutNowSentThisTerm = false;
  /** Follower only: a TimeoutNow that waits for a committed config change to be applied (see deferTransferCampaign). */
  private deferredTimeoutNow: DeferredTimeoutNow | null = null;
  /** New entries (or a new commit index) wait to go out in one AppendEntries per follower at the next ready(). */
  private entriesToBroadcast = false;
  private commitToBroadcast = false;
  /** See holdCompaction. */
  private compactionHoldIndex: number | null = null;
  /** The bootstrap snapshot the first Ready hands to the shell; null once persisted. */
  private bootstrapCompact: SnapshotMeta | null;

  private readonly leaderReads = new LeaderReads();
  private readonly forwardedReads = new ForwardedReads();

  // Election status.
  /** First tick of the current leaderless period at which a campaign was seen (ours or another's). */
  private electionStartTick: number | null = null;
  private campaignSeenTick: number | null = null;
  private lastElectionTicks: number | null = null;

  // What the next Ready carries.
  private messages: Message[] = [];
  private events: RaftEvent[] = [];
  private readStates: ReadState[] = [];
  private failedReads: FailedRead[] = [];
  private outstanding: Ready | null = null;

  // For the monotonicity assertions.
  private checkedTerm = 0;
  private checkedCommit = 0;

  constructor(options: RaftNodeOptions) {
    this.config = resolveRaftConfig(options.config);
    this.id = this.config.id;
    const persisted = options.persisted;
    checkPersistedStateShape(persisted);
    const bootstrap = options.bootstrap ?? null;
    if (bootstrap !== null) {
      validateBootstrapMembership(bootstrap);
    }
    this.votingProbation = options.votingProbation === true;

    const snapshot: SnapshotMeta = persisted.snapshot ?? {
      index: 0,
      term: 0,
      membership: bootstrap ?? EMPTY_MEMBERSHIP,
    };
    this.bootstrapCompact = persisted.snapshot === null && bootstrap !== null ? snapshot : null;
    this.log = new RaftLog(snapshot, persisted.entries);

    const hardState = persisted.hardState;
    invariant(
      hardState.term >= this.log.lastTerm(),
      `persisted state: hard state term ${hardState.term} is below the last log term ${this.log.lastTerm()}`,
    );
    this.term = hardState.term;
    this.vote = hardState.vote;
    this.commit = Math.max(hardState.commit, snapshot.index);
    invariant(
      this.commit <= this.log.lastIndex(),
      `persisted state: commit ${this.commit} is beyond the last log index ${this.log.lastIndex()}`,
    );
    invariant(
      persisted.applied >= snapshot.index && persisted.applied <= this.commit,
      `persisted state: applied ${persisted.applied} must lie between the snapshot index ${snapshot.index} and commit ${this.commit}`,
    );
    this.applied = persisted.applied;
    this.appliedHandedOut = persisted.applied;
    this.lastHandedOutHardState = hardState;

    // Membership as of `applied`: the snapshot's, then every config entry applied since.
    this.membership = snapshot.membership;
    this.wasMember = isMember(snapshot.membership, this.id);
    for (let index = snapshot.index + 1; index <= this.applied; index++) {
      const entry = this.log.entryAt(index);
      if (entry?.kind === "config") {
        this.setMembership(decodeMembership(entry.data, index));
      }
    }
    this.timer = new ElectionTimer(this.config.electionTimeoutTicks, this.config.random);
    this.checkedTerm = this.term;
    this.checkedCommit = this.commit;
    this.assertInvariants();
  }

  // =============================================================================================================
  // Public API

  tick(): void {
    this.nowTicks++;
    if (this.deferredTimeoutNow !== null && this.nowTicks >= this.deferredTimeoutNow.untilTick) {
      this.deferredTimeoutNow = null;
    }
    if (this.role === "leader") {
      this.tickLeader();
    } else {
      this.tickElection();
    }
    this.expireReads();
    this.assertInvariants();
  }

  step(message: Message): void {
    if (!isWellFormedMessage(message) || message.to !== this.id || message.from === this.id) {
      return;
    }
    this.stepMessage(message);
    this.assertInvariants();
  }

  propose(data: string): ProposalResult {
    if (typeof data !== "string") {
      return refuse("INVALID_REQUEST", `a proposal's data must be a string, got ${typeof data}`);
    }
    const refusal = this.proposalRefusal();
    if (refusal !== null) {
      return { ok: false, error: refusal };
    }
    const entry = this.appendEntry("normal", data);
    this.assertInvariants();
    return { ok: true, index: entry.index, term: entry.term };
  }

  proposeConfigChange(change: ConfigChange): ProposalResult {
    const refusal = this.proposalRefusal();
    if (refusal !== null) {
      return { ok: false, error: refusal };
    }
    if (!this.hasCommittedInCurrentTerm()) {
      return refuse(
        "CONFIG_CHANGE_IN_PROGRESS",
        `the leader has not yet committed an entry of its term ${this.term}; retry once it has (a few heartbeats)`,
      );
    }
    const pendingConfigIndex = this.findConfigEntry({ afterIndex: this.applied, toIndex: this.log.lastIndex() });
    if (pendingConfigIndex !== null) {
      return refuse(
        "CONFIG_CHANGE_IN_PROGRESS",
        `the config change at index ${pendingConfigIndex} is not applied yet; changes go one at a time`,
      );
    }
    const result = applyConfigChange(this.membership, change);
    if (!result.ok) {
      return refuse("INVALID_CONFIG_CHANGE", result.message);
    }
    const entry = this.appendEntry("config", encodeMembership(result.membership));
    if (!isVoter(result.membership, this.id)) {
      this.selfRemovalIndex = entry.index;
    }
    this.assertInvariants();
    return { ok: true, index: entry.index, term: entry.term };
  }

  requestRead(context: string): ReadRequestResult {
    if (typeof context !== "string") {
      return refuse("INVALID_REQUEST", "a read context must be a string");
    }
    if (this.removed) {
      return refuse("REMOVED", `node ${this.id} was removed from the cluster`);
    }
    const deadlineTick = this.nowTicks + this.config.readTimeoutTicks;
    if (this.role === "leader") {
      return this.admitLeaderRead({ context, from: this.id, deadlineTick });
    }
    const leader = this.leader;
    if (leader === null) {
      return refuse("NOT_LEADER", "no leader is known (an election is under way or this node is cut off)", null);
    }
    if (this.forwardedReads.has(context)) {
      return refuse("INVALID_REQUEST", `a read with context ${context} is already pending`);
    }
    if (this.pendingReadCount() >= this.config.maxPendingReads) {
      return refuse(
        "QUEUE_FULL",
        `${this.pendingReadCount()} reads are pending on ${this.id} (maxPendingReads=${this.config.maxPendingReads}); retry later`,
      );
    }
    this.forwardedReads.add({ context, leader, deadlineTick });
    this.send({ ...this.envelope(leader), type: "readIndex", context });
    return OK;
  }

  transferLeadership(to: NodeId): ReadRequestResult {
    if (this.role !== "leader") {
      return refuse("NOT_LEADER", `node ${this.id} is not the leader`, this.leader);
    }
    const handover = this.removalHandover;
    if (handover !== null) {
      if (to === handover.target) {
        return OK;
      }
      return refuse(
        "REMOVED",
        `node ${this.id} was removed and is already handing leadership over to ${handover.target}`,
      );
    }
    if (to === this.id) {
      this.abortTransfer("cancelled");
      return OK;
    }
    const ineligible = this.transferTargetRefusal(to);
    if (ineligible !== null) {
      return { ok: false, error: ineligible };
    }
    if (this.transferee === to) {
      return OK;
    }
    this.startTransfer(to);
    this.assertInvariants();
    return OK;
  }

  stepDown(): ReadRequestResult {
    if (this.role !== "leader") {
      return refuse("NOT_LEADER", `node ${this.id} is not the leader`, this.leader);
    }
    if (this.removalHandover !== null) {
      return OK;
    } // already stepping down
    const best = this.bestTransferTarget();
    if (best === null) {
      return refuse("INVALID_REQUEST", "there is no other voter (that stays one) to hand leadership to");
    }
    return this.transferLeadership(best);
  }

  reportUnreachable(peer: NodeId): void {
    const progress = this.role === "leader" ? this.progress.get(peer) : undefined;
    if (progress === undefined) {
      return;
    }
    progress.consecutiveFailures++;
    progress.unreachable = true;
    // Whatever was in flight is probably lost: probe before streaming again.
    if (progress.state === "replicate") {
      progress.becomeProbe();
    }
    this.updateReplicaStatus(progress);
    this.assertInvariants();
  }

  /**
   * The shell hears from `peer` again after failing to reach it (the peer called this node): a follower left probing
   * gets its probe now, entries and all, rather than after the next heartbeat's answer. Marks no contact: a call from
   * the peer is not an answer to this leader.
   */
  reportReachable(peer: NodeId): void {
    const progress = this.role === "leader" ? this.progress.get(peer) : undefined;
    if (progress === undefined || progress.state !== "probe") {
      return;
    }
    progress.probeSent = false;
    this.sendAppend(peer, { evenIfEmpty: true });
    this.assertInvariants();
  }

  /**
   * The shell heard from `peer` whether it is on voting probation (RaftNodeOptions.votingProbation): such a node
   * ignores TimeoutNow, so a transfer to it is refused (CONFIG_CHANGE_IN_PROGRESS: it clears once the node is caught
   * up) and stepDown() and a removed leader's hand-over pass it over while another voter can take leadership.
   */
  reportVotingProbation(peer: NodeId, onProbation: boolean): void {
    const progress = this.role === "leader" ? this.progress.get(peer) : undefined;
    if (progress !== undefined) {
      progress.votingProbation = onProbation;
    }
  }

  reportReplicaReady(peer: NodeId): void {
    const progress = this.role === "leader" ? this.progress.get(peer) : undefined;
    if (progress === undefined || progress.readyReported) {
      return;
    }
    progress.readyReported = true;
    this.updateReplicaStatus(progress);
    this.assertInvariants();
  }

  /**
   * The shell learned that `peer` holds less than we believed (its storage was wiped, and it restarted empty):
   * forget its match index and probe it from its real last index. Lowering a match index only delays commits;
   * it never commits anything that is not on a majority.
   */
  reportPeerLogLost(peer: NodeId, lastIndex: number): void {
    const progress = this.role === "leader" ? this.progress.get(peer) : undefined;
    if (progress === undefined || lastIndex >= progress.matchIndex) {
      return;
    }
    progress.resetAfterLogLoss(lastIndex);
    this.updateReplicaStatus(progress);
    this.assertInvariants();
  }

  /**
   * On voting probation, the shell heard from every other member (see RaftNodeOptions.votingProbation): `maxTerm` is
   * the highest term any of them had persisted, `history` whether any holds a log entry or snapshot. A vote our lost
   * storage held was given in a term some member persisted, so it lies at or below maxTerm: we move to maxTerm with
   * our vote there spent, and vote only in later terms. With no log anywhere nothing was ever committed, so nothing
   * is left to catch up; otherwise the probation ends once a leader caught us up.
   */
  concludeVotingCensus(census: { readonly maxTerm: number; readonly history: boolean }): void {
    if (!this.votingProbation || this.probationCensusDone) {
      return;
    }
    if (census.maxTerm > this.term) {
      this.becomeFollower(census.maxTerm, null, `the voting census found term ${census.maxTerm}`);
    }
    if (census.maxTerm > 0 && census.maxTerm === this.term && this.vote === null) {
      this.setVote(this.id);
    }
    this.probationCensusDone = true;
    if (this.probationCaughtUp && this.probationCaughtUpTerm < census.maxTerm) {
      // A leader of an older term caught us up: a later one may have committed more (with our lost vote among its
      // majority). Only a leader of the census's term or later may end the probation now.
      this.probationCaughtUp = false;
    }
    if (!census.history) {
      this.probationCaughtUp = true;
    }
    this.endVotingProbationIfDone();
    this.assertInvariants();
  }

  /**
   * The shell is about to send an image of its state at `index` (null: none): until then the log is not compacted past
   * it, so that the entries after the image stay available to the follower that installs it. Bounded: see
   * compactionIndex.
   */
  holdCompaction(index: number | null): void {
    invariant(index === null || Number.isSafeInteger(index), () => `compaction hold at ${index}`);
    this.compactionHoldIndex = index;
  }

  /**
   * The snapshot metadata of the state as it was after applying `index`: for an image of the state machine taken at a
   * later index than the last compaction, so that the snapshot sent with it says where it really ends and the follower
   * is not sent again the entries it already holds. Null unless `index` is committed and not before the last
   * compaction (the only indexes whose term and membership this node knows for certain).
   */
  snapshotMetaAt(index: number): SnapshotMeta | null {
    const compacted = this.log.snapshot();
    if (!Number.isSafeInteger(index) || index < compacted.index || index > this.commit) {
      return null;
    }
    const term = this.log.term(index);
    if (term === undefined) {
      return null;
    }
    let membership = compacted.membership;
    for (let at = compacted.index + 1; at <= index; at++) {
      const entry = this.log.entryAt(at);
      invariant(entry !== undefined, () => `snapshot metadata at ${index}: entry ${at} missing`);
      if (entry.kind === "config") {
        membership = decodeMembership(entry.data, at);
      }
    }
    return { index, term, membership };
  }

  reportSnapshotResult(peer: NodeId, ok: boolean): void {
    const progress = this.role === "leader" ? this.progress.get(peer) : undefined;
    if (progress === undefined || progress.state !== "snapshot") {
      return;
    }
    if (!ok) {
      progress.pendingSnapshotIndex = 0;
      progress.consecutiveFailures++;
      progress.unreachable = true;
    }
    progress.becomeProbe();
    // Wait for the follower's answer (or a heartbeat answer) before probing.
    progress.probeSent = true;
    this.updateReplicaStatus(progress);
    this.assertInvariants();
  }

  /** For a follower that may campaign: the ticks left before its election timer fires (at least 1); else null. */
  ticksUntilElection(): number | null {
    if (this.role !== "follower" || !this.isPromotable()) {
      return null;
    }
    return Math.max(1, this.timer.currentTimeoutTicks() - this.timer.elapsedTicks);
  }

  quietTicks(): number {
    if (this.role !== "follower" || this.forwardedReads.size() > 0 || this.leaderReads.size() > 0) {
      return 1;
    }
    if (!this.isPromotable()) {
      return Number.POSITIVE_INFINITY;
    }
    return Math.max(1, this.timer.currentTimeoutTicks() - this.timer.elapsedTicks);
  }

  hasReady(): boolean {
    if (this.outstanding !== null) {
      return false;
    }
    return (
      this.log.hasWorkForReady() ||
      !sameHardState(this.hardState(), this.lastHandedOutHardState) ||
      this.messages.length > 0 ||
      this.events.length > 0 ||
      this.readStates.length > 0 ||
      this.failedReads.length > 0 ||
      this.bootstrapCompact !== null ||
      this.commit > this.appliedHandedOut ||
      this.isCompactionDue(this.appliedHandedOut) ||
      (this.role === "leader" && (this.entriesToBroadcast || this.commitToBroadcast || this.leaderReads.wantsRound()))
    );
  }

  ready(): Ready {
    invariant(this.outstanding === null, "ready() was called again before advance() of the previous Ready");
    this.flushLeaderBatches();
    const snapshot = this.log.takeSnapshotToInstall();
    const truncateFrom = this.log.takeTruncateFrom();
    const entries = this.log.takeEntriesToPersist();
    const currentHardState = this.hardState();
    const hardState = sameHardState(currentHardState, this.lastHandedOutHardState) ? null : currentHardState;
    this.lastHandedOutHardState = currentHardState;
    const committedEntries = this.takeCommittedEntries();
    const compact = this.takeCompaction(committedEntries);
    const ready: Ready = {
      snapshot,
      truncateFrom,
      entries,
      hardState,
      messages: this.messages,
      committedEntries,
      compact,
      readStates: this.readStates,
      failedReads: this.failedReads,
      events: this.events,
    };
    this.messages = [];
    this.readStates = [];
    this.failedReads = [];
    this.events = [];
    this.outstanding = ready;
    this.assertInvariants();
    return ready;
  }

  advance(ready: Ready): void {
    invariant(
      this.outstanding !== null && ready === this.outstanding,
      "advance() must be given the Ready returned by the last ready() call",
    );
    this.outstanding = null;
    const lastEntry = ready.entries[ready.entries.length - 1];
    if (lastEntry !== undefined) {
      this.log.persistedTo(lastEntry.index);
    }
    for (const entry of ready.committedEntries) {
      if (entry.index <= this.applied) {
        continue;
      } // a snapshot installed since this Ready covers it
      invariant(entry.index === this.applied + 1, `advance: applied ${entry.index} after ${this.applied}`);
      this.applied = entry.index;
      if (entry.kind === "config") {
        this.applyMembership(decodeMembership(entry.data, entry.index), entry.index);
      }
    }
    if (ready.compact !== null) {
      this.log.compactTo(ready.compact);
      if (ready.compact === this.bootstrapCompact) {
        this.bootstrapCompact = null;
      }
    }
    // The leader's own log now counts towards the commit quorum.
    if (this.role === "leader" && this.maybeCommit()) {
      this.onLeaderCommitAdvanced();
    }
    this.runDeferredTransferCampaign();
    this.assertInvariants();
  }

  status(): NodeStatus {
    return {
      id: this.id,
      role: this.role,
      term: this.term,
      leader: this.leader,
      vote: this.vote,
      commit: this.commit,
      applied: this.applied,
      lastIndex: this.log.lastIndex(),
      firstIndex: this.log.firstIndex(),
      membership: this.membership,
      election: { status: this.electionStatus(), term: this.term, lastElectionTicks: this.lastElectionTicks },
      replicas: this.role === "leader" ? [...this.progress.values()].map((progress) => this.replicaView(progress)) : [],
      transferee: this.transferee,
      removed: this.removed,
      votingProbation: this.votingProbation,
    };
  }

  // =============================================================================================================
  // Time

  private tickElection(): void {
    this.timer.tick();
    if (this.timer.hasTimedOut() && this.isPromotable()) {
      this.hup({ transfer: false });
      return;
    }
    if (
      (this.role === "preCandidate" || this.role === "candidate") &&
      this.timer.elapsedTicks % this.config.heartbeatIntervalTicks === 0
    ) {
      this.askUnansweredVoters();
    }
  }

  /**
   * A (pre-)candidate asks again, every heartbeat interval of its round, each voter that has not answered. A voter
   * that still heard from the old leader within the minimum timeout ignores a request without answering
   * (stickiness); followers hear the last heartbeat at slightly different moments, so the first to time out is often
   * ignored by one that is a tick or two behind, and without asking again it would wait for its next round (one to two
   * election timeouts) while that voter is ready a tick later. A lost request is recovered the same way. Asking again
   * changes no term and no vote: the request is the same one, and a voter answers it as it would have the first time.
   */
  private askUnansweredVoters(): void {
    const votes = this.votes;
    if (votes === null) {
      return;
    }
    const kind = this.role === "preCandidate" ? "preVote" : "vote";
    const voteTerm = kind === "preVote" ? this.term + 1 : this.term;
    for (const voter of this.membership.voters) {
      if (voter !== this.id && !votes.hasAnswered(voter)) {
        this.sendVoteRequest(voter, { kind, voteTerm, transfer: this.campaignIsTransfer });
      }
    }
  }

  private tickLeader(): void {
    this.heartbeatElapsedTicks++;
    this.checkQuorumElapsedTicks++;
    for (const progress of this.progress.values()) {
      progress.ticksSinceContact++;
      if (progress.state === "snapshot" && ++progress.ticksInSnapshotState >= this.config.snapshotRetryTicks) {
        // No report and no answer: assume the snapshot was lost and start over from a probe.
        progress.becomeProbe();
      }
    }
    if (this.removalHandover !== null && ++this.removalHandover.elapsedTicks >= this.config.electionTimeoutTicks) {
      // The target did not take over in time (lost messages, a slow or cut-off target): step aside anyway. The voters
      // that stay can elect a leader without us, or (when one voter stays) with our vote (decideVote).
      this.abortTransfer("deadline");
      this.becomeFollower(
        this.term,
        null,
        `removed from the voters; the hand-over to ${this.removalHandover.target} did not complete within ${this.config.electionTimeoutTicks} ticks`,
      );
      return;
    }
    // (A removed leader's hand-over has its own deadline, above.)
    if (
      this.removalHandover === null &&
      this.transferee !== null &&
      ++this.transferElapsedTicks >= this.config.electionTimeoutTicks
    ) {
      this.abortTransfer("deadline");
    }
    if (this.checkQuorumElapsedTicks >= this.config.electionTimeoutTicks) {
      this.checkQuorumElapsedTicks = 0;
      if (this.config.checkQuorum && !this.isQuorumActive()) {
        this.becomeFollower(
          this.term,
          null,
          `check quorum: no word from a majority of voters within ${this.config.electionTimeoutTicks} ticks`,
        );
        return;
      }
    }
    if (this.heartbeatElapsedTicks >= this.config.heartbeatIntervalTicks) {
      this.broadcastHeartbeat();
    }
    for (const progress of this.progress.values()) {
      this.updateReplicaStatus(progress);
    }
  }

  private isQuorumActive(): boolean {
    return isQuorum(this.membership.voters, (voter) => {
      if (voter === this.id) {
        return true;
      }
      const progress = this.progress.get(voter);
      return progress !== undefined && progress.ticksSinceContact < this.config.electionTimeoutTicks;
    });
  }

  // =============================================================================================================
  // Message dispatch

  private stepMessage(m: Message): void {
    if (m.term > this.term) {
      if ((m.type === "preVote" || m.type === "vote") && ignoresCampaign(this.stickiness(), m.transfer)) {
        return;
      }
      if (m.type === "preVote") {
        // Never change our term for a pre-vote: that is the point of PreVote.
      } else if (m.type === "preVoteResponse" && m.granted) {
        // A grant carries the future term of our own pre-campaign; the term changes only when we campaign for real.
      } else {
        // A newer term from the transferee: it took over (with a transfer campaign, or alone once the removal of a
        // removed leader left it needing no one else's vote).
        const handedOver = this.role === "leader" && m.from === this.transferee;
        const leader = m.type === "append" || m.type === "heartbeat" || m.type === "snapshot" ? m.from : null;
        this.becomeFollower(m.term, leader, `saw term ${m.term} from ${m.from}`, handedOver);
      }
    } else if (m.term < this.term) {
      this.answerStaleTerm(m);
      return;
    }

    switch (m.type) {
      case "preVote":
      case "vote":
        this.handleVoteRequest(m);
        return;
      case "preVoteResponse":
      case "voteResponse":
        this.handleVoteResponse(m);
        return;
      case "append":
      case "heartbeat":
      case "snapshot":
        this.handleLeaderMessage(m);
        return;
      case "appendResponse":
        if (this.role === "leader") {
          this.handleAppendResponse(m);
        }
        return;
      case "heartbeatResponse":
        if (this.role === "leader") {
          this.handleHeartbeatResponse(m);
        }
        return;
      case "timeoutNow":
        // Deferred before asking whether we may campaign: the change waiting to be applied may be our own promotion
        // (runDeferredTransferCampaign asks then, under the configuration applied).
        if (this.role === "follower" && this.hasUnappliedConfigChange()) {
          this.deferTransferCampaign(m.from);
        } else if (this.role === "follower" && this.isPromotable()) {
          this.hup({ transfer: true });
        }
        return;
      case "readIndex":
        this.handleReadIndexRequest(m);
        return;
      case "readIndexResponse":
        this.handleReadIndexResponse(m);
        return;
    }
  }

  /** A message from an older term: tell stale leaders and pre-candidates about the newer term. */
  private answerStaleTerm(m: Message): void {
    if (m.type === "append" || m.type === "heartbeat" || m.type === "snapshot") {
      // With PreVote and CheckQuorum a deposed leader may never hear the new term otherwise.
      this.send({
        ...this.envelope(m.from),
        type: "appendResponse",
        success: false,
        index: m.type === "append" ? m.prevLogIndex : 0,
        rejectHint: null,
      });
    } else if (m.type === "preVote") {
      this.send({ ...this.envelope(m.from), type: "preVoteResponse", granted: false });
    }
  }

  private handleLeaderMessage(m: AppendEntries | Heartbeat | InstallSnapshot): void {
    invariant(this.role !== "leader", () => `two leaders in term ${this.term}: ${this.id} and ${m.from}`);
    if (this.role !== "follower") {
      this.becomeFollower(this.term, m.from, "a leader exists in this term");
    } else if (this.leader !== m.from) {
      invariant(
        this.leader === null,
        () => `two leaders in term ${this.term}: ${String(this.leader)} and ${m.from} (seen by ${this.id})`,
      );
      this.setLeader(m.from);
      this.events.push({ kind: "becameFollower", term: this.term, leader: m.from });
    }
    this.timer.heardFromLeader();
    switch (m.type) {
      case "append":
        this.handleAppend(m);
        return;
      case "heartbeat":
        this.handleHeartbeat(m);
        return;
      case "snapshot":
        this.handleSnapshot(m);
        return;
    }
  }

  // =============================================================================================================
  // Elections

  private stickiness(): StickinessInput {
    return {
      leader: this.leader,
      ticksSinceLeaderContact: this.role === "leader" ? 0 : this.timer.elapsedTicks,
      minElectionTimeoutTicks: this.config.electionTimeoutTicks,
      // After a restart we may have promised a leader (lease reads) to stay quiet; keep the promise blindly.
      inStartupQuietPeriod: this.config.leaseRead && this.nowTicks < this.config.electionTimeoutTicks,
    };
  }

  private isPromotable(): boolean {
    return isVoter(this.membership, this.id) && !this.removed && !this.votingProbation;
  }

  /**
   * A TimeoutNow came while a committed config change is still unapplied: we may not campaign before we apply it
   * (hup), but the leader sends TimeoutNow only once, so dropping it made the leader wait out an election timeout and
   * give the transfer up. It happens when the change's commit reaches us in the same batch as the TimeoutNow: the
   * shell steps a whole envelope before its Ready loop applies anything, and it holds a commit notice to send it along
   * with the next message to that peer (src/objects/transport/commit-notices.ts), such as a step-down's TimeoutNow
   * right after a member was added. The Ready loop applies the change at once, so we campaign then (advance), if we
   * are still a promotable follower of the same leader in the same term; the leader gives up after an election
   * timeout anyway, so the TimeoutNow is kept no longer.
   */
  private deferTransferCampaign(leader: NodeId): void {
    this.deferredTimeoutNow = {
      term: this.term,
      leader,
      untilTick: this.nowTicks + this.config.electionTimeoutTicks,
    };
  }

  private runDeferredTransferCampaign(): void {
    const deferred = this.deferredTimeoutNow;
    if (deferred === null || this.hasUnappliedConfigChange()) {
      return;
    }
    this.deferredTimeoutNow = null;
    if (
      this.role === "follower" &&
      this.term === deferred.term &&
      this.leader === deferred.leader &&
      this.isPromotable()
    ) {
      this.hup({ transfer: true });
    }
  }

  /** Whether a committed config change waits to be applied (the configuration we would campaign under changes). */
  private hasUnappliedConfigChange(): boolean {
    return this.findConfigEntry({ afterIndex: this.applied, toIndex: this.commit }) !== null;
  }

  /** Starts an election (etcd hup), unless a committed config change is still unapplied. */
  private hup(options: { readonly transfer: boolean }): void {
    if (this.hasUnappliedConfigChange()) {
      // The configuration we would campaign under is about to change; wait for it.
      this.timer.reset();
      return;
    }
    this.noteCampaignSeen();
    if (options.transfer) {
      this.campaign("vote", true);
    } else {
      this.campaign("preVote", false);
    }
  }

  private campaign(kind: "preVote" | "vote", transfer: boolean): void {
    if (kind === "preVote") {
      this.becomePreCandidate();
    } else {
      this.becomeCandidate();
    }
    const voteTerm = kind === "preVote" ? this.term + 1 : this.term;
    const votes = new VoteTally(this.membership.voters);
    this.votes = votes;
    this.campaignIsTransfer = transfer;
    votes.record(this.id, true);
    if (votes.outcome() === "won") {
      // A single voter: nobody else to ask.
      if (kind === "preVote") {
        this.campaign("vote", transfer);
      } else {
        this.becomeLeader();
      }
      return;
    }
    for (const voter of this.membership.voters) {
      if (voter === this.id) {
        continue;
      }
      this.sendVoteRequest(voter, { kind, voteTerm, transfer });
    }
  }

  private sendVoteRequest(
    voter: NodeId,
    request: { readonly kind: "preVote" | "vote"; readonly voteTerm: number; readonly transfer: boolean },
  ): void {
    this.send({
      ...this.envelope(voter, request.voteTerm),
      type: request.kind,
      lastLogIndex: this.log.lastIndex(),
      lastLogTerm: this.log.lastTerm(),
      transfer: request.transfer,
    });
  }

  private handleVoteRequest(m: PreVoteRequest | VoteRequest): void {
    const preVote = m.type === "preVote";
    if (this.leader === null) {
      this.noteCampaignSeen();
    }
    const grant = decideVote({
      preVote,
      candidate: m.from,
      requestTerm: m.term,
      candidateLog: { lastIndex: m.lastLogIndex, lastTerm: m.lastLogTerm },
      ownTerm: this.term,
      ownVote: this.vote,
      ownLeader: this.leader,
      ownLog: { lastIndex: this.log.lastIndex(), lastTerm: this.log.lastTerm() },
      ownRemoval: this.removed
        ? { candidateIsSoleVoter: this.membership.voters.length === 1 && isVoter(this.membership, m.from) }
        : null,
      onProbation: this.votingProbation,
    });
    const type = preVote ? "preVoteResponse" : "voteResponse";
    if (!grant) {
      this.send({ ...this.envelope(m.from), type, granted: false });
      return;
    }
    if (!preVote) {
      // The vote is in this Ready's hard state, which the shell persists before sending the response below.
      this.setVote(m.from);
      this.timer.reset();
    }
    this.send({ ...this.envelope(m.from, m.term), type, granted: true });
  }

  private handleVoteResponse(m: PreVoteResponse | VoteResponse): void {
    if (this.votes === null) {
      return;
    }
    if (m.type === "preVoteResponse") {
      if (this.role !== "preCandidate" || m.term !== (m.granted ? this.term + 1 : this.term)) {
        return;
      }
    } else if (this.role !== "candidate" || m.term !== this.term) {
      return;
    }
    this.votes.record(m.from, m.granted);
    const outcome = this.votes.outcome();
    if (outcome === "won") {
      if (this.role === "preCandidate") {
        this.campaign("vote", false);
      } else {
        this.becomeLeader();
      }
    } else if (outcome === "lost") {
      this.becomeFollower(this.term, null, "lost the election");
    }
  }

  private setVote(candidate: NodeId): void {
    invariant(
      this.vote === null || this.vote === candidate,
      () => `${this.id} would vote twice in term ${this.term}: ${String(this.vote)} and ${candidate}`,
    );
    this.vote = candidate;
  }

  // =============================================================================================================
  // Role transitions

  /** Moves to `term` (or stays), dropping per-role state. */
  private resetForTerm(term: number): void {
    invariant(term >= this.term, () => `term would go back from ${this.term} to ${term}`);
    if (term > this.term) {
      this.term = term;
      this.vote = null;
      this.timeoutNowSentThisTerm = false;
      this.deferredTimeoutNow = null;
    }
    this.timer.reset();
    this.heartbeatElapsedTicks = 0;
    this.checkQuorumElapsedTicks = 0;
    this.votes = null;
  }

  private becomeFollower(term: number, leader: NodeId | null, reason: string, transferHandedOver = false): void {
    const wasLeader = this.role === "leader";
    this.resetForTerm(term);
    if (wasLeader) {
      this.leaveLeadership(reason, transferHandedOver);
    }
    this.role = "follower";
    this.setLeader(leader);
    this.events.push({ kind: "becameFollower", term: this.term, leader });
  }

  private becomePreCandidate(): void {
    invariant(this.role !== "leader", "a leader cannot become a pre-candidate");
    this.votes = null;
    this.timer.reset();
    this.role = "preCandidate";
    this.setLeader(null);
    this.events.push({ kind: "becamePreCandidate", term: this.term });
  }

  private becomeCandidate(): void {
    invariant(this.role !== "leader", "a leader cannot become a candidate");
    this.resetForTerm(this.term + 1);
    this.setVote(this.id);
    this.role = "candidate";
    this.setLeader(null);
    this.events.push({ kind: "becameCandidate", term: this.term });
  }

  private becomeLeader(): void {
    invariant(this.role === "candidate", () => `only a candidate can become leader (was ${this.role})`);
    const electionTicks = this.nowTicks - (this.electionStartTick ?? this.nowTicks);
    this.resetForTerm(this.term);
    this.role = "leader";
    this.setLeader(this.id);
    this.transferee = null;
    this.removalHandover = null;
    this.selfRemovalIndex = this.findSelfRemoval();
    this.progress.clear();
    for (const member of membersExcept(this.membership, this.id)) {
      this.addProgress(member);
    }
    this.events.push({ kind: "becameLeader", term: this.term, electionTicks });
    // The no-op commits the entries of earlier terms (they never commit by counting) and unblocks reads.
    this.appendEntry("noop", "");
    this.broadcastAppend({ evenIfEmpty: true });
  }

  /** Everything only a leader holds goes; pending reads fail. */
  private leaveLeadership(reason: string, transferHandedOver: boolean): void {
    if (this.transferee !== null && transferHandedOver) {
      this.events.push({ kind: "leadershipTransfer", to: this.transferee, outcome: "completed" });
      this.transferee = null;
    }
    this.abortTransfer("lostLeadership");
    this.removalHandover = null;
    this.selfRemovalIndex = null;
    this.progress.clear();
    this.entriesToBroadcast = false;
    this.commitToBroadcast = false;
    for (const read of this.leaderReads.takeAll()) {
      this.failLeaderRead(read, {
        code: "NOT_LEADER",
        leader: null,
        message: `leadership was lost before the read was confirmed (${reason})`,
      });
    }
    this.events.push({ kind: "steppedDown", term: this.term, reason });
  }

  private setLeader(leader: NodeId | null): void {
    if (leader === this.leader) {
      return;
    }
    const previous = this.leader;
    this.leader = leader;
    for (const read of this.forwardedReads.takeAll()) {
      this.failedReads.push({
        context: read.context,
        error: {
          code: "NOT_LEADER",
          leader,
          message: `the leader changed from ${String(previous)} to ${String(leader)} before answering the read`,
        },
      });
    }
    if (leader !== null) {
      if (this.electionStartTick !== null) {
        this.lastElectionTicks = this.nowTicks - this.electionStartTick;
      }
      this.electionStartTick = null;
      this.campaignSeenTick = null;
    }
  }

  private noteCampaignSeen(): void {
    this.campaignSeenTick = this.nowTicks;
    if (this.electionStartTick === null) {
      this.electionStartTick = this.nowTicks;
    }
  }

  private electionStatus(): ElectionStatus {
    if (this.leader !== null) {
      return "ELECTED";
    }
    if (this.role === "preCandidate" || this.role === "candidate") {
      return "VOTING";
    }
    if (
      this.campaignSeenTick !== null &&
      this.nowTicks - this.campaignSeenTick < 2 * this.config.electionTimeoutTicks
    ) {
      return "VOTING";
    }
    return "NO_LEADER";
  }

  // =============================================================================================================
  // Follower side of replication

  private handleAppend(m: AppendEntries): void {
    if (m.prevLogIndex < this.commit) {
      // Everything up to our commit index matches any leader's log: say so, and let the leader go on from there.
      this.maybeEndVotingProbation(m);
      this.sendAppendResponse(m.from, { success: true, index: this.commit });
      return;
    }
    if (!this.log.matchTerm(m.prevLogIndex, m.prevLogTerm)) {
      const hint = this.log.findConflictByTerm(Math.min(m.prevLogIndex, this.log.lastIndex()), m.prevLogTerm);
      this.sendAppendResponse(m.from, { success: false, index: m.prevLogIndex, rejectHint: hint });
      return;
    }
    const lastNewIndex = m.prevLogIndex + m.entries.length;
    const conflictIndex = this.log.findConflict(m.entries);
    if (conflictIndex !== 0) {
      invariant(
        conflictIndex > this.commit,
        () => `${this.id} would truncate committed entry ${conflictIndex} (commit ${this.commit})`,
      );
      this.log.truncateAndAppend(m.entries.slice(conflictIndex - m.prevLogIndex - 1));
    }
    this.commitTo(Math.min(m.commit, lastNewIndex));
    this.maybeEndVotingProbation(m);
    this.sendAppendResponse(m.from, { success: true, index: lastNewIndex });
  }

  /** A leader caught us up: we hold its commit index, so we know at least what it knew when it sent this. */
  private maybeEndVotingProbation(m: AppendEntries): void {
    if (this.votingProbation && this.commit >= m.commit) {
      this.probationCaughtUp = true;
      this.probationCaughtUpTerm = Math.max(this.probationCaughtUpTerm, m.term);
      this.endVotingProbationIfDone();
    }
  }

  private endVotingProbationIfDone(): void {
    if (!this.votingProbation || !this.probationCensusDone || !this.probationCaughtUp) {
      return;
    }
    this.votingProbation = false;
    this.events.push({ kind: "votingProbationEnded", term: this.term, commit: this.commit });
  }

  private handleHeartbeat(m: Heartbeat): void {
    // The leader sends min(commit, our match index), so this reaches beyond what we hold only when our log was
    // lost (wiped storage): then the leader's idea of our log is wrong and its commit index says nothing about
    // what we hold. Ignore it; the shell tells the leader (reportPeerLogLost) and it probes us again.
    if (m.commit <= this.log.lastIndex()) {
      this.commitTo(m.commit);
    }
    this.send({ ...this.envelope(m.from), type: "heartbeatResponse", readContext: m.readContext, round: m.round });
  }

  private handleSnapshot(m: InstallSnapshot): void {
    const snapshot = m.snapshot;
    if (snapshot.index <= this.commit) {
      this.sendAppendResponse(m.from, { success: true, index: this.commit });
      return;
    }
    if (this.log.matchTerm(snapshot.index, snapshot.term)) {
      // We hold the entries: commit them instead of replacing the state machine.
      this.commitTo(snapshot.index);
      this.sendAppendResponse(m.from, { success: true, index: snapshot.index });
      return;
    }
    this.log.restore(snapshot);
    this.commit = snapshot.index;
    this.applied = snapshot.index;
    this.appliedHandedOut = snapshot.index;
    this.applyMembership(snapshot.membership, snapshot.index);
    this.sendAppendResponse(m.from, { success: true, index: snapshot.index });
  }

  private sendAppendResponse(
    to: NodeId,
    answer: {
      readonly success: boolean;
      readonly index: number;
      readonly rejectHint?: { index: number; term: number };
    },
  ): void {
    this.send({
      ...this.envelope(to),
      type: "appendResponse",
      success: answer.success,
      index: answer.index,
      rejectHint: answer.rejectHint ?? null,
    });
  }

  private commitTo(index: number): void {
    if (index <= this.commit) {
      return;
    }
    invariant(
      index <= this.log.lastIndex(),
      () => `${this.id}: commit ${index} is beyond the last index ${this.log.lastIndex()} (was the log lost?)`,
    );
    this.commit = index;
  }

  // =============================================================================================================
  // Leader side of replication

  private proposalRefusal(): ProposalError | null {
    if (this.removed) {
      return { code: "REMOVED", message: `node ${this.id} was removed from the cluster` };
    }
    if (this.role !== "leader") {
      return { code: "NOT_LEADER", leader: this.leader, message: `node ${this.id} is not the leader` };
    }
    if (this.selfRemovalIndex !== null) {
      return {
        code: "REMOVED",
        message: `node ${this.id} is being removed (config entry ${this.selfRemovalIndex}); it accepts no more proposals, retry with another node`,
      };
    }
    if (this.transferee !== null) {
      return {
        code: "TRANSFER_IN_PROGRESS",
        message: `leadership is being transferred to ${this.transferee}; retry with the new leader`,
      };
    }
    const pending = this.log.lastIndex() - this.commit;
    if (pending >= this.config.maxPendingProposals) {
      return {
        code: "QUEUE_FULL",
        message: `the leader has ${pending} appended but uncommitted entries (maxPendingProposals=${this.config.maxPendingProposals}); retry after some commit`,
      };
    }
    return null;
  }

  private appendEntry(kind: EntryKind, data: string): LogEntry {
    invariant(this.role === "leader", "only a leader appends entries of its own");
    const entry: LogEntry = { index: this.log.lastIndex() + 1, term: this.term, kind, data };
    this.log.append([entry]);
    this.entriesToBroadcast = true;
    return entry;
  }

  private hasCommittedInCurrentTerm(): boolean {
    return this.log.term(this.commit) === this.term;
  }

  /** The index of a config entry in (afterIndex, toIndex], or null. */
  private findConfigEntry(range: { readonly afterIndex: number; readonly toIndex: number }): number | null {
    for (let index = range.afterIndex + 1; index <= range.toIndex; index++) {
      if (this.log.entryAt(index)?.kind === "config") {
        return index;
      }
    }
    return null;
  }

  /** The index of an unapplied config entry in our log that removes us, or null. */
  private findSelfRemoval(): number | null {
    const pending = this.latestUnappliedConfig();
    return pending === null || isVoter(pending.membership, this.id) ? null : pending.index;
  }

  /** The last config entry in our log that is not applied yet (the configuration to come), or null. */
  private latestUnappliedConfig(): { readonly index: number; readonly membership: Membership } | null {
    for (let index = this.log.lastIndex(); index > this.applied; index--) {
      const entry = this.log.entryAt(index);
      if (entry?.kind === "config") {
        return { index, membership: decodeMembership(entry.data, index) };
      }
    }
    return null;
  }

  private addProgress(member: NodeId): Progress {
    const progress = new Progress(member, isLearner(this.membership, member), {
      nextIndex: this.log.lastIndex() + 1,
      maxInflightMessages: this.config.maxInflightMessages,
    });
    this.progress.set(member, progress);
    this.updateReplicaStatus(progress);
    return progress;
  }

  /** At ready(): one AppendEntries per follower for everything proposed (or committed) since the last Ready. */
  private flushLeaderBatches(): void {
    if (this.role !== "leader") {
      return;
    }
    if (this.entriesToBroadcast || this.commitToBroadcast) {
      for (const progress of this.progress.values()) {
        const commitNews = this.commitToBroadcast && progress.lastCommitSent < this.commit;
        this.sendAppendsWhileAllowed(progress.id, { evenIfEmpty: commitNews });
      }
      this.entriesToBroadcast = false;
      this.commitToBroadcast = false;
    }
    if (this.leaderReads.wantsRound()) {
      this.broadcastHeartbeat();
    }
  }

  private broadcastAppend(options: { readonly evenIfEmpty: boolean }): void {
    for (const progress of this.progress.values()) {
      this.sendAppend(progress.id, options);
    }
  }

  /** Sends as much as flow control allows (in replicate state, several messages up to the in-flight limit). */
  private sendAppendsWhileAllowed(to: NodeId, options: { readonly evenIfEmpty: boolean }): void {
    if (!this.sendAppend(to, options)) {
      return;
    }
    for (let sent = 1; sent < this.config.maxInflightMessages + 1; sent++) {
      if (!this.sendAppend(to, { evenIfEmpty: false })) {
        return;
      }
    }
  }

  /** Sends one AppendEntries (or an InstallSnapshot when the entries are compacted away); false when nothing went. */
  private sendAppend(to: NodeId, options: { readonly evenIfEmpty: boolean }): boolean {
    const progress = this.progress.get(to);
    if (progress === undefined || progress.isPaused()) {
      return false;
    }
    const prevLogIndex = progress.nextIndex - 1;
    const prevLogTerm = this.log.term(prevLogIndex);
    if (prevLogTerm === undefined) {
      return this.sendSnapshot(progress);
    }
    const entries = this.log.slice({
      fromIndex: progress.nextIndex,
      toIndex: this.log.lastIndex(),
      maxBytes: this.config.maxMessageBytes,
    });
    if (entries === null) {
      return this.sendSnapshot(progress);
    }
    if (entries.length === 0 && !options.evenIfEmpty) {
      return false;
    }
    this.send({ ...this.envelope(to), type: "append", prevLogIndex, prevLogTerm, entries, commit: this.commit });
    progress.sentAppend(entries.length > 0 ? (entries[entries.length - 1] as LogEntry).index : null);
    progress.lastCommitSent = Math.max(progress.lastCommitSent, this.commit);
    return true;
  }

  private sendSnapshot(progress: Progress): boolean {
    const snapshot = this.log.snapshot();
    this.send({ ...this.envelope(progress.id), type: "snapshot", snapshot });
    progress.becomeSnapshot(snapshot.index);
    return true;
  }

  private sendTimeoutNow(to: NodeId): void {
    this.timeoutNowSentThisTerm = true;
    this.send({ ...this.envelope(to), type: "timeoutNow" });
  }

  private handleAppendResponse(m: AppendResponse): void {
    const progress = this.progress.get(m.from);
    if (progress === undefined) {
      return;
    }
    this.markContact(progress);
    if (!m.success) {
      this.handleAppendRejection(progress, m);
    } else if (m.index <= this.log.lastIndex()) {
      this.handleAppendSuccess(progress, m.index);
    }
    this.updateReplicaStatus(progress);
  }

  private handleAppendRejection(progress: Progress, m: AppendResponse): void {
    if (m.rejectHint === null) {
      return;
    } // an answer to a stale message of an older leadership
    // The follower's hint says where its log may match; find the same spot in our log (etcd's fast back-off).
    const matchHint =
      m.rejectHint.term > 0
        ? this.log.findConflictByTerm(m.rejectHint.index, m.rejectHint.term).index
        : m.rejectHint.index;
    if (!progress.maybeDecrTo(m.index, matchHint)) {
      return;
    }
    if (progress.state === "replicate") {
      progress.becomeProbe();
    }
    this.sendAppend(progress.id, { evenIfEmpty: true });
  }

  private handleAppendSuccess(progress: Progress, index: number): void {
    const updated = progress.maybeUpdate(index);
    if (!updated && !(progress.matchIndex === index && progress.state === "probe")) {
      return;
    }
    progress.matchedOnce = true;
    const resumed = progress.state !== "replicate";
    if (progress.state === "probe") {
      progress.becomeReplicate();
    } else if (progress.state === "snapshot" && progress.matchIndex + 1 >= this.log.firstIndex()) {
      // The follower has what the snapshot carried (or more): stream the log again.
      progress.becomeProbe();
      progress.becomeReplicate();
    } else if (progress.state === "replicate") {
      progress.inflights.freeLE(index);
    }
    if (this.maybeCommit()) {
      this.onLeaderCommitAdvanced();
    }
    // Replication to this follower resumed: an append goes out even with nothing new in it, carrying our commit index.
    // A follower on voting probation ends it only on an append that brings it to our commit (maybeEndVotingProbation),
    // and one caught up by a snapshot at our last index would otherwise wait for the next write.
    this.sendAppendsWhileAllowed(progress.id, { evenIfEmpty: resumed && progress.state === "replicate" });
    this.maybeSendTimeoutNow(progress);
  }

  private handleHeartbeatResponse(m: HeartbeatResponse): void {
    const progress = this.progress.get(m.from);
    if (progress === undefined) {
      return;
    }
    this.markContact(progress);
    if (m.round > progress.ackedRound && m.round <= this.leaderReads.currentRound()) {
      progress.ackedRound = m.round;
      progress.ackedRoundSentTick = this.leaderReads.sentTickOf(m.round) ?? progress.ackedRoundSentTick;
    }
    if (progress.state === "probe") {
      progress.probeSent = false;
    }
    // A lost append can leave the window full forever; the follower is alive, so let one more message through.
    if (progress.state === "replicate" && progress.inflights.full()) {
      progress.inflights.freeFirstOne();
    }
    if (progress.matchIndex < this.log.lastIndex() || progress.state === "probe") {
      // Even an empty append: if the follower lost what we think is in flight, its rejection puts us back to probe.
      this.sendAppend(progress.id, { evenIfEmpty: true });
    }
    if (!progress.isLearner) {
      this.releaseConfirmedReads();
    }
    // During a transfer TimeoutNow goes again with each echo of a transferee that holds our whole log: the leader
    // sends it once otherwise, and one that is lost left it waiting out an election timeout before giving up. A repeat
    // the target gets after it campaigned is of an older term, and dropped. (One that comes before the target applied
    // a committed config change, a removal among them, is kept until it has: deferTransferCampaign.)
    this.maybeSendTimeoutNow(progress);
    this.updateReplicaStatus(progress);
  }

  private markContact(progress: Progress): void {
    progress.ticksSinceContact = 0;
    progress.unreachable = false;
    progress.consecutiveFailures = 0;
  }

  /** Raft's commit rule: the highest index on a majority of voters, if it belongs to the current term (Figure 8). */
  private maybeCommit(): boolean {
    const matchIndexes = this.membership.voters.map((voter) =>
      voter === this.id ? this.log.persisted() : (this.progress.get(voter)?.matchIndex ?? 0),
    );
    const candidate = majorityValue(matchIndexes);
    if (candidate <= this.commit) {
      return false;
    }
    if (!this.config.commitPreviousTermByCounting && this.log.term(candidate) !== this.term) {
      return false;
    }
    this.commitTo(candidate);
    return true;
  }

  private onLeaderCommitAdvanced(): void {
    this.commitToBroadcast = true;
    if (!this.hasCommittedInCurrentTerm()) {
      return;
    }
    for (const read of this.leaderReads.takeWaitingForTermCommit()) {
      this.admitConfirmedLeaderRead(read);
    }
  }

  private broadcastHeartbeat(): void {
    this.heartbeatElapsedTicks = 0;
    const round = this.leaderReads.startRound(this.nowTicks);
    const readContext = this.leaderReads.newestConfirmingContext();
    const handover = this.removalHandover;
    for (const progress of this.progress.values()) {
      const commit = Math.min(this.commit, progress.matchIndex);
      this.send({ ...this.envelope(progress.id), type: "heartbeat", commit, readContext, round });
      progress.lastCommitSent = Math.max(progress.lastCommitSent, commit);
      if (
        handover !== null &&
        handover.commitRound === null &&
        handover.target === progress.id &&
        commit >= handover.removalIndex
      ) {
        handover.commitRound = round;
      }
    }
    // Our own echo is immediate: a single voter confirms its reads right away.
    this.releaseConfirmedReads();
  }

  // =============================================================================================================
  // Membership

  private setMembership(membership: Membership): void {
    this.membership = membership;
    if (isMember(membership, this.id)) {
      this.wasMember = true;
      this.removed = false;
    } else if (this.wasMember) {
      this.removed = true;
    }
  }

  private applyMembership(membership: Membership, index: number): void {
    this.setMembership(membership);
    this.events.push({ kind: "membershipApplied", index, membership });
    if (this.role === "leader") {
      this.leaderAfterMembershipChange(index);
    } else if (this.role !== "follower" && !isVoter(membership, this.id)) {
      this.becomeFollower(this.term, null, "no longer a voter");
    }
  }

  private leaderAfterMembershipChange(index: number): void {
    for (const [id, progress] of this.progress) {
      if (!isMember(this.membership, id)) {
        this.progress.delete(id);
      } else {
        progress.isLearner = isLearner(this.membership, id);
      }
    }
    for (const member of membersExcept(this.membership, this.id)) {
      if (!this.progress.has(member)) {
        this.addProgress(member);
        this.sendAppend(member, { evenIfEmpty: true });
      }
    }
    if (this.transferee !== null && !isVoter(this.membership, this.transferee)) {
      // (transferLeadership refuses a target whose removal is in the log, and no change is proposed during a
      // transfer, so this is a safeguard.)
      this.abortTransfer("notVoter");
    }
    if (!isVoter(this.membership, this.id)) {
      this.beginRemovalHandover(index);
      return;
    }
    // The quorum changed: commits and reads may be decided now.
    if (this.maybeCommit()) {
      this.onLeaderCommitAdvanced();
    }
    this.releaseConfirmedReads();
  }

  /**
   * Our removal is committed and applied. Vanishing now could strand the cluster: the remaining voters may not know
   * the removal committed (a two-voter cluster then needs our vote forever), and entries only we hold would wait for
   * a new leader. So, as the Raft thesis (§4.2.2) and etcd suggest, we stop taking proposals and reads, keep
   * replicating, bring the most up-to-date remaining voter level with our log, make sure it learned that the removal
   * committed (it echoed a heartbeat that carried that commit index), and send it TimeoutNow. We step down when it
   * campaigns (a higher term arrives), or after an election timeout at the latest. Commits meanwhile count only the
   * new configuration's voters.
   */
  private beginRemovalHandover(removalIndex: number): void {
    for (const read of this.leaderReads.takeAll()) {
      this.failLeaderRead(read, {
        code: "REMOVED",
        message: `node ${this.id} was removed from the voters before the read was confirmed`,
      });
    }
    const target = this.bestTransferTarget();
    invariant(target !== null, () => `${this.id} was removed but no voter is left to lead`);
    this.removalHandover = { target, removalIndex, commitRound: null, elapsedTicks: 0 };
    if (this.transferee !== target) {
      this.startTransfer(target);
    }
    if (this.maybeCommit()) {
      this.onLeaderCommitAdvanced();
    }
    // Tell everyone the commit index now; the target's echo of this round lets TimeoutNow go.
    this.broadcastHeartbeat();
  }

  /**
   * The voter (other than us, and not being removed) with the highest match index, then the freshest contact; null
   * when there is none. Voters on voting probation come last: they would ignore TimeoutNow.
   */
  private bestTransferTarget(): NodeId | null {
    const pending = this.latestUnappliedConfig();
    const candidates = this.membership.voters
      .filter((voter) => voter !== this.id && (pending === null || isVoter(pending.membership, voter)))
      .map((voter) => this.progress.get(voter))
      .filter((progress): progress is Progress => progress !== undefined)
      .sort(
        (a, b) =>
          Number(a.votingProbation) - Number(b.votingProbation) ||
          b.matchIndex - a.matchIndex ||
          a.ticksSinceContact - b.ticksSinceContact ||
          (a.id < b.id ? -1 : 1),
      );
    return candidates[0]?.id ?? null;
  }

  private startTransfer(to: NodeId): void {
    this.abortTransfer("superseded");
    this.transferee = to;
    this.transferElapsedTicks = 0;
    this.events.push({ kind: "leadershipTransfer", to, outcome: "started" });
    const progress = this.progress.get(to);
    invariant(progress !== undefined, `transfer target ${to} has no progress`);
    if (progress.matchIndex === this.log.lastIndex()) {
      this.maybeSendTimeoutNow(progress);
    } else {
      this.sendAppend(to, { evenIfEmpty: true });
    }
  }

  /**
   * TimeoutNow goes once the transferee holds our whole log, so that it can win; a removed leader also waits until
   * the transferee knows that the removal committed, so that it campaigns under the configuration without us.
   */
  private maybeSendTimeoutNow(progress: Progress): void {
    if (progress.id !== this.transferee || progress.matchIndex !== this.log.lastIndex()) {
      return;
    }
    const handover = this.removalHandover;
    if (handover !== null && (handover.commitRound === null || progress.ackedRound < handover.commitRound)) {
      return;
    }
    this.sendTimeoutNow(progress.id);
  }

  private abortTransfer(reason: TransferAbortReason): void {
    if (this.transferee === null) {
      return;
    }
    this.events.push({ kind: "leadershipTransfer", to: this.transferee, outcome: "aborted", reason });
    this.transferee = null;
  }

  /**
   * Why `to` cannot take leadership over, as far as the leader can tell, or null. A target on voting probation (see
   * RaftNodeOptions.votingProbation) ignores TimeoutNow: refused while it last said so (reportVotingProbation); one
   * that never said (an older version) is tried, and that transfer ends at its deadline.
   */
  private transferTargetRefusal(to: NodeId): ProposalError | null {
    if (typeof to !== "string") {
      return {
        code: "INVALID_REQUEST",
        message: `node ${String(to)} is not a voter; leadership can only go to a voter`,
      };
    }
    const pending = this.latestUnappliedConfig();
    const staysVoter = pending === null || isVoter(pending.membership, to);
    if (isLearner(this.membership, to)) {
      return pending !== null && staysVoter
        ? {
            code: "CONFIG_CHANGE_IN_PROGRESS",
            message: `node ${to} is a learner whose promotion (config entry ${pending.index}) is not applied yet; leadership can only go to a voter`,
          }
        : { code: "INVALID_REQUEST", message: `node ${to} is a learner; leadership can only go to a voter` };
    }
    if (!isVoter(this.membership, to)) {
      return { code: "INVALID_REQUEST", message: `node ${to} is not a voter; leadership can only go to a voter` };
    }
    if (!staysVoter) {
      return {
        code: "INVALID_REQUEST",
        message: `node ${to} is being removed (config entry ${pending.index}, not applied yet); leadership can only go to a voter that stays`,
      };
    }
    if (this.progress.get(to)?.votingProbation === true) {
      return {
        code: "CONFIG_CHANGE_IN_PROGRESS",
        message: `node ${to} is on voting probation (its storage is new or was lost, and it has not yet heard from every member or been caught up by a leader); leadership can go to it once that ends`,
      };
    }
    return null;
  }

  // =============================================================================================================
  // Reads

  private pendingReadCount(): number {
    return this.leaderReads.size() + this.forwardedReads.size();
  }

  private admitLeaderRead(read: LeaderRead): ReadRequestResult {
    if (this.leaderReads.has(read.from, read.context)) {
      return refuse("INVALID_REQUEST", `a read with context ${read.context} is already pending`);
    }
    if (this.pendingReadCount() >= this.config.maxPendingReads) {
      return refuse(
        "QUEUE_FULL",
        `${this.pendingReadCount()} reads are pending on the leader (maxPendingReads=${this.config.maxPendingReads}); retry later`,
      );
    }
    // etcd's rule: until an entry of its term commits, a new leader does not know the latest commit index.
    if (!this.hasCommittedInCurrentTerm()) {
      this.leaderReads.addWaitingForTermCommit(read);
    } else {
      this.admitConfirmedLeaderRead(read);
    }
    return OK;
  }

  /** Read index = commit now; served at once under a valid lease, else after the next heartbeat round's quorum. */
  private admitConfirmedLeaderRead(read: LeaderRead): void {
    if (this.isLeaseValid()) {
      this.deliverLeaderRead(read, this.commit);
    } else {
      this.leaderReads.addConfirming(read, this.commit);
    }
  }

  private releaseConfirmedReads(): void {
    const rounds = this.membership.voters.map((voter) =>
      voter === this.id ? this.leaderReads.currentRound() : (this.progress.get(voter)?.ackedRound ?? 0),
    );
    const confirmedRound = majorityValue(rounds);
    for (const read of this.leaderReads.releaseConfirmedUpTo(confirmedRound)) {
      this.deliverLeaderRead(read, read.index);
    }
  }

  /**
   * A lease holds while a quorum of voters echoed a heartbeat round sent less than (election timeout - margin) ticks
   * ago: each of them promised (stickiness) not to vote for anyone else for an election timeout after receiving it.
   */
  private isLeaseValid(): boolean {
    if (!this.config.leaseRead || this.role !== "leader" || this.transferee !== null || this.timeoutNowSentThisTerm) {
      return false;
    }
    const sentTicks = this.membership.voters.map((voter) =>
      voter === this.id ? this.nowTicks : (this.progress.get(voter)?.ackedRoundSentTick ?? Number.NEGATIVE_INFINITY),
    );
    const leaseStartTick = majorityValue(sentTicks);
    return this.nowTicks - leaseStartTick < this.config.electionTimeoutTicks - this.config.leaseSafetyMarginTicks;
  }

  private deliverLeaderRead(read: LeaderRead, index: number): void {
    if (read.from === this.id) {
      this.readStates.push({ context: read.context, index });
    } else {
      this.send({ ...this.envelope(read.from), type: "readIndexResponse", context: read.context, index });
    }
  }

  private failLeaderRead(read: LeaderRead, error: ProposalError): void {
    if (read.from === this.id) {
      this.failedReads.push({ context: read.context, error });
    } else {
      this.send({ ...this.envelope(read.from), type: "readIndexResponse", context: read.context, index: null });
    }
  }

  private handleReadIndexRequest(m: ReadIndexRequest): void {
    if (this.role !== "leader" || this.removalHandover !== null) {
      this.send({ ...this.envelope(m.from), type: "readIndexResponse", context: m.context, index: null });
      return;
    }
    const progress = this.progress.get(m.from);
    if (progress !== undefined) {
      this.markContact(progress);
    }
    // A duplicated request: the original is pending and will be answered; refusing the copy would fail the read.
    if (this.leaderReads.has(m.from, m.context)) {
      return;
    }
    const result = this.admitLeaderRead({
      context: m.context,
      from: m.from,
      deadlineTick: this.nowTicks + this.config.readTimeoutTicks,
    });
    if (!result.ok) {
      this.send({ ...this.envelope(m.from), type: "readIndexResponse", context: m.context, index: null });
    }
  }

  private handleReadIndexResponse(m: ReadIndexResponse): void {
    const read = this.forwardedReads.take(m.context, m.from);
    if (read === undefined) {
      return;
    }
    if (m.index === null) {
      this.failedReads.push({
        context: m.context,
        error: {
          code: "NOT_LEADER",
          leader: null,
          message: `${m.from} refused the read: it is not (or no longer) the leader`,
        },
      });
    } else {
      this.readStates.push({ context: m.context, index: m.index });
    }
  }

  private expireReads(): void {
    for (const read of this.leaderReads.takeExpired(this.nowTicks)) {
      this.failLeaderRead(read, {
        code: "TIMEOUT",
        message: `leadership was not confirmed within ${this.config.readTimeoutTicks} ticks`,
      });
    }
    for (const read of this.forwardedReads.takeExpired(this.nowTicks)) {
      this.failedReads.push({
        context: read.context,
        error: {
          code: "TIMEOUT",
          message: `the leader ${read.leader} did not answer the read within ${this.config.readTimeoutTicks} ticks`,
        },
      });
    }
  }

  // =============================================================================================================
  // Ready helpers

  private hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.commit };
  }

  private takeCommittedEntries(): LogEntry[] {
    // The bootstrap snapshot goes alone, so that compact.index (0) is the applied index after this Ready.
    if (this.bootstrapCompact !== null) {
      return [];
    }
    const fromIndex = this.appliedHandedOut + 1;
    const toIndex = Math.min(this.commit, this.appliedHandedOut + this.config.maxApplyEntriesPerReady);
    if (toIndex < fromIndex) {
      return [];
    }
    const entries = this.log.slice({ fromIndex, toIndex, maxBytes: Number.POSITIVE_INFINITY });
    invariant(
      entries !== null && entries.length === toIndex - fromIndex + 1,
      () => `committed entries ${fromIndex}..${toIndex} are not in the log`,
    );
    this.appliedHandedOut = toIndex;
    return entries;
  }

  private isCompactionDue(appliedAfterReady: number): boolean {
    const compacted = this.log.snapshot().index;
    return (
      appliedAfterReady - compacted >= this.config.snapshotThresholdEntries &&
      this.compactionIndex(appliedAfterReady) > compacted
    );
  }

  /**
   * Where to compact: the applied index, or the index held by the shell (holdCompaction) while the log past the last
   * compaction is under COMPACTION_HOLD_MAX_THRESHOLDS times snapshotThresholdEntries (then the hold gives way: the
   * log in memory stays bounded).
   */
  private compactionIndex(appliedAfterReady: number): number {
    const hold = this.compactionHoldIndex;
    const compacted = this.log.snapshot().index;
    const held = appliedAfterReady - compacted;
    // A hold below the last compaction holds nothing back: that image is already older than the log's start.
    if (
      hold === null ||
      hold < compacted ||
      held >= COMPACTION_HOLD_MAX_THRESHOLDS * this.config.snapshotThresholdEntries
    ) {
      return appliedAfterReady;
    }
    return Math.min(appliedAfterReady, hold);
  }

  /** The snapshot to take at the end of this Ready, at the applied index it reaches (or the held one). */
  private takeCompaction(committedEntries: readonly LogEntry[]): SnapshotMeta | null {
    if (this.bootstrapCompact !== null) {
      return this.bootstrapCompact;
    }
    const appliedAfter = this.appliedHandedOut;
    if (!this.isCompactionDue(appliedAfter)) {
      return null;
    }
    const index = this.compactionIndex(appliedAfter);
    if (index < appliedAfter) {
      const meta = this.snapshotMetaAt(index);
      invariant(meta !== null, () => `compaction held at ${index}: its term or membership is unknown`);
      return meta;
    }
    const term = this.log.term(appliedAfter);
    invariant(term !== undefined, () => `compaction at ${appliedAfter}: term unknown`);
    let membership = this.membership;
    for (const entry of committedEntries) {
      if (entry.kind === "config") {
        membership = decodeMembership(entry.data, entry.index);
      }
    }
    return { index: appliedAfter, term, membership };
  }

  private send(message: Message): void {
    this.messages.push(message);
  }

  private envelope(
    to: NodeId,
    term: number = this.term,
  ): { readonly from: NodeId; readonly to: NodeId; readonly term: number } {
    return { from: this.id, to, term };
  }

  private replicaView(progress: Progress): ReplicaView {
    return {
      id: progress.id,
      isLearner: progress.isLearner,
      status: progress.status ?? "JOINING",
      progress: progress.state,
      matchIndex: progress.matchIndex,
      matchedOnce: progress.matchedOnce,
      nextIndex: progress.nextIndex,
      lagEntries: this.log.lastIndex() - progress.matchIndex,
      ticksSinceContact: progress.ticksSinceContact,
      consecutiveFailures: progress.consecutiveFailures,
      reconnections: progress.reconnections,
    };
  }

  /** Moves the replica's status to what the observations call for, through the transition table. */
  private updateReplicaStatus(progress: Progress): void {
    const lagEntries = this.log.lastIndex() - progress.matchIndex;
    const ready = !this.config.requireReplicaReady || progress.readyReported;
    if (progress.matchedOnce && ready && lagEntries <= this.config.laggingThresholdEntries) {
      progress.caughtUpOnce = true;
    }
    const target = targetReplicaStatus(
      {
        caughtUpOnce: progress.caughtUpOnce,
        lagEntries,
        ticksSinceContact: progress.ticksSinceContact,
        unreachable: progress.unreachable,
      },
      {
        laggingThresholdEntries: this.config.laggingThresholdEntries,
        offlineAfterTicks: this.config.offlineAfterTicks,
      },
    );
    if (target === progress.status) {
      return;
    }
    assertReplicaStatusTransition(progress.id, progress.status, target);
    if (isReconnection(progress.status, target)) {
      progress.reconnections++;
    }
    this.events.push({ kind: "replicaStatus", peer: progress.id, from: progress.status, to: target });
    progress.status = target;
  }

  private assertInvariants(): void {
    invariant(this.term >= this.checkedTerm, () => `term went back from ${this.checkedTerm} to ${this.term}`);
    invariant(this.commit >= this.checkedCommit, () => `commit went back from ${this.checkedCommit} to ${this.commit}`);
    this.checkedTerm = this.term;
    this.checkedCommit = this.commit;
    invariant(
      this.commit <= this.log.lastIndex(),
      () => `commit ${this.commit} beyond last index ${this.log.lastIndex()}`,
    );
    invariant(
      this.commit >= this.log.snapshot().index,
      () => `commit ${this.commit} below the snapshot ${this.log.snapshot().index}`,
    );
    invariant(this.applied <= this.commit, () => `applied ${this.applied} beyond commit ${this.commit}`);
    invariant(
      this.applied >= this.log.snapshot().index,
      () => `applied ${this.applied} below the snapshot ${this.log.snapshot().index}`,
    );
    invariant(
      this.log.lastTerm() <= this.term,
      () => `last log term ${this.log.lastTerm()} beyond current term ${this.term}`,
    );
    invariant(
      (this.role === "leader") === (this.leader === this.id),
      () => `role ${this.role} with leader ${String(this.leader)}`,
    );
    invariant(this.role !== "candidate" || this.vote === this.id, "a candidate votes for itself");
    invariant(this.role === "leader" || this.progress.size === 0, "only a leader tracks progress");
  }
}

function refuse(
  code: Exclude<ProposalError["code"], "NOT_LEADER">,
  message: string,
): { readonly ok: false; readonly error: ProposalError };
function refuse(
  code: "NOT_LEADER",
  message: string,
  leader: NodeId | null,
): { readonly ok: false; readonly error: ProposalError };
function refuse(
  code: ProposalError["code"],
  message: string,
  leader: NodeId | null = null,
): { readonly ok: false; readonly error: ProposalError } {
  const error: ProposalError = code === "NOT_LEADER" ? { code, leader, message } : { code, message };
  return { ok: false, error };
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}

/** Clear errors for a PersistedState of the wrong shape (the log's own checks cover contiguity and terms). */
function checkPersistedStateShape(persisted: PersistedState): void {
  if (typeof persisted !== "object" || persisted === null) {
    throw new TypeError("persisted state must be an object");
  }
  const { hardState, entries, applied } = persisted;
  if (
    typeof hardState !== "object" ||
    hardState === null ||
    !Number.isSafeInteger(hardState.term) ||
    hardState.term < 0 ||
    !Number.isSafeInteger(hardState.commit) ||
    hardState.commit < 0 ||
    (hardState.vote !== null && typeof hardState.vote !== "string")
  ) {
    throw new TypeError(`persisted state: malformed hard state ${JSON.stringify(hardState)}`);
  }
  if (!Array.isArray(entries)) {
    throw new TypeError("persisted state: entries must be an array");
  }
  if (!Number.isSafeInteger(applied) || applied < 0) {
    throw new TypeError(`persisted state: applied must be a non-negative integer, got ${String(applied)}`);
  }
}
