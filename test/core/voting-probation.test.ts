// Finding 9 of issue 9: a voter whose storage was wiped may have voted in the current term already. It starts on
// voting probation (the shell sets it for new storage) and neither votes nor campaigns once it has seen that the
// cluster has a log, until a leader has caught it up; a brand-new cluster still elects its first leader.
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

  it("finding 9: once a leader's append brings it to the leader's commit index, the probation ends and it votes again", () => {
    const { core } = voteOfWipedVoter({ probation: true });
    const entries = [1, 2, 3, 4, 5].map((index) => ({
      index,
      term: index < 5 ? 3 : 4,
      kind: "noop" as const,
      data: "",
    }));
    core.step({ type: "append", from: "b", to: "c", term: 4, prevLogIndex: 0, prevLogTerm: 0, entries, commit: 5 });
    const readyEvents = drainLoneCore(core).events.map((e) => e.kind);
    expect(readyEvents).toContain("votingProbationEnded");
    expect(core.status().votingProbation).toBe(false);
    // b falls silent in turn; a campaigns in term 5 and c, off probation, votes like any voter.
    for (let i = 0; i < 25; i++) {
      core.tick();
    }
    drain(core);
    core.step({ type: "vote", from: "a", to: "c", term: 9, lastLogIndex: 5, lastLogTerm: 4, transfer: false });
    const answer = drain(core).find((m) => m.type === "voteResponse");
    expect(answer?.type === "voteResponse" && answer.granted).toBe(true);
  });

  it("finding 9: a brand-new cluster whose voters all start on probation elects a leader, and every probation ends", () => {
    const cluster = new TestCluster(["a", "b", "c"], { seed: 11 });
    for (const id of ["a", "b", "c"]) {
      const node = cluster.node(id);
      node.core = createRaftNode({
        config: node.config,
        persisted: emptyPersistedState(),
        bootstrap: MEMBERS,
        votingProbation: true,
      });
      cluster.processReadies(id);
    }
    const leader = cluster.elect();
    cluster.propose(leader, "x");
    cluster.deliverAll();
    for (const id of ["a", "b", "c"]) {
      expect(cluster.status(id).votingProbation).toBe(false);
    }
    expect(cluster.appliedData("c")).toContain("x");
  });
});
