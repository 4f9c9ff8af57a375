// Finding 9 of issue 9: a voter whose storage was wiped may have voted in the current term already. It starts on
// voting probation (the shell sets it for new storage) and neither votes nor campaigns until the shell's census
// concluded (every other member told its persisted term and whether it holds a log) and, when some member holds a
// log, a leader caught it up; it then votes only in terms above every term reported. A brand-new cluster's census
// finds term 0 and no log anywhere, and it elects at once.
import { describe, expect, it } from "vitest";
import { createRaftNode, emptyPersistedState } from "../../src/replication/index.js";
import type { Membership, Message, RaftNodeApi } from "../../src/replication/types.js";
import { drainLoneCore, makeConfig, TestCluster } from "./helpers.js";

const MEMBERS: Membership = { voters: ["a", "b", "c"], learners: [] };

/** Handles every Ready through the one Ready loop (nothing to persist in memory here); returns the messages sent. */
function drain(core: RaftNodeApi): Message[] {
  return drainLoneCore(core).messages;
}

function wipedVoter(options: { probation: boolean }): RaftNodeApi {
  const core = createRaftNode({
    config: makeConfig("c", 3),
    persisted: emptyPersistedState(),
    bootstrap: MEMBERS,
    votingProbation: options.probation,
  });
  drain(core);
  return core;
}

/** c comes back empty into a cluster at term 3 whose log reaches 5; b campaigns in term 4. Does c grant its vote? */
function voteOfWipedVoter(options: { probation: boolean }): { granted: boolean; core: RaftNodeApi } {
  const core = wipedVoter(options);
  core.step({ type: "heartbeat", from: "a", to: "c", term: 3, commit: 5, readContext: null, round: 9 });
  drain(core);
  // a falls silent: after two election timeouts c no longer ignores campaigns (and, off probation, campaigns itself).
  for (let i = 0; i < 25; i++) {
    core.tick();
  }
  drain(core);
  core.step({ type: "vote", from: "b", to: "c", term: 4, lastLogIndex: 5, lastLogTerm: 3, transfer: false });
  const answer = drain(core).find((m) => m.type === "voteResponse");
  if (answer?.type !== "voteResponse") {
    throw new Error("no vote response");
  }
  return { granted: answer.granted, core };
}

/** Gives a node of the cluster a new core on empty storage, on probation (as the shell starts one on new storage). */
function startOnNewStorage(cluster: TestCluster, id: string): void {
  const node = cluster.node(id);
  node.core = createRaftNode({
    config: node.config,
    persisted: emptyPersistedState(),
    bootstrap: MEMBERS,
    votingProbation: true,
  });
  node.store.hardState = { term: 0, vote: null, commit: 0 };
  node.store.snapshot = null;
  node.store.entries = [];
  node.store.applied = 0;
  node.store.appliedEntries = [];
  cluster.processReadies(id);
}

/** A brand-new cluster of three whose voters all start with new storage, hence on probation (as the shell starts them). */
function brandNewClusterOnProbation(): TestCluster {
  const cluster = new TestCluster(["a", "b", "c"], { seed: 11 });
  for (const id of ["a", "b", "c"]) {
    startOnNewStorage(cluster, id);
  }
  return cluster;
}

