// What a ClusterNode offers over Durable Object RPC to the worker (and to tests). Plain data in and out.
import type { ReadLevel, SqlRequest, Statement, StatementResult } from "../shared/sql";
import type { ElectionStatus, ReplicaStatus, Role } from "../replication/types";
import type { EventsRequest, EventsValue } from "./events";
import type { NodeMetricsReport } from "./metrics-counters";
import type { DropRequest, DropValue } from "./lifecycle/drop";
import type { ConsistencySettings } from "./monitor/config";
import type { NodeConsistency, ReplicaConsistency, RepairOutcome } from "./monitor/types";

export type { ConsistencySettings } from "./monitor/config";
export type { DivergedFlag, NodeConsistency, ReplicaConsistency, RepairOutcome } from "./monitor/types";

export type {
  HistogramSnapshot,
  NodeCountersSnapshot,
  NodeMetricsReport,
  NodeStorageSnapshot,
  PeerRpcSnapshot,
} from "./metrics-counters";
export { LATENCY_BUCKETS_SECONDS } from "./metrics-counters";
export type { ClusterEvent, EventsRequest, EventsValue } from "./events";
export { MAX_EVENTS_PER_NODE } from "./events";
export type { DropRequest, DropValue } from "./lifecycle/drop";

/** Bumped on any incompatible change to what nodes or the worker send each other. */
export const PROTOCOL_VERSION = 1;

/** One member as configured: a name, and where to place its object the first time it is reached. */
export interface MemberConfig {
  readonly name: string;
  /** A Durable Object locationHint such as "wnam", "weur" or "apac". */
  readonly locationHint?: string;
}

/** The configuration a cluster is bootstrapped with. Every node of a cluster must receive the same one. */
export interface ClusterConfig {
  readonly name: string;
  /** The initial voters. Nodes added later join as learners. */
  readonly members: readonly MemberConfig[];
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  /** Take a snapshot and compact the log after this many applied entries (default 1000). */
  readonly snapshotThresholdEntries?: number;
  /** The consistency monitor (README "Consistency monitor"); unset fields take their defaults. */
  readonly consistency?: ConsistencySettings;
}

/** Addresses one node of one cluster; its object id derives from `${cluster.name}/${node}`. */
export interface NodeAddress {
  readonly protocolVersion: number;
  readonly cluster: ClusterConfig;
  readonly node: string;
  /** W3C traceparent of the request this call serves: the node's log lines then carry its trace id. */
  readonly traceparent?: string;
}

export type NodeErrorCode =
  | "NOT_LEADER" // this node is a follower; `leader` names the leader when known
  | "NO_LEADER" // no leader is known (an election is under way or no quorum)
  | "TIMEOUT" // the deadline passed; the outcome of a write is unknown
  | "QUEUE_FULL" // the leader's bounded proposal queue is full: back off
  | "TRANSFER_IN_PROGRESS" // leadership is moving; retry shortly
  | "CONFIG_CHANGE_IN_PROGRESS"
  | "INVALID_REQUEST" // the request was refused before it reached the log; nothing was applied
  | "NOT_MEMBER" // this node was removed from (or never joined) the cluster
  | "STALE" // a read could not reach the requested freshness or raft index in time
  | "PROTOCOL" // unknown protocol version
  | "INTERNAL"
  | "DROPPED" // the database was dropped, or is being dropped: nothing new is accepted (never retryable)
  // A write was proposed and this node can no longer follow it (it stepped down, stopped, or failed after logging
  // it): it may or may not be applied. Retryable: resend it with the same request id, which is applied at most once.
  | "OUTCOME_UNKNOWN";

export interface NodeError {
  readonly code: NodeErrorCode;
  readonly message: string;
  /** The leader's name when this node knows it. */
  readonly leader?: string | null;
  /** True when the same request may be retried (possibly elsewhere) without risk. */
  readonly retryable: boolean;
}

export type NodeResult<T> =
  | { readonly ok: true; readonly node: string; readonly value: T }
  | { readonly ok: false; readonly node: string; readonly error: NodeError };

export interface ExecuteRequest extends NodeAddress {
  readonly request: SqlRequest;
  /** How long the node may wait for the entry to commit and apply. */
  readonly timeoutMs: number;
}

export interface ExecuteValue {
  readonly results: readonly StatementResult[];
  /** The log index the request was applied at: a read carrying it sees this write on any node. */
  readonly raftIndex: number;
}

export interface QueryRequest extends NodeAddress {
  readonly statements: readonly Statement[];
  readonly level: Exclude<ReadLevel, "auto">;
  /** Level "none" only: refuse when this node last heard from the leader longer ago than this. */
  readonly freshnessMs?: number;
  /** Serve only once this node has applied at least this index (read-your-writes). */
  readonly minAppliedIndex?: number;
  readonly transaction: boolean;
  readonly timeoutMs: number;
}

export interface QueryValue {
  readonly results: readonly StatementResult[];
  /** The applied index the reads saw. */
  readonly raftIndex: number;
}

