// The contract between the pure Raft core and whatever drives it (the simulator, the Durable Object shell).
// Everything here is plain data: it crosses RPC, lands in storage and shows up in traces unchanged.

import type { NodeId } from "../quorum/quorum.js";
import type { RandomSource } from "../election/election.js";

export type { NodeId } from "../quorum/quorum.js";
export type { RandomSource } from "../election/election.js";

/** A log entry. `data` is opaque to the core: the shell encodes its requests (SQL) into it. */
export interface LogEntry {
  readonly index: number;
  readonly term: number;
  readonly kind: EntryKind;
  /** For "normal": the application's payload. For "noop": "". For "config": JSON of the resulting Membership. */
  readonly data: string;
}

/** "noop" is appended by every new leader; "config" carries a membership change. */
export type EntryKind = "normal" | "noop" | "config";

/** The cluster configuration. Voters count towards quorums; learners only receive the log. */
export interface Membership {
  readonly voters: readonly NodeId[];
  readonly learners: readonly NodeId[];
}

/** What must be on disk before any message that depends on it leaves the node. */
export interface HardState {
  readonly term: number;
  readonly vote: NodeId | null;
  readonly commit: number;
}

/** The metadata of a state-machine snapshot; the image itself is the shell's business. */
export interface SnapshotMeta {
  /** Last log index the image includes. */
  readonly index: number;
  /** Term of that entry. */
  readonly term: number;
  /** Membership in force at `index`. */
  readonly membership: Membership;
}

/** A single-server membership change; at most one is in flight at a time. */
export type ConfigChange =
  | { readonly kind: "addLearner"; readonly node: NodeId }
  | { readonly kind: "promote"; readonly node: NodeId }
  | { readonly kind: "remove"; readonly node: NodeId };

// ---------------------------------------------------------------------------------------------------------------
// Messages. Every message carries the sender's term; `to` and `from` are node ids.

interface MessageBase {
  readonly from: NodeId;
  readonly to: NodeId;
  readonly term: number;
}

/** PreVote: "would you vote for me at `term`?" It changes no one's term. */
export interface PreVoteRequest extends MessageBase {
  readonly type: "preVote";
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  /** Set when a leadership transfer started the campaign: stickiness does not apply. */
  readonly transfer: boolean;
}
export interface PreVoteResponse extends MessageBase {
  readonly type: "preVoteResponse";
  readonly granted: boolean;
}
export interface VoteRequest extends MessageBase {
  readonly type: "vote";
  readonly lastLogIndex: number;
  readonly lastLogTerm: number;
  readonly transfer: boolean;
}
export interface VoteResponse extends MessageBase {
  readonly type: "voteResponse";
  readonly granted: boolean;
}
export interface AppendEntries extends MessageBase {
  readonly type: "append";
  readonly prevLogIndex: number;
  readonly prevLogTerm: number;
  readonly entries: readonly LogEntry[];
  readonly commit: number;
}
export interface AppendResponse extends MessageBase {
  readonly type: "appendResponse";
  readonly success: boolean;
  /** On success: the last index the follower now holds that matches the leader. On rejection: the rejected prevLogIndex. */
  readonly index: number;
  /** On rejection: where the leader should probe next (fast back-off); null on success. */
  readonly rejectHint: { readonly index: number; readonly term: number } | null;
}
export interface Heartbeat extends MessageBase {
  readonly type: "heartbeat";
  /** min(commit, the follower's match index): a follower never learns a commit index beyond its log. */
  readonly commit: number;
  /** Set when the heartbeat also confirms leadership for a pending ReadIndex round (the newest such read's context; for traces). */
  readonly readContext: string | null;
  /**
   * The leader's heartbeat round in this term (1, 2, ...; each broadcast is a new round). Followers echo it: a quorum
   * of echoes of round r confirms leadership as of the moment round r was sent, which releases every read waiting on
   * a round <= r and (with leaseRead) starts the lease from that round's send tick.
   */
  readonly round: number;
}
export interface HeartbeatResponse extends MessageBase {
  readonly type: "heartbeatResponse";
  readonly readContext: string | null;
  /** The `round` of the heartbeat this answers. */
  readonly round: number;
}
/** The shell attaches the image to this message when it sends it, and hands it back when it installs it. */
export interface InstallSnapshot extends MessageBase {
  readonly type: "snapshot";
  readonly snapshot: SnapshotMeta;
}
/** Leadership transfer: "campaign now, ignoring your election timer". */
export interface TimeoutNow extends MessageBase {
  readonly type: "timeoutNow";
}
/** A follower asks the leader for a read index on behalf of a local read. */
export interface ReadIndexRequest extends MessageBase {
  readonly type: "readIndex";
  readonly context: string;
}
export interface ReadIndexResponse extends MessageBase {
  readonly type: "readIndexResponse";
  readonly context: string;
  /** The index the read must wait for; null when the leader refused (it is not, or no longer, the leader). */
  readonly index: number | null;
}

