import { describe, expect, it } from "vitest";
import type {
  AppendEntries,
  AppendResponse,
  LogEntry,
  Membership,
  Message,
  PersistedState,
} from "../../src/replication/types.js";
import { SeededRandom } from "../../src/replication/index.js";
import { TestCluster, describeMessage } from "./helpers.js";

/** Entries 1..n with the given terms (data "e<index>t<term>"). */
function logWithTerms(terms: readonly number[]): LogEntry[] {
  return terms.map((term, i) => ({ index: i + 1, term, kind: "normal", data: `e${i + 1}t${term}` }));
}

function persistedWith(options: {
  term: number;
  terms: readonly number[];
  commit: number;
  membership: Membership;
  vote?: string | null;
}): PersistedState {
  return {
    hardState: { term: options.term, vote: options.vote ?? null, commit: options.commit },
    snapshot: { index: 0, term: 0, membership: options.membership },
    entries: logWithTerms(options.terms),
    applied: options.commit,
  };
}

/** Ticks `id` alone (nothing delivered) until it starts a pre-campaign, then runs the election messages only. */
function campaignAlone(cluster: TestCluster, id: string): void {
  for (let i = 0; i < 60 && cluster.status(id).role === "follower"; i++) {
    cluster.tickQuietly(id);
  }
  cluster.deliverMatching(
    (m) => m.type === "preVote" || m.type === "preVoteResponse" || m.type === "vote" || m.type === "voteResponse",
  );
}

const appendsTo =
  (to: string) =>
  (m: Message): m is AppendEntries =>
    m.type === "append" && m.to === to;

describe("log matching and truncation", () => {
  it("a new leader truncates a follower's conflicting suffix and the follower reports it in truncateFrom", () => {
    const membership = { voters: ["a", "b", "c"], learners: [] };
    const cluster = new TestCluster([]);
    cluster.addNode("a", { persisted: persistedWith({ term: 3, terms: [1, 1, 3], commit: 1, membership }) });
    cluster.addNode("b", { persisted: persistedWith({ term: 2, terms: [1, 2, 2, 2], commit: 1, membership }) });
    cluster.addNode("c", { persisted: persistedWith({ term: 3, terms: [1, 1, 3], commit: 1, membership }) });
    campaignAlone(cluster, "a");
    expect(cluster.status("a")).toMatchObject({ role: "leader", term: 4 });
    cluster.deliverAll();
    cluster.tickMany(3);
    const bReadies = cluster.node("b").readies;
    const truncating = bReadies.find((r) => r.truncateFrom !== null);
    expect(truncating?.truncateFrom).toBe(2);
    expect(cluster.node("b").store.entries.map((e) => e.term)).toEqual([1, 1, 3, 4]);
    expect(cluster.status("b").commit).toBe(4);
  });

  it("a rejection carries a fast back-off hint (etcd findConflictByTerm) that skips a whole term at once", () => {
    const membership = { voters: ["a", "b", "c"], learners: [] };
    const cluster = new TestCluster([]);
    // b holds a long tail of term 2 that the new leader never had.
    cluster.addNode("a", { persisted: persistedWith({ term: 5, terms: [1, 1, 3, 3, 3, 3], commit: 1, membership }) });
    cluster.addNode("b", {
      persisted: persistedWith({ term: 2, terms: [1, 1, 2, 2, 2, 2, 2, 2, 2], commit: 1, membership }),
    });
    cluster.addNode("c", { persisted: persistedWith({ term: 5, terms: [1, 1, 3, 3, 3, 3], commit: 1, membership }) });
    campaignAlone(cluster, "a");
    expect(cluster.status("a")).toMatchObject({ role: "leader", term: 6 });
    // The first probe to b: prevLogIndex 6 (term 3).
    const probe = cluster.queue.find(appendsTo("b")) as AppendEntries;
    expect([probe.prevLogIndex, probe.prevLogTerm]).toEqual([6, 3]);
    cluster.deliverOne((m) => m === probe);
    const rejection = cluster.queue.find((m) => m.type === "appendResponse" && m.from === "b") as AppendResponse;
    // b's largest index <= 6 with a term <= 3 is 6 (term 2).
    expect(rejection).toMatchObject({ success: false, index: 6, rejectHint: { index: 6, term: 2 } });
    cluster.deliverOne((m) => m === rejection);
    // The leader's own largest index <= 6 with term <= 2 is 2: it probes at 2 directly, not 5, 4, 3...
    const secondProbe = cluster.queue.find(appendsTo("b")) as AppendEntries;
    expect([secondProbe.prevLogIndex, secondProbe.prevLogTerm]).toEqual([2, 1]);
    cluster.deliverAll();
    expect(cluster.node("b").store.entries.map((e) => e.term)).toEqual([1, 1, 3, 3, 3, 3, 6]);
  });

  it("a follower that lacks entries hints its last index", () => {
    const membership = { voters: ["a", "b", "c"], learners: [] };
    const cluster = new TestCluster([]);
    cluster.addNode("a", { persisted: persistedWith({ term: 2, terms: [1, 1, 2, 2, 2], commit: 1, membership }) });
    cluster.addNode("b", { persisted: persistedWith({ term: 2, terms: [1], commit: 1, membership }) });
    cluster.addNode("c", { persisted: persistedWith({ term: 2, terms: [1, 1, 2, 2, 2], commit: 1, membership }) });
    campaignAlone(cluster, "a");
    cluster.deliverOne(appendsTo("b"));
    const rejection = cluster.queue.find((m) => m.type === "appendResponse" && m.from === "b") as AppendResponse;
    expect(rejection).toMatchObject({ success: false, index: 5, rejectHint: { index: 1, term: 1 } });
    cluster.deliverAll();
    expect(cluster.node("b").store.entries.map((e) => e.term)).toEqual([1, 1, 2, 2, 2, 3]);
  });
});

