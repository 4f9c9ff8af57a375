// A leader that removes itself: it stops taking proposals once the removal is proposed, and once the removal is
// applied it hands leadership over instead of vanishing. The first transcript is the simulator's liveness bug
// (seed 100314): two voters, the leader removes itself, the other voter never hears that the removal committed.
import { describe, expect, it } from "vitest";
import { decideVote } from "../../src/election/election.js";
import type { Message, RaftEvent } from "../../src/replication/types.js";
import { TestCluster, describeMessage } from "./helpers.js";

/** Two voters a and b, a leading term 1 with a few entries committed everywhere. */
function twoVotersLedByA(): TestCluster {
  const cluster = new TestCluster(["a", "b"]);
  // Only a's clock runs, so a campaigns first and wins.
  for (let i = 0; i < 60 && cluster.status("a").role !== "leader"; i++) {
    cluster.tickQuietly("a");
    cluster.deliverAll();
  }
  expect(cluster.status("a")).toMatchObject({ role: "leader", term: 1 });
  cluster.propose("a", "v1");
  cluster.propose("a", "v2");
  cluster.tickMany(3);
  expect(cluster.status("b")).toMatchObject({ commit: 3, leader: "a" });
  return cluster;
}

function sentBy(cluster: TestCluster, id: string): Message[] {
  return cluster.node(id).readies.flatMap((ready) => ready.messages);
}

const campaigned = (events: readonly RaftEvent[], sinceEvent: number): boolean =>
  events.slice(sinceEvent).some((e) => e.kind === "becamePreCandidate" || e.kind === "becameCandidate");

