// Asks every node for its status in parallel, each within a per-node deadline, and works out who leads and who
// belongs. A dead node costs its deadline and shows up as unreachable; it never hangs the answer.
import type { ClusterConfig, NodeStatusReport } from "../../objects/api";
import type { ClusterRouter, StatusProbe } from "../routing/router";

export interface ClusterView {
  readonly config: ClusterConfig;
  /** Every node asked, in the order: configured members, then members only the nodes know about. */
  readonly probes: readonly StatusProbe[];
  /** The reachable node that leads in the highest term, if any. */
  readonly leader: { readonly name: string; readonly report: NodeStatusReport } | undefined;
  /** A leader some reachable node names, even if it did not answer itself. */
  readonly claimedLeader: string | undefined;
  /** Membership as the leader (or else the most recent reachable node) sees it; the configuration if none answered. */
  readonly voters: readonly string[];
  readonly learners: readonly string[];
  readonly term: number;
}

export async function gatherCluster(router: ClusterRouter, perNodeTimeoutMs: number): Promise<ClusterView> {
  const configured = router.memberNames();
  const first = await router.probeAll(configured, perNodeTimeoutMs);
  const reference = referenceReport(first);
  const known = new Set(configured);
  const extras =
    reference === undefined ? [] : [...reference.voters, ...reference.learners].filter((name) => !known.has(name));
  const probes = extras.length === 0 ? first : [...first, ...(await router.probeAll(extras, perNodeTimeoutMs))];
  return viewOf(router.config, probes);
}

export function viewOf(config: ClusterConfig, probes: readonly StatusProbe[]): ClusterView {
  const reference = referenceReport(probes);
  const reports = reachableReports(probes);
  const leaderReport = reference?.role === "leader" ? reference : undefined;
  const claimed = leaderReport?.node ?? mostNamedLeader(reports);
  return {
    config,
    probes,
    leader: leaderReport === undefined ? undefined : { name: leaderReport.node, report: leaderReport },
    claimedLeader: claimed,
    voters: reference?.voters ?? config.members.map((member) => member.name),
    learners: reference?.learners ?? [],
    term: reports.reduce((max, report) => Math.max(max, report.term), 0),
  };
}

export function reachableReports(probes: readonly StatusProbe[]): NodeStatusReport[] {
  return probes.flatMap((probe) => (probe.ok ? [probe.report] : []));
}

/** The leader with the highest term; else the report with the highest term (then the longest committed log). */
function referenceReport(probes: readonly StatusProbe[]): NodeStatusReport | undefined {
  const reports = reachableReports(probes).filter((report) => report.started && report.member);
  const byRecency = (a: NodeStatusReport, b: NodeStatusReport) => b.term - a.term || b.commitIndex - a.commitIndex;
  const leaders = reports.filter((report) => report.role === "leader").sort(byRecency);
  return leaders[0] ?? reports.sort(byRecency)[0];
}

function mostNamedLeader(reports: readonly NodeStatusReport[]): string | undefined {
  const newest = reports.filter((report) => report.leader !== null).sort((a, b) => b.term - a.term)[0];
  return newest?.leader ?? undefined;
}
