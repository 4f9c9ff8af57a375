// Every metric GET /metrics serves: name, type, unit and help, in the order they are rendered. Names follow the
// Prometheus conventions (base units in the name, `_total` on counters) and mirror etcd's where the concept is the
// same (has_leader, is_leader, leader_changes_seen_total, proposals_*). README.md lists the same table for users.
import type { MetricType } from "./exposition";

export interface MetricSpec {
  readonly type: MetricType;
  readonly help: string;
  readonly unit?: "seconds" | "bytes";
  /** Labels besides `cluster` (and `node`, for every per-node metric). */
  readonly labels: readonly string[];
}

const PREFIX = "durable_ha_";

function spec(type: MetricType, labels: readonly string[], help: string, unit?: "seconds" | "bytes"): MetricSpec {
  return unit === undefined ? { type, labels, help } : { type, labels, help, unit };
}

/** Metrics about the cluster as a whole, labelled by `cluster` only. */
export const CLUSTER_METRICS = {
  cluster_quorum_available: spec(
    "gauge",
    [],
    "1 when the leader heard from a quorum of voters (itself included) within an election timeout, as CheckQuorum judges (with no leader: when a quorum of voters heard from one within two), else 0.",
  ),
  cluster_health_status: spec(
    "gauge",
    ["status"],
    "The aggregate health of /api/v1/cluster/health: 1 for the current status (HEALTHY, DEGRADED, UNHEALTHY), 0 for the others.",
  ),
  cluster_schema_agreement: spec("gauge", [], "1 when every reachable node reports the same schema hash, else 0."),
  cluster_voters: spec("gauge", [], "Voters in the membership (as the leader, or the most recent node, sees it)."),
  cluster_learners: spec("gauge", [], "Learners (non-voting members catching up) in the membership."),
  cluster_quorum_size: spec("gauge", [], "Voters that must acknowledge a write."),
  cluster_online_servers: spec("gauge", [], "Members that answered this scrape."),
  scrape_duration_seconds: spec("gauge", [], "How long gathering this scrape from every node took.", "seconds"),
} as const satisfies Record<string, MetricSpec>;

