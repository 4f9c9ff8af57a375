// The SQL state machine over real Durable Object SQLite storage: applying entries, results, deduplication, schema
// version and hash, local reads.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { namespacedRequestId, type SqlRequest, type Statement, type StatementResult } from "../../src/shared/sql";
import {
  createStateMachine,
  encodeSqlRequest,
  prepareWrite,
  READ_ONLY_VIOLATION,
  SqlCodecError,
  SqlStateMachine,
  type SqlStateMachineOptions,
} from "../../src/objects/sql/index";

/** Results as a remembered request answers them: without the statements' timings. */
function untimed<T extends { readonly time?: number }>(results: readonly T[]): Omit<T, "time">[] {
  return results.map(({ time: _time, ...rest }) => rest);
}

let objectCounter = 0;

/** Runs `fn` against the storage of a fresh ClusterNode object (one per call: names are unique). */
async function withStorage<T>(label: string, fn: (storage: DurableObjectStorage) => T): Promise<T> {
  objectCounter += 1;
  const stub = env.CLUSTER_NODE.getByName(`sql-test-apply-${label}-${objectCounter}-${crypto.randomUUID()}`);
  return runInDurableObject(stub, (_instance, state) => fn(state.storage));
}

const NOW_MS = Date.UTC(2026, 10, 26, 8, 0, 0, 123);

function fixedBytes(length: number): Uint8Array {
  return new Uint8Array(length).fill(7);
}

/** What the leader does: prepare, encode; then what every replica does: apply at `index`. */
class Driver {
  index: number;
  /** The leader's clock when it prepares a write. */
  now = NOW_MS;
  constructor(
    readonly machine: SqlStateMachine,
    startIndex = 0,
  ) {
    this.index = startIndex;
  }

  data(statements: Statement[], options: { transaction?: boolean; id?: string } = {}): string {
    const request: SqlRequest = {
      id: options.id ?? `req-${this.index + 1}-${crypto.randomUUID()}`,
      transaction: options.transaction ?? false,
      statements,
    };
    const prepared = prepareWrite(request, { nowMs: this.now, randomBytes: fixedBytes });
    if (!prepared.ok) {
      throw new Error(`refused: ${prepared.error}`);
    }
    return encodeSqlRequest(prepared.request);
  }

  apply(statements: Statement[], options: { transaction?: boolean; id?: string } = {}): StatementResult[] {
    const data = this.data(statements, options);
    this.index += 1;
    const results = this.machine.applyEntry({ index: this.index, kind: "normal", data });
    if (results === null) {
      throw new Error(`entry ${this.index} was already applied`);
    }
    return results;
  }

  exec(sql: string, params?: Statement["params"]): StatementResult {
    const [result] = this.apply([params === undefined ? { sql } : { sql, params }]);
    if (result === undefined) {
      throw new Error("no result");
    }
    if (result.error !== undefined) {
      throw new Error(`statement failed: ${result.error}`);
    }
    return result;
  }

  read(sql: string): unknown[][] {
    const [result] = this.machine.query([{ sql }], { transaction: false });
    if (result?.error !== undefined) {
      throw new Error(`query failed: ${result.error}`);
    }
    return (result?.rows ?? []) as unknown[][];
  }
}

function driverFor(storage: DurableObjectStorage, options?: SqlStateMachineOptions): Driver {
  return new Driver(new SqlStateMachine(storage, options));
}

