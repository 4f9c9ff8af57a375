// Gathers one scrape: every node is asked for its metrics in parallel, each within a per-node deadline, and the
// answers become metric families. A node that does not answer in time shows durable_ha_node_up 0; everything the
// others said is still served. Nodes of an older version without metrics() are asked for their status instead.
import {
  LATENCY_BUCKETS_SECONDS,
  type HistogramSnapshot,
  type NodeCountersSnapshot,
  type NodeMetricsReport,
  type NodeStatusReport,
  type NodeStorageSnapshot,
} from "../../objects/api";
import { summarizeHealth } from "../cluster/health";
import { viewOf } from "../cluster/gather";
import type { ClusterRouter, StatusProbe } from "../routing/router";
import { CLUSTER_METRICS, metricName, NODE_METRICS, type ClusterMetric, type NodeMetric } from "./catalog";
import type { HistogramSample, Labels, MetricFamily, ScalarSample } from "./exposition";

export interface NodeSample {
  readonly probe: StatusProbe;
  /** Null when the node did not answer, or answered only its status (an older version). */
  readonly counters: NodeCountersSnapshot | null;
  readonly storage: NodeStorageSnapshot | null;
}

export interface Scrape {
  readonly cluster: string;
  readonly samples: readonly NodeSample[];
  readonly durationMs: number;
}

const ELECTION_STATUSES = ["NO_LEADER", "VOTING", "ELECTED"] as const;
const REPLICA_STATUSES = ["JOINING", "ONLINE", "LAGGING", "RECONNECTING", "OFFLINE"] as const;
const BREAKER_STATES = ["CLOSED", "OPEN", "HALF_OPEN"] as const;
const CONSISTENCY_STATUSES = ["UNCHECKED", "CONSISTENT", "DIVERGED", "REPAIRING"] as const;
const HEALTH_STATUSES = ["HEALTHY", "DEGRADED", "UNHEALTHY"] as const;

/** A node's answer; a refusal (NOT_MEMBER, PROTOCOL...) is an answer too, so the router does not retry it. */
type MetricsAnswer =
  | {
      readonly ok: true;
      readonly report: NodeStatusReport;
      readonly counters: NodeCountersSnapshot | null;
      readonly storage: NodeStorageSnapshot | null;
    }
  | { readonly ok: false; readonly code: string; readonly message: string };

/**
 * Asks every configured member, then any member only the nodes know about, each within `perNodeTimeoutMs`.
 * Configured names that the reachable nodes no longer list as members (removed since) are left out.
 */
export async function gatherScrape(
  router: ClusterRouter,
  options: { readonly perNodeTimeoutMs: number; readonly now: () => number },
): Promise<Scrape> {
  const started = options.now();
  const configured = router.memberNames();
  const first = await Promise.all(configured.map((node) => sampleNode(router, node, options)));
  const view = viewOf(
    router.config,
    first.map((sample) => sample.probe),
  );
  const members = new Set([...view.voters, ...view.learners]);
  const extras = [...members].filter((name) => !configured.includes(name));
  const all =
    extras.length === 0
      ? first
      : [...first, ...(await Promise.all(extras.map((node) => sampleNode(router, node, options))))];
  const someoneAnswered = all.some((sample) => sample.probe.ok && sample.probe.report.member);
  const samples = someoneAnswered ? all.filter((sample) => members.has(sample.probe.node)) : all;
  return { cluster: router.config.name, samples, durationMs: options.now() - started };
}

async function sampleNode(
  router: ClusterRouter,
  node: string,
  options: { readonly perNodeTimeoutMs: number; readonly now: () => number },
): Promise<NodeSample> {
  const started = options.now();
  const outcome = await router.toAnyNode<MetricsAnswer>(
    async (rpc, address) => {
      if (rpc.metrics === undefined) {
        const status = await rpc.status(address);
        return {
          ok: true,
          node,
          value: status.ok ? { ok: true, report: status.value, counters: null, storage: null } : refusal(status.error),
        };
      }
      const answer = await rpc.metrics(address);
      return { ok: true, node, value: answer.ok ? answerOf(answer.value) : refusal(answer.error) };
    },
    { deadlineAt: started + options.perNodeTimeoutMs, kind: "read" },
    [node],
  );
  const elapsedMs = options.now() - started;
  if (!outcome.ok) {
    return {
      probe: { ok: false, node, error: outcome.message, code: outcome.code, elapsedMs },
      counters: null,
      storage: null,
    };
  }
  const value = outcome.value;
  if (!value.ok) {
    return {
      probe: { ok: false, node, error: value.message, code: value.code, elapsedMs },
      counters: null,
      storage: null,
    };
  }
  return {
    probe: { ok: true, node, report: value.report, elapsedMs },
    counters: value.counters,
    storage: value.storage,
  };
}

