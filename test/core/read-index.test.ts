import { describe, expect, it } from "vitest";
import type { Heartbeat } from "../../src/replication/types.js";
import { TestCluster } from "./helpers.js";

function settled(overrides = {}): { cluster: TestCluster; leader: string; followers: [string, string] } {
  const cluster = new TestCluster(["a", "b", "c"], { overrides });
  const leader = cluster.elect();
  cluster.tickMany(4);
  return { cluster, leader, followers: ["a", "b", "c"].filter((id) => id !== leader) as [string, string] };
}

describe("ReadIndex", () => {
  it("on the leader: records the commit index and serves it after a quorum echoes a heartbeat round", () => {
    const { cluster, leader } = settled();
    cluster.propose(leader, "x");
    cluster.tickMany(2);
    const commit = cluster.status(leader).commit;
    expect(cluster.core(leader).requestRead("r1")).toEqual({ ok: true });
    cluster.processReadies(leader);
    expect(cluster.node(leader).readStates).toEqual([]);
    const heartbeats = cluster.queue.filter((m): m is Heartbeat => m.type === "heartbeat");
    expect(heartbeats).toHaveLength(2);
    expect(heartbeats[0]?.readContext).toBe("r1");
    // One echo plus the leader itself is a majority of three.
    cluster.deliverOne((m) => m === heartbeats[0]);
    cluster.deliverOne((m) => m.type === "heartbeatResponse");
    expect(cluster.node(leader).readStates).toEqual([{ context: "r1", index: commit }]);
  });

  it("a new leader serves no read index until an entry of its term has committed", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    for (let i = 0; i < 60 && cluster.status("a").role === "follower"; i++) {
      cluster.tickQuietly("a");
    }
    cluster.deliverMatching(
      (m) => m.type === "preVote" || m.type === "preVoteResponse" || m.type === "vote" || m.type === "voteResponse",
    );
    expect(cluster.status("a").role).toBe("leader");
    expect(cluster.core("a").requestRead("early")).toEqual({ ok: true });
    // Heartbeat echoes alone do not help: the no-op has not committed yet.
    cluster.dropIf = (m) => m.type === "append";
    cluster.tickMany(3, ["a"]);
    expect(cluster.node("a").readStates).toEqual([]);
    cluster.dropIf = () => false;
    cluster.tickMany(4);
    expect(cluster.node("a").readStates).toEqual([{ context: "early", index: 1 }]);
  });

  it("on a follower: forwards to the leader and turns the answer into a ReadState", () => {
    const { cluster, leader, followers } = settled();
    cluster.propose(leader, "x");
    cluster.tickMany(2);
    const [follower] = followers;
    expect(cluster.core(follower).requestRead("f1")).toEqual({ ok: true });
    cluster.processReadies(follower);
    expect(cluster.queue).toContainEqual(
      expect.objectContaining({ type: "readIndex", from: follower, to: leader, context: "f1" }),
    );
    cluster.tickMany(2);
    expect(cluster.node(follower).readStates).toEqual([{ context: "f1", index: cluster.status(leader).commit }]);
  });

  it("fails at once with NOT_LEADER when no leader is known", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    expect(cluster.core("a").requestRead("r")).toMatchObject({
      ok: false,
      error: { code: "NOT_LEADER", leader: null },
    });
  });

  it("reads pending when leadership is lost become FailedReads", () => {
    const { cluster, leader, followers } = settled();
    cluster.isolate(leader);
    expect(cluster.core(leader).requestRead("doomed")).toEqual({ ok: true });
    const [follower] = followers;
    // A forwarded read is refused by the deposed leader... and fails on the follower when its leader changes.
    expect(cluster.core(follower).requestRead("forwarded")).toEqual({ ok: true });
    cluster.tickUntil(() => cluster.status(leader).role !== "leader", 40);
    expect(cluster.node(leader).failedReads).toEqual([
      expect.objectContaining({ context: "doomed", error: expect.objectContaining({ code: "NOT_LEADER" }) }),
    ]);
    cluster.tickUntil(() => cluster.node(follower).failedReads.length > 0, 200);
    expect(cluster.node(follower).failedReads[0]?.context).toBe("forwarded");
  });

  it("times out a read that cannot be confirmed, refuses duplicates, and bounds pending reads", () => {
    const { cluster, leader } = settled({ checkQuorum: false, readTimeoutTicks: 12, maxPendingReads: 2 });
    cluster.isolate(leader);
    expect(cluster.core(leader).requestRead("r1")).toEqual({ ok: true });
    expect(cluster.core(leader).requestRead("r1")).toMatchObject({ ok: false, error: { code: "INVALID_REQUEST" } });
    expect(cluster.core(leader).requestRead("r2")).toEqual({ ok: true });
    expect(cluster.core(leader).requestRead("r3")).toMatchObject({ ok: false, error: { code: "QUEUE_FULL" } });
    cluster.tickMany(12, [leader]);
    expect(cluster.node(leader).failedReads.map((f) => [f.context, f.error.code])).toEqual([
      ["r1", "TIMEOUT"],
      ["r2", "TIMEOUT"],
    ]);
    expect(cluster.status(leader).role).toBe("leader");
  });
});

