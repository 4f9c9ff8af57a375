// A removed node added back under the same name (the README's "remove and re-add", e.g. for a voter whose storage
// was wiped) catches up and is promoted; a message sent before its removal cannot revive it, the leader's start
// re-admits it, and a late leave notice of the removal stops it neither before nor after a restart of its object.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it, onTestFinished } from "vitest";
import { PROTOCOL_VERSION, type NodeAddress, type NodeResult } from "../../src/objects/api";
import { RaftKeys } from "../../src/objects/storage-keys";
import type { LogEntry } from "../../src/replication/types";
import { clusterFactory, recentEvents, unwrap, waitFor, type TestCluster } from "./helpers/cluster";

const newCluster = clusterFactory();
const codeOf = (r: NodeResult<unknown>): string => (r.ok ? "ok" : r.error.code);

async function removeAndWaitNotMember(cluster: TestCluster, leader: string, gone: string): Promise<void> {
  unwrap(
    await cluster.stub(leader).removeMember({ ...cluster.address(leader), member: { name: gone }, timeoutMs: 5_000 }),
  );
  await waitFor(`${gone} NOT_MEMBER`, async () =>
    codeOf(await cluster.stub(gone).status(cluster.address(gone))) === "NOT_MEMBER" ? true : undefined,
  );
}

/** A running cluster of three with a leader, and the follower the test removes. */
async function startedWithOneToRemove(prefix: string): Promise<{ cluster: TestCluster; leader: string; gone: string }> {
  const cluster = newCluster({ prefix, nodes: 3, heartbeatIntervalMs: 100, electionTimeoutMs: 1500 });
  await cluster.startAll();
  const leader = await cluster.waitForLeader();
  return { cluster, leader, gone: cluster.names.find((n) => n !== leader)! };
}

/**
 * A cluster of three with a row written, from which a follower was removed and then added back while no message
 * reaches it (isolated), so that it is caught between its readmission and applying the configuration that lists it
 * again (a catch-up that takes a while), where a late notice finds it. `removedAtIndex` is at or past the removal's
 * own index: what the leader's notice names, whichever it passes.
 */
async function readdedWhileIsolated(
  prefix: string,
): Promise<{ cluster: TestCluster; leader: string; gone: string; removedAtIndex: number }> {
  const { cluster, leader, gone } = await startedWithOneToRemove(prefix);
  await cluster.execute(["CREATE TABLE t (v INTEGER)", "INSERT INTO t VALUES (1)"]);
  await removeAndWaitNotMember(cluster, leader, gone);
  const removedAtIndex = (await cluster.status(leader)).appliedIndex;
  await cluster.isolate(gone);
  const added = unwrap(
    await cluster.stub(leader).addMember({ ...cluster.address(leader), member: { name: gone }, timeoutMs: 5_000 }),
  );
  expect(added.learners).toContain(gone);
  return { cluster, leader, gone, removedAtIndex };
}

/** Heals the cut: the re-added node is promoted, and a write made then reaches it with those made before. */
async function healedAndCaughtUp(cluster: TestCluster, leader: string, gone: string): Promise<void> {
  await cluster.heal();
  await waitPromoted(cluster, leader, gone);
  const after = await cluster.execute(["INSERT INTO t VALUES (2)"]);
  await cluster.waitForConvergence({ index: after.raftIndex, nodes: [gone] });
  expect((await cluster.queryLocal(gone, "SELECT v FROM t ORDER BY v")).rows).toEqual([[1], [2]]);
}

/**
 * Delivers to the re-added `gone` (cut off from the leader) the leader's entries up to `upToIndex` and their commit,
 * as the leader's catch-up would, with its proof of the re-add: the node applies the removal there, not yet its re-add.
 */