describe("commit rule (Raft Figure 8)", () => {
  /**
   * s1 leads term 4 with [1:1, 2:2]; entry 2 (term 2) reaches s2 and s3 (a majority of five) before the term-4
   * no-op does. Counting replicas must not commit entry 2: s5, with [1:1, 2:3], could still be elected and
   * overwrite it. Once the no-op of term 4 is on a majority, both commit.
   */
  function figure8(unsafe: boolean): TestCluster {
    const membership = { voters: ["s1", "s2", "s3", "s4", "s5"], learners: [] };
    const cluster = new TestCluster([]);
    const overrides = unsafe ? { unsafeTestingFaults: { commitPreviousTermByCounting: true } } : {};
    cluster.addNode("s1", { persisted: persistedWith({ term: 3, terms: [1, 2], commit: 1, membership }), overrides });
    cluster.addNode("s2", { persisted: persistedWith({ term: 3, terms: [1, 2], commit: 1, membership }), overrides });
    for (const id of ["s3", "s4"]) {
      cluster.addNode(id, { persisted: persistedWith({ term: 3, terms: [1], commit: 1, membership }), overrides });
    }
    cluster.addNode("s5", { persisted: persistedWith({ term: 3, terms: [1, 3], commit: 1, membership }), overrides });
    campaignAlone(cluster, "s1");
    expect(cluster.status("s1")).toMatchObject({ role: "leader", term: 4 });
    // Replace the first appends by ones that carry entry 2 only (the no-op is "still in flight").
    cluster.take((m) => m.type === "append");
    const entry2 = cluster.node("s1").store.entries[1] as LogEntry;
    for (const to of ["s2", "s3"]) {
      cluster.core(to).step({
        type: "append",
        from: "s1",
        to,
        term: 4,
        prevLogIndex: 1,
        prevLogTerm: 1,
        entries: [entry2],
        commit: 1,
      });
      cluster.processReadies(to);
    }
    cluster.deliverMatching((m) => m.type === "appendResponse");
    return cluster;
  }

  it("the leader does not commit an entry of an earlier term by counting replicas", () => {
    const cluster = figure8(false);
    expect(cluster.status("s1").commit).toBe(1);
    cluster.take((m) => m.type === "append" && m.to === "s5");
    cluster.deliverAll();
    cluster.tickMany(2);
    // The no-op of term 4 reached a majority: it commits, and entry 2 with it.
    expect(cluster.status("s1").commit).toBe(3);
  });

  it("with the test-only fault switched on, it does (so the simulator's checkers can be shown to bite)", () => {
    const cluster = figure8(true);
    expect(cluster.status("s1").commit).toBe(2);
  });
});

