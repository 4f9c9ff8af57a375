// A write that would never finish must never reach the log (every replica would be cut off applying it, after every
// restart too). The leader refuses a write whose recursive CTEs yield more rows than DHA_MAX_RESULT_ROWS, and trial-
// runs, rolled back, a write that reads tables or fires triggers before proposing it (src/objects/sql/runaway.ts).
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { SqlRequest, Statement } from "../../src/shared/sql";
import { createStateMachine, encodeSqlRequest, prepareWrite, SqlStateMachine } from "../../src/objects/sql/index";
import { readsOtherTables, recursionChecks } from "../../src/objects/sql/runaway";
import { clusterFactory } from "./helpers/cluster";
import { RealHarness } from "./http-support";

const newCluster = clusterFactory();
let objectCounter = 0;

async function withStorage<T>(label: string, fn: (storage: DurableObjectStorage) => T): Promise<T> {
  objectCounter += 1;
  const stub = env.CLUSTER_NODE.getByName(`sql-test-runaway-${label}-${objectCounter}-${crypto.randomUUID()}`);
  return runInDurableObject(stub, (_instance, state) => fn(state.storage));
}

const ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c";

/** The endless writes an attacker with a write token could send; each must be refused before proposing. */
const ENDLESS_WRITES: readonly Statement[] = [
  { sql: `INSERT INTO t SELECT x FROM (${ENDLESS})` },
  { sql: "WITH c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) INSERT INTO t SELECT x FROM c" },
  { sql: `UPDATE t SET x = (SELECT count(*) FROM (${ENDLESS}))` },
  { sql: `DELETE FROM t WHERE x IN (SELECT max(x) FROM (${ENDLESS}))` },
  {
    sql: "WITH RECURSIVE a(n) AS (SELECT 1 UNION ALL SELECT n+1 FROM a WHERE n < 3), c(x) AS MATERIALIZED (SELECT n FROM a UNION ALL SELECT x+1 FROM c) DELETE FROM t WHERE x IN c",
  },
  {
    sql: "WITH RECURSIVE c(x) AS (SELECT ? UNION ALL SELECT x+? FROM c) INSERT INTO t SELECT x FROM c",
    params: [1, 0.5],
  },
  {
    sql: "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c WHERE x < 5 LIMIT 5",
  },
  { sql: "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT count(*) FROM c LIMIT 1" },
  {
    sql: "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c ORDER BY x LIMIT 5",
  },
  {
    sql: "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT DISTINCT x FROM c LIMIT 5",
  },
  {
    sql: "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c LIMIT 5 OFFSET 1",
  },
  {
    sql: "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c, c AS d LIMIT 5",
  },
  { sql: "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c LIMIT 200000" },
  { sql: `CREATE VIEW endless AS ${ENDLESS}` },
  { sql: `CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u SELECT x FROM (${ENDLESS}); END` },
  {
    sql: "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u SELECT y FROM (WITH RECURSIVE c(y) AS (SELECT NEW.x UNION ALL SELECT y+1 FROM c WHERE y < 10) SELECT y FROM c); END",
  },
];

function request(statements: readonly Statement[], transaction = false): SqlRequest {
  const prepared = prepareWrite(
    { id: crypto.randomUUID(), transaction, statements },
    { nowMs: 0, randomBytes: (n) => new Uint8Array(n) },
  );
  if (!prepared.ok) {
    throw new Error(prepared.error);
  }
  return prepared.request;
}

