import { describe, expect, it } from "vitest";
import type { InstallSnapshot } from "../../src/replication/types.js";
import { COMPACTION_HOLD_MAX_THRESHOLDS } from "../../src/replication/raft-node.js";
import { TestCluster } from "./helpers.js";

describe("bootstrap", () => {
  it("the first Ready of a bootstrapped node carries the membership as a snapshot at index 0", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const first = cluster.node("a").readies[0];
    expect(first?.compact).toEqual({ index: 0, term: 0, membership: { voters: ["a", "b", "c"], learners: [] } });
    expect(first?.committedEntries).toEqual([]);
    expect(cluster.node("a").store.snapshot).toEqual(first?.compact);
    // Restarted without a bootstrap, the node finds its membership in the stored snapshot and can lead.
    cluster.restart("a");
    expect(cluster.status("a").membership).toEqual({ voters: ["a", "b", "c"], learners: [] });
    cluster.elect();
  });
});

describe("compaction and InstallSnapshot", () => {
  it("asks for a snapshot once snapshotThresholdEntries were applied, then drops the covered entries", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { snapshotThresholdEntries: 5 } });
    const leader = cluster.elect();
    for (let i = 0; i < 6; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.deliverAll();
    cluster.tickMany(3);
    const compactions = cluster
      .node(leader)
      .readies.map((r) => r.compact)
      .filter((c) => c !== null && c.index > 0);
    expect(compactions.length).toBeGreaterThan(0);
    const compaction = compactions[0];
    expect(compaction?.index).toBeGreaterThanOrEqual(5);
    expect(compaction?.membership).toEqual({ voters: ["a", "b", "c"], learners: [] });
    expect(compaction?.term).toBe(cluster.status(leader).term);
    const status = cluster.status(leader);
    expect(status.firstIndex).toBe((compactions.at(-1)?.index ?? 0) + 1);
    expect(cluster.node(leader).store.entries.every((e) => e.index >= status.firstIndex)).toBe(true);
  });

  it("a follower behind the compacted log gets an InstallSnapshot, installs it and catches up from the log", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { snapshotThresholdEntries: 5 } });
    const leader = cluster.elect();
    cluster.tickMany(3);
    const lagging = ["a", "b", "c"].find((id) => id !== leader) as string;
    cluster.isolate(lagging);
    for (let i = 0; i < 12; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.tickMany(4);
    const snapshotIndex = cluster.status(leader).firstIndex - 1;
    expect(snapshotIndex).toBeGreaterThan(cluster.status(lagging).lastIndex);
    cluster.heal();
    cluster.tickUntil(
      () =>
        cluster.queue.some((m) => m.type === "snapshot") ||
        cluster.node(lagging).readies.some((r) => r.snapshot !== null),
      20,
    );
    const installed = cluster.node(lagging).readies.find((r) => r.snapshot !== null);
    expect(installed?.snapshot?.index).toBe(snapshotIndex);
    // The follower answers with the snapshot index, in the Ready that installs it.
    expect(installed?.messages).toContainEqual(
      expect.objectContaining({ type: "appendResponse", success: true, index: snapshotIndex }),
    );
    expect(installed?.hardState?.commit).toBe(snapshotIndex);
    cluster.propose(leader, "after");
    cluster.tickMany(4);
    const status = cluster.status(lagging);
    expect(status.applied).toBe(cluster.status(leader).applied);
    expect(status.membership).toEqual({ voters: ["a", "b", "c"], learners: [] });
    expect(cluster.appliedData(lagging)).toContain("after");
    const view = cluster.status(leader).replicas.find((r) => r.id === lagging);
    expect(view?.progress).toBe("replicate");
  });

  it("reportSnapshotResult(peer, false) sends the peer back to probe, and a new snapshot follows", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { snapshotThresholdEntries: 5 } });
    const leader = cluster.elect();
    cluster.tickMany(3);
    const lagging = ["a", "b", "c"].find((id) => id !== leader) as string;
    cluster.isolate(lagging);
    for (let i = 0; i < 12; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.tickMany(4);
    cluster.heal();
    cluster.dropIf = (m) => m.type === "snapshot";
    cluster.tickUntil(() => cluster.status(leader).replicas.find((r) => r.id === lagging)?.progress === "snapshot", 20);
    cluster.core(leader).reportSnapshotResult(lagging, false);
    const view = cluster.status(leader).replicas.find((r) => r.id === lagging);
    expect(view?.progress).toBe("probe");
    expect(view?.status).toBe("RECONNECTING");
    cluster.dropIf = () => false;
    cluster.tickUntil(() => cluster.status(lagging).applied === cluster.status(leader).applied, 40);
  });

  it("a snapshot the follower already covers is acknowledged with its commit index, not installed", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    cluster.propose(leader, "x");
    cluster.tickMany(4);
    const follower = ["a", "b", "c"].find((id) => id !== leader) as string;
    const commit = cluster.status(follower).commit;
    const stale: InstallSnapshot = {
      type: "snapshot",
      from: leader,
      to: follower,
      term: cluster.status(leader).term,
      snapshot: { index: 1, term: 1, membership: { voters: ["a", "b", "c"], learners: [] } },
    };
    const readiesBefore = cluster.node(follower).readies.length;
    cluster.core(follower).step(stale);
    expect(cluster.processReadies(follower)).toBe(1);
    const ready = cluster.node(follower).readies[readiesBefore];
    expect(ready?.snapshot).toBeNull();
    expect(ready?.messages).toEqual([
      expect.objectContaining({ type: "appendResponse", success: true, index: commit }),
    ]);
  });
});

