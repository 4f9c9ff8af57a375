// GET /api/v1/cluster/health: one aggregate view of leadership, quorum, replicas and schema agreement (what each
// status means: README, "Operations: Health").
import {
  checkQuorumWindowMs,
  electionWindowMs,
  type NodeStatusReport,
  type ReplicaReport,
  type UndecidedImage,
} from "../../objects/api";
import type { StatusProbe } from "../routing/router";
import { reachableReports, type ClusterView } from "./gather";

export type HealthStatus = "HEALTHY" | "DEGRADED" | "UNHEALTHY";

export interface ReplicaHealth {
  readonly name: string;
  readonly isLearner: boolean;
  readonly status: ReplicaReport["status"];
  readonly matchIndex: number;
  readonly lag: number;
  readonly lastContactMs: number | null;
  readonly consecutiveFailures: number;
  readonly reconnections: number;
  readonly breaker: ReplicaReport["breaker"];
  readonly schemaVersion: number | null;
  readonly schemaHash: string | null;
  /** Whether the replica answered our own status call. */
  readonly reachable: boolean;
  /** The consistency monitor's verdict (README "Consistency monitor"); null from a node of an older version. */
  readonly consistency: ConsistencyStatus | null;
  /** The last checkpoint at which its digests matched the majority's. */
  readonly consistencyCheckedIndex: number | null;
  /** What differs, while DIVERGED or REPAIRING. */
  readonly consistencyDetail: string | null;
}

export type ConsistencyStatus = "UNCHECKED" | "CONSISTENT" | "DIVERGED" | "REPAIRING";

export interface NodeHealth {
  readonly name: string;
  readonly reachable: boolean;
  readonly role: NodeStatusReport["role"] | null;
  readonly term: number | null;
  readonly leader: string | null;
  readonly commitIndex: number | null;
  readonly appliedIndex: number | null;
  readonly schemaVersion: number | null;
  readonly schemaHash: string | null;
  readonly locationHint: string | null;
  readonly responseMs: number;
  readonly error: string | null;
  /** DIVERGED: the node found its own digests contradict the majority's; it serves no reads until repaired. */
  readonly consistency: "OK" | "DIVERGED" | null;
}

export interface ClusterHealth {
  readonly cluster: string;
  readonly status: HealthStatus;
  /** The node whose view this is: the leader when reachable, else the first reachable node. */
  readonly reportingNode: string | null;
  readonly leader: string | null;
  readonly term: number;
  readonly election: { readonly status: string; readonly term: number; readonly lastElectionMs: number | null };
  readonly configuredServers: number;
  readonly onlineServers: number;
  readonly onlineReplicas: number;
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  /** Voters that must acknowledge a write. */
  readonly quorum: number;
  readonly quorumAvailable: boolean;
  readonly schemaAgreement: boolean;
  readonly replicas: readonly ReplicaHealth[];
  readonly nodes: readonly NodeHealth[];
  /** The consistency monitor, as the reporting node runs it, and the members found DIVERGED. */
  readonly consistency: {
    readonly enabled: boolean | null;
    readonly repair: "auto" | "manual" | null;
    readonly diverged: readonly string[];
    /**
     * The leader's last image checkpoint whose voters disagreed with no majority either way (no snapshot image goes
     * out until an operator decides); null when there is none (or no leader answered).
     */
    readonly undecided: UndecidedImage | null;
  };
  /** Why the status is not HEALTHY, one line each. */
  readonly problems: readonly string[];
}

/**
 * A voter replica counts towards the quorum while the leader heard from it within an election timeout, whatever its
 * status: CheckQuorum's judgement. A status of RECONNECTING follows one failed delivery, and under light message loss
 * a replica flips to it and back many times a second while every write commits (it stays a problem, DEGRADED).
 */
function acknowledgesWrites(replica: ReplicaHealth, contactWindowMs: number): boolean {
  return replica.lastContactMs !== null && replica.lastContactMs < contactWindowMs;
}