describe("applying entries", () => {
  it("without the transaction flag, runs every statement and reports the failing one", async () => {
    await withStorage("nontx", (storage) => {
      const d = driverFor(storage);
      d.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
      const results = d.apply([
        { sql: "INSERT INTO t VALUES (1, 'a')" },
        { sql: "INSERT INTO t VALUES (1, 'duplicate')" },
        { sql: "INSERT INTO t VALUES (2, 'b')" },
      ]);
      expect(results).toHaveLength(3);
      expect(results[0]).toMatchObject({ lastInsertId: 1, rowsAffected: 1 });
      expect(results[1]?.error).toBe("UNIQUE constraint failed: t.id");
      expect(results[2]).toMatchObject({ lastInsertId: 2, rowsAffected: 1 });
      expect(d.read("SELECT id, v FROM t ORDER BY id")).toEqual([
        [1, "a"],
        [2, "b"],
      ]);
      expect(d.machine.appliedIndex()).toBe(2);
    });
  });

  it("with the transaction flag, undoes everything on a failure but still advances the index and remembers the outcome", async () => {
    await withStorage("tx", (storage) => {
      const d = driverFor(storage);
      d.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT NOT NULL)");
      d.exec("INSERT INTO t VALUES (1, 'kept')");
      const id = "tx-request";
      const results = d.apply(
        [
          { sql: "INSERT INTO t VALUES (2, 'x')" },
          { sql: "UPDATE t SET v = 'changed' WHERE id = 1" },
          { sql: "INSERT INTO t VALUES (3, NULL)" },
          { sql: "INSERT INTO t VALUES (4, 'never')" },
        ],
        { transaction: true, id },
      );
      expect(results.map((r) => r.error)).toEqual([undefined, undefined, "NOT NULL constraint failed: t.v"]);
      expect(d.read("SELECT id, v FROM t ORDER BY id")).toEqual([[1, "kept"]]);
      expect(d.machine.appliedIndex()).toBe(3);
      expect(d.machine.rememberedResults(id)?.map((r) => r.error)).toEqual([
        undefined,
        undefined,
        "NOT NULL constraint failed: t.v",
      ]);
      // Against the old table: the rows they counted are gone, but they counted them (rqlite's db.go keeps them too).
      expect(untimed(results)).toEqual([
        { lastInsertId: 2, rowsAffected: 1 },
        { lastInsertId: 2, rowsAffected: 1 },
        { error: "NOT NULL constraint failed: t.v" },
      ]);
      // A successful transactional request commits every statement.
      const ok = d.apply([{ sql: "INSERT INTO t VALUES (2, 'b')" }, { sql: "INSERT INTO t VALUES (3, 'c')" }], {
        transaction: true,
      });
      expect(ok.every((r) => r.error === undefined)).toBe(true);
      expect(d.read("SELECT count(*) FROM t")).toEqual([[3]]);
    });
  });

  it("answers a statement that changed rows and then failed, in a transaction, with its error alone", async () => {
    await withStorage("tx-failed-after-change", (storage) => {
      const d = driverFor(storage);
      d.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)");
      const inexact = "INSERT INTO t VALUES (7, 'r') RETURNING 9007199254740993";
      const rolledBack = d.apply([{ sql: "INSERT INTO t VALUES (1, 'a')" }, { sql: inexact }], { transaction: true });
      expect(untimed(rolledBack)).toEqual([
        { lastInsertId: 1, rowsAffected: 1 },
        { error: expect.stringMatching(/^the result holds an integer beyond ±2\^53/) as unknown },
      ]);
      expect(d.read("SELECT count(*) FROM t")).toEqual([[0]]);
      // Without the flag the write stays, and its result says so beside the error (README, "64-bit integers").
      const applied = d.apply([{ sql: inexact }]);
      expect(untimed(applied)).toEqual([
        {
          lastInsertId: 7,
          rowsAffected: 1,
          error: expect.stringMatching(/^the result holds an integer beyond ±2\^53/) as unknown,
        },
      ]);
      expect(d.read("SELECT count(*) FROM t")).toEqual([[1]]);
    });
  });

  it("is idempotent for indices already applied and refuses gaps without changing anything", async () => {
    await withStorage("idempotent", (storage) => {
      const d = driverFor(storage);
      d.exec("CREATE TABLE t(v)");
      const data = d.data([{ sql: "INSERT INTO t VALUES ('once')" }]);
      expect(d.machine.applyEntry({ index: 2, kind: "normal", data })?.[0]).toMatchObject({ rowsAffected: 1 });
      expect(d.machine.applyEntry({ index: 2, kind: "normal", data })).toBeNull();
      expect(d.machine.applyEntry({ index: 1, kind: "normal", data })).toBeNull();
      expect(() => d.machine.applyEntry({ index: 4, kind: "normal", data })).toThrow(
        /entry 4 cannot be applied: the last applied entry is 2/,
      );
      expect(d.machine.applyEntry({ index: 3, kind: "noop", data: "" })).toEqual([]);
      expect(d.machine.applyEntry({ index: 4, kind: "config", data: '{"voters":["a"],"learners":[]}' })).toEqual([]);
      expect(d.machine.appliedIndex()).toBe(4);
      expect(d.read("SELECT v FROM t")).toEqual([["once"]]);
    });
  });

  it("stops rather than guess when a normal entry cannot be decoded", async () => {
    await withStorage("garbage", (storage) => {
      const machine = new SqlStateMachine(storage);
      expect(() => machine.applyEntry({ index: 1, kind: "normal", data: "{not json" })).toThrow(SqlCodecError);
      expect(machine.appliedIndex()).toBe(0);
    });
  });

  it("refuses, at apply time too, statements that would reset the node", async () => {
    await withStorage("hazard", (storage) => {
      const machine = new SqlStateMachine(storage);
      // A leader that skipped prepareWrite: the follower must not crash.
      const data = JSON.stringify({
        id: "raw",
        transaction: false,
        statements: [
          { sql: "CREATE TABLE u(x UNIQUE)" },
          { sql: "INSERT INTO u VALUES (1)" },
          { sql: "INSERT OR ROLLBACK INTO u VALUES (1)" },
          { sql: "PRAGMA defer_foreign_keys = ON" },
          { sql: "SELECT * FROM _cf_KV" },
          { sql: "INSERT INTO u VALUES (:x)", params: { x: 3 } },
          { sql: "INSERT INTO u VALUES (3); INSERT INTO u VALUES (4)" },
          { sql: "INSERT INTO u VALUES (2)" },
        ],
      });
      const results = machine.applyEntry({ index: 1, kind: "normal", data });
      expect(results?.map((r) => r.error)).toEqual([
        undefined,
        undefined,
        expect.stringMatching(/ROLLBACK/),
        expect.stringMatching(/PRAGMA defer_foreign_keys is only allowed in a request with \?transaction/),
        expect.stringMatching(/internal object/),
        expect.stringMatching(/named parameters must be made positional/),
        "exactly one SQL statement per entry is supported",
        undefined,
      ]);
      const [read] = machine.query([{ sql: "SELECT x FROM u ORDER BY x" }], { transaction: false });
      expect(read?.rows).toEqual([[1], [2]]);
    });
  });
});

