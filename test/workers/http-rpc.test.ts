// The service-binding API (what DurableHaApi delegates to), against fake nodes.
import { describe, expect, it } from "vitest";
import type { ExecuteRequest, QueryRequest } from "../../src/objects/api";
import { rpcExecute, rpcHealth, rpcQuery } from "../../src/worker/data/rpc-api";
import { LeaderCache } from "../../src/worker/routing/leader-cache";
import { durableObjectDirectory } from "../../src/worker/directory";
import { runtimeFactory } from "../../src/worker/runtime";
import { clusterFactory } from "./helpers/cluster";
import { FakeCluster, nodeError, RealHarness } from "./http-support";

const newCluster = clusterFactory();

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
    expect(result).toEqual({
      ok: true,
      node: "n2",
      results: [
        { lastInsertId: 1, rowsAffected: 1 },
        { lastInsertId: 1, rowsAffected: 1 },
      ],
      raftIndex: 11,
    });
    const sent = cluster.callsTo("execute").at(-1)?.request as ExecuteRequest;
    expect(sent.request).toEqual({
      id: "rpc:k-1",
      transaction: true,
      statements: [
        { sql: "CREATE TABLE t (b BLOB, f INTEGER)" },
        { sql: "INSERT INTO t VALUES(?, ?)", params: [blob, 1] },
      ],
    });
  });

  it("reads at the requested level with a read-your-writes floor", async () => {
    const cluster = new FakeCluster();
    const result = await rpcQuery(runtimeFor(cluster), [{ sql: "SELECT * FROM t WHERE id = :id", params: { id: 1 } }], {
      minRaftIndex: 10,
    });
    expect(result.ok).toBe(true);
    const sent = cluster.callsTo("query").at(-1)?.request as QueryRequest;
    expect(sent.level).toBe("none");
    expect(sent.minAppliedIndex).toBe(10);
    expect(sent.statements).toEqual([{ sql: "SELECT * FROM t WHERE id = :id", params: { id: 1 } }]);
  });

  it('skips empty statements (""), and refuses a call of nothing else', async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], "n2");
    const runtime = runtimeFor(cluster);
    const executed = await rpcExecute(runtime, ["", "INSERT INTO t VALUES (1)"]);
    expect(executed).toMatchObject({ ok: true, results: [{ lastInsertId: 1, rowsAffected: 1 }] });
    expect((cluster.callsTo("execute")[0]?.request as ExecuteRequest).request.statements).toEqual([
      { sql: "INSERT INTO t VALUES (1)" },
    ]);
    cluster.on("n2", "query", () =>
      nodeError("n2", "INVALID_REQUEST", "statements[0]: random() is not supported", { retryable: false }),
    );
    const refused = await rpcQuery(runtime, ["", "SELECT random()"]);
    expect(refused).toMatchObject({ ok: false, status: 400, error: "statements[1]: random() is not supported" });
    const nothing = await rpcQuery(runtime, [""]);
    expect(nothing).toMatchObject({ ok: false, status: 400, code: "BAD_REQUEST" });
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
    const tooMany = await rpcExecute(
      runtime,
      Array.from({ length: 1001 }, () => "SELECT 1"),
    );
    expect(tooMany).toMatchObject({ ok: false, status: 413 });
    expect(cluster.calls).toEqual([]);
  });

  it("binds BigInt parameters within the 64-bit range exactly and refuses those outside it", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], "n2");
    const runtime = runtimeFor(cluster);
    const big = 9223372036854775807n;
    const result = await rpcExecute(runtime, [
      { sql: "INSERT INTO t VALUES(?, :n)", params: [big] },
      { sql: "INSERT INTO t VALUES(:n)", params: { n: -(2n ** 63n) } },
    ]);
    expect(result.ok).toBe(true);
    const sent = cluster.callsTo("execute").at(-1)?.request as ExecuteRequest;
    expect(sent.request.statements).toEqual([
      { sql: "INSERT INTO t VALUES(?, :n)", params: [big] },
      { sql: "INSERT INTO t VALUES(:n)", params: { n: -(2n ** 63n) } },
    ]);
    const before = cluster.calls.length;
    for (const outside of [2n ** 63n, -(2n ** 63n) - 1n]) {
      const refused = await rpcQuery(runtime, [{ sql: "SELECT ?", params: [outside] }]);
      expect(refused).toMatchObject({ ok: false, status: 400, code: "BAD_REQUEST", outcomeUnknown: false });
      if (!refused.ok) {
        expect(refused.error).toContain("64-bit range");
      }
    }
    expect(cluster.calls.length).toBe(before);
  });

  it("stores and reads back BigInt parameters exactly on real nodes", async () => {
    const cluster = newCluster({ prefix: "rpc-bigint", nodes: 3 });
    const h = new RealHarness(cluster);
    const runtime = runtimeFactory({
      directory: (env, config) => durableObjectDirectory(env, config),
      leaders: new LeaderCache(),
    })(h.env);
    const values = [9223372036854775807n, -9223372036854775808n, 9007199254740993n, 5n];
    const written = await rpcExecute(runtime, [
      "CREATE TABLE big (id INTEGER PRIMARY KEY, v INTEGER)",
      ...values.map((v, i) => ({ sql: "INSERT INTO big VALUES(?, ?)", params: [i + 1, v] })),
    ]);
    expect(
      written.ok,
      JSON.stringify(written, (_k, v: unknown) => (typeof v === "bigint" ? `${v}n` : v)),
    ).toBe(true);
    const read = await rpcQuery(
      runtime,
      [{ sql: "SELECT v, typeof(v), v = ? FROM big ORDER BY id", params: [9223372036854775807n] }],
      { level: "strong" },
    );
    if (!read.ok) {
      throw new Error(read.error);
    }
    expect(read.results[0]?.rows).toEqual([
      [9223372036854775807n, "integer", 1],
      [-9223372036854775808n, "integer", 0],
      [9007199254740993n, "integer", 0],
      [5, "integer", 0],
    ]);
  }, 60_000);

  it("reports routing failures as values", async () => {
    const cluster = new FakeCluster(["n1", "n2", "n3"], null);
    const result = await rpcExecute(runtimeFor(cluster), ["DELETE FROM t"]);
    expect(result).toMatchObject({
      ok: false,
      status: 503,
      code: "NO_LEADER",
      retryAfterSeconds: 2,
      outcomeUnknown: false,
    });
  });

  it("returns the health aggregate", async () => {
    const health = await rpcHealth(runtimeFor(new FakeCluster()));
    expect(health.status).toBe("HEALTHY");
    expect(health.leader).toBe("n1");
  });
});
