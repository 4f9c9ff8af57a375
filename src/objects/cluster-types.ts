// The plain data that the node API (api.ts) shares with the modules behind it: the protocol version, the cluster
// configuration, a node's address, errors and the status report. A leaf: the events, metrics, lifecycle and transport
// modules take these from here, so that api.ts, which gathers their request and answer types, imports only downward.
import type { ElectionStatus, ReplicaStatus, Role } from "../replication/types";
import type { ConsistencySettings } from "./monitor/config";
import type { NodeConsistency, ReplicaConsistency } from "./monitor/types";

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
  | "IDEMPOTENCY_KEY_REUSED" // the request id was already used for a different request; nothing was applied
  | "NOT_MEMBER" // this node was removed from (or never joined) the cluster
  | "STALE" // a read could not reach the requested freshness or raft index in time
  | "PROTOCOL" // unknown protocol version
  | "INTERNAL"
  | "DROPPED" // the database was dropped, or is being dropped: nothing new is accepted (never retryable)
  | "TOO_LARGE" // the answer would exceed a size limit (a backup's dump): every node would refuse it (never retryable)
  | "NOT_REPAIRED" // a repair's image surely did not reach the replica (unreachable, or it refused): nothing changed
  // A write was proposed and this node can no longer follow it (it stepped down, stopped, or failed after logging
  // it): it may or may not be applied. Retryable: resend it with the same request id, which is applied at most once.
  | "OUTCOME_UNKNOWN";

/**
 * A member's answer to the leader's leave notice: it stopped (`removed: true`), or it ignored the notice as stale
 * (`removed: false`): a configuration applied after the removal the notice names lists it again (it was re-added
 * while the notice was retried or in flight). A stopped node answers NOT_MEMBER instead.
 */
export interface LeaveValue {
  readonly removed: boolean;
}

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