describe("proposals, batching and flow control", () => {
  it("several proposals between two Readys go out in one AppendEntries per follower", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    cluster.tickMany(3);
    const core = cluster.core(leader);
    for (const data of ["x", "y", "z"]) {
      expect(core.propose(data).ok).toBe(true);
    }
    cluster.processReadies(leader);
    const appends = cluster.queue.filter((m): m is AppendEntries => m.type === "append");
    expect(appends).toHaveLength(2);
    for (const append of appends) {
      expect(append.entries.map((e) => e.data)).toEqual(["x", "y", "z"]);
    }
    cluster.deliverAll();
    cluster.tickMany(2);
    for (const id of ["a", "b", "c"]) {
      expect(cluster.appliedData(id)).toEqual(["x", "y", "z"]);
    }
  });

  it("limits the AppendEntries in flight per follower, then resumes as acknowledgements arrive", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { maxInflightMessages: 2, maxMessageBytes: 10 } });
    const leader = cluster.elect();
    cluster.tickMany(3);
    for (let i = 0; i < 5; i++) {
      cluster.propose(leader, `value-${i}`.padEnd(10, "."));
    }
    const follower = ["a", "b", "c"].find((id) => id !== leader) as string;
    const inFlight = cluster.queue.filter(appendsTo(follower)).filter((m) => m.entries.length > 0);
    expect(inFlight).toHaveLength(2);
    for (const append of inFlight) {
      expect(append.entries).toHaveLength(1);
    }
    cluster.deliverAll();
    cluster.tickMany(2);
    expect(cluster.appliedData(follower)).toHaveLength(5);
  });

  it("caps the payload bytes of one message but always sends at least one entry", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { maxMessageBytes: 25 } });
    const leader = cluster.elect();
    cluster.tickMany(3);
    const core = cluster.core(leader);
    for (const data of ["0123456789", "0123456789", "0123456789"]) {
      core.propose(data);
    }
    core.propose("x".repeat(100));
    cluster.processReadies(leader);
    const follower = ["a", "b", "c"].find((id) => id !== leader) as string;
    const sizes = () => cluster.queue.filter(appendsTo(follower)).map((m) => m.entries.map((e) => e.data.length));
    expect(sizes()[0]).toEqual([10, 10]);
    cluster.deliverAll();
    const batches = cluster
      .node(follower)
      .readies.map((r) => r.entries.map((e) => e.data.length))
      .filter((b) => b.length > 0);
    expect(batches.slice(-3)).toEqual([[10, 10], [10], [100]]);
  });

  it("refuses proposals with QUEUE_FULL once maxPendingProposals entries are uncommitted", () => {
    const cluster = new TestCluster(["a", "b", "c"], { overrides: { maxPendingProposals: 3 } });
    const leader = cluster.elect();
    cluster.tickMany(3);
    for (const id of ["a", "b", "c"]) {
      if (id !== leader) {
        cluster.isolate(id);
      }
    }
    for (let i = 0; i < 3; i++) {
      expect(cluster.core(leader).propose(`p${i}`).ok).toBe(true);
    }
    const refused = cluster.core(leader).propose("one too many");
    expect(refused.ok).toBe(false);
    if (!refused.ok) {
      expect(refused.error.code).toBe("QUEUE_FULL");
      expect(refused.error.message).toContain("maxPendingProposals=3");
    }
    cluster.heal();
    cluster.tickMany(6);
    expect(cluster.core(leader).propose("after commit").ok).toBe(true);
  });

  it("refuses proposals on followers with the leader's id, and bad data with INVALID_REQUEST", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    const follower = ["a", "b", "c"].find((id) => id !== leader) as string;
    expect(cluster.core(follower).propose("x")).toMatchObject({ ok: false, error: { code: "NOT_LEADER", leader } });
    expect(cluster.core(leader).propose(42 as unknown as string)).toMatchObject({
      ok: false,
      error: { code: "INVALID_REQUEST" },
    });
  });

  it("heartbeats carry min(commit, the follower's match index)", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    cluster.tickMany(3);
    const [lagging, other] = ["a", "b", "c"].filter((id) => id !== leader) as [string, string];
    cluster.dropIf = (m) => m.type === "append" && m.to === lagging;
    for (let i = 0; i < 5; i++) {
      cluster.propose(leader, `v${i}`);
    }
    cluster.deliverAll();
    cluster.tickMany(4);
    expect(cluster.status(leader).commit).toBeGreaterThan(cluster.status(lagging).lastIndex);
    for (let i = 0; i < 2; i++) {
      cluster.tickQuietly(leader);
    }
    const heartbeats = cluster.queue.filter((m) => m.type === "heartbeat");
    const toLagging = heartbeats.find((m) => m.to === lagging);
    const toOther = heartbeats.find((m) => m.to === other);
    expect(toLagging?.type === "heartbeat" && toLagging.commit).toBe(cluster.status(lagging).lastIndex);
    expect(toOther?.type === "heartbeat" && toOther.commit).toBe(cluster.status(leader).commit);
  });
});

