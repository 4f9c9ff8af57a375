// GET /metrics against fake nodes whose answers the test controls: nodes of an older version (status only), a
// node that refuses (asked once, not retried), members removed since configuration, schema disagreement.
import { describe, expect, it } from "vitest";
import { FakeCluster, harness, nodeError } from "./http-support";

function sampleLines(text: string, name: string): string[] {
  return text.split("\n").filter((line) => line.startsWith(`${name}{`) || line.startsWith(`${name} `));
}

describe("GET /metrics with fake nodes", () => {
  it("serves the Raft state of nodes without metrics() (an older version) from their status, without counters", async () => {
    const h = harness(new FakeCluster(["n1", "n2", "n3"], "n1"));
    const response = await h.request("GET", "/metrics");
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(sampleLines(text, "durable_ha_node_up")).toHaveLength(3);
    expect(text).toContain(`durable_ha_is_leader{cluster="${h.cluster.name}",node="n1"} 1`);
    expect(text).toContain(
      `durable_ha_replica_status{cluster="${h.cluster.name}",node="n1",peer="n2",status="ONLINE"} 1`,
    );
    expect(text).toContain(`durable_ha_cluster_quorum_available{cluster="${h.cluster.name}"} 1`);
    expect(sampleLines(text, "durable_ha_alarm_wakeups_total")).toEqual([]);
    expect(h.cluster.calls.filter((call) => call.method === "status")).toHaveLength(3);
  });

  it("asks a refusing node once per scrape and shows it down, with its error code nowhere retried", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], "n1");
    cluster.on("n3", "status", () =>
      nodeError("n3", "PROTOCOL", "this node speaks another protocol version", { retryable: false }),
    );
    const h = harness(cluster);
    const text = await (await h.request("GET", "/metrics")).text();
    expect(text).toContain(`durable_ha_node_up{cluster="${cluster.name}",node="n3"} 0`);
    expect(text).toContain(`durable_ha_node_up{cluster="${cluster.name}",node="n2"} 1`);
    expect(cluster.calls.filter((call) => call.node === "n3")).toHaveLength(1);
  });

  it("leaves out configured nodes the members no longer list (removed since), and reports members it was not configured with", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], "n1");
    cluster.voters = ["n1", "n2", "n4"];
    cluster.node("n4");
    const h = harness(cluster, {}, { CLUSTER_NODES: "n1,n2,n3" });
    const text = await (await h.request("GET", "/metrics")).text();
    const nodes = sampleLines(text, "durable_ha_node_up").map((line) => /node="([^"]+)"/.exec(line)?.[1]);
    expect(nodes).toEqual(["n1", "n2", "n4"]);
  });

  it("shows schema disagreement and each node's schema hash", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], "n1");
    cluster.schemaHashes.set("n3", "hash-b");
    const h = harness(cluster);
    const text = await (await h.request("GET", "/metrics")).text();
    expect(text).toContain(`durable_ha_cluster_schema_agreement{cluster="${cluster.name}"} 0`);
    expect(text).toContain(`durable_ha_schema_info{cluster="${cluster.name}",node="n3",schema_hash="hash-b"} 1`);
  });

  it("answers 400 to a bad timeout and 401 without a token, and never a 5xx when every node is down", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], "n1");
    for (const node of ["n1", "n2", "n3"]) {
      cluster.hang(node);
    }
    const h = harness(cluster);
    expect((await h.request("GET", "/metrics?timeout=banana")).status).toBe(400);
    expect((await h.request("GET", "/metrics", { token: null })).status).toBe(401);
    const response = await h.request("GET", "/metrics?timeout=50ms");
    expect(response.status).toBe(200);
    const text = await response.text();
    expect(sampleLines(text, "durable_ha_node_up").every((line) => line.endsWith(" 0"))).toBe(true);
    expect(text).toContain(`durable_ha_cluster_quorum_available{cluster="${cluster.name}"} 0`);
  });
});