async function catchUpTo(
  cluster: TestCluster,
  route: { leader: string; gone: string },
  upToIndex: number,
): Promise<void> {
  const [leaderStatus, goneStatus] = [await cluster.status(route.leader), await cluster.status(route.gone)];
  const prevLogIndex = goneStatus.lastLogIndex;
  const entries = await runInDurableObject(cluster.stub(route.leader), (_instance, state) => {
    const read = (index: number): LogEntry => state.storage.kv.get<LogEntry>(RaftKeys.log(index))!;
    const sent: LogEntry[] = [];
    for (let index = prevLogIndex + 1; index <= upToIndex; index++) {
      sent.push(read(index));
    }
    return { prevLogTerm: prevLogIndex === 0 ? 0 : read(prevLogIndex).term, sent };
  });
  const append = {
    from: route.leader,
    to: route.gone,
    term: leaderStatus.term,
    type: "append",
    prevLogIndex,
    prevLogTerm: entries.prevLogTerm,
    entries: entries.sent,
    commit: upToIndex,
  };
  const answer = (await cluster.stub(route.gone).receive({
    protocolVersion: PROTOCOL_VERSION,
    cluster: cluster.config.name,
    from: route.leader,
    to: route.gone,
    messages: [append],
    memberAsOf: leaderStatus.appliedIndex,
  })) as { ok: boolean };
  expect(answer.ok).toBe(true);
}

/** A heartbeat from `from` to `to` in `term`, as a leader sends it, with the given membership proof. */
function heartbeatEnvelope(
  cluster: TestCluster,
  route: { from: string; to: string; term: number },
  memberAsOf: number | undefined,
): unknown {
  return {
    protocolVersion: PROTOCOL_VERSION,
    cluster: cluster.config.name,
    from: route.from,
    to: route.to,
    messages: [{ ...route, type: "heartbeat", commit: 0, readContext: null, round: 1_000 }],
    ...(memberAsOf === undefined ? {} : { memberAsOf }),
  };
}

type NodeMethods = Record<string, (this: unknown, request: NodeAddress & Record<string, unknown>) => Promise<unknown>>;

/**
 * Wraps one RPC method of `node`'s object (the class's prototype, shared by the isolate's objects: other nodes'
 * calls go through unchanged) until the returned function, or the end of the test, restores it.
 */
async function wrapMethod(
  cluster: TestCluster,
  target: { readonly node: string; readonly method: "start" | "leave" },
  wrapper: (
    original: (request: NodeAddress & Record<string, unknown>) => Promise<unknown>,
    request: NodeAddress & Record<string, unknown>,
  ) => Promise<unknown>,
): Promise<() => void> {
  const prototype = await runInDurableObject(
    cluster.stub(target.node),
    (instance) => Object.getPrototypeOf(instance) as NodeMethods,
  );
  const original = prototype[target.method]!;
  prototype[target.method] = async function (this: unknown, request) {
    if (request.node !== target.node || request.cluster.name !== cluster.config.name) {
      return original.call(this, request);
    }
    return wrapper((forwarded) => original.call(this, forwarded), request);
  };
  const restore = (): void => {
    prototype[target.method] = original;
  };
  onTestFinished(restore);
  return restore;
}

function isMember(membership: { voters: readonly string[]; learners: readonly string[] }, node: string): boolean {
  return membership.voters.includes(node) || membership.learners.includes(node);
}

async function waitPromoted(cluster: TestCluster, leader: string, node: string): Promise<void> {
  await waitFor(
    `${node} promoted again`,
    async () => ((await cluster.status(leader)).voters.includes(node) ? true : undefined),
    { timeoutMs: 20_000 },
  );
}

