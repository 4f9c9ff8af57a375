// GET /metrics over real clusters of ClusterNode objects: the metrics move as they should across writes, an
// election and a cut-off replica; a node that does not answer shows node_up 0 while the rest is served; the
// metrics role opens this route and nothing else. Each test has its own cluster, halted after the test.
import { describe, expect, it } from "vitest";
import { clusterFactory, waitFor, type TestCluster } from "./helpers/cluster";
import { parseMetrics, type Sample } from "../../scripts/lib/metrics-text";
import { MetricsHarness, OPENMETRICS_ACCEPT, TOKENS } from "./helpers/metrics-harness";

const newCluster = clusterFactory();
/** Generous: on a loaded machine the nodes (which share the test's thread) may take long to agree on a leader. */
const LEADER_TIMEOUT_MS = 40_000;
const WAIT = { timeoutMs: 30_000 };

function value(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = samples.filter(
    (sample) =>
      sample.name === name && Object.entries(labels).every(([key, expected]) => sample.labels[key] === expected),
  );
  if (found.length > 1) {
    throw new Error(`${name} ${JSON.stringify(labels)} matches ${found.length} samples`);
  }
  return found[0]?.value;
}

function sum(samples: readonly Sample[], name: string, labels: Record<string, string> = {}): number {
  return samples
    .filter(
      (sample) =>
        sample.name === name && Object.entries(labels).every(([key, expected]) => sample.labels[key] === expected),
    )
    .reduce((total, sample) => total + sample.value, 0);
}

async function setUp(
  prefix: string,
): Promise<{ cluster: TestCluster; h: MetricsHarness; leader: string; followers: string[] }> {
  const cluster = newCluster({ prefix, nodes: 3 });
  const h = new MetricsHarness(cluster);
  await cluster.startAll();
  const leader = await cluster.waitForLeader({ timeoutMs: LEADER_TIMEOUT_MS });
  const created = await h.send("POST", "/db/execute", { json: ["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"] });
  expect(created.status, created.text).toBe(200);
  return { cluster, h, leader, followers: cluster.names.filter((name) => name !== leader) };
}