describe("results", () => {
  it("reports columns, types, rows, lastInsertId, rowsAffected and time", async () => {
    await withStorage("results", (storage) => {
      const d = driverFor(storage);
      const create = d.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, score REAL, data BLOB)");
      expect(create).toMatchObject({ rowsAffected: 0 });
      expect(create.lastInsertId).toBeUndefined();
      d.exec("CREATE INDEX t_name ON t(name)");
      d.exec("INSERT INTO t(name, score, data) VALUES ('a', 1.5, x'00ff'), ('b', 2, NULL), ('c', NULL, NULL)");
      // rowsAffected counts rows changed (changes()), not rows written (the index makes those differ).
      const update = d.exec("UPDATE t SET name = name || '!' WHERE id <= 2");
      expect(update).toMatchObject({ rowsAffected: 2 });
      const returning = d.exec("INSERT INTO t(name) VALUES ('d') RETURNING id, name");
      expect(returning).toMatchObject({
        columns: ["id", "name"],
        types: ["integer", "text"],
        rows: [[4, "d"]],
        lastInsertId: 4,
        rowsAffected: 1,
      });
      const [select] = d.machine.query([{ sql: "SELECT id, name, score, data, NULL AS empty FROM t ORDER BY id" }], {
        transaction: false,
      });
      expect(select?.error).toBeUndefined();
      expect(select?.columns).toEqual(["id", "name", "score", "data", "empty"]);
      expect(select?.types).toEqual(["integer", "text", "real", "blob", ""]);
      expect(select?.rows).toEqual([
        [1, "a!", 1.5, new Uint8Array([0, 255]), null],
        [2, "b!", 2, null, null],
        [3, "c", null, null, null],
        [4, "d", null, null, null],
      ]);
      expect(typeof select?.time).toBe("number");
      expect(select?.time).toBeGreaterThanOrEqual(0);
      const [empty] = d.machine.query([{ sql: "SELECT id FROM t WHERE 0" }], { transaction: false });
      // An empty result still carries the declared type (issue 10, item 1).
      expect(empty).toMatchObject({ columns: ["id"], types: ["integer"], rows: [] });
    });
  });

  it("round-trips blobs and stores whole-number parameters as integers", async () => {
    await withStorage("blobs", (storage) => {
      const d = driverFor(storage);
      d.exec("CREATE TABLE t(anything, label TEXT)");
      const bytes = new Uint8Array(256).map((_, i) => i);
      d.exec("INSERT INTO t VALUES (?, ?)", [bytes, 1]);
      d.exec("INSERT INTO t VALUES (:v, :l)", { v: 7, l: 2.5 });
      expect(d.read("SELECT anything, typeof(anything), label, typeof(label) FROM t ORDER BY rowid")).toEqual([
        [bytes, "blob", "1", "text"],
        [7, "integer", "2.5", "text"],
      ]);
    });
  });

  it("bounds result sets", async () => {
    await withStorage("bounded", (storage) => {
      const d = driverFor(storage, { maxResultBytes: 1000 });
      d.exec("CREATE TABLE t(v TEXT)");
      // A read fails as a whole (the node answers 4xx; issue 10, item 9).
      expect(() =>
        d.machine.query(
          [
            {
              sql: "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 200) SELECT 'xxxxxxxxxx' FROM c",
            },
          ],
          { transaction: false },
        ),
      ).toThrow(
        /statement 1: the results are larger than 1000 bytes, the most one request may return \(DHA_MAX_RESULT_BYTES\)/,
      );
      // A write's effects stand even when its RETURNING rows are too many to report.
      const [inserted] = d.apply([
        {
          sql: "INSERT INTO t SELECT 'yyyyyyyyyy' FROM (WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c WHERE n < 200) SELECT n FROM c) RETURNING v",
        },
      ]);
      expect(inserted?.error).toMatch(/^the results are larger than 1000 bytes/);
      expect(d.read("SELECT count(*) FROM t")).toEqual([[200]]);
    });
  });
});