export function summarizeHealth(view: ClusterView): ClusterHealth {
  const reports = reachableReports(view.probes).filter((report) => report.started && report.member);
  const probeOf = new Map(view.probes.map((probe) => [probe.node, probe]));
  const leaderReport = view.leader?.report;
  const reporting = leaderReport ?? reports[0];
  const voters = view.voters;
  const learners = view.learners;
  const quorum = Math.floor(voters.length / 2) + 1;
  const members = [...voters, ...learners];
  const problems: string[] = [];

  const replicas = (leaderReport?.replicas ?? []).map((replica) => replicaHealth(replica, probeOf.get(replica.name)));
  // Without a leader, a voter counts only if it heard from one recently: an election normally ends within a couple
  // of election timeouts, while voters that cannot reach each other stay leaderless (and answer us all the same).
  const electionWindow = electionWindowMs(view.config);
  const contactWindowMs = checkQuorumWindowMs(view.config);
  const ackingVoters =
    leaderReport === undefined
      ? reports.filter(
          (report) =>
            voters.includes(report.node) &&
            report.lastLeaderContactMs !== null &&
            report.lastLeaderContactMs <= electionWindow,
        ).length
      : 1 +
        replicas.filter((r) => !r.isLearner && voters.includes(r.name) && acknowledgesWrites(r, contactWindowMs))
          .length;
  const quorumAvailable = ackingVoters >= quorum;

  if (leaderReport === undefined) {
    problems.push(
      view.claimedLeader === undefined
        ? "no leader is known (an election is under way, or no quorum is reachable)"
        : `the leader ${view.claimedLeader} named by the nodes did not answer`,
    );
  }
  if (!quorumAvailable) {
    problems.push(
      leaderReport === undefined
        ? `only ${ackingVoters} of ${voters.length} voters answered and heard from a leader within ${electionWindow} ms; ${quorum} are needed to elect one`
        : `only ${ackingVoters} of ${voters.length} voters can acknowledge writes (the leader heard from them within ` +
            `${contactWindowMs} ms); ${quorum} are needed`,
    );
  }
  for (const name of members) {
    const probe = probeOf.get(name);
    if (probe === undefined || !probe.ok) {
      problems.push(`node ${name} is unreachable${probe === undefined || probe.ok ? "" : `: ${probe.error}`}`);
    }
  }
  for (const replica of replicas) {
    if (replica.status !== "ONLINE") {
      problems.push(`replica ${replica.name} is ${replica.status} (lag ${replica.lag} entries)`);
    }
  }
  const diverged = new Set<string>();
  for (const replica of replicas) {
    if (replica.consistency === "DIVERGED" || replica.consistency === "REPAIRING") {
      diverged.add(replica.name);
      problems.push(
        `replica ${replica.name} is ${replica.consistency}: ${replica.consistencyDetail ?? "its digests differ"}`,
      );
    }
  }
  for (const report of reports) {
    const flag = report.consistency?.diverged;
    if (flag !== undefined && flag !== null && !diverged.has(report.node)) {
      diverged.add(report.node);
      problems.push(
        `node ${report.node} is DIVERGED since checkpoint ${flag.checkpointIndex} (${flag.schemaDiffers ? "the schema differs" : `rows differ in ${flag.slice}`})`,
      );
    }
  }
  const undecided = leaderReport?.consistency?.undecided ?? null;
  if (undecided !== null) {
    problems.push(
      `the leader's state and ${undecided.differing.join(", ")}'s differ at image checkpoint ${undecided.checkpointIndex} ` +
        `and no majority decides which is right: no snapshot image is sent until an operator repairs one side`,
    );
  }
  const hashes = new Set(reports.map((report) => report.schemaHash));
  const schemaAgreement = hashes.size <= 1;
  if (!schemaAgreement) {
    problems.push(`the reachable nodes disagree on the schema (${hashes.size} different schema hashes)`);
  }

  const onlineServers = members.filter((name) => probeOf.get(name)?.ok === true).length;
  const status: HealthStatus =
    leaderReport === undefined || !quorumAvailable ? "UNHEALTHY" : problems.length === 0 ? "HEALTHY" : "DEGRADED";
  const electionSource = leaderReport ?? [...reports].sort((a, b) => b.term - a.term)[0];
  return {
    cluster: view.config.name,
    status,
    reportingNode: reporting?.node ?? null,
    leader: leaderReport?.node ?? null,
    term: view.term,
    election:
      electionSource === undefined
        ? { status: "NO_LEADER", term: view.term, lastElectionMs: null }
        : { ...electionSource.election },
    configuredServers: members.length,
    onlineServers,
    onlineReplicas: replicas.filter((replica) => replica.status === "ONLINE").length,
    voters,
    learners,
    quorum,
    quorumAvailable,
    schemaAgreement,
    replicas,
    nodes: view.probes.map(nodeHealth),
    consistency: {
      enabled: reporting?.consistency?.enabled ?? null,
      repair: reporting?.consistency?.repair ?? null,
      diverged: [...diverged].sort(),
      undecided,
    },
    problems,
  };
}

function replicaHealth(replica: ReplicaReport, probe: StatusProbe | undefined): ReplicaHealth {
  const own = probe?.ok === true ? probe.report : undefined;
  return {
    name: replica.name,
    isLearner: replica.isLearner,
    status: replica.status,
    matchIndex: replica.matchIndex,
    lag: replica.lagEntries,
    lastContactMs: replica.lastContactMs,
    consecutiveFailures: replica.consecutiveFailures,
    reconnections: replica.reconnections,
    breaker: replica.breaker,
    schemaVersion: own?.schemaVersion ?? null,
    schemaHash: replica.schemaHash,
    reachable: probe?.ok === true,
    consistency: replica.consistency?.status ?? null,
    consistencyCheckedIndex: replica.consistency?.checkedIndex ?? null,
    consistencyDetail: replica.consistency?.detail ?? null,
  };
}

function nodeHealth(probe: StatusProbe): NodeHealth {
  const report = probe.ok ? probe.report : undefined;
  return {
    name: probe.node,
    reachable: probe.ok,
    role: report?.role ?? null,
    term: report?.term ?? null,
    leader: report?.leader ?? null,
    commitIndex: report?.commitIndex ?? null,
    appliedIndex: report?.appliedIndex ?? null,
    schemaVersion: report?.schemaVersion ?? null,
    schemaHash: report?.schemaHash ?? null,
    locationHint: report?.locationHint ?? null,
    responseMs: Math.round(probe.elapsedMs),
    error: probe.ok ? null : `${probe.code}: ${probe.error}`,
    consistency: report?.consistency?.status ?? null,
  };
}