describe("remove and re-add a node under the same name", () => {
  it("the re-added node catches up, is promoted and holds the writes made while it was out", async () => {
    const cluster = newCluster({ prefix: "shell-readd", nodes: 3, heartbeatIntervalMs: 100, electionTimeoutMs: 1500 });
    await cluster.startAll();
    const leader = await cluster.waitForLeader();
    const gone = cluster.names.find((n) => n !== leader)!;
    await cluster.execute(["CREATE TABLE t (v INTEGER)", "INSERT INTO t VALUES (1)"]);
    await removeAndWaitNotMember(cluster, leader, gone);
    const stayed = cluster.names.filter((n) => n !== gone);
    const written = await cluster.execute(["INSERT INTO t VALUES (2)"], { among: stayed });

    const l2 = await cluster.waitForLeader({ among: stayed });
    const added = unwrap(
      await cluster.stub(l2).addMember({ ...cluster.address(l2), member: { name: gone }, timeoutMs: 5_000 }),
    );
    expect(added.learners).toContain(gone);
    await waitFor(
      `${gone} promoted again`,
      async () => ((await cluster.status(l2)).voters.includes(gone) ? true : undefined),
      { timeoutMs: 20_000 },
    );
    const statuses = await cluster.waitForConvergence({ index: written.raftIndex });
    expect(statuses.map((s) => s.node).sort()).toEqual([...cluster.names].sort());
    expect((await cluster.queryLocal(gone, "SELECT v FROM t ORDER BY v")).rows).toEqual([[1], [2]]);
    // A member again: it answers calls, and a write made now reaches it.
    const after = await cluster.execute(["INSERT INTO t VALUES (3)"]);
    await cluster.waitForConvergence({ index: after.raftIndex, nodes: [gone] });
  }, 120_000);

  it("a message from before the removal (no proof, or a proof at or below the removal) is refused", async () => {
    const { cluster, leader, gone } = await startedWithOneToRemove("shell-readd-stale");
    const before = await cluster.status(leader);
    await removeAndWaitNotMember(cluster, leader, gone);
    const route = { from: leader, to: gone, term: (await cluster.status(leader)).term };
    // The leader's applied index before the removal is below the removed node's own: no proof of a later config.
    for (const memberAsOf of [undefined, 0, before.appliedIndex]) {
      const answer = (await cluster.stub(gone).receive(heartbeatEnvelope(cluster, route, memberAsOf))) as {
        ok: boolean;
        error?: { code: string };
      };
      expect(answer.ok, `memberAsOf ${String(memberAsOf)}`).toBe(false);
      expect(answer.error?.code).toBe("UNAVAILABLE");
    }
    expect(codeOf(await cluster.stub(gone).status(cluster.address(gone)))).toBe("NOT_MEMBER");
    // The leader itself (its configuration does not list the node) never stamps a proof: the node stays out.
    const stayed = cluster.names.filter((n) => n !== gone);
    const later = await cluster.execute(["CREATE TABLE s (v INTEGER)"], { among: stayed });
    await cluster.waitForConvergence({ index: later.raftIndex, nodes: stayed });
    expect(codeOf(await cluster.stub(gone).status(cluster.address(gone)))).toBe("NOT_MEMBER");
  }, 120_000);

  it("a leave notice of the removal that arrives after the node was added back does not stop it", async () => {
    const { cluster, leader, gone, removedAtIndex } = await readdedWhileIsolated("shell-readd-late-leave");
    // The leader's start re-admitted it already; its heartbeat carries the same proof.
    const readdedAs = await cluster.status(leader);
    const route = { from: leader, to: gone, term: readdedAs.term };
    const readmitting = (await cluster
      .stub(gone)
      .receive(heartbeatEnvelope(cluster, route, readdedAs.appliedIndex))) as { ok: boolean };
    expect(readmitting.ok).toBe(true);

    // The removal's notice, retried by the leader in the background, arrives now.
    const late = await cluster.stub(gone).leave({ ...cluster.address(gone), removedAtIndex });
    expect(late).toMatchObject({ ok: true, value: { removed: false } });
    expect(codeOf(await cluster.stub(gone).status(cluster.address(gone)))).toBe("ok");

    await healedAndCaughtUp(cluster, leader, gone);
    // A notice without the index (a leader of an earlier version) cannot be told from a current one: it stops the node.
    const unindexed = await cluster.stub(gone).leave(cluster.address(gone));
    expect(unindexed).toMatchObject({ ok: true, value: { removed: true } });
    expect(codeOf(await cluster.stub(gone).status(cluster.address(gone)))).toBe("NOT_MEMBER");
  }, 120_000);

  it("the leader's start re-admits the node at once, even while none of the leader's messages reaches it", async () => {
    const { cluster, leader, gone } = await startedWithOneToRemove("shell-readd-start");
    await removeAndWaitNotMember(cluster, leader, gone);
    // A start without the leader's proof (a worker's, or a leader's of an earlier version) does not lift the removal.
    expect(codeOf(await cluster.stub(gone).start(cluster.address(gone)))).toBe("NOT_MEMBER");

    await cluster.isolate(gone);
    const added = unwrap(
      await cluster.stub(leader).addMember({ ...cluster.address(leader), member: { name: gone }, timeoutMs: 5_000 }),
    );
    // Started: nothing pending, nothing failed (before, a start refused NOT_MEMBER was answered so too).
    expect(added).toEqual({ voters: cluster.names.filter((n) => n !== gone), learners: [gone] });
    expect(codeOf(await cluster.stub(gone).status(cluster.address(gone)))).toBe("ok");
    const readmitted = (await recentEvents(cluster, gone)).filter((entry) => entry.event === "readmitted");
    expect(readmitted).toMatchObject([{ fields: { by: "a leader's start" } }]);

    await cluster.heal();
    await waitPromoted(cluster, leader, gone);
  }, 120_000);

  it("a start the node refuses (a node of an earlier version) is answered as failed; the leader's next message re-admits it", async () => {
    const { cluster, leader, gone } = await startedWithOneToRemove("shell-readd-start-refused");
    await removeAndWaitNotMember(cluster, leader, gone);
    // A node of an earlier version ignores the proof on the start: it refuses it NOT_MEMBER.
    await wrapMethod(cluster, { node: gone, method: "start" }, (start, request) => {
      const { memberAsOf: _ignored, ...withoutProof } = request;
      return start(withoutProof);
    });
    const added = unwrap(
      await cluster.stub(leader).addMember({ ...cluster.address(leader), member: { name: gone }, timeoutMs: 5_000 }),
    );
    expect(added).toEqual({
      voters: cluster.names.filter((n) => n !== gone),
      learners: [gone],
      failed: [
        {
          action: "start",
          node: gone,
          error: expect.stringMatching(/^NOT_MEMBER: /),
          detail: expect.stringMatching(/re-admits it then if it still holds an earlier removal/),
        },
      ],
    });
    expect((await recentEvents(cluster, leader)).filter((e) => e.event.startsWith("memberFollowUp"))).toMatchObject([
      { event: "memberFollowUpFailed", fields: { action: "start", peer: gone } },
    ]);
    // What the answer says comes next: the leader's next message carries its proof, and the node comes back.
    await waitPromoted(cluster, leader, gone);
    const readmitted = (await recentEvents(cluster, gone)).filter((entry) => entry.event === "readmitted");
    expect(readmitted).toMatchObject([{ fields: { by: leader } }]);
  }, 120_000);

  it("the leader logs a leave notice the re-added node ignored as stale as such, not as delivered", async () => {
    const { cluster, leader, gone } = await startedWithOneToRemove("shell-readd-stale-outcome");
    // The removal's first notice reaches the node only once it was added back (held until then).
    let releaseNotice = (): void => {};
    const noticeReleased = new Promise<void>((resolve) => {
      releaseNotice = resolve;
    });
    onTestFinished(releaseNotice);
    let noticeArrived = (): void => {};
    const arrived = new Promise<void>((resolve) => {
      noticeArrived = resolve;
    });
    await wrapMethod(cluster, { node: gone, method: "leave" }, async (leave, request) => {
      noticeArrived();
      await noticeReleased;
      return leave(request);
    });
    // A short deadline: the notice is left pending soon, and the node is added back well within the first notice's
    // own bound (PEER_CALL_TIMEOUT_MS), which the leader still waits on when the answer comes.
    const removed = unwrap(
      await cluster.stub(leader).removeMember({ ...cluster.address(leader), member: { name: gone }, timeoutMs: 1_000 }),
    );
    expect(removed.pending).toMatchObject([{ action: "leave", node: gone }]);
    await arrived;
    const added = unwrap(
      await cluster.stub(leader).addMember({ ...cluster.address(leader), member: { name: gone }, timeoutMs: 5_000 }),
    );
    expect(isMember(added, gone)).toBe(true);
    releaseNotice();

    const events = await waitFor("the notice to be logged as finished", async () => {
      const feed = await recentEvents(cluster, leader);
      const done = feed.some((e) => e.event === "memberFollowUpDone" || e.event === "memberFollowUpFailed");
      return done ? feed : undefined;
    });
    expect(events.filter((e) => e.event.startsWith("memberFollowUp") && e.fields["action"] === "leave")).toMatchObject([
      { event: "memberFollowUpPending", fields: { action: "leave", peer: gone } },
      { event: "memberFollowUpDone", fields: { action: "leave", peer: gone, outcome: "stale" } },
    ]);
    expect((await recentEvents(cluster, gone)).some((e) => e.event === "staleLeaveIgnored")).toBe(true);
    expect(codeOf(await cluster.stub(gone).status(cluster.address(gone)))).toBe("ok");
    await waitPromoted(cluster, leader, gone);
  }, 120_000);

  it("a late leave notice does not stop a re-added node whose object restarted before it applied its re-add", async () => {
    const { cluster, leader, gone, removedAtIndex } = await readdedWhileIsolated("shell-readd-restart");
    // Re-admitted by the leader's start, it has not applied the configuration that lists it again when its object
    // restarts (a crash: memory lost, storage kept).
    expect(codeOf(await cluster.stub(gone).status(cluster.address(gone)))).toBe("ok");
    await cluster.abort(gone);

    // Before, the restarted node had forgotten the proof: the notice stopped it until the leader's next message.
    const late = await cluster.stub(gone).leave({ ...cluster.address(gone), removedAtIndex });
    expect(late).toMatchObject({ ok: true, value: { removed: false } });
    expect(codeOf(await cluster.stub(gone).status(cluster.address(gone)))).toBe("ok");
    expect((await recentEvents(cluster, gone)).map((e) => e.event)).toContain("staleLeaveIgnored");

    await healedAndCaughtUp(cluster, leader, gone);
  }, 120_000);

  it("a re-added node that applied its removal while catching up keeps catching up after its object restarts", async () => {
    const { cluster, leader, gone, removedAtIndex } = await readdedWhileIsolated("shell-readd-restart-removed");
    // It applies the removal (its applied configuration no longer lists it) but not yet the re-add: the readmission's
    // grace, while the leader's messages prove the re-add, is what keeps it running.
    await catchUpTo(cluster, { leader, gone }, removedAtIndex);
    const caughtUp = unwrap(await cluster.stub(gone).status(cluster.address(gone)));
    expect(caughtUp).toMatchObject({ appliedIndex: removedAtIndex, member: false });
    await cluster.abort(gone);

    // Before, the restarted node lost the grace: it stopped (decommissioned, as removed) after the first call that
    // loaded it, until the leader's next message.
    for (let call = 1; call <= 2; call++) {
      expect(codeOf(await cluster.stub(gone).status(cluster.address(gone))), `status call ${call}`).toBe("ok");
    }
    const late = await cluster.stub(gone).leave({ ...cluster.address(gone), removedAtIndex });
    expect(late).toMatchObject({ ok: true, value: { removed: false } });

    await healedAndCaughtUp(cluster, leader, gone);
  }, 120_000);
});