describe("request-id deduplication", () => {
  it("applies a retried request once and answers with the first results", async () => {
    await withStorage("dedup", (storage) => {
      const d = driverFor(storage);
      d.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
      const first = d.apply([{ sql: "INSERT INTO t(v) VALUES ('x')" }, { sql: "SELECT count(*) AS n FROM t" }], {
        id: "client-7",
      });
      const retry = d.apply([{ sql: "INSERT INTO t(v) VALUES ('x')" }, { sql: "SELECT count(*) AS n FROM t" }], {
        id: "client-7",
      });
      // The first results, but for the statements' timings: remembered requests keep none (see rememberRequest).
      expect(retry).toEqual(untimed(first));
      expect(first[1]?.rows).toEqual([[1]]);
      expect(d.read("SELECT count(*) FROM t")).toEqual([[1]]);
      expect(d.machine.appliedIndex()).toBe(3);
      expect(d.machine.rememberedRequest("client-7")).toEqual({ index: 2 });
    });
  });

  it("refuses an id reused for a different request, applying nothing of it, but not a retry with new times", async () => {
    await withStorage("dedup-reused", (storage) => {
      const d = driverFor(storage);
      d.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
      const first = d.apply([{ sql: "INSERT INTO t(v) VALUES ('a')" }], { id: "key-1" });
      // Both reached the log (sent concurrently, say): the second request under key-1 is another one.
      const other = d.apply([{ sql: "INSERT INTO t(v) VALUES ('b')" }, { sql: "DELETE FROM t" }], { id: "key-1" });
      expect(other.map((result) => result.error)).toEqual([
        expect.stringContaining('request id "key-1" was already used for a different request'),
        expect.stringContaining("nothing of this one was applied"),
      ]);
      expect(d.read("SELECT v FROM t")).toEqual([["a"]]);
      expect(d.machine.reusedIdRefusal({ id: "key-1", transaction: false, statements: [{ sql: "SELECT 1" }] })).toMatch(
        /already used for a different request \(applied at index 2\)/,
      );
      expect(
        d.machine.reusedIdRefusal({
          id: "key-1",
          transaction: false,
          statements: [{ sql: "INSERT INTO t(v) VALUES ('a')" }],
        }),
      ).toBeNull();
      // The transaction flag is part of the request.
      expect(
        d.machine.reusedIdRefusal({
          id: "key-1",
          transaction: true,
          statements: [{ sql: "INSERT INTO t(v) VALUES ('a')" }],
        }),
      ).not.toBeNull();
      expect(d.apply([{ sql: "INSERT INTO t(v) VALUES ('a')" }], { id: "key-1" })).toEqual(untimed(first));

      // prepareWrite fixes the time and random values of each attempt: a retry is still the same request.
      const timed = [{ sql: "INSERT INTO t(v) VALUES (strftime('%Y-%m-%d %H:%M:%f', 'now'))" }];
      const once = d.apply(timed, { id: "key-2" });
      d.now = NOW_MS + 60_000;
      expect(d.apply(timed, { id: "key-2" })).toEqual(untimed(once));
      expect(d.read("SELECT count(*) FROM t")).toEqual([[2]]);
    });
  });

  it("names only the client's key in its messages, never the caller's namespace in front of it", async () => {
    await withStorage("dedup-namespace", (storage) => {
      const d = driverFor(storage, { maxDedupResultBytes: 40 });
      d.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
      const namespace = "1734d503f6aa6a04";
      const id = namespacedRequestId(namespace, "reuse-1");
      d.apply([{ sql: "INSERT INTO t(v) VALUES ('a')" }], { id });
      const reused = d.apply([{ sql: "INSERT INTO t(v) VALUES ('b')" }], { id });
      const refusal = d.machine.reusedIdRefusal({ id, transaction: false, statements: [{ sql: "SELECT 1" }] });
      expect([reused[0]?.error, refusal]).toEqual([
        'request id "reuse-1" was already used for a different request (applied at index 2); nothing of this one ' +
          "was applied: use a new Idempotency-Key",
        'request id "reuse-1" was already used for a different request (applied at index 2); nothing of this one ' +
          "was applied: use a new Idempotency-Key",
      ]);
      // A key may hold colons itself: only the namespace, up to the first one, is left out.
      const big = namespacedRequestId(namespace, "big:1");
      const statements = Array.from({ length: 4 }, (_, i) => ({ sql: `INSERT INTO t(v) VALUES (${i})` }));
      d.apply(statements, { id: big });
      expect(d.machine.rememberedResults(big)?.[0]?.error).toBe(
        'request "big:1" was already applied at index 4; its results were too large to keep',
      );
      expect(JSON.stringify(d.machine.rememberedResults(big))).not.toContain(namespace);
    });
  });

  it("forgets the oldest ids beyond the bound", async () => {
    await withStorage("dedup-bound", (storage) => {
      const d = driverFor(storage, { maxDedupEntries: 3 });
      d.exec("CREATE TABLE t(v)", undefined);
      for (let i = 1; i <= 5; i += 1) {
        d.apply([{ sql: "INSERT INTO t VALUES (?)", params: [`v${i}`] }], { id: `id-${i}` });
      }
      expect(["id-1", "id-2", "id-3", "id-4", "id-5"].map((id) => d.machine.rememberedRequest(id) !== null)).toEqual([
        false,
        false,
        true,
        true,
        true,
      ]);
      // A forgotten id is applied again: the bound is the window within which retries are safe.
      d.apply([{ sql: "INSERT INTO t VALUES ('again')" }], { id: "id-1" });
      expect(d.read("SELECT count(*) FROM t")).toEqual([[6]]);
    });
  });

  it("keeps large results without their rows", async () => {
    await withStorage("dedup-large", (storage) => {
      const d = driverFor(storage, { maxDedupResultBytes: 200 });
      d.exec("CREATE TABLE t(v)");
      const first = d.apply(
        [
          {
            sql: "INSERT INTO t VALUES ('aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa') RETURNING v, v, v, v",
          },
        ],
        { id: "big" },
      );
      expect(first[0]?.rows).toHaveLength(1);
      expect(d.machine.rememberedResults("big")).toEqual([{ lastInsertId: 1, rowsAffected: 1 }]);
    });
  });
});

