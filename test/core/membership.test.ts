import { describe, expect, it } from "vitest";
import { applyConfigChange, decodeMembership, RaftInvariantError } from "../../src/replication/index.js";
import { TestCluster } from "./helpers.js";

function settledCluster(): { cluster: TestCluster; leader: string } {
  const cluster = new TestCluster(["a", "b", "c"]);
  const leader = cluster.elect();
  cluster.tickMany(4);
  return { cluster, leader };
}

describe("single-server membership changes", () => {
  it("validates changes against the current membership", () => {
    const m = { voters: ["a", "b"], learners: ["l"] };
    expect(applyConfigChange(m, { kind: "addLearner", node: "d" })).toEqual({
      ok: true,
      membership: { voters: ["a", "b"], learners: ["l", "d"] },
    });
    expect(applyConfigChange(m, { kind: "promote", node: "l" })).toEqual({
      ok: true,
      membership: { voters: ["a", "b", "l"], learners: [] },
    });
    expect(applyConfigChange(m, { kind: "remove", node: "a" })).toEqual({
      ok: true,
      membership: { voters: ["b"], learners: ["l"] },
    });
    expect(applyConfigChange(m, { kind: "addLearner", node: "a" }).ok).toBe(false);
    expect(applyConfigChange(m, { kind: "promote", node: "a" }).ok).toBe(false);
    expect(applyConfigChange(m, { kind: "remove", node: "zz" }).ok).toBe(false);
    expect(applyConfigChange({ voters: ["a"], learners: [] }, { kind: "remove", node: "a" }).ok).toBe(false);
    expect(() => decodeMembership("{not json", 7)).toThrow(RaftInvariantError);
  });

  it("adds a learner that catches up without voting, then promotes it on request", () => {
    const { cluster, leader } = settledCluster();
    for (let i = 0; i < 3; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.addNode("d");
    const added = cluster.core(leader).proposeConfigChange({ kind: "addLearner", node: "d" });
    expect(added.ok).toBe(true);
    cluster.tickMany(6);
    expect(cluster.status(leader).membership).toEqual({ voters: ["a", "b", "c"], learners: ["d"] });
    expect(cluster.appliedData("d")).toEqual(["v0", "v1", "v2"]);
    expect(cluster.status("d").membership).toEqual({ voters: ["a", "b", "c"], learners: ["d"] });
    const view = cluster.status(leader).replicas.find((r) => r.id === "d");
    expect(view).toMatchObject({ isLearner: true, status: "ONLINE", lagEntries: 0 });
    const statuses = cluster
      .node(leader)
      .events.filter((e) => e.kind === "replicaStatus" && e.peer === "d")
      .map((e) => e.kind === "replicaStatus" && e.to);
    expect(statuses).toEqual(["JOINING", "ONLINE"]);
    // A learner does not count: with the other two voters cut off (the learner still connected), nothing commits.
    for (const id of ["a", "b", "c"].filter((x) => x !== leader)) {
      cluster.isolate(id);
    }
    const commitBefore = cluster.status(leader).commit;
    cluster.core(leader).propose("needs a voter");
    cluster.tickMany(3);
    expect(cluster.status(leader).commit).toBe(commitBefore);
    cluster.heal();
    cluster.tickMany(4);
    const promoted = cluster.core(cluster.leader() as string).proposeConfigChange({ kind: "promote", node: "d" });
    expect(promoted.ok).toBe(true);
    cluster.tickMany(6);
    expect(cluster.status("d").membership.voters).toContain("d");
    expect(cluster.status(cluster.leader() as string).replicas.find((r) => r.id === "d")?.isLearner).toBe(false);
  });

  it("allows one change at a time, and none before the leader committed an entry of its term", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    // Elect without delivering the no-op's acknowledgements.
    for (let i = 0; i < 60 && cluster.status("a").role === "follower"; i++) {
      cluster.tickQuietly("a");
    }
    cluster.deliverMatching(
      (m) => m.type === "preVote" || m.type === "preVoteResponse" || m.type === "vote" || m.type === "voteResponse",
    );
    expect(cluster.status("a").role).toBe("leader");
    const early = cluster.core("a").proposeConfigChange({ kind: "addLearner", node: "d" });
    expect(early).toMatchObject({ ok: false, error: { code: "CONFIG_CHANGE_IN_PROGRESS" } });
    if (!early.ok) {
      expect(early.error.message).toContain("not yet committed an entry of its term");
    }
    cluster.deliverAll();
    cluster.tickMany(2);
    expect(cluster.core("a").proposeConfigChange({ kind: "addLearner", node: "d" }).ok).toBe(true);
    const second = cluster.core("a").proposeConfigChange({ kind: "addLearner", node: "e" });
    expect(second).toMatchObject({ ok: false, error: { code: "CONFIG_CHANGE_IN_PROGRESS" } });
    const invalid = cluster.core("a").proposeConfigChange({ kind: "promote", node: "b" });
    expect(invalid.ok).toBe(false);
    cluster.tickMany(4);
    expect(cluster.core("a").proposeConfigChange({ kind: "promote", node: "b" })).toMatchObject({
      ok: false,
      error: { code: "INVALID_CONFIG_CHANGE" },
    });
    expect(cluster.core("a").proposeConfigChange({ kind: "addLearner", node: "e" }).ok).toBe(true);
  });

  it("removes a follower: the leader stops replicating to it and quorums shrink", () => {
    const { cluster, leader } = settledCluster();
    const victim = ["a", "b", "c"].find((id) => id !== leader) as string;
    expect(cluster.core(leader).proposeConfigChange({ kind: "remove", node: victim }).ok).toBe(true);
    cluster.tickMany(6);
    expect(cluster.status(leader).membership.voters).not.toContain(victim);
    expect(cluster.status(leader).replicas.map((r) => r.id)).not.toContain(victim);
    // The victim applied its own removal (it received the commit before the leader stopped talking to it).
    expect(cluster.status(victim).removed).toBe(true);
    expect(cluster.core(victim).propose("x")).toMatchObject({ ok: false, error: { code: "REMOVED" } });
    cluster.isolate(victim);
    cluster.tickMany(100);
    expect(cluster.status(victim).role).toBe("follower");
    // Two voters left; both are needed and suffice.
    cluster.propose(leader, "two voters");
    cluster.tickMany(3);
    expect(cluster.appliedData(leader)).toContain("two voters");
  });

  it("a leader that removes itself hands leadership over once the removal is committed and applied, and never campaigns again", () => {
    const { cluster, leader } = settledCluster();
    expect(cluster.core(leader).proposeConfigChange({ kind: "remove", node: leader }).ok).toBe(true);
    cluster.tickUntil(() => cluster.status(leader).role !== "leader", 20);
    const status = cluster.status(leader);
    expect(status.removed).toBe(true);
    expect(status.membership.voters).not.toContain(leader);
    expect(cluster.node(leader).events.some((e) => e.kind === "leadershipTransfer" && e.outcome === "completed")).toBe(
      true,
    );
    expect(cluster.node(leader).events.some((e) => e.kind === "steppedDown")).toBe(true);
    // The removal was committed before the leader stepped down: the others have it.
    const others = ["a", "b", "c"].filter((id) => id !== leader);
    const next = cluster.elect(300);
    expect(others).toContain(next);
    cluster.tickMany(200);
    expect(cluster.leader()).not.toBe(leader);
    expect(cluster.status(leader).term).toBeLessThanOrEqual(cluster.status(next).term);
    for (const id of others) {
      expect(cluster.status(id).membership.voters).toEqual(others);
    }
  });

  it("membership survives restarts (snapshot + config entries in the log)", () => {
    const { cluster, leader } = settledCluster();
    cluster.addNode("d");
    cluster.core(leader).proposeConfigChange({ kind: "addLearner", node: "d" });
    cluster.tickMany(6);
    for (const id of ["a", "b", "c", "d"]) {
      cluster.restart(id);
      expect(cluster.status(id).membership).toEqual({ voters: ["a", "b", "c"], learners: ["d"] });
    }
    cluster.elect();
  });
});