describe("snapshotMetaAt: the snapshot metadata of a later state than the last compaction", () => {
  it("gives the term and membership as of any committed index from the last compaction on, else null", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { snapshotThresholdEntries: 5 } });
    const leader = cluster.elect();
    for (let i = 0; i < 6; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.tickMany(4);
    cluster.addNode("d");
    expect(cluster.core(leader).proposeConfigChange({ kind: "addLearner", node: "d" }).ok).toBe(true);
    cluster.tickMany(4);
    cluster.propose(leader, "after");
    cluster.tickMany(4);
    const core = cluster.core(leader);
    const status = cluster.status(leader);
    const compacted = status.firstIndex - 1;
    expect(compacted).toBeGreaterThan(0);
    const configIndex = cluster
      .node(leader)
      .store.entries.find((entry) => entry.kind === "config" && entry.index > compacted)?.index;
    expect(configIndex).toBeDefined();
    const before = { voters: ["a", "b", "c"], learners: [] };
    const after = { voters: ["a", "b", "c"], learners: ["d"] };

    expect(core.snapshotMetaAt(compacted)).toEqual(cluster.node(leader).store.snapshot);
    expect(core.snapshotMetaAt(configIndex! - 1)).toMatchObject({ index: configIndex! - 1, membership: before });
    expect(core.snapshotMetaAt(configIndex!)).toMatchObject({ index: configIndex!, membership: after });
    expect(core.snapshotMetaAt(status.commit)).toEqual({ index: status.commit, term: status.term, membership: after });
    for (const outside of [compacted - 1, status.commit + 1, Number.NaN, 1.5]) {
      expect(core.snapshotMetaAt(outside), String(outside)).toBeNull();
    }
  });
});

describe("holdCompaction: the log is kept from an image's index while the image is prepared", () => {
  const compactions = (cluster: TestCluster, id: string): number[] =>
    cluster
      .node(id)
      .readies.map((r) => r.compact?.index ?? 0)
      .filter((index) => index > 0);

  it("compacts no further than the hold, with the term and membership at it, and as usual once released", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { snapshotThresholdEntries: 5 } });
    const leader = cluster.elect();
    const core = cluster.core(leader);
    const start = cluster.status(leader).applied;
    core.holdCompaction(start + 3);
    for (let i = 0; i < 12; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.tickMany(4);
    expect(compactions(cluster, leader).filter((index) => index > start)).toEqual([start + 3]);
    expect(cluster.node(leader).store.snapshot).toEqual(core.snapshotMetaAt(start + 3));
    expect(cluster.status(leader).firstIndex).toBe(start + 4);
    core.holdCompaction(null);
    cluster.propose(leader, "released");
    cluster.tickMany(4);
    // Released: the next compaction is at the applied index it is taken at, past the hold.
    const after = compactions(cluster, leader).filter((index) => index > start + 3);
    expect(after.length).toBeGreaterThan(0);
    expect(cluster.status(leader).firstIndex - 1).toBe(after.at(-1));
  });

  it("gives way once the log past the last compaction reaches its bound", () => {
    const threshold = 5;
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { snapshotThresholdEntries: threshold } });
    const leader = cluster.elect();
    cluster.tickMany(2);
    const compacted = cluster.status(leader).firstIndex - 1;
    cluster.core(leader).holdCompaction(compacted); // holds nothing new: no compaction until the bound
    const bound = COMPACTION_HOLD_MAX_THRESHOLDS * threshold;
    for (let i = 0; i < bound + 2; i++) {
      cluster.propose(leader, `v${i}`);
      cluster.tickMany(2);
      const status = cluster.status(leader);
      expect(status.applied - (status.firstIndex - 1)).toBeLessThanOrEqual(bound);
    }
    expect(cluster.status(leader).firstIndex - 1).toBeGreaterThan(compacted);
  });
});