/** Metrics of one node, labelled by `cluster` and `node`. Only node_up and node_scrape_duration_seconds appear for a node that did not answer. */
export const NODE_METRICS = {
  node_up: spec(
    "gauge",
    [],
    "1 when the node answered this scrape within its deadline, else 0 (its other series are then absent).",
  ),
  node_scrape_duration_seconds: spec(
    "gauge",
    [],
    "How long the node took to answer this scrape (the deadline when it did not).",
    "seconds",
  ),
  node_start_time_seconds: spec(
    "gauge",
    [],
    "When this node's in-memory counters started (Unix time): a later value means the object restarted and its counters were reset.",
    "seconds",
  ),
  has_leader: spec("gauge", [], "1 when the node knows a leader, else 0 (etcd_server_has_leader)."),
  is_leader: spec("gauge", [], "1 when the node is the leader, else 0 (etcd_server_is_leader)."),
  is_learner: spec("gauge", [], "1 when the node is a learner (non-voting), else 0 (etcd_server_is_learner)."),
  leader_changes_seen_total: spec(
    "counter",
    [],
    "Leader changes this node has seen (etcd_server_leader_changes_seen_total).",
  ),
  term: spec("gauge", [], "The node's current Raft term."),
  commit_index: spec("gauge", [], "The highest log index the node knows to be committed."),
  applied_index: spec("gauge", [], "The highest log index the node has applied to its database."),
  first_log_index: spec(
    "gauge",
    [],
    "The first log index the node still holds (older entries are compacted into a snapshot).",
  ),
  last_log_index: spec("gauge", [], "The last log index the node holds."),
  proposals_committed_total: spec(
    "counter",
    [],
    "Log entries committed: the commit index (etcd_server_proposals_committed_total).",
  ),
  proposals_applied_total: spec(
    "counter",
    [],
    "Log entries applied: the applied index (etcd_server_proposals_applied_total).",
  ),
  proposals_pending: spec(
    "gauge",
    [],
    "Writes proposed on this node and not yet answered (etcd_server_proposals_pending).",
  ),
  proposals_failed_total: spec(
    "counter",
    ["code"],
    "Writes that failed on this node while it led, by error code (etcd_server_proposals_failed_total).",
  ),
  election_status: spec(
    "gauge",
    ["status"],
    "1 for the node's current election status (NO_LEADER, VOTING, ELECTED), 0 for the others.",
  ),
  last_election_duration_seconds: spec("gauge", [], "How long the last successful election took.", "seconds"),
  leader_last_contact_seconds: spec(
    "gauge",
    [],
    "Seconds since the node last heard from a leader (0 on the leader; absent when it never did).",
    "seconds",
  ),
  schema_version: spec("gauge", [], "The node's schema version (bumped by every DDL statement)."),
  schema_info: spec(
    "gauge",
    ["schema_hash"],
    "Always 1; the schema_hash label identifies the node's schema (nodes with different hashes disagree).",
  ),
  replica_match_index: spec(
    "gauge",
    ["peer"],
    "Leader only: the highest log index known to be replicated on the peer.",
  ),
  replica_lag_entries: spec("gauge", ["peer"], "Leader only: log entries the peer is behind the leader."),
  replica_last_contact_seconds: spec(
    "gauge",
    ["peer"],
    "Leader only: seconds since the leader last heard from the peer (absent when it never did).",
    "seconds",
  ),
  replica_status: spec(
    "gauge",
    ["peer", "status"],
    "Leader only: 1 for the peer's replica status (JOINING, ONLINE, LAGGING, RECONNECTING, OFFLINE), 0 for the others.",
  ),
  replica_breaker_state: spec(
    "gauge",
    ["peer", "state"],
    "Leader only: 1 for the state of the circuit breaker to the peer (CLOSED, OPEN, HALF_OPEN), 0 for the others.",
  ),
  replica_consecutive_failures: spec("gauge", ["peer"], "Leader only: consecutive failed deliveries to the peer."),
  replica_reconnections_total: spec(
    "counter",
    ["peer"],
    "Leader only: times the peer came back after being unreachable.",
  ),
  replica_is_learner: spec("gauge", ["peer"], "Leader only: 1 when the peer is a learner."),
  rpc_calls_total: spec(
    "counter",
    ["peer", "kind"],
    "Calls to a peer (each attempt, retries included), by the most significant message kind the envelope carried.",
  ),
  rpc_failures_total: spec("counter", ["peer", "kind"], "Calls to a peer that failed or were refused."),
  rpc_retries_total: spec("counter", ["peer", "kind"], "Calls to a peer that repeated an envelope already attempted."),
  rpc_duration_seconds: spec(
    "histogram",
    ["peer", "kind"],
    "Duration of calls to a peer, failed ones included.",
    "seconds",
  ),
  rpcs_received_total: spec(
    "counter",
    ["kind"],
    "RPCs the node received (billed requests): kind=peer for Raft envelopes, kind=worker for calls from the worker.",
  ),
  alarm_wakeups_total: spec("counter", [], "Times the node's alarm woke it (billed requests)."),
  write_duration_seconds: spec(
    "histogram",
    [],
    "Writes on the node (as leader), from arrival to commit and apply, failed ones included.",
    "seconds",
  ),
  read_duration_seconds: spec(
    "histogram",
    ["level"],
    "Reads served (or refused) by the node, by consistency level (none, weak, linearizable, strong).",
    "seconds",
  ),
  snapshots_sent_total: spec("counter", [], "Snapshots the node sent to followers completely."),
  snapshot_send_failures_total: spec("counter", [], "Snapshots whose final message could not be delivered."),
  snapshot_sent_bytes_total: spec("counter", [], "Bytes of snapshot chunks delivered to followers.", "bytes"),
  snapshots_installed_total: spec("counter", [], "Snapshots the node received and installed."),
  snapshot_installed_bytes_total: spec(
    "counter",
    [],
    "Bytes of snapshot chunks behind the installed snapshots.",
    "bytes",
  ),
  consistency_diverged: spec(
    "gauge",
    [],
    "1 when the node's own checkpoint digests contradict the majority's (DIVERGED: it serves no reads until repaired), else 0.",
  ),
  consistency_undecided: spec(
    "gauge",
    [],
    "Leader only: 1 while its last image checkpoint found the voters split with no majority either way (no snapshot image is sent until an operator decides), else 0.",
  ),
  consistency_last_checkpoint_index: spec(
    "gauge",
    [],
    "The log index of the last consistency checkpoint the node applied.",
  ),
  consistency_checkpoint_digest_seconds: spec(
    "gauge",
    [],
    "How long the node took to digest the schema and rows of its last checkpoint.",
    "seconds",
  ),
  consistency_mismatches_total: spec(
    "counter",
    [],
    "Leader only: replicas (itself included) whose checkpoint digests differed from the majority's.",
  ),
  consistency_repairs_total: spec(
    "counter",
    [],
    "Leader only: repairs the node completed (its image installed on a replica).",
  ),
  consistency_repair_failures_total: spec(
    "counter",
    [],
    "Leader only: repairs that failed (retried in automatic mode).",
  ),
  consistency_repairs_installed_total: spec(
    "counter",
    [],
    "Repair images from a leader the node installed over its own diverged state.",
  ),
  replica_consistency_status: spec(
    "gauge",
    ["peer", "status"],
    "Leader only: 1 for the consistency monitor's verdict on the peer (UNCHECKED, CONSISTENT, DIVERGED, REPAIRING), 0 for the others.",
  ),
  dedup_window_entries: spec("gauge", [], "Request ids the node remembers to deduplicate retried writes."),
  log_size_bytes: spec(
    "gauge",
    [],
    "Size of the retained Raft log (stored JSON of each entry; part of database_size_bytes).",
    "bytes",
  ),
  database_size_bytes: spec(
    "gauge",
    [],
    "Everything the node's object stores (user tables, log, Raft and SQL state), as the platform reports it.",
    "bytes",
  ),
} as const satisfies Record<string, MetricSpec>;

export type ClusterMetric = keyof typeof CLUSTER_METRICS;
export type NodeMetric = keyof typeof NODE_METRICS;

export function metricName(short: ClusterMetric | NodeMetric): string {
  return PREFIX + short;
}

/** Every metric, full name first, for documentation checks and the dashboard generator. */
export function allMetricSpecs(): { readonly name: string; readonly spec: MetricSpec; readonly perNode: boolean }[] {
  return [
    ...Object.entries(CLUSTER_METRICS).map(([short, value]) => ({
      name: PREFIX + short,
      spec: value as MetricSpec,
      perNode: false,
    })),
    ...Object.entries(NODE_METRICS).map(([short, value]) => ({
      name: PREFIX + short,
      spec: value as MetricSpec,
      perNode: true,
    })),
  ];
}