describe("schema version and hash", () => {
  it("bumps the version on every statement that changes the schema, and only then", async () => {
    await withStorage("schema", (storage) => {
      const d = driverFor(storage);
      const initial = d.machine.schemaInfo();
      expect(initial.version).toBe(0);
      expect(initial.hash).toMatch(/^[0-9a-f]{64}$/);
      d.exec("CREATE TABLE t(a)");
      const afterTable = d.machine.schemaInfo();
      expect(afterTable.version).toBe(1);
      expect(afterTable.hash).not.toBe(initial.hash);
      d.exec("CREATE TABLE IF NOT EXISTS t(a)");
      d.exec("INSERT INTO t VALUES (1)");
      expect(d.machine.schemaInfo()).toEqual(afterTable);
      expect(d.apply([{ sql: "CREATE TABLE t(b)" }])[0]?.error).toBe("table t already exists");
      expect(d.machine.schemaInfo()).toEqual(afterTable);
      // DDL inside a transactional request that fails is undone, version included.
      d.apply([{ sql: "CREATE INDEX ta ON t(a)" }, { sql: "INSERT INTO nope VALUES (1)" }], { transaction: true });
      expect(d.machine.schemaInfo()).toEqual(afterTable);
      d.apply([
        { sql: "CREATE INDEX ta ON t(a)" },
        { sql: "ALTER TABLE t ADD COLUMN b TEXT" },
        { sql: "CREATE VIEW v AS SELECT a FROM t" },
      ]);
      expect(d.machine.schemaInfo().version).toBe(4);
      d.exec("DROP VIEW v");
      expect(d.machine.schemaInfo().version).toBe(5);
    });
  });

  it("is identical on two objects given the same entries", async () => {
    const entries: Statement[][] = [
      [{ sql: "CREATE TABLE a(id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT DEFAULT 'x', at TEXT)" }],
      [{ sql: "INSERT INTO a(v, at) VALUES ('one', CURRENT_TIMESTAMP), (hex(randomblob(4)), datetime('now'))" }],
      [
        { sql: "CREATE INDEX a_v ON a(v)" },
        { sql: "CREATE TRIGGER a_t AFTER DELETE ON a BEGIN INSERT INTO a(v) VALUES ('deleted ' || old.id); END" },
      ],
      [{ sql: "DELETE FROM a WHERE id = 1" }],
    ];
    const data = await withStorage("schema-leader", (storage) => {
      const d = driverFor(storage);
      return entries.map((statements, i) => d.data(statements, { id: `same-${i}` }));
    });
    const applyAll = (storage: DurableObjectStorage): { schema: unknown; rows: unknown } => {
      const machine = new SqlStateMachine(storage);
      data.forEach((entryData, i) => machine.applyEntry({ index: i + 1, kind: "normal", data: entryData }));
      return {
        schema: machine.schemaInfo(),
        rows: machine.query([{ sql: "SELECT * FROM a ORDER BY id" }], { transaction: false })[0]?.rows,
      };
    };
    const first = await withStorage("schema-a", applyAll);
    const second = await withStorage("schema-b", applyAll);
    expect(first).toEqual(second);
    expect(first.rows).toEqual([
      [2, "07070707", "2026-11-26 08:00:00"],
      [3, "deleted 1", null],
    ]);
  });
});

