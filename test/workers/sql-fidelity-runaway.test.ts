// Issue 10, item 9: a read the row and byte bounds cannot stop (an aggregate over an endless recursive CTE returns no
// row until it is done) runs until the platform's CPU limit ([limits] cpu_ms in wrangler.toml) ends the invocation
// and resets the object. Locally workerd enforces no CPU limit, and nothing can interrupt a synchronous SQLite call,
// so this test does to the leader what the platform then does, at that moment: the object is reset (ctx.abort: in-
// memory state lost, storage kept). What must hold: the node restarts from its storage, a new leader takes over, and
// no acknowledged write is lost.
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../src/objects/api";
import { SeededRandom } from "../../src/replication/random";
import { clusterFactory, waitFor } from "./helpers/cluster";
import { CREATE_LEDGER_TABLE, expectOnlyFailoverErrors, Ledger, Load, scenarioSeed, waitForStatus } from "./helpers/ha";

const newCluster = clusterFactory();

describe("a runaway read cut off by the platform", () => {
  it("the leader restarts from storage, is replaced by a newly elected leader, and every acknowledged write survives", async () => {
    const seed = scenarioSeed("runaway read");
    const cluster = newCluster({ prefix: "fidelity-runaway", nodes: 3 });
    await cluster.startAll();
    await cluster.execute([CREATE_LEDGER_TABLE]);
    const ledger = new Ledger();
    const load = new Load({ cluster, ledger, random: new SeededRandom(seed), prefix: "runaway", clients: 3 }).start();
    await load
      .waitForProgress({ more: 5, timeoutMs: 30_000, what: "before the runaway read" })
      .catch(async (error: unknown) => {
        throw new Error(
          `${String(error)}; errors ${JSON.stringify(Object.fromEntries(load.errors))}; ${JSON.stringify((await load.stop()).failures.slice(0, 3))}`,
        );
      });

    const leader = await cluster.waitForLeader();
    const before = await cluster.status(leader);
    // The read a reader token can send; bounded here (x < 20000) so that the test's workerd is not stuck in it.
    const runaway = cluster
      .stub(leader)
      .query({
        protocolVersion: PROTOCOL_VERSION,
        cluster: cluster.config,
        node: leader,
        statements: [
          {
            sql: "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20000) SELECT count(*) FROM c",
          },
        ],
        level: "weak",
        transaction: false,
        timeoutMs: 2_000,
      })
      .catch((error: unknown) => error);
    // The platform's CPU limit ends it: the object is reset.
    await cluster.abort(leader);
    await runaway;

    // Restarted from storage: it has applied at least what it had before, with no leader's help yet.
    console.log(`[runaway] reset ${leader} at term ${before.term}, applied ${before.appliedIndex}`);
    const restarted = await waitForStatus(
      cluster,
      leader,
      "the reset node answering again",
      (status) => status.started,
    );
    expect(restarted.appliedIndex).toBeGreaterThanOrEqual(before.appliedIndex);
    expect(restarted.role === "leader" && restarted.term === before.term).toBe(false);
    // Replaced: a leader of a later term, agreed by every node.
    const next = await cluster.waitForLeader();
    const nextStatus = await waitFor("a leader of a later term", async () => {
      const status = await cluster.status(next);
      return status.role === "leader" && status.term > before.term ? status : undefined;
    });
    expect(nextStatus.term).toBeGreaterThan(before.term);

    await load
      .waitForProgress({ more: 5, timeoutMs: 30_000, what: "after the reset" })
      .catch(async (error: unknown) => {
        const statuses = await cluster.statuses();
        throw new Error(
          `${String(error)}; errors ${JSON.stringify(Object.fromEntries(load.errors))}; ${JSON.stringify(statuses.map((s) => [s.node, s.role, s.term, s.commitIndex, s.appliedIndex, s.lastLogIndex]))}`,
        );
      });
    const { errors } = await load.stop();
    expectOnlyFailoverErrors(errors);
    // Every node holds every acknowledged write exactly once (and nothing refused or never sent).
    const finalLeader = await cluster.waitForLeader();
    const { commitIndex } = await cluster.status(finalLeader);
    await cluster.waitForConvergence({ index: commitIndex });
    const problems = (await Promise.all(cluster.names.map((node) => ledger.problemsOn(cluster, node)))).flat();
    expect(problems, ledger.summary()).toEqual([]);
    expect(ledger.count("acked")).toBeGreaterThanOrEqual(10);
  }, 120_000);
});
