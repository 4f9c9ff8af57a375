import { describe, expect, it } from "vitest";
import { ElectionTimer } from "../../src/election/election.js";
import { VoteTally } from "../../src/election/votes.js";
import { SeededRandom } from "../../src/replication/index.js";
import type { Message, VoteRequest } from "../../src/replication/types.js";
import { BASE_CONFIG, TestCluster, describeMessage } from "./helpers.js";

const isCampaignMessage = (m: Message): boolean =>
  m.type === "preVote" || m.type === "preVoteResponse" || m.type === "vote" || m.type === "voteResponse";

describe("election timer and tally", () => {
  it("draws every timeout uniformly from [min, 1.5 * min), from at least two values", () => {
    const draws = (minTicks: number): Set<number> => {
      const timer = new ElectionTimer(minTicks, new SeededRandom(7));
      const seen = new Set<number>();
      for (let i = 0; i < 2000; i++) {
        timer.reset();
        seen.add(timer.currentTimeoutTicks());
      }
      return seen;
    };
    expect([...draws(10)].sort((a, b) => a - b)).toEqual([10, 11, 12, 13, 14]);
    expect([...draws(3)].sort((a, b) => a - b)).toEqual([3, 4]);
    expect([...draws(5)].sort((a, b) => a - b)).toEqual([5, 6, 7]);
  });

  it("counts each voter once, ignores non-voters, and decides on a majority", () => {
    const tally = new VoteTally(["a", "b", "c", "d", "e"]);
    tally.record("a", true);
    tally.record("a", false); // duplicate: the first answer stands
    tally.record("x", true); // not a voter
    tally.record("b", true);
    expect(tally.outcome()).toBe("pending");
    tally.record("c", true);
    expect(tally.outcome()).toBe("won");
    const losing = new VoteTally(["a", "b", "c"]);
    losing.record("a", true);
    losing.record("b", false);
    expect(losing.outcome()).toBe("pending");
    losing.record("c", false);
    expect(losing.outcome()).toBe("lost");
  });
});

