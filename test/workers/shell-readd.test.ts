// A removed node added back under the same name (the README's "remove and re-add", e.g. for a voter whose storage
// was wiped) catches up and is promoted; a message sent before its removal cannot revive it.
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION, type NodeResult } from "../../src/objects/api";
import { clusterFactory, unwrap, waitFor, type TestCluster } from "./helpers/cluster";

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
    const { cluster, leader, gone } = await startedWithOneToRemove("shell-readd-late-leave");
    await cluster.execute(["CREATE TABLE t (v INTEGER)", "INSERT INTO t VALUES (1)"]);
    await removeAndWaitNotMember(cluster, leader, gone);
    // At or past the removal's own index: what the leader's notice names, whichever it passes.
    const removedAtIndex = (await cluster.status(leader)).appliedIndex;

    // Added back while no message reaches it, so that it is caught between its readmission and applying the
    // configuration that lists it again (a catch-up that takes a while), where a late notice finds it.
    await cluster.isolate(gone);
    unwrap(
      await cluster.stub(leader).addMember({ ...cluster.address(leader), member: { name: gone }, timeoutMs: 5_000 }),
    );
    const readdedAs = await cluster.status(leader);
    expect(readdedAs.learners).toContain(gone);
    const route = { from: leader, to: gone, term: readdedAs.term };
    const readmitting = (await cluster
      .stub(gone)
      .receive(heartbeatEnvelope(cluster, route, readdedAs.appliedIndex))) as { ok: boolean };
    expect(readmitting.ok).toBe(true);

    // The removal's notice, retried by the leader in the background, arrives now.
    const late = await cluster.stub(gone).leave({ ...cluster.address(gone), removedAtIndex });
    expect(late).toMatchObject({ ok: true, value: { removed: false } });
    expect(codeOf(await cluster.stub(gone).status(cluster.address(gone)))).toBe("ok");

    await cluster.heal();
    await waitFor(
      `${gone} promoted again`,
      async () => ((await cluster.status(leader)).voters.includes(gone) ? true : undefined),
      { timeoutMs: 20_000 },
    );
    const after = await cluster.execute(["INSERT INTO t VALUES (2)"]);
    await cluster.waitForConvergence({ index: after.raftIndex, nodes: [gone] });
    // A notice without the index (a leader of an earlier version) cannot be told from a current one: it stops the node.
    const unindexed = await cluster.stub(gone).leave(cluster.address(gone));
    expect(unindexed).toMatchObject({ ok: true, value: { removed: true } });
    expect(codeOf(await cluster.stub(gone).status(cluster.address(gone)))).toBe("NOT_MEMBER");
  }, 120_000);
});
