// The consistency monitor on a real cluster (issue 14): one replica is corrupted outside Raft (a changed, deleted
// or added row, an added table or index); the leader's next checkpoint finds it, alerts, and repairs it from its own
// state, and every node then holds every acknowledged write and nothing else. A changed row on the leader itself:
// the leader finds itself in the minority, steps down, and the next leader repairs it. Manual mode: the diverged replica
// serves no reads until an admin repairs it. Detection latency and repair time are printed.
import { describe, expect, it } from "vitest";
import type { ClusterEvent, NodeResult } from "../../src/objects/api";
import { clusterFactory, unwrap, waitFor, type TestCluster } from "./helpers/cluster";

const makeCluster = clusterFactory();

const MONITOR = { everyEntries: 4, everyMs: 400, sliceRows: 1000, sliceBytes: 1024 * 1024 } as const;
/** Slow enough timing that a loaded machine does not turn the test into a series of elections. */
const TIMING = { heartbeatIntervalMs: 50, electionTimeoutMs: 1500 } as const;

async function events(cluster: TestCluster, node: string): Promise<readonly ClusterEvent[]> {
  const answer = (await cluster.stub(node).recentEvents({ ...cluster.address(node), limit: 256 })) as NodeResult<{
    events: readonly ClusterEvent[];
  }>;
  return unwrap(answer).events;
}

async function eventOnAnyNode(
  cluster: TestCluster,
  name: string,
  match: (event: ClusterEvent) => boolean = () => true,
): Promise<ClusterEvent | undefined> {
  for (const node of cluster.names) {
    const found = (await events(cluster, node)).find((event) => event.event === name && match(event));
    if (found !== undefined) {
      return found;
    }
  }
  return undefined;
}

/**
 * The alert names the corrupted table, or the whole database when an image checkpoint found the difference first (the
 * leader proposes one when a lagging follower needs a snapshot image, which a loaded machine makes likely).
 */
function expectAlertLocates(alert: ClusterEvent, table: string): void {
  if (alert.fields["table"] === null) {
    expect(String(alert.fields["detail"])).toContain("the whole database");
  } else {
    expect(alert.fields["table"]).toBe(table);
  }
}

async function seed(cluster: TestCluster): Promise<{ leader: string; follower: string; acked: number[] }> {
  await cluster.startAll();
  // The first cluster of a loaded machine can take a while to settle.
  const leader = await cluster.waitForLeader({ timeoutMs: 60_000 });
  await cluster.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"], { timeoutMs: 60_000 });
  const acked: number[] = [];
  for (let id = 1; id <= 12; id++) {
    await cluster.execute([`INSERT INTO t (id, v) VALUES (${id}, 'v${id}')`]);
    acked.push(id);
  }
  const { raftIndex } = await cluster.execute([`INSERT INTO t (id, v) VALUES (13, 'v13')`]);
  acked.push(13);
  await cluster.waitForConvergence({ index: raftIndex });
  const follower = cluster.names.find((name) => name !== leader)!;
  return { leader, follower, acked };
}

async function expectConverged(cluster: TestCluster, acked: readonly number[]): Promise<void> {
  const { raftIndex } = await cluster.execute(["SELECT 1"]);
  await cluster.waitForConvergence({ index: raftIndex });
  const dumps = await waitFor("every node to hold the same database", async () => {
    const all = await Promise.all(cluster.names.map((name) => cluster.dump(name)));
    return new Set(all).size === 1 ? all : undefined;
  });
  for (const id of acked) {
    expect(dumps[0]).toContain(`VALUES(${id},'v${id}')`);
  }
  expect(dumps[0]).not.toContain("corrupt");
  expect(dumps[0]).not.toContain("rogue");
}

const CORRUPTIONS: readonly { name: string; statements: readonly string[] }[] = [
  { name: "a changed row", statements: ["UPDATE t SET v = 'corrupt' WHERE id = 5"] },
  { name: "a deleted row", statements: ["DELETE FROM t WHERE id = 7"] },
  { name: "an added row", statements: ["INSERT INTO t (id, v) VALUES (999, 'corrupt')"] },
  { name: "an added table", statements: ["CREATE TABLE rogue (x)"] },
  { name: "an added index", statements: ["CREATE INDEX rogue_ix ON t (v)"] },
];