describe("a leader that removes itself", () => {
  it("takes no proposals once its removal is proposed, and after applying it still lets the other voter win when that voter never learned the commit", () => {
    const cluster = twoVotersLedByA();
    const removal = cluster.core("a").proposeConfigChange({ kind: "remove", node: "a" });
    expect(removal).toMatchObject({ ok: true, index: 4, term: 1 });
    const eventsBefore = cluster.node("a").events.length;
    // Its log must not outgrow what b will hold when the removal commits (the bug: a accepted index 5, b had 4).
    expect(cluster.core("a").propose("after")).toMatchObject({ ok: false, error: { code: "REMOVED" } });
    expect(cluster.core("a").proposeConfigChange({ kind: "addLearner", node: "x" })).toMatchObject({
      ok: false,
      error: { code: "REMOVED" },
    });
    cluster.processReadies("a");

    // b gets the config entry and acknowledges it; from now on nothing a sends as leader reaches b.
    expect(cluster.take((m) => m.type === "append" && m.to === "b").map(describeMessage)).toEqual([
      "a->b append t1 prev=3/1 n=1 commit=3",
    ]);
    cluster.dropIf = (m) =>
      m.from === "a" && (m.type === "append" || m.type === "heartbeat" || m.type === "timeoutNow");
    cluster.core("b").step({
      from: "a",
      to: "b",
      term: 1,
      type: "append",
      prevLogIndex: 3,
      prevLogTerm: 1,
      entries: [cluster.node("a").store.entries[3]!],
      commit: 3,
    });
    cluster.processReadies("b");
    expect(cluster.take((m) => m.from === "b").map(describeMessage)).toEqual(["b->a appendResponse t1 ok index=4"]);
    cluster
      .core("a")
      .step({ from: "b", to: "a", term: 1, type: "appendResponse", success: true, index: 4, rejectHint: null });
    cluster.processReadies("a");

    // a committed and applied its removal: still the leader, handing over to b, telling b the commit index.
    expect(cluster.status("a")).toMatchObject({
      role: "leader",
      removed: true,
      commit: 4,
      applied: 4,
      transferee: "b",
      membership: { voters: ["b"], learners: [] },
    });
    expect(cluster.queue.filter((m) => m.to === "b").map(describeMessage)).toContain("a->b heartbeat t1");
    expect(cluster.queue.some((m) => m.type === "heartbeat" && m.to === "b" && m.commit === 4)).toBe(true);
    expect(cluster.core("a").requestRead("r1")).toMatchObject({ ok: false, error: { code: "REMOVED" } });
    // b, cut off from a's leader messages, still thinks the voters are a and b, with commit 3.
    cluster.deliverAll();
    expect(cluster.status("b")).toMatchObject({ commit: 3, membership: { voters: ["a", "b"], learners: [] } });

    // a gives up the hand-over after an election timeout and steps down; it never campaigns.
    cluster.tickUntil(() => cluster.status("a").role === "follower", 12);
    const stepDown = cluster.node("a").events.find((e) => e.kind === "steppedDown");
    expect(stepDown?.kind === "steppedDown" && stepDown.reason).toContain("hand-over to b did not complete");

    // b campaigns under {a, b}; a grants because b holds a's whole log and is a voter of the configuration that
    // removed a. b wins term 2, commits its no-op with a's help, applies the removal and leads alone.
    cluster.tickUntil(
      () => cluster.status("b").role === "leader" && cluster.status("b").membership.voters.length === 1,
      200,
    );
    expect(cluster.status("b")).toMatchObject({ term: 2, membership: { voters: ["b"], learners: [] } });
    const answers = sentBy(cluster, "a")
      .filter((m) => m.to === "b" && (m.type === "preVoteResponse" || m.type === "voteResponse"))
      .map(describeMessage);
    expect(answers).toEqual(["a->b preVoteResponse t2 granted", "a->b voteResponse t2 granted"]);
    expect(campaigned(cluster.node("a").events, eventsBefore)).toBe(false);
    cluster.dropIf = () => false;
    cluster.propose("b", "alone");
    cluster.tickMany(2);
    expect(cluster.appliedData("b")).toEqual(["v1", "v2", "alone"]);
    cluster.tickMany(100);
    expect(cluster.status("a")).toMatchObject({ role: "follower", removed: true });
    expect(campaigned(cluster.node("a").events, eventsBefore)).toBe(false);
    expect(cluster.leader()).toBe("b");
  });

  it("hands over with TimeoutNow only after the target holds its log and echoed a heartbeat carrying the removal's commit", () => {
    const cluster = twoVotersLedByA();
    expect(cluster.core("a").proposeConfigChange({ kind: "remove", node: "a" }).ok).toBe(true);
    const eventsBefore = cluster.node("a").events.length;
    cluster.deliverAll();
    expect(cluster.status("a")).toMatchObject({ role: "leader", removed: true, transferee: "b" });
    const sent = sentBy(cluster, "a");
    const timeoutNowAt = sent.findIndex((m) => m.type === "timeoutNow");
    const commitHeartbeatAt = sent.findIndex((m) => m.type === "heartbeat" && m.commit >= 4);
    expect(commitHeartbeatAt).toBeGreaterThanOrEqual(0);
    expect(timeoutNowAt).toBeGreaterThan(commitHeartbeatAt);
    // b applied the removal before it campaigned, so it is the only voter it needs: it won term 2 on its own.
    expect(cluster.status("b")).toMatchObject({
      role: "leader",
      term: 2,
      commit: 5,
      membership: { voters: ["b"], learners: [] },
    });
    expect(sentBy(cluster, "b").some((m) => m.type === "vote" || m.type === "preVote")).toBe(false);
    // a learns of term 2 from b's answer to its next heartbeat and steps down without ever campaigning.
    cluster.tickUntil(() => cluster.status("a").role === "follower", 5);
    expect(cluster.status("a").term).toBe(2);
    expect(campaigned(cluster.node("a").events, eventsBefore)).toBe(false);
    expect(cluster.core("a").transferLeadership("b")).toMatchObject({ ok: false, error: { code: "NOT_LEADER" } });
  });

  it("with three voters, hands over to the most up-to-date one, which every remaining voter then follows", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    cluster.tickMany(4);
    const [ahead, behind] = ["a", "b", "c"].filter((id) => id !== leader) as [string, string];
    cluster.dropIf = (m) => m.type === "append" && m.to === behind;
    for (let i = 0; i < 3; i++) {
      cluster.propose(leader, `v${i}`);
    }
    expect(cluster.core(leader).proposeConfigChange({ kind: "remove", node: leader }).ok).toBe(true);
    cluster.tickUntil(() => cluster.status(leader).removed, 10);
    expect(cluster.status(leader)).toMatchObject({ role: "leader", transferee: ahead });
    cluster.dropIf = () => false;
    cluster.tickUntil(
      () => cluster.status(ahead).role === "leader" && cluster.status(ahead).membership.voters.length === 2,
      100,
    );
    cluster.tickUntil(() => cluster.status(behind).commit === cluster.status(ahead).commit, 20);
    expect(cluster.status(behind)).toMatchObject({
      leader: ahead,
      membership: { voters: [ahead, behind].sort(), learners: [] },
    });
    expect(cluster.appliedData(behind)).toEqual(["v0", "v1", "v2"]);
    const outcomes = cluster
      .node(leader)
      .events.filter((e) => e.kind === "leadershipTransfer")
      .map((e) => e.kind === "leadershipTransfer" && `${e.to} ${e.outcome}`);
    expect(outcomes).toEqual([`${ahead} started`, `${ahead} completed`]);
    cluster.tickMany(100);
    expect(cluster.leader()).toBe(ahead);
    expect(cluster.status(leader)).toMatchObject({ role: "follower", removed: true });
  });
});