export type Message =
  | PreVoteRequest
  | PreVoteResponse
  | VoteRequest
  | VoteResponse
  | AppendEntries
  | AppendResponse
  | Heartbeat
  | HeartbeatResponse
  | InstallSnapshot
  | TimeoutNow
  | ReadIndexRequest
  | ReadIndexResponse;

export type MessageType = Message["type"];

// ---------------------------------------------------------------------------------------------------------------
// Configuration, start-up state and results.

export interface RaftConfig {
  readonly id: NodeId;
  /** The minimum election timeout; each timer draws uniformly from [min, 1.5 * min) (election.ts, ElectionTimer). */
  readonly electionTimeoutTicks: number;
  readonly heartbeatIntervalTicks: number;
  /** A leader that has not heard from a quorum within an election timeout steps down. */
  readonly checkQuorum: boolean;
  /** Serve linearizable reads from a leader lease instead of a quorum round. Requires checkQuorum. */
  readonly leaseRead: boolean;
  /** Entries in flight to one follower in replicate state, counted in messages. */
  readonly maxInflightMessages: number;
  /** Upper bound on the entry payload bytes of one AppendEntries message (at least one entry is always sent). */
  readonly maxMessageBytes: number;
  /** Proposals appended but not yet committed that the leader accepts before refusing with QUEUE_FULL. */
  readonly maxPendingProposals: number;
  /** Ask the shell for a snapshot (and compact the log) once this many entries were applied since the last one. */
  readonly snapshotThresholdEntries: number;
  /** A replica whose match index is more than this behind the leader's last index is LAGGING. */
  readonly laggingThresholdEntries: number;
  /** A replica not heard from for this many ticks is OFFLINE. */
  readonly offlineAfterTicks: number;
  readonly random: RandomSource;

  // Optional knobs; validateRaftConfig documents the defaults (DEFAULT_OPTIONAL_CONFIG in config.ts).
  /** Committed entries handed out in one Ready (bounds the apply batch). Default 256. */
  readonly maxApplyEntriesPerReady?: number;
  /** Linearizable reads pending on this node (leader rounds + reads forwarded to the leader). Default 1024. */
  readonly maxPendingReads?: number;
  /** A read not confirmed within this many ticks fails with TIMEOUT. Default 4 * electionTimeoutTicks. */
  readonly readTimeoutTicks?: number;
  /**
   * Lease reads: the lease lasts electionTimeoutTicks - leaseSafetyMarginTicks from the send tick of the heartbeat
   * round a quorum acknowledged. The margin absorbs tick-rate drift between nodes. Default ceil(electionTimeoutTicks / 5).
   */
  readonly leaseSafetyMarginTicks?: number;
  /** A peer left in snapshot state without a report or a reply for this long goes back to probe. Default 20 * electionTimeoutTicks. */
  readonly snapshotRetryTicks?: number;
  /**
   * The ReplicaReady handshake: a replica stays JOINING until the shell reports it ready with
   * reportReplicaReady (e.g. its schema matches the leader's), not only when its log caught up. Default false.
   */
  readonly requireReplicaReady?: boolean;
  /**
   * TEST ONLY, never set by the Durable Object shell: deliberate protocol bugs, so that the simulator can show that
   * its checkers catch them. Every other invariant stays asserted.
   */
  readonly unsafeTestingFaults?: {
    /** The leader commits any entry stored on a majority, whatever its term (breaks Raft Figure 8). */
    readonly commitPreviousTermByCounting?: boolean;
  };
}

