// HA scenarios 2 to 5 (issue #6): partitions and quorum loss on the real runtime. Faults go through the transport's
// test-only hook (rules act on the sending node, so every node gets the same rules). Each scenario ends with one
// schema and one data set on every node and every acknowledged write present exactly once.
import { describe, expect, it } from "vitest";
import { clusterFactory, type TestCluster, waitFor } from "./helpers/cluster";
import {
  expectConvergedAndComplete,
  expectOnlyFailoverErrors,
  httpHarness,
  httpLedgerWrite,
  isolateAll,
  Ledger,
  Load,
  openScenario,
  openScenarioUnderLoad,
  RpcWriter,
  splitInto,
  waitForStatus,
} from "./helpers/ha";

const newCluster = clusterFactory();

async function commitIndexes(cluster: TestCluster, nodes: readonly string[]): Promise<Map<string, number>> {
  const statuses = await cluster.statuses(nodes);
  return new Map(statuses.map((status) => [status.node, status.commitIndex]));
}

describe("HA scenarios: partitions and quorum", () => {
  it("scenario 2: split brain: two of five followers cut off from the leader; it keeps its role and term, the minority never commits", async () => {
    const { random, cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
      scenario: "scenario 2",
      cluster: { prefix: "ha2-split", nodes: 5 },
      load: { prefix: "s2", clients: 3 },
      progress: { more: 10, timeoutMs: 10_000, what: "before the cut" },
    });

    const leader = await cluster.waitForLeader();
    const { term } = await cluster.status(leader);
    const followers = cluster.names.filter((name) => name !== leader).sort(() => random.nextFloat() - 0.5);
    const minority = followers.slice(0, 2);
    const majority = cluster.names.filter((name) => !minority.includes(name));
    // Cut both ways between the leader and the two; they still reach the other followers (which refuse their votes).
    await Promise.all(
      cluster.names.map((node) =>
        cluster.setFaults(node, { partitions: minority.map((cut) => ({ from: leader, to: cut, bothWays: true })) }),
      ),
    );
    // Let anything already in flight land before taking the minority's commit index as the reference.
    await load.waitForProgress({ more: 5, timeoutMs: 10_000, what: "with the minority cut off" });
    const cutAt = await commitIndexes(cluster, minority);
    // "For a while": until both have gone without a leader for three election timeouts (they tried to campaign).
    for (const node of minority) {
      await waitForStatus(
        cluster,
        node,
        `${node} to miss the leader for 3 election timeouts`,
        (s) => (s.lastLeaderContactMs ?? 0) >= 3 * cluster.config.electionTimeoutMs,
      );
    }
    await load.waitForProgress({ more: 20, timeoutMs: 10_000, what: "on the majority side during the cut" });
    const duringCut = await commitIndexes(cluster, minority);
    const leaderDuring = await cluster.status(leader);
    expect(leaderDuring.role).toBe("leader");
    expect(leaderDuring.term).toBe(term);
    for (const node of minority) {
      expect(duringCut.get(node), `${node}'s commit index while cut off`).toBe(cutAt.get(node));
      expect(leaderDuring.commitIndex).toBeGreaterThan(cutAt.get(node)!);
    }
    const minorityStatuses = await cluster.statuses(minority);
    for (const status of minorityStatuses) {
      expect(status.term, `${status.node} must not raise the term (PreVote)`).toBe(term);
    }

    await cluster.heal();
    await load.waitForProgress({ more: 10, timeoutMs: 10_000, what: "after healing" });
    const report = await load.stop();
    const final = await expectConvergedAndComplete(cluster, ledger);
    expect(final).toContain("INSERT INTO");
    const leaderAfter = await cluster.status(leader);
    expect(leaderAfter.role, "the leader keeps its role through the split and the healing").toBe("leader");
    expect(leaderAfter.term).toBe(term);
    console.log(
      `[ha] scenario 2: leader ${leader} term ${term}; cut off ${minority.join(", ")} (majority ${majority.join(", ")}); ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
  });

  it("scenario 3: an isolated leader commits nothing; a new leader takes over; after healing one history remains", async () => {
    const { cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
      scenario: "scenario 3",
      cluster: { prefix: "ha3-isolated", nodes: 3 },
      load: { prefix: "s3", clients: 3 },
      progress: { more: 10, timeoutMs: 10_000, what: "before isolating the leader" },
    });

    const oldLeader = await cluster.waitForLeader();
    const oldTerm = (await cluster.status(oldLeader)).term;
    await isolateAll(cluster, [oldLeader]);
    // Writes sent straight to the isolated leader: it may append them but can never commit them.
    const stranded = await Promise.all(
      [0, 1, 2].map(async (i) => {
        const key = `s3-stranded-${i}`;
        const answer = await cluster.stub(oldLeader).execute({
          ...cluster.address(oldLeader),
          request: { id: key, transaction: false, statements: [Ledger.insert(key, "stranded")] },
          timeoutMs: 400,
        });
        ledger.record(key, "stranded", "refused", "sent to the isolated leader");
        return answer;
      }),
    );
    // Taken after the stranded writes gave up (hundreds of milliseconds), so nothing sent before the cut is in flight.
    const isolatedAt = (await cluster.status(oldLeader)).commitIndex;
    for (const answer of stranded) {
      expect(answer.ok).toBe(false);
      if (!answer.ok) {
        expect(["TIMEOUT", "OUTCOME_UNKNOWN", "NO_LEADER", "NOT_LEADER"]).toContain(answer.error.code);
      }
    }
    const majority = cluster.names.filter((name) => name !== oldLeader);
    const newLeader = await cluster.waitForLeader({ among: majority, notLeader: oldLeader });
    await load.waitForProgress({ more: 20, timeoutMs: 15_000, what: "under the new leader" });
    // CheckQuorum: without word from a majority it stops leading, by itself.
    const isolated = await waitForStatus(
      cluster,
      oldLeader,
      `${oldLeader} to step down`,
      (status) => status.role !== "leader",
    );
    expect(isolated.commitIndex, "the isolated leader commits nothing").toBe(isolatedAt);

    await cluster.heal();
    await load.waitForProgress({ more: 10, timeoutMs: 10_000, what: "after healing" });
    const report = await load.stop();
    const dump = await expectConvergedAndComplete(cluster, ledger);
    expect(dump).not.toContain("stranded");
    const after = await cluster.status(oldLeader);
    expect(after.term).toBeGreaterThan(oldTerm);
    console.log(
      `[ha] scenario 3: ${oldLeader} (term ${oldTerm}) isolated at commit ${isolatedAt}; ${newLeader} took over; ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
  });

  it("scenario 4: a 1+1+1 split: nobody commits, writes fail clearly within their deadline, the cluster recovers by itself", async () => {
    const { seed, random, cluster, ledger } = await openScenario(newCluster, {
      scenario: "scenario 4",
      cluster: { prefix: "ha4-split3", nodes: 3 },
    });
    const http = httpHarness(cluster, { seed });
    for (let i = 0; i < 5; i++) {
      const written = await httpLedgerWrite(http, ledger, { key: `s4-before-${i}`, value: "before" });
      expect(written.status).toBe(200);
    }

    await splitInto(
      cluster,
      cluster.names.map((name) => [name]),
    );
    // Nobody leads for long (CheckQuorum); from then on nothing sent before the split is in flight any more.
    await waitFor("every node to give up leadership", async () => {
      const statuses = await cluster.statuses();
      return statuses.every((status) => status.role !== "leader") ? true : undefined;
    });
    const splitAt = await commitIndexes(cluster, cluster.names);
    // Over HTTP, as a user would: each write fails with a clear error inside its one-second deadline.
    const deadlineMs = 1_000;
    const failures = [];
    for (let i = 0; i < 3; i++) {
      const outcome = await httpLedgerWrite(http, ledger, { key: `s4-split-http-${i}`, value: "split", timeout: "1s" });
      failures.push(outcome);
      expect([503, 504], JSON.stringify(outcome)).toContain(outcome.status);
      expect(outcome.body.error ?? "", "a failure says why").toMatch(/leader|quorum|deadline|confirmed/i);
      expect(outcome.code).toMatch(/^(NO_LEADER|OUTCOME_UNKNOWN|TIMEOUT)$/);
      expect(outcome.elapsedMs, "the failure arrives within the deadline (plus scheduling slack)").toBeLessThan(
        deadlineMs + 750,
      );
    }
    // And through the node RPC, the same: a definite error code within the client's deadline.
    const writer = new RpcWriter(cluster, { startAt: cluster.names[random.nextInt(3)]!, random });
    const rpcKey = "s4-split-rpc";
    const rpcOutcome = await writer.write(
      { id: rpcKey, transaction: false, statements: [Ledger.insert(rpcKey, "split")] },
      { deadlineMs },
    );
    expect(rpcOutcome.ok).toBe(false);
    if (!rpcOutcome.ok) {
      ledger.record(rpcKey, "split", rpcOutcome.maybeApplied ? "unknown" : "refused", rpcOutcome.code);
      expect(["NO_LEADER", "TIMEOUT", "OUTCOME_UNKNOWN", "NOT_LEADER"]).toContain(rpcOutcome.code);
      expect(rpcOutcome.elapsedMs).toBeLessThan(deadlineMs + 750);
    }
    // Nobody committed anything while split.
    const stillSplit = await commitIndexes(cluster, cluster.names);
    for (const node of cluster.names) {
      expect(stillSplit.get(node), `${node}'s commit index during the split`).toBe(splitAt.get(node));
    }

    await cluster.heal();
    // No hand-holding: the next write just works once a leader emerges by itself.
    const recovered = await httpLedgerWrite(http, ledger, { key: "s4-after", value: "after", timeout: "10s" });
    expect(recovered.status, JSON.stringify(recovered)).toBe(200);
    const load = new Load({ cluster, ledger, random, prefix: "s4", clients: 2 }).start();
    await load.waitForProgress({ more: 10, timeoutMs: 10_000, what: "after healing" });
    const report = await load.stop();
    await expectConvergedAndComplete(cluster, ledger);
    console.log(
      `[ha] scenario 4: split failures ${failures.map((f) => `${f.status} ${f.code} in ${f.elapsedMs} ms`).join("; ")}; rpc ${rpcOutcome.ok ? "ok?!" : `${rpcOutcome.code} in ${rpcOutcome.elapsedMs} ms`}; ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
  });

  it("scenario 5: quorum: one of three out, writes go on; two out, writes fail clearly and nothing is applied; one back, writes succeed", async () => {
    const { random, cluster, ledger, load } = await openScenarioUnderLoad(newCluster, {
      scenario: "scenario 5",
      cluster: { prefix: "ha5-quorum", nodes: 3 },
      load: { prefix: "s5", clients: 2 },
      progress: { more: 5, timeoutMs: 10_000, what: "with all three nodes" },
    });

    const leader = await cluster.waitForLeader();
    const [firstOut, secondOut] = cluster.names
      .filter((name) => name !== leader)
      .sort(() => random.nextFloat() - 0.5) as [string, string];
    await isolateAll(cluster, [firstOut]);
    await load.waitForProgress({ more: 15, timeoutMs: 10_000, what: `with ${firstOut} out` });

    await isolateAll(cluster, [firstOut, secondOut]);
    // The lone leader notices it lost its quorum (CheckQuorum) and stops taking writes.
    await waitForStatus(
      cluster,
      leader,
      `${leader} to step down without a quorum`,
      (status) => status.role !== "leader",
    );
    const outAt = await commitIndexes(cluster, [leader]);
    const refusedWrites = [];
    for (let i = 0; i < 3; i++) {
      const key = `s5-no-quorum-${i}`;
      const writer = new RpcWriter(cluster, { startAt: leader, random, members: () => [leader] });
      const outcome = await writer.write(
        { id: key, transaction: false, statements: [Ledger.insert(key, "no-quorum")] },
        { deadlineMs: 1_000 },
      );
      expect(outcome.ok, `${key} must fail without a quorum`).toBe(false);
      if (outcome.ok) {
        continue;
      }
      expect(outcome.code).toBe("NO_LEADER");
      expect(outcome.message).toMatch(/leader/);
      expect(outcome.maybeApplied, "refused before it reached any log").toBe(false);
      expect(outcome.elapsedMs).toBeLessThan(1_750);
      ledger.record(key, "no-quorum", "refused", `${outcome.code}: ${outcome.message}`);
      refusedWrites.push(`${outcome.code} in ${outcome.elapsedMs} ms`);
    }
    const stillOut = await commitIndexes(cluster, [leader]);
    expect(stillOut.get(leader), "nothing commits without a quorum").toBe(outAt.get(leader));

    // One node returns: a quorum again, writes succeed.
    await isolateAll(cluster, [secondOut]);
    await load.waitForProgress({ more: 15, timeoutMs: 15_000, what: `with ${firstOut} back` });

    await cluster.heal();
    const report = await load.stop();
    await expectConvergedAndComplete(cluster, ledger);
    console.log(
      `[ha] scenario 5: leader ${leader}; out ${firstOut} then ${secondOut}; refused ${refusedWrites.join(", ")}; ${ledger.summary()}; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
  });
});
