// A node answers a peer's envelope with its responses in the answer when the envelope asks for them there
// (repliesInAnswer): one call per round instead of two, so a leader in steady state receives no calls at all.
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION, type NodeResult } from "../../src/objects/api";
import type { NodeMetricsReport } from "../../src/objects/metrics-counters";
import { clusterFactory, unwrap, waitFor, type TestCluster } from "./helpers/cluster";

const newCluster = clusterFactory();

/** A heartbeat of the current term from the leader to `to`, as the leader sends it; round 0 confirms no read. */
function heartbeatEnvelope(
  cluster: TestCluster,
  route: { from: string; to: string; term: number },
  repliesInAnswer: boolean,
): unknown {
  return {
    protocolVersion: PROTOCOL_VERSION,
    cluster: cluster.config.name,
    from: route.from,
    to: route.to,
    messages: [{ ...route, type: "heartbeat", commit: 0, readContext: null, round: 0 }],
    ...(repliesInAnswer ? { repliesInAnswer: true } : {}),
  };
}

async function receive(
  cluster: TestCluster,
  node: string,
  envelope: unknown,
): Promise<{ ok: boolean; replies?: unknown[] }> {
  return (await cluster.stub(node).receive(envelope)) as { ok: boolean; replies?: unknown[] };
}

async function peerCallsReceived(cluster: TestCluster, node: string): Promise<number> {
  const report = unwrap((await cluster.stub(node).metrics(cluster.address(node))) as NodeResult<NodeMetricsReport>);
  return report.counters.received.find((r) => r.kind === "peer")?.count ?? 0;
}

describe("responses in the answer", () => {
  it("a follower hands its response back in the answer when asked, and calls the sender otherwise", async () => {
    const cluster = newCluster({
      prefix: "shell-replies-a",
      nodes: 3,
      heartbeatIntervalMs: 100,
      electionTimeoutMs: 1500,
    });
    await cluster.startAll();
    const leader = await cluster.waitForLeader();
    const follower = cluster.names.find((n) => n !== leader)!;
    const route = { from: leader, to: follower, term: (await cluster.status(leader)).term };

    const inline = await receive(cluster, follower, heartbeatEnvelope(cluster, route, true));
    expect(inline.ok).toBe(true);
    expect(inline.replies).toEqual([
      expect.objectContaining({ type: "heartbeatResponse", from: follower, to: leader, term: route.term, round: 0 }),
    ]);

    const called = await receive(cluster, follower, heartbeatEnvelope(cluster, route, false));
    expect(called.ok).toBe(true);
    expect(called.replies).toBeUndefined();
  }, 60_000);

  it("a leader taking writes receives no calls from its followers: their responses come back in the answers", async () => {
    const cluster = newCluster({
      prefix: "shell-replies-b",
      nodes: 3,
      heartbeatIntervalMs: 100,
      electionTimeoutMs: 1500,
    });
    await cluster.startAll();
    await cluster.execute(["CREATE TABLE t (v INTEGER)"]);
    const leader = await cluster.waitForLeader();
    const before = await peerCallsReceived(cluster, leader);
    let last = 0;
    for (let i = 0; i < 10; i++) {
      last = (await cluster.execute([`INSERT INTO t VALUES (${i})`])).raftIndex;
    }
    await cluster.waitForConvergence({ index: last });
    // Same leader throughout (an election would have made calls to it): otherwise the count proves nothing.
    expect(await cluster.waitForLeader()).toBe(leader);
    expect(await peerCallsReceived(cluster, leader)).toBe(before);
    await waitFor("the followers to have answered many envelopes", async () =>
      (await peerCallsReceived(
        cluster,
        cluster.names.find((n) => n !== leader)!,
      )) > 20
        ? true
        : undefined,
    );
  }, 60_000);
});
