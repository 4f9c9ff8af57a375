import { describe, expect, it } from "vitest";
import {
  RaftConfigError,
  RaftInvariantError,
  SeededRandom,
  createRaftNode,
  emptyPersistedState,
  validateRaftConfig,
} from "../../src/replication/index.js";
import { BASE_CONFIG, TestCluster, makeConfig } from "./helpers.js";

describe("configuration validation", () => {
  it("accepts the base configuration and rejects bad ones with every problem listed", () => {
    expect(() => validateRaftConfig(makeConfig("a", 1))).not.toThrow();
    const bad = () =>
      validateRaftConfig({
        ...makeConfig("a", 1),
        heartbeatIntervalTicks: 10,
        electionTimeoutTicks: 10,
        maxInflightMessages: 0,
        leaseRead: true,
        checkQuorum: false,
      });
    expect(bad).toThrow(RaftConfigError);
    try {
      bad();
    } catch (error) {
      const problems = (error as RaftConfigError).problems;
      expect(problems.some((p) => p.includes("heartbeatIntervalTicks (10) must be below electionTimeoutTicks"))).toBe(
        true,
      );
      expect(problems.some((p) => p.includes("maxInflightMessages"))).toBe(true);
      expect(problems.some((p) => p.includes("leaseRead requires checkQuorum"))).toBe(true);
    }
    expect(() => validateRaftConfig({ ...makeConfig("", 1) })).toThrow(/id must be a non-empty string/);
    expect(() => validateRaftConfig({ ...makeConfig("a", 1), snapshotThresholdEntries: 1.5 })).toThrow(
      /snapshotThresholdEntries/,
    );
    expect(() => validateRaftConfig({ ...makeConfig("a", 1), leaseSafetyMarginTicks: 10 })).toThrow(
      /leaseSafetyMarginTicks/,
    );
  });

  it("SeededRandom replays the same stream for the same seed and stays in range", () => {
    const a = new SeededRandom(42);
    const b = new SeededRandom(42);
    const draws = Array.from({ length: 100 }, () => a.nextInt(7));
    expect(Array.from({ length: 100 }, () => b.nextInt(7))).toEqual(draws);
    expect(draws.every((d) => d >= 0 && d < 7)).toBe(true);
    expect(new Set(draws).size).toBe(7);
    expect(() => a.nextInt(0)).toThrow(RangeError);
  });

  it("rejects a persisted state that contradicts itself", () => {
    const config = makeConfig("a", 1);
    const entries = [
      { index: 1, term: 1, kind: "normal" as const, data: "" },
      { index: 3, term: 1, kind: "normal" as const, data: "" },
    ];
    expect(() =>
      createRaftNode({
        config,
        persisted: { ...emptyPersistedState(), hardState: { term: 1, vote: null, commit: 0 }, entries },
      }),
    ).toThrow(/not contiguous/);
    expect(() =>
      createRaftNode({
        config,
        persisted: { ...emptyPersistedState(), hardState: { term: 1, vote: null, commit: 5 } },
      }),
    ).toThrow(RaftInvariantError);
    expect(() =>
      createRaftNode({ config, persisted: emptyPersistedState(), bootstrap: { voters: [], learners: [] } }),
    ).toThrow(/at least one voter/);
  });
});

describe("driving contract", () => {
  it("hands out one Ready at a time and insists on getting the same one back", () => {
    const core = createRaftNode({
      config: { ...BASE_CONFIG, id: "a", random: new SeededRandom(1) },
      persisted: emptyPersistedState(),
      bootstrap: { voters: ["a"], learners: [] },
    });
    // This test drives the core by hand on purpose: it checks that the core refuses a driver breaking the contract.
    // eslint-disable-next-line no-restricted-syntax
    const ready = core.ready();
    expect(core.hasReady()).toBe(false);
    // eslint-disable-next-line no-restricted-syntax
    expect(() => core.ready()).toThrow(RaftInvariantError);
    expect(() => core.advance({ ...ready })).toThrow(RaftInvariantError);
    core.advance(ready);
    expect(core.hasReady()).toBe(false);
  });
});

describe("restarts", () => {
  it("hard state, log, snapshot and membership survive; the cluster carries on", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { snapshotThresholdEntries: 4 } });
    const leader = cluster.elect();
    for (let i = 0; i < 6; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.tickMany(4);
    for (const id of ["a", "b", "c"]) {
      const before = cluster.status(id);
      cluster.restart(id);
      const after = cluster.status(id);
      expect(after).toMatchObject({
        role: "follower",
        leader: null,
        term: before.term,
        vote: before.vote,
        commit: before.commit,
      });
      expect(after.lastIndex).toBe(before.lastIndex);
      expect(after.firstIndex).toBe(before.firstIndex);
      expect(after.firstIndex).toBeGreaterThan(1);
      expect(after.membership).toEqual(before.membership);
    }
    const next = cluster.elect();
    cluster.propose(next, "after restart");
    cluster.tickMany(4);
    for (const id of ["a", "b", "c"]) {
      expect(cluster.appliedData(id)).toContain("after restart");
    }
  });

  it("a restarted node remembers its vote and refuses a second candidate in the same term", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    const voter = ["a", "b", "c"].find((id) => id !== leader && cluster.status(id).vote === leader) as string;
    expect(voter).toBeDefined();
    const other = ["a", "b", "c"].find((id) => id !== leader && id !== voter) as string;
    const term = cluster.status(voter).term;
    cluster.restart(voter);
    cluster
      .core(voter)
      .step({ type: "vote", from: other, to: voter, term, lastLogIndex: 99, lastLogTerm: term, transfer: false });
    cluster.processReadies(voter);
    expect(cluster.take((m) => m.from === voter && m.type === "voteResponse")).toEqual([
      expect.objectContaining({ granted: false }),
    ]);
  });

  it("re-applies committed entries after the applied index on restart", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    for (let i = 0; i < 3; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.tickMany(4);
    const follower = ["a", "b", "c"].find((id) => id !== leader) as string;
    // The state machine lost its last two applications (torn crash before they were durable).
    const store = cluster.node(follower).store;
    store.applied -= 2;
    store.appliedEntries = store.appliedEntries.slice(0, -2);
    cluster.restart(follower);
    expect(cluster.appliedData(follower)).toEqual(["v0", "v1", "v2"]);
  });
});