describe("consistency monitor (workerd)", () => {
  it("finds each corruption of one replica, alerts, repairs it, and keeps every acknowledged write", async () => {
    const cluster = makeCluster({
      prefix: "cm-auto",
      nodes: 3,
      ...TIMING,
      consistency: { ...MONITOR, repair: "auto" },
    });
    const { follower, acked } = await seed(cluster);
    let nextId = 20;
    for (const corruption of CORRUPTIONS) {
      const corruptedAtMs = Date.now();
      await cluster.stub(follower).testCorruptOutsideRaft(corruption.statements);
      // Writes go on while the monitor works: none of them may be lost by the repair.
      for (let i = 0; i < 3; i++) {
        await cluster.execute([`INSERT INTO t (id, v) VALUES (${nextId}, 'v${nextId}')`]);
        acked.push(nextId++);
      }
      const alert = await waitFor(`the consistency alert for ${corruption.name}`, () =>
        eventOnAnyNode(
          cluster,
          "consistencyAlert",
          (event) => event.fields["replica"] === follower && event.timeMs >= corruptedAtMs,
        ),
      );
      expect(alert.level).toBe("error");
      expectAlertLocates(alert, "t");
      const repaired = await waitFor(`the repair after ${corruption.name}`, () =>
        eventOnAnyNode(
          cluster,
          "replicaRepaired",
          (event) => event.fields["peer"] === follower && event.timeMs >= alert.timeMs,
        ),
      );
      await expectConverged(cluster, acked);
      const status = await cluster.status(follower);
      expect(status.consistency?.status).toBe("OK");
      console.log(
        `consistency monitor, ${corruption.name}: detected ${alert.timeMs - corruptedAtMs} ms after the corruption, ` +
          `repaired ${repaired.timeMs - alert.timeMs} ms after the alert`,
      );
    }
  }, 300_000);

  it("a changed row on the leader: detected, the leader steps down, is repaired, and every acknowledged write stays", async () => {
    const cluster = makeCluster({
      prefix: "cm-leader",
      nodes: 3,
      ...TIMING,
      consistency: { ...MONITOR, repair: "auto" },
    });
    const { leader, acked } = await seed(cluster);
    const corruptedAtMs = Date.now();
    await cluster.stub(leader).testCorruptOutsideRaft(["UPDATE t SET v = 'corrupt' WHERE id = 5"]);
    // Writes go on through whichever node leads: none of them may be lost when the old leader's state is replaced.
    for (let id = 40; id < 43; id++) {
      await cluster.execute([`INSERT INTO t (id, v) VALUES (${id}, 'v${id}')`], { timeoutMs: 30_000 });
      acked.push(id);
    }
    const alert = await waitFor("the consistency alert naming the leader", () =>
      eventOnAnyNode(
        cluster,
        "consistencyAlert",
        (event) => event.fields["replica"] === leader && event.timeMs >= corruptedAtMs,
      ),
    );
    expectAlertLocates(alert, "t");
    const steppedDown = await waitFor("the diverged leader to step down", async () =>
      (await events(cluster, leader)).find(
        (event) => event.event === "divergedLeaderSteppingDown" && event.timeMs >= corruptedAtMs,
      ),
    );
    const newLeader = await waitFor("another node to lead", async () => {
      const current = await cluster.waitForLeader({ timeoutMs: 30_000 });
      return current !== leader ? current : undefined;
    });
    const repaired = await waitFor("the old leader's repair", async () =>
      (await events(cluster, newLeader)).find(
        (event) => event.event === "replicaRepaired" && event.fields["peer"] === leader && event.timeMs >= alert.timeMs,
      ),
    );
    await expectConverged(cluster, acked);
    expect((await cluster.status(leader)).consistency?.status).toBe("OK");
    console.log(
      `consistency monitor, a changed row on the leader ${leader}: detected ${alert.timeMs - corruptedAtMs} ms ` +
        `after the corruption, stepped down ${steppedDown.timeMs - alert.timeMs} ms after the alert, ` +
        `${newLeader} repaired it ${repaired.timeMs - alert.timeMs} ms after the alert`,
    );
  }, 300_000);

  it("manual mode: the diverged replica serves no reads until an admin repairs it", async () => {
    const cluster = makeCluster({
      prefix: "cm-manual",
      nodes: 3,
      ...TIMING,
      consistency: { ...MONITOR, repair: "manual" },
    });
    const { leader, follower, acked } = await seed(cluster);
    await cluster.stub(follower).testCorruptOutsideRaft(["UPDATE t SET v = 'corrupt' WHERE id = 2"]);
    await cluster.execute([`INSERT INTO t (id, v) VALUES (30, 'v30')`]);
    acked.push(30);
    const diverged = await waitFor("the follower to hold itself DIVERGED", async () => {
      const status = await cluster.status(follower);
      return status.consistency?.status === "DIVERGED" ? status : undefined;
    });
    expect(diverged.consistency?.diverged?.rowsDiffer).toBe(true);
    const leaderView = await waitFor("the leader to list the replica as DIVERGED", async () => {
      const current = await cluster.waitForLeader();
      const replica = (await cluster.status(current)).replicas.find((r) => r.name === follower);
      return replica?.consistency?.status === "DIVERGED" ? replica : undefined;
    });
    expect(leaderView.consistency?.detail).toContain('table "t"');
    for (const level of ["none", "linearizable"] as const) {
      const refused = await cluster.stub(follower).query({
        ...cluster.address(follower),
        statements: [{ sql: "SELECT v FROM t WHERE id = 2" }],
        level,
        transaction: false,
        timeoutMs: 2_000,
      });
      expect(refused.ok).toBe(false);
      expect(refused.ok ? null : refused.error.code).toBe("STALE");
    }
    // Manual: nothing repairs it by itself.
    expect((await cluster.status(follower)).consistency?.repairsInstalled).toBe(0);
    const current = await cluster.waitForLeader();
    const notMember = await cluster.stub(current).repairMember({
      ...cluster.address(current),
      member: "n9",
      timeoutMs: 5_000,
    });
    expect(notMember.ok ? null : notMember.error.code).toBe("NOT_MEMBER");
    const outcome = unwrap(
      await cluster.stub(current).repairMember({ ...cluster.address(current), member: follower, timeoutMs: 20_000 }),
    );
    expect(outcome.node).toBe(follower);
    expect(leader).toBeTruthy();
    const read = unwrap(
      await cluster.stub(follower).query({
        ...cluster.address(follower),
        statements: [{ sql: "SELECT v FROM t WHERE id = 2" }],
        level: "none",
        transaction: false,
        timeoutMs: 2_000,
      }),
    );
    expect(read.results[0]?.rows).toEqual([["v2"]]);
    await expectConverged(cluster, acked);
  }, 180_000);
});
