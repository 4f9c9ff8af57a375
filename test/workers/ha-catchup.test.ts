// HA scenario 10 (issue #6): a replica offline for a while catches up from the log; a replica whose storage was wiped
// catches up from a snapshot. Both under client load; both end with one schema and one data set on every node and
// every acknowledged write present exactly once.
import { describe, expect, it } from "vitest";
import { clusterFactory } from "./helpers/cluster";
import {
  expectConvergedAndComplete,
  expectOnlyFailoverErrors,
  isolateAll,
  openScenarioUnderLoad,
  waitForStatus,
} from "./helpers/ha";

const newCluster = clusterFactory();

describe("HA scenario 10: replicas catching up", () => {
  it("scenario 10: a replica offline for a while catches up from the log", async () => {
    const { random, cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
      scenario: "scenario 10 (log)",
      cluster: { prefix: "ha10-offline", nodes: 3 },
      load: { prefix: "s10-log", clients: 3 },
      progress: { more: 10, timeoutMs: 10_000, what: "before the replica goes offline" },
    });

    const leader = await cluster.waitForLeader();
    const followers = cluster.names.filter((name) => name !== leader);
    const offline = followers[random.nextInt(followers.length)]!;
    // Offline: cut off, and restarted while cut off (its memory is gone; its log is not).
    await isolateAll(cluster, [offline]);
    await cluster.evict(offline);
    const appliedWhenCut = (await cluster.status(offline)).appliedIndex;
    await load.waitForProgress({ more: 60, timeoutMs: 15_000, what: `with ${offline} offline` });
    const leaderStatus = await cluster.status(leader);
    const behind = await cluster.status(offline);
    expect(behind.appliedIndex, `${offline} applies nothing while offline`).toBe(appliedWhenCut);
    expect(leaderStatus.commitIndex - behind.appliedIndex).toBeGreaterThanOrEqual(60);
    expect(leaderStatus.replicas.find((replica) => replica.name === offline)?.status).not.toBe("ONLINE");

    await cluster.heal();
    await waitForStatus(
      cluster,
      offline,
      `${offline} to catch up to ${leaderStatus.commitIndex}`,
      (status) => status.appliedIndex >= leaderStatus.commitIndex,
    );
    const report = await load.stop();
    await expectConvergedAndComplete(cluster, ledger);
    // From the log: nothing was compacted, so no snapshot could have been sent; its log still starts at 1.
    const caughtUp = await cluster.status(offline);
    expect(caughtUp.firstLogIndex).toBe(1);
    expect((await cluster.status(leader)).firstLogIndex).toBe(1);
    await waitForStatus(
      cluster,
      leader,
      `the leader to see ${offline} ONLINE again`,
      (status) =>
        status.role !== "leader" || status.replicas.find((replica) => replica.name === offline)?.status === "ONLINE",
    );
    console.log(
      `[ha] scenario 10 (log): ${offline} was ${leaderStatus.commitIndex - behind.appliedIndex} entries behind; ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
  });

  it("scenario 10: a replica with wiped storage catches up from a snapshot", async () => {
    const { random, cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
      scenario: "scenario 10 (snapshot)",
      cluster: { prefix: "ha10-wiped", nodes: 3, snapshotThresholdEntries: 20 },
      load: { prefix: "s10-snap", clients: 3 },
      progress: { more: 50, timeoutMs: 15_000, what: "before the wipe" },
    });

    const leader = await cluster.waitForLeader();
    const followers = cluster.names.filter((name) => name !== leader);
    const wiped = followers[random.nextInt(followers.length)]!;
    await cluster.wipe(wiped);
    // No hand-made restart: the leader's next message finds it unstarted and starts it with the cluster configuration.
    await load.waitForProgress({ more: 30, timeoutMs: 15_000, what: `after wiping ${wiped}` });
    const leaderStatus = await cluster.status(leader);
    expect(leaderStatus.firstLogIndex, "the leader compacted its log").toBeGreaterThan(1);
    await waitForStatus(
      cluster,
      wiped,
      `${wiped} to catch up to ${leaderStatus.commitIndex}`,
      (status) => status.appliedIndex >= leaderStatus.commitIndex,
      20_000,
    );
    const report = await load.stop();
    await expectConvergedAndComplete(cluster, ledger);
    // It held no log after the wipe: a first log index past 1 means it started from an installed snapshot.
    const restored = await cluster.status(wiped);
    expect(restored.firstLogIndex).toBeGreaterThan(1);
    expect(restored.member).toBe(true);
    console.log(
      `[ha] scenario 10 (snapshot): ${wiped} restored from a snapshot, log from ${restored.firstLogIndex}; ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
  });
});