describe("finding 9: a wiped voter does not vote until a leader caught it up", () => {
  it("finding 9: on probation, a voter that saw the cluster's log refuses a vote and does not campaign", () => {
    const { granted, core } = voteOfWipedVoter({ probation: true });
    expect(granted).toBe(false);
    expect(core.status().votingProbation).toBe(true);
    for (let i = 0; i < 100; i++) {
      core.tick();
    }
    expect(drain(core).filter((m) => m.type === "preVote" || m.type === "vote")).toEqual([]);
  });

  it("finding 9: without probation the wiped voter grants the vote (the check can fail)", () => {
    expect(voteOfWipedVoter({ probation: false }).granted).toBe(true);
  });

  it("finding 9: a leader catching it up is not enough; with the census concluded too it votes, above the census's term only", () => {
    const { core } = voteOfWipedVoter({ probation: true });
    const entries = [1, 2, 3, 4, 5].map((index) => ({
      index,
      term: index < 5 ? 3 : 4,
      kind: "noop" as const,
      data: "",
    }));
    core.step({ type: "append", from: "b", to: "c", term: 4, prevLogIndex: 0, prevLogTerm: 0, entries, commit: 5 });
    drain(core);
    expect(core.status().votingProbation).toBe(true);
    // a had persisted term 6 (c's lost storage may have voted there): c moves to term 6 with its vote spent. b's term-4
    // catch-up no longer counts: a leader of term 6 may have committed more.
    core.concludeVotingCensus({ maxTerm: 6, history: true });
    drain(core);
    expect(core.status().votingProbation).toBe(true);
    core.step({ type: "append", from: "a", to: "c", term: 6, prevLogIndex: 5, prevLogTerm: 4, entries: [], commit: 5 });
    const readyEvents = drainLoneCore(core).events.map((e) => e.kind);
    expect(readyEvents).toContain("votingProbationEnded");
    expect(core.status().votingProbation).toBe(false);
    expect(core.status().term).toBe(6);
    // a falls silent: past two election timeouts c no longer ignores campaigns as it does while a leader is live.
    for (let i = 0; i < 25; i++) {
      core.tick();
    }
    drain(core);
    core.step({ type: "vote", from: "a", to: "c", term: 6, lastLogIndex: 5, lastLogTerm: 4, transfer: false });
    const inTerm6 = drain(core).find((m) => m.type === "voteResponse");
    expect(inTerm6?.type === "voteResponse" && inTerm6.granted).toBe(false);
    core.step({ type: "vote", from: "a", to: "c", term: 7, lastLogIndex: 5, lastLogTerm: 4, transfer: false });
    const inTerm7 = drain(core).find((m) => m.type === "voteResponse");
    expect(inTerm7?.type === "voteResponse" && inTerm7.granted).toBe(true);
  });

  it("finding 9: with a log somewhere, the census alone does not end the probation (a leader must catch it up)", () => {
    const core = wipedVoter({ probation: true });
    core.concludeVotingCensus({ maxTerm: 3, history: true });
    drain(core);
    expect(core.status().votingProbation).toBe(true);
    core.step({ type: "vote", from: "b", to: "c", term: 4, lastLogIndex: 5, lastLogTerm: 3, transfer: false });
    const answer = drain(core).find((m) => m.type === "voteResponse");
    expect(answer?.type === "voteResponse" && answer.granted).toBe(false);
  });

  it("finding 9: a brand-new cluster whose voters all start on probation elects once each census found no log, and every probation ends", () => {
    const cluster = brandNewClusterOnProbation();
    for (const id of ["a", "b", "c"]) {
      expect(cluster.status(id).votingProbation).toBe(true);
      cluster.node(id).core.concludeVotingCensus({ maxTerm: 0, history: false });
      cluster.processReadies(id);
      expect(cluster.status(id).votingProbation).toBe(false);
    }
    const leader = cluster.elect();
    cluster.propose(leader, "x");
    cluster.deliverAll();
    expect(cluster.appliedData("c")).toContain("x");
  });

  it("finding 9: a brand-new cluster whose census never concluded elects nobody (probation is what keeps it from voting)", () => {
    const cluster = brandNewClusterOnProbation();
    expect(() => cluster.elect()).toThrow(/condition not reached/);
  });
});

/**
 * A follower of a 3-voter cluster comes back wiped, on probation, after `writes` entries (compacted every 5), and is
 * caught up by a snapshot sent the shell's way (at the leader's applied index); then the cluster idles and the leader
 * is cut off. Can the other two elect a leader?
 */
function wipedVoterCaughtUpBySnapshot(writes: number): {
  probation: boolean;
  snapshotIndexes: number[];
  elected: boolean;
} {
  const cluster = new TestCluster(["a", "b", "c"], { seed: 5, overrides: { snapshotThresholdEntries: 5 } });
  const leader = cluster.elect();
  for (let i = 0; i < writes; i++) {
    cluster.propose(leader, `v${i}`);
  }
  cluster.tickMany(10);
  const wiped = ["a", "b", "c"].find((id) => id !== leader)!;
  startOnNewStorage(cluster, wiped);
  cluster.core(wiped).concludeVotingCensus({ maxTerm: cluster.status(leader).term, history: true });
  cluster.processReadies(wiped);
  const snapshotIndexes: number[] = [];
  cluster.snapshotSentAt = (sender, message) => {
    snapshotIndexes.push(message.snapshot.index);
    return sender.store.applied;
  };
  cluster.core(leader).reportPeerLogLost(wiped, 0);
  cluster.processReadies(leader);
  cluster.tickMany(200);
  const probation = cluster.status(wiped).votingProbation;
  cluster.isolate(leader);
  const others = ["a", "b", "c"].filter((id) => id !== leader);
  let elected = true;
  try {
    cluster.tickUntil(() => others.some((id) => cluster.status(id).role === "leader"), 500, others);
  } catch {
    elected = false;
  }
  return { probation, snapshotIndexes, elected };
}