/** What the shell loaded from storage at start-up (all empty for a fresh node). */
export interface PersistedState {
  readonly hardState: HardState;
  /** The latest snapshot, or null. Log entries start right after it. */
  readonly snapshot: SnapshotMeta | null;
  readonly entries: readonly LogEntry[];
  /** The last index whose entry the state machine applied (at least snapshot.index). */
  readonly applied: number;
}

export type ProposalError =
  | { readonly code: "NOT_LEADER"; readonly leader: NodeId | null; readonly message: string }
  | { readonly code: "QUEUE_FULL"; readonly message: string }
  | { readonly code: "TRANSFER_IN_PROGRESS"; readonly message: string }
  | { readonly code: "CONFIG_CHANGE_IN_PROGRESS"; readonly message: string }
  | { readonly code: "INVALID_CONFIG_CHANGE"; readonly message: string }
  | { readonly code: "REMOVED"; readonly message: string }
  /** The request itself is wrong (a duplicate read context, a transfer to a non-voter, data that is not a string). */
  | { readonly code: "INVALID_REQUEST"; readonly message: string }
  /** A read was not confirmed within readTimeoutTicks (lost messages, a partitioned leader); retry it. */
  | { readonly code: "TIMEOUT"; readonly message: string };

/** Where a proposal landed; it is committed only if the entry at `index` is committed with this same `term`. */
export type ProposalResult =
  | { readonly ok: true; readonly index: number; readonly term: number }
  | { readonly ok: false; readonly error: ProposalError };

/** When `ok` is false nothing more arrives for that request (no ReadState, no FailedRead). */
export type ReadRequestResult = { readonly ok: true } | { readonly ok: false; readonly error: ProposalError };

/** A linearizable read became safe: serve it once the state machine has applied `index`. */
export interface ReadState {
  readonly context: string;
  readonly index: number;
}

/** A read the core refused after accepting it (leadership lost before confirmation). */
export interface FailedRead {
  readonly context: string;
  readonly error: ProposalError;
}

// ---------------------------------------------------------------------------------------------------------------
// Status, as the leader sees each replica and as anyone sees the election.

export type Role = "follower" | "preCandidate" | "candidate" | "leader";

export type ReplicaStatus = "JOINING" | "ONLINE" | "LAGGING" | "RECONNECTING" | "OFFLINE";

export type ElectionStatus = "NO_LEADER" | "VOTING" | "ELECTED";

export type ProgressState = "probe" | "replicate" | "snapshot";

/**
 * The leader's view of one replica. `status` is a state machine (replica-status.ts has the transition table):
 *  - JOINING: not yet caught up (lag <= laggingThresholdEntries) since this leader's term began or since it was
 *    added. A learner that has just been added is JOINING; every replica starts JOINING when a leader is elected and
 *    normally leaves it with its first append response. Promote a learner once it is ONLINE (and its schema matches).
 *  - ONLINE: caught up at least once, in contact, lag <= laggingThresholdEntries.
 *  - LAGGING: caught up before, in contact, lag > laggingThresholdEntries.
 *  - RECONNECTING: the shell reported it unreachable (or a snapshot transfer failed) and it has not answered since.
 *  - OFFLINE: nothing heard from it for offlineAfterTicks.
 */
export interface ReplicaView {
  readonly id: NodeId;
  readonly isLearner: boolean;
  readonly status: ReplicaStatus;
  readonly progress: ProgressState;
  readonly matchIndex: number;
  /** Whether this leader heard a successful append answer from the replica in its term (matchIndex means something). */
  readonly matchedOnce: boolean;
  readonly nextIndex: number;
  /** The leader's last index minus matchIndex. */
  readonly lagEntries: number;
  /** Ticks since the leader last heard from this replica (0 for a reply this tick). */
  readonly ticksSinceContact: number;
  readonly consecutiveFailures: number;
  readonly reconnections: number;
}