describe("elections", () => {
  it("a single voter elects itself as soon as its timer fires", () => {
    const cluster = new TestCluster(["a"]);
    const ticks = cluster.tickUntil(() => cluster.status("a").role === "leader", 30);
    expect(ticks).toBeGreaterThanOrEqual(10);
    expect(ticks).toBeLessThan(20);
    expect(cluster.status("a").term).toBe(1);
    expect(cluster.node("a").store.hardState).toMatchObject({ term: 1, vote: "a" });
    cluster.propose("a", "x");
    cluster.deliverAll();
    expect(cluster.appliedData("a")).toEqual(["x"]);
  });

  it("three voters elect exactly one leader, which everyone follows", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    expect(cluster.status("a").election.status).toBe("NO_LEADER");
    const leader = cluster.elect();
    const term = cluster.status(leader).term;
    expect(term).toBe(1);
    for (const id of ["a", "b", "c"]) {
      const status = cluster.status(id);
      expect(status.leader).toBe(leader);
      expect(status.term).toBe(term);
      expect(status.election.status).toBe("ELECTED");
      expect(status.election.lastElectionTicks).not.toBeNull();
    }
    expect(cluster.node(leader).events.some((e) => e.kind === "becameLeader" && e.term === 1)).toBe(true);
    // The leader's first entry of its term is the no-op.
    expect(cluster.node(leader).store.entries.at(-1)).toMatchObject({ index: 1, term: 1, kind: "noop" });
  });

  it("puts term and vote in the hard state of the very Ready that carries the vote response", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    for (const id of ["a", "b", "c"].filter((x) => x !== leader)) {
      const readies = cluster.node(id).readies;
      const withGrant = readies.find((r) => r.messages.some((m) => m.type === "voteResponse" && m.granted));
      if (withGrant === undefined) {
        continue;
      } // this follower's vote was not needed
      const grant = withGrant.messages.find((m) => m.type === "voteResponse" && m.granted) as Message;
      expect(withGrant.hardState).toMatchObject({ term: grant.term, vote: grant.to });
    }
  });

  it("resolves a split vote in a later term", () => {
    const cluster = new TestCluster(["a", "b", "c", "d"], { overrides: { checkQuorum: false } });
    // a and b both time out; nothing is delivered meanwhile.
    for (const id of ["a", "b"]) {
      for (let i = 0; i < 40 && cluster.status(id).role !== "preCandidate"; i++) {
        cluster.tickQuietly(id);
      }
      expect(cluster.status(id).role).toBe("preCandidate");
    }
    cluster.deliverMatching((m) => m.type === "preVote" || m.type === "preVoteResponse");
    expect(cluster.status("a")).toMatchObject({ role: "candidate", term: 1 });
    expect(cluster.status("b")).toMatchObject({ role: "candidate", term: 1 });
    // c votes for a, d for b: two votes each out of four, no majority.
    const order = ["a->c", "b->d", "a->d", "b->c", "a->b", "b->a"];
    for (const link of order) {
      const [from, to] = link.split("->");
      cluster.deliverOne((m) => m.type === "vote" && m.from === from && m.to === to);
    }
    cluster.deliverAll();
    expect(cluster.leader()).toBeNull();
    expect(["a", "b"].map((id) => cluster.status(id).role)).not.toContain("leader");
    const leader = cluster.elect();
    expect(cluster.status(leader).term).toBeGreaterThanOrEqual(2);
    const leaders = ["a", "b", "c", "d"].filter((id) => cluster.status(id).role === "leader");
    expect(leaders).toEqual([leader]);
  });

  it("PreVote keeps a partitioned node from raising its term, and it rejoins without disrupting", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    const term = cluster.status(leader).term;
    const follower = ["a", "b", "c"].find((id) => id !== leader) as string;
    cluster.isolate(follower);
    cluster.tickMany(100);
    expect(cluster.status(follower).term).toBe(term);
    expect(cluster.status(follower).role).toBe("preCandidate");
    expect(cluster.status(follower).election.status).toBe("VOTING");
    cluster.heal();
    cluster.tickMany(30);
    expect(cluster.status(leader)).toMatchObject({ role: "leader", term });
    expect(cluster.status(follower)).toMatchObject({ role: "follower", leader, term });
  });

  it("sticks to a live leader: (pre)votes for a newer term are ignored unless a transfer asks", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    const [follower, other] = ["a", "b", "c"].filter((id) => id !== leader) as [string, string];
    const term = cluster.status(follower).term;
    const lastIndex = cluster.status(other).lastIndex;
    const request = (type: "preVote" | "vote", transfer: boolean): VoteRequest =>
      ({
        type,
        from: other,
        to: follower,
        term: term + 1,
        lastLogIndex: lastIndex + 5,
        lastLogTerm: term,
        transfer,
      }) as VoteRequest;
    cluster.core(follower).step(request("preVote", false));
    cluster.core(follower).step(request("vote", false));
    cluster.processReadies(follower);
    expect(cluster.queue.filter((m) => m.from === follower)).toEqual([]);
    expect(cluster.status(follower).term).toBe(term);
    // A campaign started by a leadership transfer is not subject to stickiness.
    cluster.core(follower).step(request("vote", true));
    cluster.processReadies(follower);
    const answers = cluster.take((m) => m.from === follower).map(describeMessage);
    expect(answers).toEqual([`${follower}->${other} voteResponse t${term + 1} granted`]);
    expect(cluster.status(follower)).toMatchObject({ term: term + 1, vote: other });
  });

  it("a pre-candidate asks again, every heartbeat, the voters that have not answered: one that ignored it while it still heard from the leader grants it as soon as that ends", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    const [early, late] = ["a", "b", "c"].filter((id) => id !== leader) as [string, string];
    cluster.isolate(leader);
    // `early` times out first; `late` has not ticked, so it still heard from its leader within the minimum timeout.
    cluster.tickUntil(() => cluster.status(early).role === "preCandidate", 30, [early]);
    expect(cluster.status(late)).toMatchObject({ role: "follower", leader });
    // `late`'s leader contact ages, one tick at a time; `early` keeps asking every heartbeat interval. It wins as
    // soon as `late` stops ignoring it, before `late`'s own timer fires (drawn at or above the minimum timeout).
    for (let tick = 0; tick < BASE_CONFIG.electionTimeoutTicks; tick++) {
      cluster.tick([late]);
      cluster.tickMany(BASE_CONFIG.heartbeatIntervalTicks, [early]);
      expect(cluster.status(late).role).toBe("follower");
    }
    expect(cluster.status(early).role).toBe("leader");
    expect(cluster.status(late)).toMatchObject({ role: "follower", leader: early });
  });

  it("a follower that has not heard from a leader within the minimum timeout grants a pre-vote without changing its term", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    const [follower, other] = ["a", "b", "c"].filter((id) => id !== leader) as [string, string];
    const term = cluster.status(follower).term;
    cluster.isolate(leader);
    cluster.tickMany(10, [follower]); // no leader contact for the minimum election timeout
    cluster.take(() => true);
    // Whether or not its own timer fired already (then it is a pre-candidate), it knows no live leader now.
    expect(cluster.status(follower).leader === null || cluster.status(follower).role === "follower").toBe(true);
    cluster.core(follower).step({
      type: "preVote",
      from: other,
      to: follower,
      term: term + 1,
      lastLogIndex: 100,
      lastLogTerm: term,
      transfer: false,
    });
    cluster.processReadies(follower);
    const answers = cluster.take((m) => m.from === follower).map(describeMessage);
    expect(answers).toEqual([`${follower}->${other} preVoteResponse t${term + 1} granted`]);
    expect(cluster.status(follower).term).toBe(term);
  });

  it("CheckQuorum: a leader cut off from the voters steps down, and the others elect a new one", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    cluster.isolate(leader);
    const ticks = cluster.tickUntil(() => cluster.status(leader).role !== "leader", 40);
    expect(ticks).toBeLessThanOrEqual(20);
    expect(cluster.node(leader).events.some((e) => e.kind === "steppedDown" && e.reason.includes("check quorum"))).toBe(
      true,
    );
    const others = ["a", "b", "c"].filter((id) => id !== leader);
    cluster.tickUntil(() => others.some((id) => cluster.status(id).role === "leader"), 200);
  });

  it("without CheckQuorum a deposed leader learns the newer term from the answers to its appends", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { checkQuorum: false } });
    const oldLeader = cluster.elect();
    cluster.isolate(oldLeader);
    const others = ["a", "b", "c"].filter((id) => id !== oldLeader);
    cluster.tickUntil(() => others.some((id) => cluster.status(id).role === "leader"), 300);
    expect(cluster.status(oldLeader).role).toBe("leader");
    cluster.heal();
    cluster.tickMany(5);
    expect(cluster.status(oldLeader).role).toBe("follower");
    expect(cluster.leader()).not.toBe(oldLeader);
  });

  it("learners and nodes without a membership never campaign", () => {
    const cluster = new TestCluster(["a", "b", "c"], { learners: ["l"] });
    cluster.addNode("fresh");
    cluster.isolate("l");
    cluster.isolate("fresh");
    cluster.tickMany(200, ["l", "fresh"]);
    for (const id of ["l", "fresh"]) {
      expect(cluster.status(id)).toMatchObject({ role: "follower", term: 0 });
      expect(cluster.queue.filter((m) => m.from === id && isCampaignMessage(m))).toEqual([]);
    }
  });

  it("reports VOTING during a campaign and the election duration once a leader is known", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    for (let i = 0; i < 40 && cluster.status("a").role !== "preCandidate"; i++) {
      cluster.tickQuietly("a");
    }
    expect(cluster.status("a").election.status).toBe("VOTING");
    cluster.deliverAll();
    const leader = cluster.leader();
    expect(leader).toBe("a");
    const status = cluster.status("a");
    expect(status.election.status).toBe("ELECTED");
    expect(status.election.lastElectionTicks).toBe(0);
  });

  it("elects a leader for many seeds and never two in one term", () => {
    for (let seed = 1; seed <= 30; seed++) {
      const cluster = new TestCluster(["a", "b", "c", "d", "e"], { seed: seed * 100 });
      const leadersByTerm = new Map<number, Set<string>>();
      for (let tick = 0; tick < 200; tick++) {
        cluster.tick();
        for (const id of cluster.nodes.keys()) {
          const status = cluster.status(id);
          if (status.role !== "leader") {
            continue;
          }
          const set = leadersByTerm.get(status.term) ?? new Set<string>();
          set.add(id);
          leadersByTerm.set(status.term, set);
        }
      }
      expect(leadersByTerm.size).toBeGreaterThan(0);
      for (const leaders of leadersByTerm.values()) {
        expect(leaders.size).toBe(1);
      }
    }
  });
});