describe("votes of a removed node", () => {
  const base = {
    preVote: false,
    candidate: "b",
    requestTerm: 5,
    ownTerm: 5,
    ownVote: null,
    ownLeader: null,
    ownLog: { lastIndex: 10, lastTerm: 3 },
  } as const;

  it("go only to the sole voter of the configuration that removed it, by the usual rules", () => {
    const sole = { candidateIsSoleVoter: true };
    expect(decideVote({ ...base, candidateLog: { lastIndex: 10, lastTerm: 3 }, ownRemoval: sole })).toBe(true);
    expect(decideVote({ ...base, candidateLog: { lastIndex: 4, lastTerm: 4 }, ownRemoval: sole })).toBe(true);
    expect(decideVote({ ...base, candidateLog: { lastIndex: 9, lastTerm: 3 }, ownRemoval: sole })).toBe(false);
    expect(decideVote({ ...base, ownVote: "c", candidateLog: { lastIndex: 10, lastTerm: 3 }, ownRemoval: sole })).toBe(
      false,
    );
    // Anyone else may be campaigning under a configuration two changes behind: no vote, however good its log.
    expect(
      decideVote({
        ...base,
        candidateLog: { lastIndex: 99, lastTerm: 9 },
        ownRemoval: { candidateIsSoleVoter: false },
      }),
    ).toBe(false);
    expect(
      decideVote({
        ...base,
        preVote: true,
        requestTerm: 6,
        candidateLog: { lastIndex: 99, lastTerm: 9 },
        ownRemoval: { candidateIsSoleVoter: false },
      }),
    ).toBe(false);
    // A member votes by the plain up-to-date rule.
    expect(decideVote({ ...base, candidateLog: { lastIndex: 4, lastTerm: 4 }, ownRemoval: null })).toBe(true);
  });

  it("a removed node of a larger cluster refuses even an up-to-date voter of the configuration that removed it", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    cluster.tickMany(4);
    expect(cluster.core(leader).proposeConfigChange({ kind: "remove", node: leader }).ok).toBe(true);
    cluster.tickUntil(() => cluster.status(leader).role === "follower", 20);
    cluster.tickMany(20); // long enough that stickiness no longer hides the answer
    const stayer = ["a", "b", "c"].find((id) => id !== leader && id !== cluster.leader()) as string;
    const removed = cluster.status(leader);
    expect(removed).toMatchObject({ removed: true, leader: null });
    const lastLogTerm = cluster.node(leader).store.entries.at(-1)?.term ?? 0;
    const request = {
      from: stayer,
      to: leader,
      term: removed.term + 1,
      lastLogIndex: removed.lastIndex + 5,
      lastLogTerm: lastLogTerm + 1,
      transfer: false,
    };
    cluster.queue = [];
    cluster.core(leader).step({ ...request, type: "preVote" });
    cluster.core(leader).step({ ...request, type: "vote" });
    cluster.processReadies(leader);
    expect(cluster.take((m) => m.from === leader).map(describeMessage)).toEqual([
      `${leader}->${stayer} preVoteResponse t${removed.term} rejected`,
      `${leader}->${stayer} voteResponse t${removed.term + 1} rejected`,
    ]);
    expect(cluster.status(leader).vote).toBeNull();
  });
});