function refusal(error: { readonly code: string; readonly message: string }): MetricsAnswer {
  return { ok: false, code: error.code, message: error.message };
}

function answerOf(report: NodeMetricsReport): MetricsAnswer {
  return { ok: true, report: report.status, counters: report.counters, storage: report.storage };
}

/** Turns a scrape into metric families, in catalog order. */
export function scrapeFamilies(scrape: Scrape, config: Parameters<typeof viewOf>[0]): MetricFamily[] {
  const families = new FamilyBuilder();
  const base: Labels = { cluster: scrape.cluster };
  const health = summarizeHealth(
    viewOf(
      config,
      scrape.samples.map((sample) => sample.probe),
    ),
  );

  families.cluster("cluster_quorum_available", base, health.quorumAvailable ? 1 : 0);
  for (const status of HEALTH_STATUSES) {
    families.cluster("cluster_health_status", { ...base, status }, health.status === status ? 1 : 0);
  }
  families.cluster("cluster_schema_agreement", base, health.schemaAgreement ? 1 : 0);
  families.cluster("cluster_voters", base, health.voters.length);
  families.cluster("cluster_learners", base, health.learners.length);
  families.cluster("cluster_quorum_size", base, health.quorum);
  families.cluster("cluster_online_servers", base, health.onlineServers);
  families.cluster("scrape_duration_seconds", base, scrape.durationMs / 1000);

  for (const sample of scrape.samples) {
    addNode(families, base, sample);
  }
  return families.build();
}

function addNode(families: FamilyBuilder, base: Labels, sample: NodeSample): void {
  const labels: Labels = { ...base, node: sample.probe.node };
  families.node("node_up", labels, sample.probe.ok ? 1 : 0);
  families.node("node_scrape_duration_seconds", labels, sample.probe.elapsedMs / 1000);
  if (!sample.probe.ok) {
    return;
  }
  const report = sample.probe.report;
  families.node("has_leader", labels, report.leader === null ? 0 : 1);
  families.node("is_leader", labels, report.role === "leader" ? 1 : 0);
  families.node("is_learner", labels, report.learners.includes(report.node) ? 1 : 0);
  families.node("term", labels, report.term);
  families.node("commit_index", labels, report.commitIndex);
  families.node("applied_index", labels, report.appliedIndex);
  families.node("first_log_index", labels, report.firstLogIndex);
  families.node("last_log_index", labels, report.lastLogIndex);
  families.node("proposals_committed_total", labels, report.commitIndex);
  families.node("proposals_applied_total", labels, report.appliedIndex);
  for (const status of ELECTION_STATUSES) {
    families.node("election_status", { ...labels, status }, report.election.status === status ? 1 : 0);
  }
  if (report.election.lastElectionMs !== null) {
    families.node("last_election_duration_seconds", labels, report.election.lastElectionMs / 1000);
  }
  if (report.lastLeaderContactMs !== null) {
    families.node("leader_last_contact_seconds", labels, report.lastLeaderContactMs / 1000);
  }
  families.node("schema_version", labels, report.schemaVersion);
  families.node("schema_info", { ...labels, schema_hash: report.schemaHash }, 1);
  for (const replica of report.replicas) {
    const peer: Labels = { ...labels, peer: replica.name };
    families.node("replica_match_index", peer, replica.matchIndex);
    families.node("replica_lag_entries", peer, replica.lagEntries);
    if (replica.lastContactMs !== null) {
      families.node("replica_last_contact_seconds", peer, replica.lastContactMs / 1000);
    }
    for (const status of REPLICA_STATUSES) {
      families.node("replica_status", { ...peer, status }, replica.status === status ? 1 : 0);
    }
    for (const state of BREAKER_STATES) {
      families.node("replica_breaker_state", { ...peer, state }, replica.breaker === state ? 1 : 0);
    }
    families.node("replica_consecutive_failures", peer, replica.consecutiveFailures);
    families.node("replica_reconnections_total", peer, replica.reconnections);
    families.node("replica_is_learner", peer, replica.isLearner ? 1 : 0);
    if (replica.consistency !== undefined) {
      for (const status of CONSISTENCY_STATUSES) {
        families.node("replica_consistency_status", { ...peer, status }, replica.consistency.status === status ? 1 : 0);
      }
    }
  }
  const consistency = report.consistency;
  if (consistency !== undefined) {
    families.node("consistency_diverged", labels, consistency.status === "DIVERGED" ? 1 : 0);
    families.node("consistency_undecided", labels, (consistency.undecided ?? null) === null ? 0 : 1);
    if (consistency.lastCheckpoint !== null) {
      families.node("consistency_last_checkpoint_index", labels, consistency.lastCheckpoint.index);
      families.node("consistency_checkpoint_digest_seconds", labels, consistency.lastCheckpoint.digestMs / 1000);
    }
    families.node("consistency_mismatches_total", labels, consistency.mismatchesDetected);
    families.node("consistency_repairs_total", labels, consistency.repairsSent);
    families.node("consistency_repair_failures_total", labels, consistency.repairFailures);
    families.node("consistency_repairs_installed_total", labels, consistency.repairsInstalled);
  }
  if (sample.counters !== null) {
    addCounters(families, labels, sample.counters);
  }
  if (sample.storage !== null) {
    families.node("dedup_window_entries", labels, sample.storage.dedupEntries);
    families.node("log_size_bytes", labels, sample.storage.logBytes);
    families.node("database_size_bytes", labels, sample.storage.databaseBytes);
  }
}