export interface NodeStatus {
  readonly id: NodeId;
  readonly role: Role;
  readonly term: number;
  readonly leader: NodeId | null;
  readonly vote: NodeId | null;
  readonly commit: number;
  readonly applied: number;
  readonly lastIndex: number;
  readonly firstIndex: number;
  readonly membership: Membership;
  readonly election: {
    readonly status: ElectionStatus;
    readonly term: number;
    /** Ticks from the start of the last successful election to a leader being known; null before any. */
    readonly lastElectionTicks: number | null;
  };
  /** Only on the leader: every other member, voter or learner. */
  readonly replicas: readonly ReplicaView[];
  /** Set while this node is a leader transferring leadership. */
  readonly transferee: NodeId | null;
  /**
   * True once an applied configuration no longer lists this node, after one (or the snapshot) had listed it. A node
   * that restarts from a snapshot that already excludes it cannot tell "removed" from "not yet added" and reports false.
   */
  readonly removed: boolean;
  /** True while this node is on voting probation (see RaftNodeOptions.votingProbation). */
  readonly votingProbation: boolean;
}

/**
 * Why a leader gave a leadership transfer up:
 *  - deadline: the target did not take over within an election timeout (cut off, behind, or on voting probation,
 *    which only the target knows);
 *  - notVoter: an applied configuration no longer lists the target as a voter;
 *  - superseded: a transfer to another node replaced it;
 *  - cancelled: leadership was asked for the leader itself;
 *  - lostLeadership: the leader stepped down (a newer term, check quorum) before the target took over.
 */
export type TransferAbortReason = "deadline" | "notVoter" | "superseded" | "cancelled" | "lostLeadership";

/** Things worth a log line, in the order they happened. */
export type RaftEvent =
  | { readonly kind: "becameFollower"; readonly term: number; readonly leader: NodeId | null }
  | { readonly kind: "becamePreCandidate"; readonly term: number }
  | { readonly kind: "becameCandidate"; readonly term: number }
  | { readonly kind: "becameLeader"; readonly term: number; readonly electionTicks: number }
  | {
      readonly kind: "replicaStatus";
      readonly peer: NodeId;
      readonly from: ReplicaStatus | null;
      readonly to: ReplicaStatus;
    }
  | { readonly kind: "membershipApplied"; readonly index: number; readonly membership: Membership }
  | { readonly kind: "steppedDown"; readonly term: number; readonly reason: string }
  | { readonly kind: "leadershipTransfer"; readonly to: NodeId; readonly outcome: "started" | "completed" }
  | {
      readonly kind: "leadershipTransfer";
      readonly to: NodeId;
      readonly outcome: "aborted";
      readonly reason: TransferAbortReason;
    }
  /** A leader caught this node up (it holds `commit`, the leader's commit index): it may vote and campaign again. */
  | { readonly kind: "votingProbationEnded"; readonly term: number; readonly commit: number };

/**
 * One batch of work for the shell, handled strictly in this order:
 *  1. install `snapshot` (the image that arrived with the InstallSnapshot message), if any: the image replaces the
 *     state machine (applied = snapshot.index) and the WHOLE log is discarded (the core installs a snapshot only when
 *     its log does not hold the snapshot's index and term, so no entry of the old log continues from it);
 *  2. persist: delete log entries with index >= `truncateFrom` (if set), append `entries`, write `hardState` (if set);
 *     a leader's own copy counts towards a commit from advance() on, so a driver may hold a leader's new entries in
 *     memory only if it serves them as log entries meanwhile, writes them before any other write of the log (a
 *     later truncation, snapshot or compaction) and before anything acts on a commit that counts them (a commit
 *     changes the hard state: step 2 of a later Ready), and lets nothing that follows from that commit leave the
 *     node before the write is durable. The Raft thesis (10.2.1) lets a leader send entries before they are on its
 *     own disk; losing them in a crash is safe because the node restarts as a follower and must win a new term to
 *     lead again;
 *  3. send `messages` (only now: they may depend on what was just persisted);
 *  4. apply `committedEntries` in order, advancing the applied index with each one atomically;
 *  5. if `compact` is set: record the snapshot (the state machine as of `compact.index`, which equals the applied
 *     index after step 4, or is below it while the shell holds compaction: holdCompaction) and discard log entries up
 *     to `compact.index`;
 *  6. serve `readStates` once applied >= index; fail `failedReads`;
 *  7. call `advance(ready)`.
 */
export interface Ready {
  readonly snapshot: SnapshotMeta | null;
  readonly truncateFrom: number | null;
  readonly entries: readonly LogEntry[];
  readonly hardState: HardState | null;
  readonly messages: readonly Message[];
  readonly committedEntries: readonly LogEntry[];
  readonly compact: SnapshotMeta | null;
  readonly readStates: readonly ReadState[];
  readonly failedReads: readonly FailedRead[];
  readonly events: readonly RaftEvent[];
}

