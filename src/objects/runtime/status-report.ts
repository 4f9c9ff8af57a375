// The status report a node gives the worker's /status, /nodes and health endpoints, and the periodic log summary.
import type { NodeStatusReport, ReplicaReport } from "../cluster-types";
import type { PeerLinks } from "./peers";
import type { ConsistencyMonitor } from "./consistency-monitor";
import type { RuntimeCore } from "./types";

export function buildStatusReport(
  core: RuntimeCore,
  peers: PeerLinks,
  options: { locationHint: string | null; lastElectionMs: number | null; monitor: ConsistencyMonitor },
): NodeStatusReport {
  const status = core.raft.status();
  const schema = core.sm.schemaInfo();
  const nowMs = core.deps.clock.now();
  const replicas: ReplicaReport[] = status.replicas.map((replica) => {
    const transport = peers.transportStats(replica.id);
    const info = peers.info(replica.id);
    return {
      name: replica.id,
      isLearner: replica.isLearner,
      status: replica.status,
      matchIndex: replica.matchIndex,
      lagEntries: replica.lagEntries,
      lastContactMs:
        replica.ticksSinceContact === Number.POSITIVE_INFINITY ? null : replica.ticksSinceContact * core.tickIntervalMs,
      consecutiveFailures: Math.max(replica.consecutiveFailures, transport?.consecutiveFailures ?? 0),
      reconnections: Math.max(replica.reconnections, transport?.reconnections ?? 0),
      breaker: transport?.breaker ?? "CLOSED",
      schemaHash: info?.schemaHash ?? null,
      consistency: options.monitor.replicaConsistency(replica.id),
    };
  });
  const node = core.identity.node;
  const lastLeaderContactAtMs = core.lastLeaderContactAtMs();
  return {
    node,
    cluster: core.identity.cluster.name,
    started: true,
    member: !status.removed && (status.membership.voters.includes(node) || status.membership.learners.includes(node)),
    role: status.role,
    term: status.term,
    leader: status.leader,
    commitIndex: status.commit,
    appliedIndex: core.sm.appliedIndex(),
    lastLogIndex: status.lastIndex,
    firstLogIndex: status.firstIndex,
    voters: status.membership.voters,
    learners: status.membership.learners,
    election: {
      status: status.election.status,
      term: status.election.term,
      lastElectionMs:
        status.election.lastElectionTicks === null
          ? options.lastElectionMs
          : status.election.lastElectionTicks * core.tickIntervalMs,
    },
    schemaVersion: schema.version,
    schemaHash: schema.hash,
    lastLeaderContactMs:
      status.role === "leader" ? 0 : lastLeaderContactAtMs === null ? null : nowMs - lastLeaderContactAtMs,
    replicas,
    locationHint: options.locationHint,
    consistency: options.monitor.status(),
  };
}

/** On the leader, every so many ticks: one log line with every replica's progress. */
export function logReplicaSummary(core: RuntimeCore): void {
  const status = core.raft.status();
  if (status.role !== "leader") {
    return;
  }
  core.log("info", "replicaSummary", {
    commit: status.commit,
    lastIndex: status.lastIndex,
    replicas: status.replicas.map((r) => ({
      peer: r.id,
      status: r.status,
      match: r.matchIndex,
      lag: r.lagEntries,
      learner: r.isLearner,
    })),
  });
}
