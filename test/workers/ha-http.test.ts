// HA scenario 8 (issue #6), through the public API: writes sent through a follower are forwarded to the leader and
// applied once, also when the answer is lost on the way back, when the client retries, and while leadership moves.
// The worker's app (createApp) runs against the cluster's real node objects; a recording wrapper around the node
// directory shows which node each call went to and lets the test lose answers.
import { describe, expect, it } from "vitest";
import { clusterFactory, unwrap } from "./helpers/cluster";
import {
  expectConvergedAndComplete,
  expectOnlyFailoverErrors,
  httpHarness,
  httpLedgerWrite,
  HttpWriter,
  Load,
  type NodeCallRecord,
  openScenario,
} from "./helpers/ha";

const newCluster = clusterFactory();

/** The node calls the worker made for one write (its request id is namespaced by the caller's token). */
function executeCallsFor(calls: readonly NodeCallRecord[], key: string): NodeCallRecord[] {
  return calls.filter((call) => call.method === "execute" && call.requestId?.endsWith(`:${key}`) === true);
}

describe("HA scenario 8: writes through followers (HTTP)", () => {
  it("scenario 8: writes sent through a follower are forwarded to the leader and applied once, even when answers are lost and clients retry", async () => {
    const { seed, random, cluster, ledger } = await openScenario(newCluster, {
      scenario: "scenario 8",
      cluster: { prefix: "ha8-follower", nodes: 3 },
    });
    const leader = await cluster.waitForLeader();
    const followers = cluster.names.filter((name) => name !== leader);

    // Answers to lose: the leader applies the write, then the answer never reaches the worker.
    const loseAnswerOnce = new Set<string>();
    const http = httpHarness(cluster, {
      seed,
      intercept: async (call, run) => {
        const result = await run();
        const key = call.requestId?.split(":").at(-1);
        const applied = (result as { ok?: unknown }).ok === true;
        if (call.method === "execute" && applied && key !== undefined && loseAnswerOnce.delete(key)) {
          throw new Error(`simulated: the answer of ${call.node} to ${key} was lost on the way back`);
        }
        return result;
      },
    });

    // 1. Every write enters at a follower (the worker's leader hint points there), which answers NOT_LEADER with the
    // leader's name; the worker follows it. One execute reaches the leader, one row is written.
    for (let i = 0; i < 10; i++) {
      const follower = followers[i % followers.length]!;
      http.leaders.set(cluster.config.name, follower);
      const key = `s8-forward-${i}`;
      const outcome = await httpLedgerWrite(http, ledger, { key, value: "forwarded" });
      expect(outcome.status, JSON.stringify(outcome)).toBe(200);
      expect(outcome.node).toBe(leader);
      const calls = executeCallsFor(http.calls, key);
      expect(calls.map((call) => call.node)).toEqual([follower, leader]);
    }

    // 2. The leader's answer is lost after it applied the write: the worker retries with the same request id and the
    // leader answers from its memory of that id instead of applying it again.
    for (let i = 0; i < 5; i++) {
      const follower = followers[i % followers.length]!;
      http.leaders.set(cluster.config.name, follower);
      const key = `s8-lost-${i}`;
      loseAnswerOnce.add(key);
      const outcome = await httpLedgerWrite(http, ledger, { key, value: "lost-answer" });
      expect(outcome.status, JSON.stringify(outcome)).toBe(200);
      const toLeader = executeCallsFor(http.calls, key).filter((call) => call.node === leader);
      expect(toLeader.length, "the leader was asked twice").toBeGreaterThanOrEqual(2);
    }

    // 3. A client retry: the same Idempotency-Key sent again after success gets the first answer, not a second row.
    const first = await httpLedgerWrite(http, ledger, { key: "s8-retried", value: "retried" });
    expect(first.status).toBe(200);
    http.leaders.set(cluster.config.name, followers[0]!);
    const again = await httpLedgerWrite(http, ledger, { key: "s8-retried", value: "retried" });
    expect(again.status).toBe(200);
    expect(again.body.results?.[0]?.last_insert_id).toBe(first.body.results?.[0]?.last_insert_id);

    // 4. Concurrent clients entering at every node while leadership moves twice: each write applied at most once,
    // every acknowledged one present.
    const load = new Load({
      cluster,
      ledger,
      random,
      prefix: "s8-load",
      clients: 6,
      writerFor: (client, options) =>
        new HttpWriter(httpHarness(cluster, { seed: options.random.nextUint32() }), {
          cluster: cluster.config.name,
          random: options.random,
          errors: options.errors,
          firstNode: cluster.names[client % cluster.names.length]!,
        }),
    }).start();
    await load.waitForProgress({ more: 20, timeoutMs: 10_000, what: "HTTP clients at every node" });
    const moved = unwrap(
      await cluster.stub(leader).transferLeadership({ ...cluster.address(leader), timeoutMs: 5_000 }),
    );
    await load.waitForProgress({ more: 20, timeoutMs: 10_000, what: `after the step-down to ${moved.leader}` });
    const back = unwrap(
      await cluster
        .stub(moved.leader)
        .transferLeadership({ ...cluster.address(moved.leader), to: leader, timeoutMs: 5_000 }),
    );
    expect(back.leader).toBe(leader);
    await load.waitForProgress({ more: 20, timeoutMs: 10_000, what: "after the transfer back" });
    const report = await load.stop();

    const dump = await expectConvergedAndComplete(cluster, ledger);
    expect(dump.match(/s8-retried/g)?.length).toBe(1);
    console.log(
      `[ha] scenario 8: leader ${leader}, then ${moved.leader}, then ${back.leader}; ${ledger.summary()}; HTTP errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
  });
});