/** The core's interface, as the shell and the simulator drive it. */
export interface RaftNodeApi {
  /** One unit of logical time. */
  tick(): void;
  /** Deliver a message addressed to this node. Unknown, stale or malformed messages are ignored. */
  step(message: Message): void;
  /** Leader only: append a normal entry. Refused with a clear error elsewhere or when the queue is full. */
  propose(data: string): ProposalResult;
  /** Leader only: a single-server membership change; refused while another is in flight. */
  proposeConfigChange(change: ConfigChange): ProposalResult;
  /**
   * Start a linearizable read; its ReadState (or FailedRead) arrives in a later Ready. `context` must be unique among
   * this node's pending reads. A follower forwards it to the leader; with no leader known it is refused at once.
   * Pending reads fail with NOT_LEADER when leadership (or the known leader) changes, and with TIMEOUT after
   * readTimeoutTicks.
   */
  requestRead(context: string): ReadRequestResult;
  /**
   * Leader only: hand leadership to `to`; new proposals are refused until it ends. Refused at once (INVALID_REQUEST)
   * when `to` is no voter, a learner, or a voter whose removal is in the log but not applied yet; with
   * CONFIG_CHANGE_IN_PROGRESS when `to` is a learner whose promotion is not applied yet.
   */
  transferLeadership(to: NodeId): ReadRequestResult;
  /** Leader only: transfer leadership to the most up-to-date voter. */
  stepDown(): ReadRequestResult;
  /** The shell could not deliver a message to `peer` (after its retries). */
  reportUnreachable(peer: NodeId): void;
  /** Leader only: `peer`, which the shell had failed to reach, called this node: probe it now. */
  reportReachable(peer: NodeId): void;
  /** Leader only: with requireReplicaReady, `peer` is ready to be ONLINE once its log has caught up too. */
  reportReplicaReady(peer: NodeId): void;
  /** Leader only: whether `peer` says it is on voting probation (no transfer target while it is). */
  reportVotingProbation(peer: NodeId, onProbation: boolean): void;
  /** Leader only: `peer` reported a last log index below its match index (its storage was wiped). */
  reportPeerLogLost(peer: NodeId, lastIndex: number): void;
  /** On voting probation: every other member answered the shell's census (see RaftNode.concludeVotingCensus). */
  concludeVotingCensus(census: { readonly maxTerm: number; readonly history: boolean }): void;
  /** The shell finished (or failed) sending a snapshot to `peer`. */
  reportSnapshotResult(peer: NodeId, ok: boolean): void;
  /** Snapshot metadata for the state after applying `index` (committed, not before the last compaction), else null. */
  snapshotMetaAt(index: number): SnapshotMeta | null;
  /** An image of the state at `index` is about to be sent (null: none): the log is not compacted past it, bounded. */
  holdCompaction(index: number | null): void;
  /**
   * How many ticks may pass before one would do more than count (at least 1): a follower with no read pending sleeps
   * until its election timer would fire; any other role ticks every tick. Infinity for a follower that never
   * campaigns (a learner, a removed node, one on voting probation). The shell may skip ticks until then and catch
   * them up at once: only counters move in between.
   */
  quietTicks(): number;
  /** For a follower that may campaign: the ticks left before its election timer fires (at least 1); else null. */
  ticksUntilElection(): number | null;
  hasReady(): boolean;
  /**
   * The pending batch; call advance() with it once it is fully handled. One Ready at a time: hasReady() is false and
   * ready() throws while a Ready is out. tick/step/propose/... may be called between ready() and advance(); what they
   * produce goes into the next Ready.
   *
   * Bootstrap: a fresh node created with `bootstrap` membership behaves as if it had a snapshot at index 0, term 0
   * with that membership; its first Ready carries `compact` = {index: 0, term: 0, membership} so that the shell
   * persists it (an empty state-machine image), and a restart then finds the membership in the snapshot.
   *
   * Membership takes effect when its config entry is APPLIED, i.e. when advance() receives the Ready whose
   * committedEntries hold it (etcd's rule); `compact.membership` is the membership as of `compact.index`.
   */
  ready(): Ready;
  advance(ready: Ready): void;
  status(): NodeStatus;
}