describe("lease reads", () => {
  it("with a fresh lease the leader answers at once, without a heartbeat round", () => {
    const { cluster, leader } = settled({ leaseRead: true });
    cluster.tickMany(2);
    expect(cluster.core(leader).requestRead("lease")).toEqual({ ok: true });
    cluster.processReadies(leader);
    expect(cluster.node(leader).readStates).toEqual([{ context: "lease", index: cluster.status(leader).commit }]);
    expect(cluster.queue.filter((m) => m.type === "heartbeat")).toEqual([]);
  });

  it("once the lease expires (no echoes), it falls back to a confirmation round", () => {
    const { cluster, leader } = settled({ leaseRead: true, leaseSafetyMarginTicks: 2 });
    cluster.isolate(leader);
    cluster.tickMany(5, [leader]);
    // Still within the lease (8 ticks from the send tick of the last echoed round, at most 2 ticks before the cut).
    expect(cluster.core(leader).requestRead("still-leased")).toEqual({ ok: true });
    cluster.processReadies(leader);
    expect(cluster.node(leader).readStates.map((r) => r.context)).toEqual(["still-leased"]);
    cluster.tickMany(3, [leader]);
    expect(cluster.status(leader).role).toBe("leader");
    expect(cluster.core(leader).requestRead("late")).toEqual({ ok: true });
    cluster.processReadies(leader);
    expect(cluster.node(leader).readStates.map((r) => r.context)).toEqual(["still-leased"]);
  });

  it("is refused by validation without CheckQuorum", () => {
    expect(() => new TestCluster(["a"], { overrides: { leaseRead: true, checkQuorum: false } })).toThrow(
      /leaseRead requires checkQuorum/,
    );
  });

  it("a restarted voter stays quiet for an election timeout, keeping the lease it may have promised", () => {
    const { cluster, leader, followers } = settled({ leaseRead: true });
    const [follower, other] = followers;
    cluster.restart(follower, { leaseRead: true });
    const term = cluster.status(follower).term;
    cluster.core(follower).step({
      type: "vote",
      from: other,
      to: follower,
      term: term + 1,
      lastLogIndex: 99,
      lastLogTerm: term,
      transfer: false,
    });
    cluster.processReadies(follower);
    expect(cluster.queue.filter((m) => m.from === follower && m.type === "voteResponse")).toEqual([]);
    expect(cluster.status(follower).term).toBe(term);
    expect(leader).not.toBe(follower);
  });
});

describe("ReadIndex under duplication", () => {
  it("a duplicated forwarded request does not fail the read", () => {
    const { cluster, leader, followers } = settled();
    const [follower] = followers;
    cluster.core(follower).requestRead("dup");
    cluster.processReadies(follower);
    const request = cluster.queue.find((m) => m.type === "readIndex");
    expect(request).toBeDefined();
    if (request === undefined) {
      return;
    }
    cluster.core(leader).step(request);
    cluster.core(leader).step(request);
    cluster.processReadies(leader);
    expect(cluster.queue.filter((m) => m.type === "readIndexResponse")).toEqual([]);
    cluster.tickMany(3);
    expect(cluster.node(follower).failedReads).toEqual([]);
    expect(cluster.node(follower).readStates.map((r) => r.context)).toEqual(["dup"]);
  });
});