describe("finding recursive CTEs in a statement", () => {
  it("makes each one a query bounded by its own LIMIT and the outer one, with its clause and parameters", () => {
    const [check, ...rest] = recursionChecks(
      {
        sql: "INSERT INTO t WITH RECURSIVE a(n) AS NOT MATERIALIZED (SELECT ? UNION ALL SELECT n+1 FROM a WHERE n < ?) SELECT n FROM a WHERE n > ?",
        params: [1, 5, 2],
      },
      10,
    );
    expect(rest).toEqual([]);
    expect(check).toEqual({
      name: "a",
      sql: 'WITH RECURSIVE a(n) AS (SELECT ? UNION ALL SELECT n+1 FROM a WHERE n < ? LIMIT 11) SELECT 1 FROM "a" LIMIT 11',
      params: [1, 5],
    });
    // Nested, a second CTE of the same clause reading the first, a body with its own LIMIT, and CTEs that do not recurse.
    const checks = recursionChecks(
      {
        sql: 'UPDATE t SET x = (WITH b AS (SELECT 1 AS k), "C c"(y) AS (SELECT k FROM b UNION SELECT y+1 FROM "C c" LIMIT 1e9) SELECT max(y) FROM "C c")',
      },
      10,
    );
    expect(checks).toEqual([
      {
        name: "C c",
        sql: 'WITH RECURSIVE b AS (SELECT 1 AS k), "C c"(y) AS (SELECT k FROM b UNION SELECT y+1 FROM "C c" LIMIT 1e9) SELECT 1 FROM "C c" LIMIT 11',
        params: [],
      },
    ]);
    expect(
      recursionChecks(
        { sql: "INSERT INTO t VALUES('WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x FROM c)')" },
        10,
      ),
    ).toEqual([]);
  });

  it("tells writes that read tables from those bounded by the rows they name", () => {
    for (const sql of [
      "INSERT INTO t SELECT * FROM u",
      "UPDATE t SET x = 1 FROM u",
      "DELETE FROM t WHERE x IN u",
      "UPDATE t SET x = (SELECT 1)",
      "WITH a AS (SELECT 1) DELETE FROM t",
    ]) {
      expect(readsOtherTables(sql), sql).toBe(true);
    }
    for (const sql of [
      "INSERT INTO t VALUES (1, 'select from with')",
      "DELETE FROM t WHERE x IN (1, 2)",
      "UPDATE t SET x = x + 1 WHERE id = 3",
      "CREATE TABLE u (a, b)",
    ]) {
      expect(readsOtherTables(sql), sql).toBe(false);
    }
  });
});

