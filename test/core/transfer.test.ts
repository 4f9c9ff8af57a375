import { describe, expect, it } from "vitest";
import { TestCluster } from "./helpers.js";

function settled(): { cluster: TestCluster; leader: string; followers: [string, string] } {
  const cluster = new TestCluster(["a", "b", "c"]);
  const leader = cluster.elect();
  cluster.tickMany(4);
  return { cluster, leader, followers: ["a", "b", "c"].filter((id) => id !== leader) as [string, string] };
}

/** The node's leadershipTransfer events, as "started b", "completed b", "aborted b (reason)". */
function transferOutcomes(cluster: TestCluster, id: string): string[] {
  return cluster.node(id).events.flatMap((e) => {
    if (e.kind !== "leadershipTransfer") {
      return [];
    }
    return [e.outcome === "aborted" ? `aborted ${e.to} (${e.reason})` : `${e.outcome} ${e.to}`];
  });
}

/** A settled cluster whose leader is transferring leadership to a cut-off follower, which cannot take over. */
function transferToCutOffTarget(): { cluster: TestCluster; leader: string; target: string; other: string } {
  const { cluster, leader, followers } = settled();
  const [target, other] = followers;
  cluster.isolate(target);
  expect(cluster.core(leader).transferLeadership(target)).toEqual({ ok: true });
  cluster.processReadies(leader);
  return { cluster, leader, target, other };
}

/**
 * A learner added and its config entry committed on every voter's ack; the leader's commit notice to `target` is still
 * queued when the transfer starts (the shell holds such notices to send them with the next message to that peer,
 * src/objects/transport/commit-notices.ts), so the TimeoutNow goes right behind it. Both are then stepped into the
 * target before its Ready loop runs, as NodeRuntime.stepEnvelope steps one envelope.
 */
function timeoutNowBehindConfigCommit(): { cluster: TestCluster; leader: string; target: string; term: number } {
  const { cluster, leader, followers } = settled();
  const [target] = followers;
  cluster.addNode("d");
  const term = stepTimeoutNowBehindCommit(cluster, { leader, target, change: { kind: "addLearner", node: "d" } });
  return { cluster, leader, target, term };
}

/**
 * Commits `change` on the leader and every voter's ack while the commit notice to `target` stays queued, starts a
 * transfer to `target`, and steps the one envelope it gets (the notice, then TimeoutNow) into it. Returns the term.
 */
