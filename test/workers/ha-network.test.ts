// HA scenario 9 (issue #6): packet loss (5%, 20%, 50%, on every node), loss in one direction only, and added delay.
// Always correct (one schema and one data set everywhere, every acknowledged write present exactly once), and
// progress wherever a quorum can talk, within a bound that grows with the loss.
import { describe, expect, it } from "vitest";
import { clusterFactory } from "./helpers/cluster";
import {
  expectConvergedAndComplete,
  expectOnlyFailoverErrors,
  openScenarioUnderLoad,
  waitForStatus,
} from "./helpers/ha";

const newCluster = clusterFactory();

/**
 * Bounds on progress under loss. At 50% the leader loses its quorum every few seconds (measured: 3 CheckQuorum
 * step-downs and 4 elections in 8.5 s, 10 writes in 8.5 s to 18 s), so the bound there is a few writes in 30 s.
 */
const LOSS_LEVELS = [
  { percent: 5, acks: 30, withinMs: 10_000 },
  { percent: 20, acks: 20, withinMs: 15_000 },
  { percent: 50, acks: 5, withinMs: 30_000 },
] as const;

describe("HA scenario 9: lossy and slow networks", () => {
  for (const level of LOSS_LEVELS) {
    it(`scenario 9: ${level.percent}% packet loss on every node: correct, and ${level.acks} writes within ${level.withinMs / 1000} s`, async () => {
      const { cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
        scenario: `scenario 9 (${level.percent}% loss)`,
        cluster: { prefix: `ha9-loss${level.percent}`, nodes: 3 },
        load: { prefix: `s9-${level.percent}`, clients: 3 },
        progress: { more: 5, what: "before the faults" },
      });
      await cluster.setFaultsEverywhere({ dropProbability: level.percent / 100 });
      const startedAt = Date.now();
      await load.waitForProgress({ more: level.acks, timeoutMs: level.withinMs, what: `${level.percent}% loss` });
      const tookMs = Date.now() - startedAt;
      await cluster.heal();
      const report = await load.stop();
      await expectConvergedAndComplete(cluster, ledger);
      console.log(
        `[ha] scenario 9 (${level.percent}% loss): ${level.acks} writes in ${tookMs} ms; ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
      );
    });
  }

  it("scenario 9: loss in one direction only: leader to follower, follower to leader, and a leader that can hear but not speak", async () => {
    const { random, cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
      scenario: "scenario 9 (one-way)",
      cluster: { prefix: "ha9-oneway", nodes: 3 },
      load: { prefix: "s9-oneway", clients: 3 },
      progress: { more: 5, what: "before the faults" },
    });
    const leader = await cluster.waitForLeader();
    const { term } = await cluster.status(leader);
    const [follower, other] = cluster.names.filter((name) => name !== leader).sort(() => random.nextFloat() - 0.5) as [
      string,
      string,
    ];

    // 1. The leader cannot reach one follower (the follower still reaches it): the other follower makes a quorum,
    // and the deaf follower, refused by PreVote, does not disrupt the leader.
    await cluster.setFaultsEverywhere({ partitions: [{ from: leader, to: follower }] });
    await waitForStatus(
      cluster,
      follower,
      `${follower} to miss the leader for 2 election timeouts`,
      (s) => (s.lastLeaderContactMs ?? 0) >= 2 * cluster.config.electionTimeoutMs,
    );
    await load.waitForProgress({ more: 15, timeoutMs: 10_000, what: `${leader} -/-> ${follower}` });
    expect((await cluster.status(leader)).term, "a follower that cannot hear the leader must not raise the term").toBe(
      term,
    );

    // 2. The follower's answers are lost (it hears the leader but cannot answer): still a quorum with the other.
    await cluster.setFaultsEverywhere({ partitions: [{ from: follower, to: leader }] });
    await load.waitForProgress({ more: 15, timeoutMs: 10_000, what: `${follower} -/-> ${leader}` });

    // 3. The leader hears everyone but reaches no one: the followers elect a new leader and the old one follows it.
    await cluster.setFaultsEverywhere({
      partitions: [
        { from: leader, to: follower },
        { from: leader, to: other },
      ],
    });
    const newLeader = await cluster.waitForLeader({ among: [follower, other], notLeader: leader });
    await load.waitForProgress({ more: 15, timeoutMs: 15_000, what: `${leader} mute, ${newLeader} leading` });

    await cluster.heal();
    await load.waitForProgress({ more: 5, timeoutMs: 10_000, what: "after healing" });
    const report = await load.stop();
    await expectConvergedAndComplete(cluster, ledger);
    console.log(
      `[ha] scenario 9 (one-way): leader ${leader}, deaf/mute follower ${follower}, then ${leader} mute -> ${newLeader}; ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
  });

  it("scenario 9: added delay (40 ms per message, then 40 ms with 10% loss): correct and still making progress", async () => {
    const { cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
      scenario: "scenario 9 (delay)",
      cluster: { prefix: "ha9-delay", nodes: 3 },
      load: { prefix: "s9-delay", clients: 3 },
      progress: { more: 5, what: "before the faults" },
    });
    await cluster.setFaultsEverywhere({ delayMs: 40 });
    await load.waitForProgress({ more: 20, timeoutMs: 15_000, what: "40 ms delay" });
    await cluster.setFaultsEverywhere({ delayMs: 40, dropProbability: 0.1 });
    await load.waitForProgress({ more: 20, timeoutMs: 20_000, what: "40 ms delay and 10% loss" });
    await cluster.heal();
    const report = await load.stop();
    await expectConvergedAndComplete(cluster, ledger);
    console.log(`[ha] scenario 9 (delay): ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`);
  });
});