export interface ReplicaReport {
  readonly name: string;
  readonly isLearner: boolean;
  readonly status: ReplicaStatus;
  readonly matchIndex: number;
  readonly lagEntries: number;
  /** Milliseconds since the leader last heard from it; null when never. */
  readonly lastContactMs: number | null;
  readonly consecutiveFailures: number;
  readonly reconnections: number;
  readonly breaker: "CLOSED" | "OPEN" | "HALF_OPEN";
  readonly schemaHash: string | null;
  /** The consistency monitor's verdict on this replica; absent from nodes of older versions. */
  readonly consistency?: ReplicaConsistency;
}

/** Everything the health endpoint and /status need from one node. */
export interface NodeStatusReport {
  readonly node: string;
  readonly cluster: string;
  readonly started: boolean;
  readonly member: boolean;
  readonly role: Role;
  readonly term: number;
  readonly leader: string | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastLogIndex: number;
  readonly firstLogIndex: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly election: {
    readonly status: ElectionStatus;
    readonly term: number;
    readonly lastElectionMs: number | null;
  };
  readonly schemaVersion: number;
  readonly schemaHash: string;
  /** Milliseconds since this node last heard from a leader (0 on the leader); null when never. */
  readonly lastLeaderContactMs: number | null;
  /** Only on the leader. */
  readonly replicas: readonly ReplicaReport[];
  readonly locationHint: string | null;
  /** This node's consistency checkpoints and DIVERGED flag; absent from nodes of older versions. */
  readonly consistency?: NodeConsistency;
}

/** Admin operations. Each answers once the change is committed (or refused). */
export interface TransferRequest extends NodeAddress {
  /** Omit to let the leader pick the most up-to-date voter. */
  readonly to?: string;
  readonly timeoutMs: number;
}

export interface MemberChangeRequest extends NodeAddress {
  readonly member: MemberConfig;
  readonly timeoutMs: number;
}

export interface RepairRequest extends NodeAddress {
  /** The member whose state is replaced with the leader's. */
  readonly member: string;
  readonly timeoutMs: number;
}

export interface WaitForLeaderRequest extends NodeAddress {
  readonly timeoutMs: number;
}

/**
 * The RPC surface of a ClusterNode, as the worker calls it. Every call names the cluster and node it is meant for
 * (a node that was never started starts itself from that configuration). Failures come back as NodeResult errors,
 * never as thrown exceptions, except for transport failures of the RPC itself.
 */
export interface ClusterNodeRpc {
  /** Starts the node if needed (harmless when already started) and returns its status. */
  start(address: NodeAddress): Promise<NodeResult<NodeStatusReport>>;
  status(address: NodeAddress): Promise<NodeResult<NodeStatusReport>>;
  /** Leader only: validates, proposes, waits for commit and apply. NOT_LEADER names the leader when known. */
  execute(request: ExecuteRequest): Promise<NodeResult<ExecuteValue>>;
  /** "strong" must be sent to the leader; "linearizable" may go to any node (followers ask the leader for a read index). */
  query(request: QueryRequest): Promise<NodeResult<QueryValue>>;
  /** Waits (bounded) until a leader is known: the router calls it during an election instead of polling. */
  waitForLeader(request: WaitForLeaderRequest): Promise<NodeResult<{ readonly leader: string; readonly term: number }>>;
  /** Leader only: hands leadership over (to a named voter, or the most up-to-date one) and waits for it. */
  transferLeadership(request: TransferRequest): Promise<NodeResult<{ readonly leader: string; readonly term: number }>>;
  /** Leader only: adds a learner, which the leader promotes to voter once its log and schema have caught up. */
  addMember(
    request: MemberChangeRequest,
  ): Promise<NodeResult<{ readonly voters: readonly string[]; readonly learners: readonly string[] }>>;
  /** Leader only: removes a member (the leader itself included: it hands over leadership first). */
  removeMember(
    request: MemberChangeRequest,
  ): Promise<NodeResult<{ readonly voters: readonly string[]; readonly learners: readonly string[] }>>;
  /** A SQL dump of this node's applied state (any node; call the leader after a linearizable read for a fresh one). */
  backup(address: NodeAddress): Promise<NodeResult<{ readonly sql: string; readonly raftIndex: number }>>;
  /** Leader only: replaces a member's state with the leader's (consistency repair). Optional as metrics(). */
  repairMember?(request: RepairRequest): Promise<NodeResult<RepairOutcome>>;
  /** Status, counters and storage sizes for GET /metrics. Optional: a node of an older version lacks it. */
  metrics?(address: NodeAddress): Promise<NodeResult<NodeMetricsReport>>;
  /** One phase of dropping this node's database (lifecycle/drop.ts). Optional as metrics(). */
  drop?(request: DropRequest): Promise<NodeResult<DropValue>>;
  /** This node's recent cluster events (elections, leader changes, breakers, replicas, membership, snapshots). Optional as metrics(). */
  recentEvents?(request: EventsRequest): Promise<NodeResult<EventsValue>>;
}

export {
  appliedPollIntervalMs,
  electionRetryAfterSeconds,
  electionWindowMs,
  isInTouchWithLeader,
  nodeTimeoutWithinMs,
  readElsewhereAfterMs,
  type ClusterTiming,
} from "./timing";
export { DeadlineExceeded, realTimers, sleep, withDeadline, type ScheduleTimer, type Timers } from "./deadline";