function stepTimeoutNowBehindCommit(
  cluster: TestCluster,
  options: {
    readonly leader: string;
    readonly target: string;
    readonly change: { readonly kind: "addLearner" | "promote"; readonly node: string };
  },
): number {
  const { leader, target } = options;
  const proposed = cluster.core(leader).proposeConfigChange(options.change);
  expect(proposed.ok).toBe(true);
  cluster.processReadies(leader);
  cluster.deliverMatching((m) => m.to !== leader && m.type === "append");
  cluster.deliverMatching((m) => m.to === leader);
  const committed = proposed.ok ? proposed.index : 0;
  expect(cluster.status(leader).commit).toBe(committed);
  expect(cluster.status(target).commit).toBeLessThan(committed);
  const term = cluster.status(leader).term;
  expect(cluster.core(leader).transferLeadership(target)).toEqual({ ok: true });
  cluster.processReadies(leader);
  const envelope = cluster.take((m) => m.to === target);
  expect(envelope.map((m) => (m.type === "append" ? `append commit=${m.commit}` : m.type))).toEqual([
    `append commit=${committed}`,
    "timeoutNow",
  ]);
  for (const message of envelope) {
    cluster.core(target).step(message);
  }
  return term;
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

  it("sends TimeoutNow again with the target's next heartbeat echo when the first was lost", () => {
    const { cluster, leader, followers } = settled();
    const [target] = followers;
    const term = cluster.status(leader).term;
    expect(cluster.core(leader).transferLeadership(target)).toEqual({ ok: true });
    cluster.processReadies(leader);
    expect(cluster.take((m) => m.type === "timeoutNow" && m.to === target)).toHaveLength(1);
    // Well within an election timeout (10 ticks): the next heartbeat round's echo brings a second TimeoutNow.
    const ticks = cluster.tickUntil(() => cluster.status(target).role === "leader", 5);
    expect(ticks).toBeLessThanOrEqual(5);
    expect(cluster.status(target)).toMatchObject({ role: "leader", term: term + 1 });
    expect(transferOutcomes(cluster, leader)).toEqual([`started ${target}`, `completed ${target}`]);
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
    const { cluster, leader, target } = transferToCutOffTarget();
    cluster.tickUntil(() => cluster.status(leader).transferee === null, 15);
    expect(transferOutcomes(cluster, leader)).toEqual([`started ${target}`, `aborted ${target} (deadline)`]);
    expect(cluster.status(leader).role).toBe("leader");
    expect(cluster.core(leader).propose("again").ok).toBe(true);
  });

  it("campaigns on a TimeoutNow that came with the commit of a config change, once that change is applied", () => {
    const { cluster, leader, target, term } = timeoutNowBehindConfigCommit();
    // The commit made the config entry committed but unapplied: no campaign under a configuration about to change.
    expect(cluster.status(target)).toMatchObject({ role: "follower", term });
    cluster.processReadies(target);
    expect(cluster.status(target)).toMatchObject({ role: "candidate", term: term + 1 });
    cluster.deliverAll();
    expect(cluster.status(target)).toMatchObject({ role: "leader", term: term + 1 });
    expect(cluster.status(target).membership).toEqual({ voters: ["a", "b", "c"], learners: ["d"] });
    expect(cluster.status(leader)).toMatchObject({ role: "follower", leader: target, transferee: null });
    expect(transferOutcomes(cluster, leader)).toEqual([`started ${target}`, `completed ${target}`]);
  });

  it("acts on a TimeoutNow that came with the commit of the target's own promotion, once it is applied", () => {
    const cluster = new TestCluster(["a", "b", "c"], { learners: ["d"] });
    const leader = cluster.elect();
    cluster.tickMany(4);
    // Still a learner while it steps the notice and TimeoutNow: the TimeoutNow waits for the promotion to be applied.
    const term = stepTimeoutNowBehindCommit(cluster, { leader, target: "d", change: { kind: "promote", node: "d" } });
    cluster.processReadies("d");
    expect(cluster.status("d")).toMatchObject({ role: "candidate", term: term + 1 });
    cluster.deliverAll();
    expect(cluster.status("d")).toMatchObject({ role: "leader", term: term + 1 });
  });

  it("forgets a TimeoutNow that waited an election timeout for its config change to be applied", () => {
    const { cluster, leader, target, term } = timeoutNowBehindConfigCommit();
    // The target's Ready loop does not run for an election timeout: the leader gives up by then. (The leader's repeats
    // of TimeoutNow with the target's echoes are lost, so that only the kept one could make it campaign.)
    cluster.dropIf = (m) => m.type === "timeoutNow";
    for (let i = 0; i < 10; i++) {
      cluster.core(target).tick();
    }
    cluster.processReadies(target);
    expect(cluster.status(target)).toMatchObject({ role: "follower", term, applied: cluster.status(target).commit });
    cluster.tickUntil(() => cluster.status(leader).transferee === null, 15, [leader]);
    expect(cluster.status(leader)).toMatchObject({ role: "leader", term });
    expect(transferOutcomes(cluster, leader)).toEqual([`started ${target}`, `aborted ${target} (deadline)`]);
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

describe("leadership transfer: why one is given up", () => {
  it("a transfer to another node replaces it (superseded)", () => {
    const { cluster, leader, target, other } = transferToCutOffTarget();
    expect(cluster.core(leader).transferLeadership(other)).toEqual({ ok: true });
    cluster.processReadies(leader);
    expect(transferOutcomes(cluster, leader)).toEqual([
      `started ${target}`,
      `aborted ${target} (superseded)`,
      `started ${other}`,
    ]);
    expect(cluster.status(leader).transferee).toBe(other);
  });

  it("leadership asked for the leader itself cancels it, and proposals are taken again", () => {
    const { cluster, leader, target } = transferToCutOffTarget();
    expect(cluster.core(leader).transferLeadership(leader)).toEqual({ ok: true });
    cluster.processReadies(leader);
    expect(transferOutcomes(cluster, leader)).toEqual([`started ${target}`, `aborted ${target} (cancelled)`]);
    expect(cluster.status(leader)).toMatchObject({ role: "leader", transferee: null });
    expect(cluster.core(leader).propose("again").ok).toBe(true);
  });

  it("the leader losing its leadership to another node first gives it up (lostLeadership)", () => {
    const { cluster, leader, target, other } = transferToCutOffTarget();
    const term = cluster.status(leader).term;
    // The other follower campaigns (as if told to take over), in a newer term the leader sees before the target acts.
    cluster.core(other).step({ type: "timeoutNow", from: leader, to: other, term });
    cluster.processReadies(other);
    cluster.deliverAll();
    expect(cluster.status(other)).toMatchObject({ role: "leader", term: term + 1 });
    expect(transferOutcomes(cluster, leader)).toEqual([`started ${target}`, `aborted ${target} (lostLeadership)`]);
  });

  it("a removed leader whose hand-over target does not take over gives the transfer up at the deadline", () => {
    const { cluster, leader, followers } = settled();
    const [target, other] = followers;
    cluster.isolate(other);
    // Our own removal commits with the target's ack; then the target is cut off before it can take over.
    cluster.dropIf = (m) => m.type === "timeoutNow";
    const removal = cluster.core(leader).proposeConfigChange({ kind: "remove", node: leader });
    expect(removal.ok).toBe(true);
    cluster.tickUntil(() => cluster.status(leader).transferee !== null, 20);
    const handedTo = cluster.status(leader).transferee;
    expect(handedTo).toBe(target);
    cluster.isolate(target);
    cluster.tickUntil(() => cluster.status(leader).role !== "leader", 30, [leader]);
    expect(transferOutcomes(cluster, leader)).toEqual([`started ${target}`, `aborted ${target} (deadline)`]);
  });
});

describe("leadership transfer: targets refused at once", () => {
  it("refuses a voter whose removal is in the leader's log but not applied yet, and stepDown() passes it over", () => {
    const { cluster, leader, followers } = settled();
    const [removed, staying] = followers;
    // `staying` lags behind, so that stepDown() would prefer `removed` if its removal did not count.
    cluster.dropIf = (m) => m.type === "append" && m.to === staying;
    cluster.propose(leader, "v0");
    cluster.tickMany(2);
    cluster.dropIf = () => false;
    const removal = cluster.core(leader).proposeConfigChange({ kind: "remove", node: removed });
    expect(removal.ok).toBe(true);
    const index = removal.ok ? removal.index : 0;
    expect(cluster.core(leader).transferLeadership(removed)).toEqual({
      ok: false,
      error: {
        code: "INVALID_REQUEST",
        message: `node ${removed} is being removed (config entry ${index}, not applied yet); leadership can only go to a voter that stays`,
      },
    });
    cluster.processReadies(leader);
    expect(cluster.status(leader).transferee).toBeNull();
    expect(transferOutcomes(cluster, leader)).toEqual([]);
    expect(cluster.core(leader).stepDown()).toEqual({ ok: true });
    expect(cluster.status(leader).transferee).toBe(staying);
  });

  it("stepDown() is refused when the only other voter is being removed", () => {
    const cluster = new TestCluster(["a", "b"]);
    const leader = cluster.elect();
    cluster.tickMany(4);
    const other = leader === "a" ? "b" : "a";
    expect(cluster.core(leader).proposeConfigChange({ kind: "remove", node: other }).ok).toBe(true);
    expect(cluster.core(leader).stepDown()).toMatchObject({
      ok: false,
      error: { code: "INVALID_REQUEST", message: "there is no other voter (that stays one) to hand leadership to" },
    });
  });

  it("refuses a voter reported on voting probation as a change in progress, and stepDown() passes it over", () => {
    const { cluster, leader, followers } = settled();
    const [probation, other] = followers;
    // `other` lags behind, so that stepDown() would prefer `probation` if its probation did not count.
    cluster.dropIf = (m) => m.type === "append" && m.to === other;
    cluster.propose(leader, "v0");
    cluster.tickMany(2);
    cluster.dropIf = () => false;
    cluster.core(leader).reportVotingProbation(probation, true);
    expect(cluster.core(leader).transferLeadership(probation)).toEqual({
      ok: false,
      error: {
        code: "CONFIG_CHANGE_IN_PROGRESS",
        message: `node ${probation} is on voting probation (its storage is new or was lost, and it has not yet heard from every member or been caught up by a leader); leadership can go to it once that ends`,
      },
    });
    cluster.processReadies(leader);
    expect(transferOutcomes(cluster, leader)).toEqual([]);
    expect(cluster.core(leader).stepDown()).toEqual({ ok: true });
    expect(cluster.status(leader).transferee).toBe(other);
    // Reported off probation, it may lead.
    cluster.core(leader).transferLeadership(leader);
    cluster.core(leader).reportVotingProbation(probation, false);
    expect(cluster.core(leader).transferLeadership(probation)).toEqual({ ok: true });
    cluster.tickUntil(() => cluster.status(probation).role === "leader", 20);
  });

  it("stepDown() is refused as a change in progress when the only other voter is on voting probation", () => {
    const cluster = new TestCluster(["a", "b"]);
    const leader = cluster.elect();
    cluster.tickMany(4);
    const other = leader === "a" ? "b" : "a";
    cluster.core(leader).reportVotingProbation(other, true);
    expect(cluster.core(leader).stepDown()).toMatchObject({ ok: false, error: { code: "CONFIG_CHANGE_IN_PROGRESS" } });
  });

  it("a learner is refused as one whatever its probation", () => {
    const cluster = new TestCluster(["a", "b", "c"], { learners: ["l"] });
    const leader = cluster.elect();
    cluster.tickMany(4);
    cluster.core(leader).reportVotingProbation("l", true);
    expect(cluster.core(leader).transferLeadership("l")).toMatchObject({
      ok: false,
      error: { code: "INVALID_REQUEST" },
    });
  });

  it("refuses a learner, and says so; one whose promotion is not applied yet is a change in progress", () => {
    const cluster = new TestCluster(["a", "b", "c"], { learners: ["l"] });
    const leader = cluster.elect();
    cluster.tickMany(4);
    expect(cluster.core(leader).transferLeadership("l")).toEqual({
      ok: false,
      error: { code: "INVALID_REQUEST", message: "node l is a learner; leadership can only go to a voter" },
    });
    const promotion = cluster.core(leader).proposeConfigChange({ kind: "promote", node: "l" });
    expect(promotion.ok).toBe(true);
    expect(cluster.core(leader).transferLeadership("l")).toMatchObject({
      ok: false,
      error: {
        code: "CONFIG_CHANGE_IN_PROGRESS",
        message: `node l is a learner whose promotion (config entry ${promotion.ok ? promotion.index : 0}) is not applied yet; leadership can only go to a voter`,
      },
    });
    cluster.processReadies(leader);
    expect(transferOutcomes(cluster, leader)).toEqual([]);
    // Once the promotion is applied, it may lead.
    cluster.tickUntil(() => cluster.status(leader).membership.voters.includes("l"), 20);
    expect(cluster.core(leader).transferLeadership("l")).toEqual({ ok: true });
    cluster.tickUntil(() => cluster.status("l").role === "leader", 20);
  });
});
