// What a ClusterNode offers over Durable Object RPC to the worker (and to tests). Plain data in and out.
import type { ReadLevel, SqlRequest, Statement, StatementResult } from "../shared/sql";
import type { EventsRequest, EventsValue } from "./events";
import type { NodeMetricsReport } from "./metrics-counters";
import type { DropRequest, DropValue } from "./lifecycle/drop";
import type { FailedFollowUp, PendingFollowUp } from "./member-follow-ups";
import type { RepairOutcome } from "./monitor/types";
import type { MemberConfig, NodeAddress, NodeResult, NodeStatusReport } from "./cluster-types";

export type { ConsistencySettings } from "./monitor/config";
export type { DivergedFlag, NodeConsistency, ReplicaConsistency, RepairOutcome, UndecidedImage } from "./monitor/types";

export type {
  HistogramSnapshot,
  NodeCountersSnapshot,
  NodeMetricsReport,
  NodeStorageSnapshot,
  PeerRpcSnapshot,
} from "./metrics-counters";
export { LATENCY_BUCKETS_SECONDS } from "./metrics-counters";
export type { ClusterEvent, EventsRequest, EventsValue } from "./events";
export type { FailedFollowUp, PendingFollowUp } from "./member-follow-ups";
export { MAX_EVENTS_PER_NODE } from "./events";
export type { DropRequest, DropValue } from "./lifecycle/drop";
export {
  PROTOCOL_VERSION,
  type ClusterConfig,
  type LeaveValue,
  type MemberConfig,
  type NodeAddress,
  type NodeError,
  type NodeErrorCode,
  type NodeResult,
  type NodeStatusReport,
  type ReplicaReport,
} from "./cluster-types";

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
  /** Wait at most this long for minAppliedIndex (else until timeoutMs), then answer STALE: another node may serve. */
  readonly minAppliedWaitMs?: number;
  readonly transaction: boolean;
  readonly timeoutMs: number;
}

export interface QueryValue {
  readonly results: readonly StatementResult[];
  /** The applied index the reads saw. */
  readonly raftIndex: number;
}

export interface BackupRequest extends NodeAddress {
  /** Refuse (TOO_LARGE) a dump larger than this many UTF-8 bytes; the node caps it at MAX_BACKUP_DUMP_BYTES. */
  readonly maxDumpBytes?: number;
}

/**
 * A backup's SQL dump: inline when small, beyond that as a stream of its UTF-8 bytes (one value sent over Durable
 * Object RPC holds at most 32 MiB; a stream is sent in pieces).
 */
export type BackupValue =
  | { readonly sql: string; readonly raftIndex: number }
  | { readonly sqlStream: ReadableStream<Uint8Array>; readonly sqlBytes: number; readonly raftIndex: number };

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

/** The membership after a change, as the leader applied it (a type, not an interface: the worker indexes it). */
export type MembershipValue = {
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /**
   * Only when a step that follows the committed change (starting the new member, telling the removed one to stop)
   * had not finished by the request's deadline: it goes on without the caller.
   */
  readonly pending?: readonly PendingFollowUp[];
  /** Only when such a step failed or was refused before the deadline (the new member's start): what, what next. */
  readonly failed?: readonly FailedFollowUp[];
};

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
  addMember(request: MemberChangeRequest): Promise<NodeResult<MembershipValue>>;
  /** Leader only: removes a member (the leader itself included: it hands over leadership first). */
  removeMember(request: MemberChangeRequest): Promise<NodeResult<MembershipValue>>;
  /** Leader only: a SQL dump of the applied state, holding every write acknowledged before the call. */
  backup(request: BackupRequest): Promise<NodeResult<BackupValue>>;
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
  checkQuorumWindowMs,
  electionRetryAfterSeconds,
  electionWindowMs,
  isInTouchWithLeader,
  nodeTimeoutWithinMs,
  readElsewhereAfterMs,
  type ClusterTiming,
} from "./timing";
export { DeadlineExceeded, realTimers, sleep, withDeadline, type ScheduleTimer, type Timers } from "./deadline";

// What else the worker uses of the objects: it imports nothing from src/objects but this file (eslint.config.js),
// so that the objects can change their insides without the worker noticing. It needs the Workers types: Node-only code
// (test/core) imports the contract's leaf, ./cluster-types, instead.
export type { Bindings } from "./env";
export { CONFIG_LIMITS, objectName, validateClusterConfig, validateMember } from "./config";
export {
  databaseClusterName,
  databaseNameProblem,
  DATABASE_NAME_LIMITS,
  DEFAULT_DATABASE,
  SYSTEM_DATABASE,
  parseDatabaseClusterName,
  SYSTEM_GENERATION,
} from "./lifecycle/names";
export { listTables } from "./sqlite/catalog";
export { DumpError, DumpTooLargeError, dumpDatabase, parseDump } from "./sql/dump";
export { READ_ONLY_VIOLATION } from "./sql/validate";
export { utf8ByteLength } from "./sqlite/values";
export { faultsEnabled, parseFaultRules } from "./transport/fault-hook";
export {
  childSpan,
  currentTrace,
  formatTraceparent,
  newTrace,
  outgoingTraceparent,
  parseTraceparent,
  runWithTrace,
  type TraceContext,
} from "./trace";
export { otlpExporterFromEnv, type OtlpEnv, type OtlpSpanExporter, type SpanAttributes } from "./otlp-export";
