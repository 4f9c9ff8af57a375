import { describe, expect, it } from "vitest";
import { TestCluster } from "./helpers.js";

function settled(): { cluster: TestCluster; leader: string; followers: [string, string] } {
  const cluster = new TestCluster(["a", "b", "c"]);
  const leader = cluster.elect();
  cluster.tickMany(4);
  return { cluster, leader, followers: ["a", "b", "c"].filter((id) => id !== leader) as [string, string] };
}

describe("leadership transfer", () => {
  it("hands leadership to an up-to-date voter with TimeoutNow, which campaigns at once without PreVote", () => {
    const { cluster, leader, followers } = settled();
    const [target] = followers;
    const term = cluster.status(leader).term;
    expect(cluster.core(leader).transferLeadership(target)).toEqual({ ok: true });
    expect(cluster.status(leader).transferee).toBe(target);
    expect(cluster.core(leader).propose("x")).toMatchObject({ ok: false, error: { code: "TRANSFER_IN_PROGRESS" } });
    cluster.processReadies(leader);
    expect(cluster.queue.some((m) => m.type === "timeoutNow" && m.to === target)).toBe(true);
    cluster.deliverAll();
    expect(cluster.status(target)).toMatchObject({ role: "leader", term: term + 1 });
    expect(cluster.node(target).events.some((e) => e.kind === "becamePreCandidate" && e.term === term)).toBe(false);
    expect(cluster.status(leader)).toMatchObject({ role: "follower", leader: target, transferee: null });
    const outcomes = cluster
      .node(leader)
      .events.filter((e) => e.kind === "leadershipTransfer")
      .map((e) => e.kind === "leadershipTransfer" && e.outcome);
    expect(outcomes).toEqual(["started", "completed"]);
  });

  it("brings a lagging target up to date before sending TimeoutNow", () => {
    const { cluster, leader, followers } = settled();
    const [target] = followers;
    cluster.isolate(target);
    for (let i = 0; i < 5; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.tickMany(2);
    cluster.heal();
    cluster.core(leader).transferLeadership(target);
    cluster.processReadies(leader);
    expect(cluster.queue.some((m) => m.type === "timeoutNow")).toBe(false);
    cluster.tickUntil(() => cluster.status(target).role === "leader", 20);
    cluster.tickMany(3);
    expect(cluster.appliedData(target)).toEqual(["v0", "v1", "v2", "v3", "v4"]);
  });

  it("aborts after an election timeout when the target does not take over, and accepts proposals again", () => {
    const { cluster, leader, followers } = settled();
    const [target] = followers;
    cluster.isolate(target);
    cluster.core(leader).transferLeadership(target);
    cluster.tickUntil(() => cluster.status(leader).transferee === null, 15);
    expect(cluster.node(leader).events.some((e) => e.kind === "leadershipTransfer" && e.outcome === "aborted")).toBe(
      true,
    );
    expect(cluster.status(leader).role).toBe("leader");
    expect(cluster.core(leader).propose("again").ok).toBe(true);
  });

  it("stepDown() picks the most up-to-date voter", () => {
    const { cluster, leader, followers } = settled();
    const [behind, ahead] = followers;
    cluster.dropIf = (m) => m.type === "append" && m.to === behind;
    for (let i = 0; i < 3; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.tickMany(2);
    cluster.dropIf = () => false;
    expect(cluster.core(leader).stepDown()).toEqual({ ok: true });
    expect(cluster.status(leader).transferee).toBe(ahead);
    cluster.tickUntil(() => cluster.status(ahead).role === "leader", 20);
  });

  it("refuses transfers to non-voters and from non-leaders", () => {
    const cluster = new TestCluster(["a", "b", "c"], { learners: ["l"] });
    const leader = cluster.elect();
    const follower = ["a", "b", "c"].find((id) => id !== leader) as string;
    expect(cluster.core(leader).transferLeadership("l")).toMatchObject({
      ok: false,
      error: { code: "INVALID_REQUEST" },
    });
    expect(cluster.core(leader).transferLeadership("nobody")).toMatchObject({
      ok: false,
      error: { code: "INVALID_REQUEST" },
    });
    expect(cluster.core(follower).transferLeadership(leader)).toMatchObject({
      ok: false,
      error: { code: "NOT_LEADER", leader },
    });
    const single = new TestCluster(["solo"]);
    single.elect();
    expect(single.core("solo").stepDown()).toMatchObject({ ok: false, error: { code: "INVALID_REQUEST" } });
  });
});