describe("the leader's check before proposing", () => {
  it("refuses every endless write, and one whose recursion yields more than DHA_MAX_RESULT_ROWS rows", async () => {
    await withStorage("refuse", (storage) => {
      const port = createStateMachine(storage, { stateMachine: { maxResultRows: 1000 } });
      storage.sql.exec("CREATE TABLE t (x)");
      storage.sql.exec("CREATE TABLE u (x)");
      for (const statement of ENDLESS_WRITES) {
        const prepared = port.prepareWrite(
          { id: crypto.randomUUID(), transaction: false, statements: [{ sql: "INSERT INTO t VALUES (1)" }, statement] },
          { nowMs: 0 },
        );
        expect(prepared.ok, statement.sql).toBe(false);
        if (!prepared.ok) {
          expect(prepared.error, statement.sql).toMatch(
            /^statements\[1\]: the recursive common table expression "c" (yields more than 1000 rows|cannot run by itself)/,
          );
        }
      }
      const tooMany = port.prepareWrite(
        {
          id: "r",
          transaction: false,
          statements: [
            {
              sql: "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1001) SELECT x FROM c",
            },
          ],
        },
        { nowMs: 0 },
      );
      expect(tooMany).toEqual({
        ok: false,
        error:
          'statements[0]: the recursive common table expression "c" yields more than 1000 rows, the most one may yield in a write (DHA_MAX_RESULT_ROWS): ' +
          "every replica applies a write, so one that never ended would stop them all; bound the recursion (a WHERE on its step, or a LIMIT)",
      });
      const nested = port.prepareWrite(
        {
          id: "n",
          transaction: false,
          statements: [
            {
              sql: "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO u SELECT y FROM (WITH RECURSIVE c(y) AS (SELECT NEW.x UNION ALL SELECT y+1 FROM c WHERE y < 10) SELECT y FROM c); END",
            },
          ],
        },
        { nowMs: 0 },
      );
      expect(nested.ok === false && nested.error).toBe(
        'statements[0]: the recursive common table expression "c" cannot run by itself (no such column: NEW.x), so it cannot be shown to end; in a write, a recursive CTE may not read NEW, OLD or the columns of an enclosing query',
      );
      // Nothing ran for real: the checks read, the trial runs are rolled back.
      expect([...storage.sql.exec("SELECT count(*) FROM t").raw()]).toEqual([[0]]);
    });
  });

  it("lets the generator idiom through: an endless recursion read alone, without filter, order or aggregate, up to a LIMIT", async () => {
    await withStorage("generator", (storage) => {
      const port = createStateMachine(storage, { stateMachine: { maxResultRows: 1000 } });
      storage.sql.exec("CREATE TABLE t (x)");
      const generators = [
        "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT x FROM c LIMIT 1000",
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) INSERT INTO t (x) SELECT x * 2 FROM c AS a LIMIT ?",
        "INSERT INTO t SELECT * FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c) SELECT abs(x) FROM c LIMIT 3)",
      ];
      for (const sql of generators) {
        const prepared = port.prepareWrite(
          {
            id: crypto.randomUUID(),
            transaction: false,
            statements: [sql.endsWith("?") ? { sql, params: [5] } : { sql }],
          },
          { nowMs: 0 },
        );
        expect(prepared.ok ? "ok" : prepared.error, sql).toBe("ok");
      }
    });
  });

  it("lets a bounded recursion through, trial-runs writes that read tables or fire triggers without a trace, and skips plain ones", async () => {
    await withStorage("trial", (storage) => {
      const machine = new SqlStateMachine(storage, { maxResultRows: 1000 });
      const apply = (index: number, statements: Statement[]): void => {
        const results = machine.applyEntry({ index, kind: "normal", data: encodeSqlRequest(request(statements)) });
        expect(
          results?.every((result) => result.error === undefined),
          JSON.stringify(results),
        ).toBe(true);
      };
      apply(1, [{ sql: "CREATE TABLE t (x)" }, { sql: "CREATE TABLE audit (x)" }]);
      const plain = request([{ sql: "INSERT INTO t VALUES (1)" }]);
      expect(machine.checkBeforeProposing(plain)).toEqual({ ok: true, trialRun: false });
      const bounded = request([
        {
          sql: "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000) SELECT x FROM c",
        },
      ]);
      const before = machine.schemaInfo();
      expect(machine.checkBeforeProposing(bounded)).toEqual({ ok: true, trialRun: true });
      expect(
        machine.checkBeforeProposing(
          request([{ sql: "CREATE TABLE made (x)" }, { sql: "INSERT INTO made SELECT 1" }], true),
        ),
      ).toEqual({ ok: true, trialRun: true });
      // The trial left no rows, no table and no schema change behind.
      expect([...storage.sql.exec("SELECT count(*) FROM t").raw()]).toEqual([[0]]);
      expect([...storage.sql.exec("SELECT count(*) FROM sqlite_master WHERE name = 'made'").raw()]).toEqual([[0]]);
      expect(machine.schemaInfo()).toEqual(before);
      expect(machine.appliedIndex()).toBe(1);
      apply(2, [
        {
          sql: "INSERT INTO t WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 1000) SELECT x FROM c",
        },
      ]);
      expect([...storage.sql.exec("SELECT count(*), sum(x) FROM t").raw()]).toEqual([[1000, 500500]]);
      // Once a trigger exists, a plain write may fire work beyond its own rows: it is trial-run too.
      apply(3, [{ sql: "CREATE TRIGGER copy AFTER INSERT ON t BEGIN INSERT INTO audit SELECT count(*) FROM t; END" }]);
      expect(machine.checkBeforeProposing(plain)).toEqual({ ok: true, trialRun: true });
      expect([...storage.sql.exec("SELECT count(*) FROM audit").raw()]).toEqual([[0]]);
    });
  });
});

