// The service-binding API (what DurableHaApi delegates to), against fake nodes.
import { describe, expect, it } from "vitest";
import type { ExecuteRequest, QueryRequest } from "../../src/objects/api";
import { rpcExecute, rpcHealth, rpcQuery } from "../../src/worker/data/rpc-api";
import { LeaderCache } from "../../src/worker/routing/leader-cache";
import { runtimeFactory } from "../../src/worker/runtime";
import { FakeCluster } from "./http-support";

function runtimeFor(cluster: FakeCluster) {
  return runtimeFactory({
    directory: cluster.directory,
    leaders: new LeaderCache(),
    random: () => 0,
    policy: { baseBackoffMs: 1, maxBackoffMs: 2, maxElectionWaitMs: 50, statusTimeoutMs: 100 },
  })(cluster.env());
}

describe("DurableHaApi data calls", () => {
  it("executes typed statements on the leader and returns the raft index", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], "n2");
    const runtime = runtimeFor(cluster);
    const blob = new Uint8Array([1, 2]);
    const result = await rpcExecute(
      runtime,
      ["CREATE TABLE t (b BLOB, f INTEGER)", { sql: "INSERT INTO t VALUES(?, ?)", params: [blob, true] }],
      { transaction: true, idempotencyKey: "k-1" },
    );
    expect(result).toEqual({ ok: true, node: "n2", results: [{ lastInsertId: 1, rowsAffected: 1 }, { lastInsertId: 1, rowsAffected: 1 }], raftIndex: 11 });
    const sent = cluster.callsTo("execute").at(-1)?.request as ExecuteRequest;
    expect(sent.request).toEqual({
      id: "rpc:k-1",
      transaction: true,
      statements: [{ sql: "CREATE TABLE t (b BLOB, f INTEGER)" }, { sql: "INSERT INTO t VALUES(?, ?)", params: [blob, 1] }],
    });
  });

  it("reads at the requested level with a read-your-writes floor", async () => {
    const cluster = new FakeCluster();
    const result = await rpcQuery(runtimeFor(cluster), [{ sql: "SELECT * FROM t WHERE id = :id", params: { id: 1 } }], { minRaftIndex: 10 });
    expect(result.ok).toBe(true);
    const sent = cluster.callsTo("query").at(-1)?.request as QueryRequest;
    expect(sent.level).toBe("none");
    expect(sent.minAppliedIndex).toBe(10);
    expect(sent.statements).toEqual([{ sql: "SELECT * FROM t WHERE id = :id", params: { id: 1 } }]);
  });

  it("refuses bad input with the HTTP status it would get, sending nothing", async () => {
    const cluster = new FakeCluster();
    const runtime = runtimeFor(cluster);
    const cases = [
      rpcExecute(runtime, []),
      rpcExecute(runtime, [5]),
      rpcExecute(runtime, [{ sql: "SELECT ?", params: [{}] }]),
      rpcExecute(runtime, ["SELECT 1"], { idempotencyKey: "has space" }),
      rpcExecute(runtime, ["SELECT 1"], { timeoutMs: 0 }),
      rpcQuery(runtime, ["SELECT 1"], { level: "eventual" as never }),
      rpcQuery(runtime, ["SELECT 1"], { minRaftIndex: -1 }),
    ];
    for (const result of await Promise.all(cases)) {
      expect(result).toMatchObject({ ok: false, status: 400, code: "BAD_REQUEST", outcomeUnknown: false });
    }
    const tooMany = await rpcExecute(runtime, Array.from({ length: 1001 }, () => "SELECT 1"));
    expect(tooMany).toMatchObject({ ok: false, status: 413 });
    expect(cluster.calls).toEqual([]);
  });

  it("reports routing failures as values", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], null);
    const result = await rpcExecute(runtimeFor(cluster), ["DELETE FROM t"]);
    expect(result).toMatchObject({ ok: false, status: 503, code: "NO_LEADER", retryAfterSeconds: 2, outcomeUnknown: false });
  });

  it("returns the health aggregate", async () => {
    const health = await rpcHealth(runtimeFor(new FakeCluster()));
    expect(health.status).toBe("HEALTHY");
    expect(health.leader).toBe("n1");
  });
});
