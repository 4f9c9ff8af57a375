// Verified snapshot images (issue 14, README "Consistency monitor"): on a healthy cluster an image checkpoint does
// not hold a lagging follower back. A follower is cut off while the leader compacts its log past it, then healed; it
// must catch up (from a verified image) within a deadline, and the leader verifies that image while the follower is
// still away (so that it is ready when the follower comes back). The same run with the snapshotImageUnverified switch (the
// leader images its state unchecked, as before image checkpoints) gives the time to compare; both are printed.
import { describe, expect, it } from "vitest";
import type { ClusterEvent, NodeResult } from "../../src/objects/api";
import type { ShellBugs } from "../../src/objects/shell-bugs";
import { clusterFactory, unwrap, waitFor, type TestCluster } from "./helpers/cluster";

const makeCluster = clusterFactory();

const MONITOR = { everyEntries: 20, everyMs: 2_000, sliceRows: 1000, sliceBytes: 1024 * 1024 } as const;
const TIMING = { heartbeatIntervalMs: 50, electionTimeoutMs: 1500 } as const;
const ROWS_WHILE_CUT_OFF = 40;
/** A follower that needs an image must have it well within this (the image checkpoint takes a round or two). */
const CATCH_UP_DEADLINE_MS = 30_000;

async function catchUpAfterCutOff(options: { prefix: string; bugs: ShellBugs }): Promise<{
  catchUpMs: number;
  firstLogIndex: number;
  imageCheckpoints: number;
}> {
  const cluster = makeCluster({
    prefix: options.prefix,
    nodes: 3,
    ...TIMING,
    snapshotThresholdEntries: 10,
    consistency: MONITOR,
  });
  await Promise.all(cluster.names.map((name) => cluster.stub(name).testSetBugs(options.bugs)));
  await cluster.startAll();
  const leader = await cluster.waitForLeader({ timeoutMs: 60_000 });
  await cluster.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"], { timeoutMs: 60_000 });
  const lagging = cluster.names.find((name) => name !== leader)!;
  const others = cluster.names.filter((name) => name !== lagging);
  await cluster.isolate(lagging);
  for (let id = 1; id <= ROWS_WHILE_CUT_OFF; id++) {
    await cluster.execute([`INSERT INTO t (id, v) VALUES (${id}, 'v${id}')`], { among: others });
  }
  const { raftIndex } = await cluster.execute(["SELECT 1"], { among: others });
  const behind = await cluster.status(lagging);
  const leaderStatus = await cluster.status(await cluster.waitForLeader({ among: others }));
  // The leader compacted past what the follower holds: only an image can bring it back.
  expect(leaderStatus.firstLogIndex).toBeGreaterThan(behind.appliedIndex + 1);
  if (options.bugs.snapshotImageUnverified !== true) {
    // The leader verifies that image while the follower is away, not once it is back (prepareImageForAbsentReplicas).
    await waitFor(
      "an image verified while the follower is cut off",
      async () => ((await imageEvents(cluster, leaderStatus.node)).verified > 0 ? true : undefined),
      { timeoutMs: CATCH_UP_DEADLINE_MS },
    );
  }
  const healedAtMs = Date.now();
  await cluster.heal();
  const caughtUp = await waitFor(
    `${lagging} to catch up to ${raftIndex}`,
    async () => {
      const status = await cluster.status(lagging);
      return status.appliedIndex >= raftIndex ? status : undefined;
    },
    { timeoutMs: CATCH_UP_DEADLINE_MS },
  );
  const catchUpMs = Date.now() - healedAtMs;
  const dump = await cluster.dump(lagging);
  expect(dump).toContain(`VALUES(${ROWS_WHILE_CUT_OFF},'v${ROWS_WHILE_CUT_OFF}')`);
  const { verified: imageCheckpoints } = await imageEvents(cluster, await cluster.waitForLeader());
  return { catchUpMs, firstLogIndex: caughtUp.firstLogIndex, imageCheckpoints };
}

/** How many image checkpoints `node` (a leader) saw verified, from its recent events. */
async function imageEvents(cluster: TestCluster, node: string): Promise<{ verified: number }> {
  const answer = (await cluster.stub(node).recentEvents({ ...cluster.address(node), limit: 256 })) as NodeResult<{
    events: readonly ClusterEvent[];
  }>;
  return { verified: unwrap(answer).events.filter((event) => event.event === "snapshotImageVerified").length };
}

describe("verified snapshot images (workerd)", () => {
  it("a follower that needs an image catches up within a deadline, verified or not", async () => {
    const verified = await catchUpAfterCutOff({ prefix: "cm-catchup-verified", bugs: {} });
    const unverified = await catchUpAfterCutOff({
      prefix: "cm-catchup-unverified",
      bugs: { snapshotImageUnverified: true },
    });
    // It came back from an image in both runs (its log starts past 1); only the first verified one.
    expect(verified.firstLogIndex).toBeGreaterThan(1);
    expect(unverified.firstLogIndex).toBeGreaterThan(1);
    expect(verified.imageCheckpoints).toBeGreaterThan(0);
    expect(unverified.imageCheckpoints).toBe(0);
    console.log(
      `verified snapshot images: a follower needing an image caught up ${verified.catchUpMs} ms after the heal ` +
        `with verification, ${unverified.catchUpMs} ms without (snapshotImageUnverified)`,
    );
  }, 240_000);

  it("a follower that needs an image catches up while writes go on (the log is held at the image)", async () => {
    const cluster = makeCluster({
      prefix: "cm-catchup-writing",
      nodes: 3,
      ...TIMING,
      snapshotThresholdEntries: 10,
      consistency: MONITOR,
    });
    await cluster.startAll();
    await cluster.waitForLeader({ timeoutMs: 60_000 });
    await cluster.execute(["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT NOT NULL)"], { timeoutMs: 60_000 });
    // Enough rows that digesting them for an image checkpoint spans several compactions of the writes below.
    await cluster.execute([
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 20000) " +
        "INSERT INTO t (id, v) SELECT i, printf('row %d with some text to digest', i) FROM n",
    ]);
    const leader = await cluster.waitForLeader();
    const lagging = cluster.names.find((name) => name !== leader)!;
    const others = cluster.names.filter((name) => name !== lagging);
    await cluster.isolate(lagging);
    let id = 100_000;
    const writeSome = async (count: number): Promise<number> => {
      let raftIndex = 0;
      for (let i = 0; i < count; i++) {
        id += 1;
        raftIndex = (await cluster.execute([`INSERT INTO t (id, v) VALUES (${id}, 'w')`], { among: others })).raftIndex;
      }
      return raftIndex;
    };
    const cutOffAt = await writeSome(30);
    await cluster.heal();
    // Writes go on, back to back, until the follower holds what was written while it was away.
    const caughtUp = await waitFor(
      `${lagging} to catch up to ${cutOffAt} while writes go on`,
      async () => {
        await writeSome(3);
        const status = await cluster.status(lagging);
        return status.appliedIndex >= cutOffAt ? status : undefined;
      },
      { timeoutMs: CATCH_UP_DEADLINE_MS },
    );
    expect(caughtUp.firstLogIndex).toBeGreaterThan(1);
  }, 240_000);
});