describe("GET /metrics on a real cluster", () => {
  it("serves every node's state in the 0.0.4 text format to a metrics-only token, and writes move the counters", async () => {
    const { cluster, h } = await setUp("metrics-writes");
    const base = { cluster: cluster.config.name };
    // Under load an election can happen at any time: wait for a scrape that sees every node agree on one leader.
    const before = await waitFor(
      "a scrape with every node up and one agreed leader",
      async () => {
        const response = await h.send("GET", "/metrics", { token: TOKENS.scraper });
        expect(response.status).toBe(200);
        expect(response.headers.get("content-type")).toBe("text/plain; version=0.0.4; charset=utf-8");
        const samples = parseMetrics(response.text);
        const agreed =
          cluster.names.every((node) => value(samples, "durable_ha_has_leader", { node }) === 1) &&
          sum(samples, "durable_ha_is_leader") === 1;
        const replicasOnline = sum(samples, "durable_ha_replica_status", { status: "ONLINE" }) === 2;
        // A follower applies the table a little after the leader answered (commit notices wait for the next message).
        const schemaEverywhere = cluster.names.every(
          (node) => (value(samples, "durable_ha_schema_version", { node }) ?? 0) >= 1,
        );
        return agreed && replicasOnline && schemaEverywhere ? samples : undefined;
      },
      WAIT,
    );
    const leader = cluster.names.find((node) => value(before, "durable_ha_is_leader", { node }) === 1)!;
    for (const node of cluster.names) {
      expect(value(before, "durable_ha_node_up", { ...base, node }), node).toBe(1);
      expect(value(before, "durable_ha_has_leader", { node }), node).toBe(1);
      expect(value(before, "durable_ha_is_leader", { node }), node).toBe(node === leader ? 1 : 0);
      expect(value(before, "durable_ha_leader_changes_seen_total", { node }), node).toBeGreaterThanOrEqual(1);
      expect(value(before, "durable_ha_schema_version", { node }), node).toBeGreaterThanOrEqual(1);
      expect(value(before, "durable_ha_database_size_bytes", { node }), node).toBeGreaterThan(0);
    }
    expect(value(before, "durable_ha_cluster_quorum_available", base)).toBe(1);
    expect(value(before, "durable_ha_cluster_voters", base)).toBe(3);
    expect(sum(before, "durable_ha_replica_status", { node: leader, status: "ONLINE" })).toBe(2);

    // Counters live in the node objects' memory (a restarted object starts them again): measure five writes served
    // by one leader instance (same leader, same node_start_time before and after), writing again if it changed.
    const measured = await waitFor(
      "five writes measured on one uninterrupted leader",
      async () => {
        const first = await h.scrape();
        const current = cluster.names.find((node) => value(first, "durable_ha_is_leader", { node }) === 1);
        if (current === undefined) {
          return undefined;
        }
        await h.write(5);
        const second = await h.scrape();
        const started = (samples: Sample[]) => value(samples, "durable_ha_node_start_time_seconds", { node: current });
        const same =
          value(second, "durable_ha_is_leader", { node: current }) === 1 && started(first) === started(second);
        return same ? { first, second, current } : undefined;
      },
      { timeoutMs: 40_000 },
    );
    const { first, second: after, current } = measured;
    const at = (samples: Sample[], name: string, labels: Record<string, string> = {}) =>
      value(samples, name, { node: current, ...labels }) ?? 0;
    expect(at(after, "durable_ha_proposals_applied_total")).toBeGreaterThanOrEqual(
      at(first, "durable_ha_proposals_applied_total") + 5,
    );
    expect(at(after, "durable_ha_write_duration_seconds_count")).toBeGreaterThanOrEqual(
      at(first, "durable_ha_write_duration_seconds_count") + 5,
    );
    expect(at(after, "durable_ha_write_duration_seconds_bucket", { le: "+Inf" })).toBe(
      at(after, "durable_ha_write_duration_seconds_count"),
    );
    expect(sum(after, "durable_ha_rpc_calls_total", { node: current, kind: "append" })).toBeGreaterThan(
      sum(first, "durable_ha_rpc_calls_total", { node: current, kind: "append" }),
    );
    expect(at(after, "durable_ha_rpcs_received_total", { kind: "worker" })).toBeGreaterThan(
      at(first, "durable_ha_rpcs_received_total", { kind: "worker" }),
    );
    expect(at(after, "durable_ha_log_size_bytes")).toBeGreaterThan(0);
    expect(at(after, "durable_ha_dedup_window_entries")).toBeGreaterThanOrEqual(6);
    expect(at(after, "durable_ha_proposals_pending")).toBe(0);
    // Followers receive appends from the leader: the billed work shows. Their alarm is only the watchdog of the timer
    // that ticks them (node-host.ts) and need not have fired, but its counter is there.
    const follower = cluster.names.find((name) => name !== current)!;
    expect(value(after, "durable_ha_rpcs_received_total", { node: follower, kind: "peer" })).toBeGreaterThan(0);
    expect(value(after, "durable_ha_alarm_wakeups_total", { node: follower })).toBeGreaterThanOrEqual(0);

    // A read at a level shows in that level's histogram on the node that served it (X-DHA-Node).
    await waitFor(
      "a strong read in the histogram of the node that served it",
      async () => {
        const read = await h.send("GET", `/db/query?level=strong&q=${encodeURIComponent("SELECT COUNT(*) FROM t")}`);
        expect(read.status, read.text).toBe(200);
        const served = read.headers.get("X-DHA-Node");
        const samples = await h.scrape();
        return served !== null &&
          (value(samples, "durable_ha_read_duration_seconds_count", { node: served, level: "strong" }) ?? 0) >= 1
          ? true
          : undefined;
      },
      WAIT,
    );
  });

  it("speaks OpenMetrics when the scraper asks for it", async () => {
    const { h } = await setUp("metrics-openmetrics");
    const response = await h.send("GET", "/metrics", { token: TOKENS.scraper, accept: OPENMETRICS_ACCEPT });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/openmetrics-text; version=1.0.0; charset=utf-8");
    expect(response.text.endsWith("# EOF\n")).toBe(true);
    expect(response.text).toContain("# TYPE durable_ha_leader_changes_seen counter\n");
    expect(response.text).toContain("# UNIT durable_ha_rpc_duration_seconds seconds\n");
  });

  it("lets the metrics role scrape and nothing else; other routes refuse it, and no token gets 401", async () => {
    const { h } = await setUp("metrics-auth");
    expect((await h.send("GET", "/metrics", { token: TOKENS.admin })).status).toBe(200);
    expect(
      (await h.send("GET", `/db/query?q=${encodeURIComponent("SELECT 1")}`, { token: TOKENS.scraper })).status,
    ).toBe(403);
    expect(
      (await h.send("POST", "/db/execute", { token: TOKENS.scraper, json: ["INSERT INTO t(v) VALUES('x')"] })).status,
    ).toBe(403);
    expect((await h.send("GET", "/api/v1/cluster/health", { token: TOKENS.scraper })).status).toBe(403);
    expect((await h.send("GET", "/metrics", { token: "not-a-valid-token-at-all" })).status).toBe(401);
    expect((await h.send("GET", "/metrics?timeout=0s", { token: TOKENS.scraper })).status).toBe(400);
  });

  it("shows a node that does not answer as node_up 0 within the deadline and still serves the others", async () => {
    const { cluster, h, followers } = await setUp("metrics-hung");
    const hung = followers[0]!;
    h.hung.add(hung);
    const started = Date.now();
    const samples = await h.scrape("?timeout=1500ms");
    // Without the per-node deadline the scrape would never answer; the bound is loose because the nodes share this
    // test's thread and a loaded machine slows every timer.
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(value(samples, "durable_ha_node_up", { node: hung })).toBe(0);
    expect(value(samples, "durable_ha_term", { node: hung })).toBeUndefined();
    for (const node of cluster.names.filter((name) => name !== hung)) {
      expect(value(samples, "durable_ha_node_up", { node }), node).toBe(1);
      expect(value(samples, "durable_ha_term", { node }), node).toBeGreaterThanOrEqual(1);
    }
    expect(value(samples, "durable_ha_node_scrape_duration_seconds", { node: hung })).toBeGreaterThanOrEqual(1.4);
  });

  it("across an election: term and leader changes rise, the new leader reports is_leader", async () => {
    const { cluster, h, leader } = await setUp("metrics-election");
    const before = await h.scrape();
    const stepped = await h.send("POST", "/api/v1/cluster/leader/stepdown");
    expect(stepped.status, stepped.text).toBe(200);
    const newLeader = await cluster.waitForLeader({ notLeader: leader, timeoutMs: LEADER_TIMEOUT_MS });
    const after = await waitFor(
      "the scrape to show the new leader",
      async () => {
        const samples = await h.scrape();
        return value(samples, "durable_ha_is_leader", { node: newLeader }) === 1 &&
          cluster.names.every((node) => value(samples, "durable_ha_has_leader", { node }) === 1)
          ? samples
          : undefined;
      },
      WAIT,
    );
    expect(value(after, "durable_ha_is_leader", { node: leader })).toBe(0);
    for (const node of cluster.names) {
      expect(value(after, "durable_ha_term", { node }), node).toBeGreaterThan(
        value(before, "durable_ha_term", { node })!,
      );
      // A node object restarted in between counts from zero again: then it has seen at least the current leader.
      const restarted =
        value(after, "durable_ha_node_start_time_seconds", { node }) !==
        value(before, "durable_ha_node_start_time_seconds", { node });
      const floor = restarted ? 0 : value(before, "durable_ha_leader_changes_seen_total", { node })!;
      expect(value(after, "durable_ha_leader_changes_seen_total", { node }), node).toBeGreaterThan(floor);
    }
  });

  it("a cut-off replica: its lag grows, the breaker to it opens, failed deliveries show, the others stay online", async () => {
    const { cluster, h } = await setUp("metrics-cutoff");
    // The leader as a scrape sees it, with both breakers closed (under load leadership may have moved since setUp).
    const { leader, cut, kept } = await waitFor(
      "one leader with both breakers closed",
      async () => {
        const samples = await h.scrape();
        const current = cluster.names.find((node) => value(samples, "durable_ha_is_leader", { node }) === 1);
        if (current === undefined) {
          return undefined;
        }
        const [first, second] = cluster.names.filter((name) => name !== current) as [string, string];
        const closed = [first, second].every(
          (peer) => value(samples, "durable_ha_replica_breaker_state", { node: current, peer, state: "CLOSED" }) === 1,
        );
        return closed ? { leader: current, cut: first, kept: second } : undefined;
      },
      WAIT,
    );
    // Cut the follower off from the leader in both directions; the leader and the other follower still form a quorum.
    await cluster.setFaultsEverywhere({ partitions: [{ from: leader, to: cut, bothWays: true }] });
    await h.write(5);
    const after = await waitFor(
      "the breaker to the cut-off replica to open while the other replica keeps up",
      async () => {
        const samples = await h.scrape();
        const open =
          value(samples, "durable_ha_replica_breaker_state", { node: leader, peer: cut, state: "OPEN" }) === 1;
        const keptUp =
          value(samples, "durable_ha_replica_status", { node: leader, peer: kept, status: "ONLINE" }) === 1 &&
          value(samples, "durable_ha_replica_lag_entries", { node: leader, peer: kept }) === 0;
        return open && keptUp ? samples : undefined;
      },
      WAIT,
    );
    expect(value(after, "durable_ha_replica_lag_entries", { node: leader, peer: cut })).toBeGreaterThanOrEqual(5);
    expect(value(after, "durable_ha_replica_status", { node: leader, peer: cut, status: "ONLINE" })).toBe(0);
    // Injected faults drop envelopes before any RPC is made, so they show as failed deliveries, not failed calls.
    expect(value(after, "durable_ha_replica_consecutive_failures", { node: leader, peer: cut })).toBeGreaterThan(0);
    expect(value(after, "durable_ha_cluster_quorum_available", {})).toBe(1);
    await cluster.heal();
  });
});