describe("what the check relies on", () => {
  it("triggers do not recurse on this platform, and a write cannot turn recursive_triggers on", async () => {
    await withStorage("triggers", (storage) => {
      const machine = new SqlStateMachine(storage);
      const statements: Statement[] = [
        { sql: "CREATE TABLE t (x)" },
        { sql: "CREATE TRIGGER again AFTER INSERT ON t BEGIN INSERT INTO t VALUES (NEW.x + 1); END" },
        { sql: "INSERT INTO t VALUES (1)" },
      ];
      const results = machine.applyEntry({ index: 1, kind: "normal", data: encodeSqlRequest(request(statements)) });
      expect(results?.map((result) => result.error)).toEqual([undefined, undefined, undefined]);
      // The trigger fired once for the client's row, and not again for its own.
      expect([...storage.sql.exec("SELECT x FROM t ORDER BY x").raw()]).toEqual([[1], [2]]);
      expect([...storage.sql.exec("PRAGMA recursive_triggers").raw()]).toEqual([[0]]);
      expect(
        prepareWrite(
          { id: "p", transaction: false, statements: [{ sql: "PRAGMA recursive_triggers = ON" }] },
          { nowMs: 0, randomBytes: (n) => new Uint8Array(n) },
        ).ok,
      ).toBe(false);
    });
  });
});

describe("an endless write sent to a real cluster", () => {
  it("answers 400, never reaches the log, and the cluster keeps committing", async () => {
    const cluster = newCluster({ prefix: "runaway-write", nodes: 3 });
    const h = new RealHarness(cluster);
    const created = await h.send("POST", "/db/execute", {
      json: ["CREATE TABLE t (x INTEGER)", "CREATE TABLE u (x INTEGER)", "INSERT INTO t VALUES (1)"],
    });
    expect(created.status, created.text).toBe(200);
    const leader = await cluster.waitForLeader();
    const before = await cluster.status(leader);
    // First one that ends but past the bound (DHA_MAX_RESULT_ROWS is 100,000 here): without the check it is applied.
    const overBound: Statement = {
      sql: "INSERT INTO u WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x+1 FROM c WHERE x < 100001) SELECT x FROM c",
    };
    for (const statement of [overBound, ...ENDLESS_WRITES]) {
      const body =
        statement.params === undefined ? [statement.sql] : [[statement.sql, ...(statement.params as unknown[])]];
      const startedMs = Date.now();
      const refused = await h.send("POST", "/db/execute", { json: body });
      console.log(`[runaway-write] refused in ${Date.now() - startedMs} ms: ${statement.sql.slice(0, 60)}`);
      expect(refused.status, `${statement.sql}: ${refused.text}`).toBe(400);
      expect(refused.headers.get("X-DHA-Error-Code")).toBe("INVALID_REQUEST");
      expect(refused.text).toMatch(/the recursive common table expression/);
    }
    // The same endless statement as a strong read (which goes through the log) is refused too.
    const strong = await h.send("POST", "/db/query?level=strong", { json: [`SELECT count(*) FROM (${ENDLESS})`] });
    expect(strong.status, strong.text).toBe(400);
    // Nothing was appended for them (an election on this busy machine appends a no-op: compare within one term).
    const after = await cluster.status(leader);
    if (after.term === before.term) {
      expect(after.lastLogIndex).toBe(before.lastLogIndex);
    }
    // The generator idiom reads only what its LIMIT asks for, also as a strong read (which is appended to the log).
    const generator = await h.send("POST", "/db/query?level=strong", { json: [`${ENDLESS} LIMIT 3`] });
    expect(generator.text).toBe('{"results":[{"columns":["x"],"types":["integer"],"values":[[1],[2],[3]]}]}');
    // The cluster carries on: writes commit and every node applies them.
    for (let i = 2; i <= 4; i += 1) {
      const written = await h.send("POST", "/db/execute", { json: [["INSERT INTO t VALUES (?)", i]] });
      expect(written.status, written.text).toBe(200);
    }
    const { commitIndex } = await cluster.status(await cluster.waitForLeader());
    await cluster.waitForConvergence({ index: commitIndex });
    for (const node of cluster.names) {
      expect((await cluster.queryLocal(node, "SELECT count(*), sum(x) FROM t")).rows).toEqual([[4, 10]]);
      expect((await cluster.queryLocal(node, "SELECT count(*) FROM u")).rows).toEqual([[0]]);
      expect(
        (await cluster.queryLocal(node, "SELECT count(*) FROM sqlite_master WHERE type IN ('view', 'trigger')")).rows,
      ).toEqual([[0]]);
    }
  }, 60_000);
});