describe("quiet ticks (how long the shell may let a node sleep)", () => {
  it("a follower may skip exactly the ticks before its election timer fires; a leader and a campaigner tick each tick", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    const follower = ["a", "b", "c"].find((id) => id !== leader)!;
    expect(cluster.core(leader).quietTicks()).toBe(1);
    cluster.tick([leader]);
    const quiet = cluster.core(follower).quietTicks();
    expect(quiet).toBeGreaterThanOrEqual(1);
    expect(quiet).toBeLessThan(20);
    // The leader falls silent: after quiet - 1 ticks the follower still follows, and the next one starts its campaign.
    for (let i = 0; i < quiet - 1; i++) {
      cluster.tickQuietly(follower);
      expect(cluster.status(follower).role).toBe("follower");
      expect(cluster.core(follower).quietTicks()).toBe(quiet - 1 - i);
    }
    cluster.tickQuietly(follower);
    expect(cluster.status(follower).role).toBe("preCandidate");
    expect(cluster.core(follower).quietTicks()).toBe(1);
  });

  it("a follower with a read forwarded to the leader ticks each tick (the read's deadline counts ticks)", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    const follower = ["a", "b", "c"].find((id) => id !== leader)!;
    cluster.tick([leader]);
    expect(cluster.core(follower).quietTicks()).toBeGreaterThan(1);
    expect(cluster.core(follower).requestRead("r1")).toMatchObject({ ok: true });
    expect(cluster.core(follower).quietTicks()).toBe(1);
  });
});