describe("local reads", () => {
  it("refuses writes with rqlite's message and never changes anything", async () => {
    await withStorage("query", (storage) => {
      const d = driverFor(storage);
      d.exec("CREATE TABLE t(v)");
      const results = d.machine.query(
        [
          { sql: "SELECT count(*) FROM t" },
          { sql: "INSERT INTO t VALUES (1)" },
          { sql: "SELECT nope FROM t" },
          { sql: "SELECT 2" },
        ],
        { transaction: false },
      );
      expect(results.map((r) => r.error)).toEqual([undefined, READ_ONLY_VIOLATION, "no such column: nope", undefined]);
      expect(d.read("SELECT count(*) FROM t")).toEqual([[0]]);
      // In a transaction too every read answers, as rqlited 8.26.8 does: a failed read changes nothing to roll back.
      const all = d.machine.query([{ sql: "SELECT 1" }, { sql: "SELECT nope FROM t" }, { sql: "SELECT 3" }], {
        transaction: true,
      });
      expect(all.map((r) => r.error ?? r.rows)).toEqual([[[1]], "no such column: nope", [[3]]]);
    });
  });
});

describe("the node runtime's port", () => {
  it("prepares, applies, remembers and reads through StateMachinePort", async () => {
    await withStorage("port", (storage) => {
      const port = createStateMachine(storage);
      const prepared = port.prepareWrite(
        {
          id: "p1",
          transaction: true,
          statements: [
            { sql: "CREATE TABLE t(v, r)" },
            { sql: "INSERT INTO t VALUES (:v, random())", params: { v: 5 } },
          ],
        },
        { nowMs: NOW_MS },
      );
      if (!prepared.ok) {
        throw new Error(prepared.error);
      }
      expect(port.applyEntry({ index: 1, kind: "normal", data: prepared.value })?.map((r) => r.error)).toEqual([
        undefined,
        undefined,
      ]);
      expect(port.rememberedResults("p1")).toHaveLength(2);
      expect(
        port.prepareWrite({ id: "p2", transaction: false, statements: [{ sql: "BEGIN" }] }, { nowMs: NOW_MS }),
      ).toMatchObject({ ok: false });
      const read = port.prepareRead([{ sql: "SELECT v, typeof(r) FROM t" }]);
      if (!read.ok) {
        throw new Error(read.error);
      }
      expect(port.query(read.value, { transaction: false })[0]?.rows).toEqual([[5, "integer"]]);
      expect(port.schemaInfo().version).toBe(1);
      expect(port.appliedIndex()).toBe(1);
    });
  });
});