describe("a wiped voter caught up by a stale leader before its census concluded (review of issue 11)", () => {
  for (const via of ["an append below its commit", "an append at its last index"] as const) {
    it(`stays on probation when the census finds a later term (${via})`, () => {
      const core = wipedVoter({ probation: true });
      // a, a deposed leader of term 5 (b leads term 7 and committed with c's lost vote and ack), catches c up.
      core.step({
        type: "snapshot",
        from: "a",
        to: "c",
        term: 5,
        snapshot: { index: 5, term: 5, membership: MEMBERS },
      });
      drain(core);
      const prevLogIndex = via === "an append below its commit" ? 2 : 5;
      core.step({ type: "append", from: "a", to: "c", term: 5, prevLogIndex, prevLogTerm: 5, entries: [], commit: 5 });
      drain(core);
      core.concludeVotingCensus({ maxTerm: 7, history: true });
      drain(core);
      expect(core.status().votingProbation).toBe(true);
      core.step({ type: "vote", from: "a", to: "c", term: 8, lastLogIndex: 5, lastLogTerm: 5, transfer: false });
      const answer = drain(core).find((m) => m.type === "voteResponse");
      expect(answer?.type === "voteResponse" && answer.granted).toBe(false);
      // A leader of the census's term or later (b, leading term 8 now) catches it up: the probation ends.
      core.step({
        type: "append",
        from: "b",
        to: "c",
        term: 8,
        prevLogIndex: 5,
        prevLogTerm: 5,
        entries: [],
        commit: 5,
      });
      drain(core);
      expect(core.status().votingProbation).toBe(false);
    });
  }

  it("ends the probation at the census when the leader that caught it up is of the census's term", () => {
    const core = wipedVoter({ probation: true });
    core.step({ type: "snapshot", from: "a", to: "c", term: 5, snapshot: { index: 5, term: 5, membership: MEMBERS } });
    drain(core);
    core.step({ type: "append", from: "a", to: "c", term: 5, prevLogIndex: 5, prevLogTerm: 5, entries: [], commit: 5 });
    drain(core);
    core.concludeVotingCensus({ maxTerm: 5, history: true });
    drain(core);
    expect(core.status().votingProbation).toBe(false);
  });
});

describe("a wiped voter caught up by a snapshot at the leader's last index (review of issue 11)", () => {
  it("an append below its commit index ends the probation too, once it holds the leader's commit", () => {
    const core = wipedVoter({ probation: true });
    core.concludeVotingCensus({ maxTerm: 3, history: true });
    drain(core);
    const snapshot = { index: 5, term: 3, membership: MEMBERS };
    core.step({ type: "snapshot", from: "a", to: "c", term: 3, snapshot });
    drain(core);
    expect(core.status()).toMatchObject({ commit: 5, votingProbation: true });
    // A probe from before the snapshot: its prevLogIndex is below our commit, and the leader's commit is 5.
    core.step({ type: "append", from: "a", to: "c", term: 3, prevLogIndex: 2, prevLogTerm: 3, entries: [], commit: 5 });
    drain(core);
    expect(core.status().votingProbation).toBe(false);
  });

  it("ends its probation without waiting for a write: the leader resumes with an append even if it is empty", () => {
    for (let writes = 6; writes <= 14; writes++) {
      const outcome = wipedVoterCaughtUpBySnapshot(writes);
      expect(outcome.snapshotIndexes.length, `writes ${writes}`).toBeGreaterThan(0);
      expect(outcome, `writes ${writes}`).toMatchObject({ probation: false, elected: true });
    }
  });
});