describe("a follower reachable again", () => {
  it("gets its probe, with the entries it missed, when the shell reports it reachable, before any tick", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    cluster.tickMany(3);
    const peer = ["a", "b", "c"].find((id) => id !== leader) as string;
    cluster.isolate(peer);
    for (let i = 0; i < 5; i++) {
      cluster.propose(leader, `missed-${i}`);
    }
    cluster.deliverAll();
    cluster.core(leader).reportUnreachable(peer);
    cluster.tickMany(2, [leader]); // the probe the next heartbeat answer would have let out is lost too
    const lastIndex = cluster.status(leader).lastIndex;
    const view = () => cluster.status(leader).replicas.find((r) => r.id === peer);
    expect(view()).toMatchObject({ progress: "probe" });
    expect(view()?.matchIndex).toBeLessThan(lastIndex);
    cluster.heal();
    cluster.queue.length = 0;

    cluster.core(leader).reportReachable(peer);
    cluster.processReadies(leader);
    const probes = cluster.queue.filter((m): m is AppendEntries => m.type === "append" && m.to === peer);
    expect(probes).toHaveLength(1);
    expect(probes[0]?.entries.at(-1)?.index).toBe(lastIndex);
    cluster.deliverAll();
    expect(view()).toMatchObject({ matchIndex: lastIndex, progress: "replicate" });
    expect(cluster.appliedData(peer)).toEqual(cluster.appliedData(leader));

    // Caught up and streaming: a second report sends nothing; a follower's core ignores it.
    cluster.core(leader).reportReachable(peer);
    cluster.processReadies(leader);
    expect(cluster.queue).toEqual([]);
    cluster.core(peer).reportReachable(leader);
    cluster.processReadies(peer);
    expect(cluster.queue).toEqual([]);
  });
});

describe("stale, duplicated and reordered messages", () => {
  it("keep every log and state machine consistent (seeded random delivery with duplicates and drops)", () => {
    for (let seed = 1; seed <= 12; seed++) {
      const random = new SeededRandom(seed);
      const cluster = new TestCluster(["a", "b", "c", "d", "e"], { seed: seed * 31 });
      const seen: Message[] = [];
      let proposals = 0;
      for (let step = 0; step < 600; step++) {
        const id = ["a", "b", "c", "d", "e"][random.nextInt(5)] as string;
        cluster.tickQuietly(id);
        const leader = cluster.leader();
        if (leader !== null && random.nextInt(3) === 0) {
          if (cluster.core(leader).propose(`s${seed}-${proposals}`).ok) {
            proposals++;
          }
          cluster.processReadies(leader);
        }
        // Deliver a few messages in random order, sometimes duplicating an old one, sometimes dropping.
        for (let k = 0; k < 6 && cluster.queue.length > 0; k++) {
          const [message] = cluster.queue.splice(random.nextInt(cluster.queue.length), 1) as [Message];
          if (random.nextInt(10) === 0) {
            continue;
          }
          seen.push(message);
          cluster.core(message.to).step(message);
          cluster.processReadies(message.to);
          if (random.nextInt(4) === 0 && seen.length > 0) {
            const old = seen[random.nextInt(seen.length)] as Message;
            cluster.core(old.to).step(old);
            cluster.processReadies(old.to);
          }
        }
        if (seen.length > 500) {
          seen.splice(0, 250);
        }
      }
      // State machine safety: every applied sequence is a prefix of the longest one.
      const applied = [...cluster.nodes.keys()].map((id) =>
        cluster.node(id).store.appliedEntries.map((e) => `${e.index}/${e.term}`),
      );
      const longest = applied.reduce((a, b) => (a.length >= b.length ? a : b));
      for (const sequence of applied) {
        expect(longest.slice(0, sequence.length)).toEqual(sequence);
      }
      expect(longest.length).toBeGreaterThan(0);
    }
  });

  it("answers an AppendEntries from an older term with its newer term so that the stale leader steps down", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    const follower = ["a", "b", "c"].find((id) => id !== leader) as string;
    const term = cluster.status(follower).term;
    cluster.core(follower).step({
      type: "append",
      from: "zombie",
      to: follower,
      term: term - 1,
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [],
      commit: 0,
    });
    cluster.processReadies(follower);
    expect(cluster.take((m) => m.to === "zombie").map(describeMessage)).toEqual([
      `${follower}->zombie appendResponse t${term} reject index=0`,
    ]);
  });

  it("ignores malformed messages", () => {
    const cluster = new TestCluster(["a", "b", "c"]);
    const leader = cluster.elect();
    const follower = ["a", "b", "c"].find((id) => id !== leader) as string;
    const before = cluster.status(follower);
    const bad = [
      {
        type: "append",
        from: leader,
        to: follower,
        term: before.term,
        prevLogIndex: 0,
        prevLogTerm: 0,
        entries: [{ index: 5, term: 1, kind: "normal", data: "gap" }],
        commit: 0,
      },
      {
        type: "append",
        from: leader,
        to: follower,
        term: before.term,
        prevLogIndex: -1,
        prevLogTerm: 0,
        entries: [],
        commit: 0,
      },
      { type: "nonsense", from: leader, to: follower, term: before.term + 5 },
      {
        type: "heartbeat",
        from: leader,
        to: "someone-else",
        term: before.term + 5,
        commit: 0,
        readContext: null,
        round: 1,
      },
      null,
    ];
    for (const message of bad) {
      cluster.core(follower).step(message as unknown as Message);
    }
    expect(cluster.core(follower).hasReady()).toBe(false);
    expect(cluster.status(follower)).toEqual(before);
  });
});