function addCounters(families: FamilyBuilder, labels: Labels, counters: NodeCountersSnapshot): void {
  families.node("node_start_time_seconds", labels, counters.startedAtMs / 1000);
  families.node("leader_changes_seen_total", labels, counters.leaderChangesSeen);
  families.node("proposals_pending", labels, counters.proposalsPending);
  // Present from the start (at 0) so that rate() sees the first failure as an increase.
  families.node("proposals_failed_total", { ...labels, code: "TIMEOUT" }, 0);
  for (const failed of counters.proposalsFailed) {
    families.node("proposals_failed_total", { ...labels, code: failed.code }, failed.count);
  }
  for (const rpc of counters.rpc) {
    const rpcLabels: Labels = { ...labels, peer: rpc.peer, kind: rpc.kind };
    families.node("rpc_calls_total", rpcLabels, rpc.calls);
    families.node("rpc_failures_total", rpcLabels, rpc.failures);
    families.node("rpc_retries_total", rpcLabels, rpc.retries);
    families.histogram("rpc_duration_seconds", rpcLabels, rpc.duration);
  }
  for (const kind of ["peer", "worker"] as const) {
    families.node(
      "rpcs_received_total",
      { ...labels, kind },
      counters.received.find((entry) => entry.kind === kind)?.count ?? 0,
    );
  }
  families.node("alarm_wakeups_total", labels, counters.alarmWakeups);
  families.histogram("write_duration_seconds", labels, counters.writeDuration);
  for (const read of counters.readDuration) {
    families.histogram("read_duration_seconds", { ...labels, level: read.level }, read.duration);
  }
  families.node("snapshots_sent_total", labels, counters.snapshotsSent);
  families.node("snapshot_send_failures_total", labels, counters.snapshotSendFailures);
  families.node("snapshot_sent_bytes_total", labels, counters.snapshotSentBytes);
  families.node("snapshots_installed_total", labels, counters.snapshotsInstalled);
  families.node("snapshot_installed_bytes_total", labels, counters.snapshotInstalledBytes);
}

/** Collects samples per metric and emits them in catalog order; a repeated label set keeps the last value. */
class FamilyBuilder {
  private readonly scalars = new Map<string, Map<string, ScalarSample>>();
  private readonly histograms = new Map<string, Map<string, HistogramSample>>();

  cluster(short: ClusterMetric, labels: Labels, value: number): void {
    this.add(short, labels, value);
  }

  node(short: NodeMetric, labels: Labels, value: number): void {
    this.add(short, labels, value);
  }

  histogram(short: NodeMetric, labels: Labels, snapshot: HistogramSnapshot): void {
    const buckets = LATENCY_BUCKETS_SECONDS.map((le, i) => ({
      le,
      count: snapshot.cumulativeCounts[i] ?? snapshot.count,
    }));
    const samples = this.histograms.get(short) ?? new Map<string, HistogramSample>();
    samples.set(JSON.stringify(labels), { labels, buckets, sum: snapshot.sumSeconds, count: snapshot.count });
    this.histograms.set(short, samples);
  }

  build(): MetricFamily[] {
    const families: MetricFamily[] = [];
    const catalog: [string, (typeof CLUSTER_METRICS)[ClusterMetric] | (typeof NODE_METRICS)[NodeMetric]][] = [
      ...Object.entries(CLUSTER_METRICS),
      ...Object.entries(NODE_METRICS),
    ];
    for (const [short, spec] of catalog) {
      const base = {
        name: metricName(short as ClusterMetric | NodeMetric),
        help: spec.help,
        ...("unit" in spec ? { unit: spec.unit } : {}),
      };
      if (spec.type === "histogram") {
        families.push({ ...base, type: "histogram", samples: [...(this.histograms.get(short)?.values() ?? [])] });
      } else {
        families.push({ ...base, type: spec.type, samples: [...(this.scalars.get(short)?.values() ?? [])] });
      }
    }
    return families;
  }

  private add(short: string, labels: Labels, value: number): void {
    const samples = this.scalars.get(short) ?? new Map<string, ScalarSample>();
    samples.set(JSON.stringify(labels), { labels, value });
    this.scalars.set(short, samples);
  }
}
