// HA scenarios 1, 6 and 7 (issue #6): crashes, leader changes and a rolling restart, all under client load, on the
// real runtime. Each ends with one schema and one data set on every node and every acknowledged write present once.
import { describe, expect, it } from "vitest";
import { clusterFactory, unwrap, waitFor } from "./helpers/cluster";
import {
  expectConvergedAndComplete,
  expectOnlyFailoverErrors,
  openScenarioUnderLoad,
  pause,
  waitForStatus,
} from "./helpers/ha";

const newCluster = clusterFactory();

describe("HA scenarios: crashes and leader changes", () => {
  it("scenario 1: random nodes crash (evicted or aborted) and come back while clients write with retries", async () => {
    const { random, cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
      scenario: "scenario 1",
      cluster: { prefix: "ha1-crash", nodes: 3 },
      load: { prefix: "s1", clients: 4 },
      progress: { more: 10, timeoutMs: 10_000, what: "before the first crash" },
    });

    const crashes: string[] = [];
    for (let round = 0; round < 12; round++) {
      // Aborts and evictions alternate; every other pair of rounds hits the leader, the others a node at random.
      const leader = await cluster.waitForLeader();
      const node = round % 4 < 2 ? leader : cluster.names[random.nextInt(cluster.names.length)]!;
      const how = round % 2 === 0 ? "abort" : "evict";
      // The node must be running to be crashed: this call also proves it came back from the previous round.
      await cluster.status(node);
      if (how === "abort") {
        // A WAN-like delay keeps each write in flight for tens of milliseconds, so that the abort catches writes
        // mid-way (the clients retry them under the same request id). Not for evictions: an eviction waits for the
        // object to go idle, which delayed traffic never lets it do.
        await cluster.setFaultsEverywhere({ delayMs: 20 });
        await load.waitForProgress({ more: 2, timeoutMs: 10_000, what: "with delayed links" });
      }
      // Land the crash at a random point of the clients' write cycle. (A seeded jitter, not a wait for a state: while
      // the test itself makes RPC calls back to back, workerd does not run the clients' timers.)
      await pause(random.nextInt(30));
      // An eviction that the clients' writes keep from happening becomes an abort: a crash either way.
      let done: "evict" | "abort" = "abort";
      if (how === "evict") {
        done = await cluster.evictOrAbort(node);
      } else {
        await cluster.abort(node);
        await cluster.heal();
      }
      crashes.push(`${done === how ? how : `${how} (busy: ${done})`} ${node}${node === leader ? " (leader)" : ""}`);
      // Pace the crashes by the clients' progress rather than by a clock: writes must go on after every crash.
      await load.waitForProgress({ more: 2 + random.nextInt(8), timeoutMs: 15_000, what: `after ${how} ${node}` });
    }
    const report = await load.stop();
    console.log(
      `[ha] scenario 1: ${crashes.join(", ")}; ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
    // Crashes of the leader interrupted writes in flight, which the clients retried under the same request id.
    expect(
      (report.errors.get("TRANSPORT") ?? 0) +
        (report.errors.get("TIMEOUT") ?? 0) +
        (report.errors.get("OUTCOME_UNKNOWN") ?? 0),
      "retried writes",
    ).toBeGreaterThan(0);
    await expectConvergedAndComplete(cluster, ledger);
  });

  it("scenario 6: the leader changes three times under load (step-down, transfer to a named node, crash)", async () => {
    const { random, cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
      scenario: "scenario 6",
      cluster: { prefix: "ha6-leader", nodes: 3 },
      load: { prefix: "s6", clients: 3 },
      progress: { more: 10, timeoutMs: 10_000, what: "before the first change" },
    });

    // 1. Step-down: the leader hands over to the most up-to-date voter.
    const first = await cluster.waitForLeader();
    const firstTerm = (await cluster.status(first)).term;
    const stepped = unwrap(
      await cluster.stub(first).transferLeadership({ ...cluster.address(first), timeoutMs: 5_000 }),
    );
    expect(stepped.leader).not.toBe(first);
    expect(stepped.term).toBeGreaterThan(firstTerm);
    await load.waitForProgress({ more: 10, timeoutMs: 10_000, what: "after the step-down" });

    // 2. Transfer to a named follower.
    const second = await cluster.waitForLeader();
    const followers = cluster.names.filter((name) => name !== second);
    const chosen = followers[random.nextInt(followers.length)]!;
    const secondTerm = (await cluster.status(second)).term;
    const moved = unwrap(
      await cluster.stub(second).transferLeadership({ ...cluster.address(second), to: chosen, timeoutMs: 5_000 }),
    );
    expect(moved.leader).toBe(chosen);
    expect(moved.term).toBeGreaterThan(secondTerm);
    await load.waitForProgress({ more: 10, timeoutMs: 10_000, what: "after the transfer" });

    // 3. Crash: the leader is evicted; a new term (and leader) follows by itself.
    const third = await cluster.waitForLeader();
    const thirdTerm = (await cluster.status(third)).term;
    await cluster.evict(third);
    const after = await waitFor("a leader of a later term after the crash", async () => {
      const leader = await cluster.waitForLeader();
      const status = await cluster.status(leader);
      return status.term > thirdTerm ? status : undefined;
    });
    await load.waitForProgress({ more: 10, timeoutMs: 10_000, what: "after the crash" });

    const report = await load.stop();
    console.log(
      `[ha] scenario 6: ${first} -(step-down)-> ${stepped.leader} -(transfer)-> ${moved.leader} -(crash of ${third})-> ${after.node} at term ${after.term}; ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
    await expectConvergedAndComplete(cluster, ledger);
  });

  it("scenario 7: rolling restart of every node, one at a time, under load", async () => {
    const { random, cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
      scenario: "scenario 7",
      cluster: { prefix: "ha7-rolling", nodes: 3 },
      load: { prefix: "s7", clients: 3 },
      progress: { more: 10, timeoutMs: 10_000, what: "before the restarts" },
    });

    const order = [...cluster.names].sort(() => random.nextFloat() - 0.5);
    for (const node of order) {
      const leader = await cluster.waitForLeader();
      const { commitIndex } = await cluster.status(leader);
      await cluster.evict(node);
      // Back: it answers, and has applied everything committed before it went down.
      await waitForStatus(
        cluster,
        node,
        `${node} to come back and catch up to ${commitIndex}`,
        (status) => status.started && status.appliedIndex >= commitIndex,
      );
      await load.waitForProgress({
        more: 5,
        timeoutMs: 10_000,
        what: `after restarting ${node}${node === leader ? " (leader)" : ""}`,
      });
    }
    const report = await load.stop();
    console.log(
      `[ha] scenario 7: restarted ${order.join(", ")}; ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
    await expectConvergedAndComplete(cluster, ledger);
  });
});
