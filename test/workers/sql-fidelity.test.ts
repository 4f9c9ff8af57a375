// What clients read, as exactly as SQLite holds it (issue 10): declared column types, 64-bit integers, the PRAGMAs
// ORMs send, the schema tables without the platform's objects, and bounded results. Real Durable Object SQLite.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { SqlRequest, Statement, StatementResult } from "../../src/shared/sql";
import {
  encodeSqlRequest,
  prepareRead,
  prepareWrite,
  ResultLimitError,
  SqlStateMachine,
  stateMachineOptionsFromEnv,
  type SqlStateMachineOptions,
} from "../../src/objects/sql/index";

/** Runs `fn` against the storage of a fresh ClusterNode object (one per call: names are unique). */
async function withStorage<T>(label: string, fn: (storage: DurableObjectStorage) => T): Promise<T> {
  const stub = env.CLUSTER_NODE.getByName(`sql-fidelity-${label}-${crypto.randomUUID()}`);
  return runInDurableObject(stub, (_instance, state) => fn(state.storage));
}

const NOW_MS = Date.UTC(2026, 10, 30, 8, 0, 0, 0);

/** The leader's preparation and a replica's apply, as the node runtime does them; reads go through prepareRead. */
class Node {
  private index = 0;
  readonly machine: SqlStateMachine;

  constructor(storage: DurableObjectStorage, options?: SqlStateMachineOptions) {
    this.machine = new SqlStateMachine(storage, options);
  }

  apply(
    statements: Statement[],
    transaction = false,
    id = `req-${this.index + 1}-${crypto.randomUUID()}`,
  ): StatementResult[] {
    const request: SqlRequest = { id, transaction, statements };
    const prepared = prepareWrite(request, { nowMs: NOW_MS, randomBytes: (n) => new Uint8Array(n).fill(7) });
    if (!prepared.ok) {
      throw new Error(`refused: ${prepared.error}`);
    }
    this.index += 1;
    const results = this.machine.applyEntry({
      index: this.index,
      kind: "normal",
      data: encodeSqlRequest(prepared.request),
    });
    if (results === null) {
      throw new Error("already applied");
    }
    return results;
  }

  exec(sql: string, params?: Statement["params"]): StatementResult {
    const [result] = this.apply([params === undefined ? { sql } : { sql, params }]);
    if (result?.error !== undefined) {
      throw new Error(`statement failed: ${result.error}`);
    }
    return result as StatementResult;
  }

  query(sql: string, params?: Statement["params"]): StatementResult {
    const prepared = prepareRead([params === undefined ? { sql } : { sql, params }]);
    if (!prepared.ok) {
      throw new Error(`refused: ${prepared.error}`);
    }
    const [result] = this.machine.query(prepared.statements, { transaction: false });
    return result as StatementResult;
  }
}

describe("column types (issue 10, item 1)", () => {
  it("reports each column's declared type, lowercased, as rqlite does; a REAL column whose first value is whole is still real", async () => {
    await withStorage("declared", (storage) => {
      const node = new Node(storage);
      node.exec(
        "CREATE TABLE m(id INTEGER PRIMARY KEY, price REAL, label TEXT, data BLOB, at DATETIME, code VARCHAR(10), flag BOOLEAN, n NUMERIC)",
      );
      node.exec(
        "INSERT INTO m(price, label, data, at, code, flag, n) VALUES (3.0, 'a', x'01', '2026-01-01', 'x', 1, 2), (0.5, 'b', NULL, NULL, NULL, 0, 2.5), (-7.25, NULL, NULL, NULL, NULL, NULL, NULL)",
      );
      const read = node.query("SELECT id, price, label, data, at, code, flag, n FROM m ORDER BY id");
      expect(read.error).toBeUndefined();
      expect(read.types).toEqual(["integer", "real", "text", "blob", "datetime", "varchar(10)", "boolean", "numeric"]);
      expect(read.rows?.map((row) => row[1])).toEqual([3, 0.5, -7.25]);
      // The same through the log (a SELECT inside a write request) and through RETURNING of declared columns.
      const [logged] = node.apply([{ sql: "SELECT price FROM m ORDER BY id" }]);
      expect(logged?.types).toEqual(["real"]);
    });
  });

  it("gives an empty result its declared types too, and infers only for expressions", async () => {
    await withStorage("empty", (storage) => {
      const node = new Node(storage);
      node.exec("CREATE TABLE m(id INTEGER PRIMARY KEY, price REAL, label TEXT)");
      expect(node.query("SELECT id, price, label FROM m").types).toEqual(["integer", "real", "text"]);
      expect(node.query("SELECT * FROM m WHERE id = ?", [1]).types).toEqual(["integer", "real", "text"]);
      // Joins, aliases, subqueries and views keep the declared type of the column they name.
      node.exec("CREATE VIEW v AS SELECT price AS p FROM m");
      expect(node.query("SELECT a.price AS x, (SELECT label FROM m) AS y, v.p FROM m AS a JOIN v").types).toEqual([
        "real",
        "text",
        "real",
      ]);
      node.exec("INSERT INTO m(price, label) VALUES (3.0, 'a'), (0.5, 'b')");
      // Expressions have no declared type: the values decide, and a column with any non-integral number is real.
      const expressions = node.query("SELECT price / 4, count(*) OVER (), label || '!', NULL FROM m ORDER BY id");
      expect(expressions.types).toEqual(["real", "integer", "text", ""]);
      expect(node.query("SELECT 1.5 UNION ALL SELECT 2").types).toEqual(["real"]);
      expect(node.query("SELECT 2 UNION ALL SELECT 1.5").types).toEqual(["real"]);
    });
  });

  it("never calls a column integer when it holds a non-integral value; untyped columns are inferred, not 'blob'", async () => {
    await withStorage("never-integer", (storage) => {
      const node = new Node(storage);
      node.exec("CREATE TABLE loose(i INTEGER, anything)");
      node.exec("INSERT INTO loose VALUES (1, 1), (2.5, 2.5)");
      expect(node.query("SELECT i, anything FROM loose").types).toEqual(["real", "real"]);
      node.exec("CREATE TABLE untyped(a)");
      node.exec("INSERT INTO untyped VALUES ('text')");
      expect(node.query("SELECT a FROM untyped").types).toEqual(["text"]);
      node.exec("INSERT INTO untyped VALUES (x'00')");
      expect(node.query("SELECT a FROM untyped WHERE typeof(a) = 'blob'").types).toEqual(["blob"]);
    });
  });

  it("reports declared types for RETURNING too (the ORM's INSERT ... RETURNING), without running the write twice", async () => {
    await withStorage("returning", (storage) => {
      const node = new Node(storage);
      node.exec("CREATE TABLE m(id INTEGER PRIMARY KEY, price REAL, label VARCHAR(20))");
      expect(node.exec("INSERT INTO m(price, label) VALUES (3.0, 'a') RETURNING id, price, label")).toMatchObject({
        types: ["integer", "real", "varchar(20)"],
        rows: [[1, 3, "a"]],
      });
      expect(
        node.exec("INSERT OR REPLACE INTO main.m(price) VALUES (?) RETURNING price, price * 2", [2]).types,
      ).toEqual(["real", "integer"]);
      expect(node.exec("UPDATE m AS x SET price = 4.0 WHERE x.id = 1 RETURNING price, label").types).toEqual([
        "real",
        "varchar(20)",
      ]);
      expect(node.exec("WITH v(p) AS (VALUES (5.0)) INSERT INTO m(price) SELECT p FROM v RETURNING *").types).toEqual([
        "integer",
        "real",
        "varchar(20)",
      ]);
      expect(node.exec("DELETE FROM m WHERE id = 1 RETURNING price").types).toEqual(["real"]);
      expect(node.query("SELECT count(*) FROM m").rows).toEqual([[2]]);
    });
  });

  it("follows the schema: a table made again with other types reports the new ones, inline values share one answer", async () => {
    await withStorage("schema-follows", (storage) => {
      const node = new Node(storage);
      node.exec("CREATE TABLE t(a INTEGER, b TEXT)");
      expect(node.query("SELECT a, b FROM t WHERE a = 1").types).toEqual(["integer", "text"]);
      expect(node.query("SELECT a, b FROM t WHERE a = 2").types).toEqual(["integer", "text"]);
      node.exec("DROP TABLE t");
      node.exec("CREATE TABLE t(a REAL, b BLOB)");
      expect(node.query("SELECT a, b FROM t WHERE a = 1").types).toEqual(["real", "blob"]);
      // A schema change undone with its transaction leaves the answer for the schema that stands.
      const undone = node.apply(
        [
          { sql: "DROP TABLE t" },
          { sql: "CREATE TABLE t(a TEXT, b TEXT)" },
          { sql: "SELECT a, b FROM t" },
          { sql: "SELECT nope" },
        ],
        true,
      );
      expect(undone[2]?.types).toEqual(["text", "text"]);
      expect(node.query("SELECT a, b FROM t").types).toEqual(["real", "blob"]);
    });
  });

  it("leaves no trace of how it asked SQLite: no object, no schema change, parameters and reads unaffected", async () => {
    await withStorage("no-trace", (storage) => {
      const node = new Node(storage);
      node.exec("CREATE TABLE m(id INTEGER PRIMARY KEY, price REAL)");
      const before = node.machine.schemaInfo();
      for (let i = 0; i < 3; i++) {
        expect(node.query("SELECT price FROM m WHERE id > ? LIMIT ?", [0, 5]).types).toEqual(["real"]);
      }
      expect(node.machine.schemaInfo()).toEqual(before);
      expect([...storage.sql.exec("SELECT name FROM sqlite_master WHERE name LIKE '%dha%'").raw()]).toEqual([]);
      // A statement SQLite cannot make a view of still runs and reports its own error or result.
      expect(node.query("SELECT nope FROM m").error).toMatch(/no such column: nope/);
      expect(node.query("PRAGMA table_info(m)").types).toEqual(["integer", "text", "text", "integer", "", "integer"]);
    });
  });
});

describe("64-bit integers (issue 10, item 2)", () => {
  const MAX = 9223372036854775807n;
  const MIN = -9223372036854775808n;

  it("(the platform as found: INTEGERs beyond 2^53 come back rounded to doubles, and a bigint cannot be bound)", async () => {
    await withStorage("platform-int64", (storage) => {
      expect([
        ...storage.sql.exec("SELECT 9223372036854775807, 9007199254740993, typeof(9007199254740993)").raw(),
      ]).toEqual([[2 ** 63, 2 ** 53, "integer"]]);
      expect(() => storage.sql.exec("SELECT ?", 1n as unknown as number)).toThrow(
        "Cannot convert a BigInt value to a number",
      );
    });
  });

  it("reads integers beyond 2^53 exactly, as bigints, and every other value as before", async () => {
    await withStorage("read-int64", (storage) => {
      const node = new Node(storage);
      const read = node.query(
        "SELECT 9223372036854775807 AS max, -9223372036854775808 AS min, 9007199254740993 AS odd, 42 AS small, 1e300 AS big_real, 'x' AS t",
      );
      expect(read.error).toBeUndefined();
      expect(read.rows).toEqual([[MAX, MIN, 9007199254740993n, 42, 1e300, "x"]]);
      expect(read.types).toEqual(["integer", "integer", "integer", "integer", "real", "text"]);
      // Rows, order and NULLs survive the exact re-read; so does a column that is an integer in one row only.
      node.exec("CREATE TABLE big(id INTEGER PRIMARY KEY, v)");
      node.exec(
        "INSERT INTO big VALUES (1, 9223372036854775807), (2, NULL), (3, 2.5), (4, 'text'), (5, x'ff'), (6, -9007199254740993)",
      );
      const table = node.query("SELECT id, v FROM big ORDER BY id DESC");
      expect(table.rows).toEqual([
        [6, -9007199254740993n],
        [5, new Uint8Array([255])],
        [4, "text"],
        [3, 2.5],
        [2, null],
        [1, MAX],
      ]);
      expect(table.columns).toEqual(["id", "v"]);
      // Recursive CTEs, VALUES and compound queries read exactly too, in their order.
      expect(
        node.query(
          "WITH RECURSIVE c(x) AS (SELECT 9007199254740993 UNION ALL SELECT x + 1 FROM c LIMIT 3) SELECT x FROM c ORDER BY x DESC",
        ).rows,
      ).toEqual([[9007199254740995n], [9007199254740994n], [9007199254740993n]]);
      expect(node.query("VALUES (9223372036854775807, 'a'), (1, 'b')").rows).toEqual([
        [MAX, "a"],
        [1, "b"],
      ]);
      expect(node.query("SELECT v FROM big WHERE id = 1 UNION ALL SELECT ?", [MIN]).rows).toEqual([[MAX], [MIN]]);
    });
  });

  it("binds bigints exactly (stored as INTEGER), refuses values outside int64, and keeps lastInsertId exact", async () => {
    await withStorage("bind-int64", (storage) => {
      const node = new Node(storage);
      node.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
      const insert = node.exec("INSERT INTO t VALUES (?, ?)", [MAX, MIN]);
      expect(insert.lastInsertId).toBe(MAX);
      expect(node.query("SELECT typeof(v), CAST(v AS TEXT), CAST(id AS TEXT) FROM t").rows).toEqual([
        ["integer", MIN.toString(), MAX.toString()],
      ]);
      expect(node.query("SELECT v FROM t WHERE id = :id", { id: MAX }).rows).toEqual([[MIN]]);
      const refused = prepareWrite(
        { id: "r", transaction: false, statements: [{ sql: "INSERT INTO t(v) VALUES (?)", params: [MAX + 1n] }] },
        { nowMs: NOW_MS, randomBytes: (n) => new Uint8Array(n) },
      );
      expect(refused).toEqual({
        ok: false,
        error: `statements[0]: parameter 1 is ${MAX + 1n}, outside SQLite's 64-bit integer range (${MIN} to ${MAX})`,
      });
    });
  });

  it("remembers exact results for retried writes, and fails RETURNING of a value it cannot read exactly with a clear error", async () => {
    await withStorage("dedup-int64", (storage) => {
      const node = new Node(storage);
      node.exec("CREATE TABLE t(id INTEGER PRIMARY KEY, v)");
      const results = node.apply(
        [{ sql: "INSERT INTO t VALUES (?, 1)", params: [MAX] }, { sql: "SELECT id FROM t" }],
        false,
        "big-request",
      );
      expect(results?.[0]?.lastInsertId).toBe(MAX);
      expect(results?.[1]?.rows).toEqual([[MAX]]);
      // Remembered without the statements' timings (see rememberRequest).
      expect(node.machine.rememberedResults("big-request")).toEqual(results?.map(({ time: _time, ...rest }) => rest));
      const [returning] = node.apply([{ sql: "UPDATE t SET v = 9007199254740993 RETURNING v" }]);
      expect(returning?.error).toMatch(/integer beyond ±2\^53 .*CAST\(x AS TEXT\)/);
      expect(node.query("SELECT v FROM t").rows).toEqual([[9007199254740993n]]);
    });
  });
});

describe("PRAGMAs ORMs send (issue 10, item 3)", () => {
  it("answers PRAGMA read_uncommitted with 0, as SQLite and rqlite do, on the read and the write path", async () => {
    await withStorage("read-uncommitted", (storage) => {
      const node = new Node(storage);
      for (const sql of ["PRAGMA read_uncommitted", "PRAGMA main.read_uncommitted", "pragma TEMP.read_uncommitted;"]) {
        expect(node.query(sql), sql).toMatchObject({ columns: ["read_uncommitted"], types: ["integer"], rows: [[0]] });
      }
      expect(node.apply([{ sql: "PRAGMA read_uncommitted" }])[0]).toMatchObject({
        columns: ["read_uncommitted"],
        rows: [[0]],
      });
      // Setting it is still refused (PRAGMAs that write are).
      expect(prepareRead([{ sql: "PRAGMA read_uncommitted = 1" }]).ok).toBe(false);
    });
  });

  it("reads the temp schema as SQLite reads an empty one: SQLite's columns, no rows", async () => {
    await withStorage("temp-schema", (storage) => {
      const node = new Node(storage);
      node.exec("CREATE TABLE m(id INTEGER PRIMARY KEY, parent REFERENCES m(id))");
      node.exec("CREATE INDEX m_parent ON m(parent)");
      // Column names as SQLite gives them for the main schema (the same pragma.h entries), rows as for an empty schema.
      for (const pragma of [
        "table_info(m)",
        "table_xinfo(m)",
        "index_list(m)",
        "index_info(m_parent)",
        "index_xinfo(m_parent)",
        "foreign_key_list(m)",
      ]) {
        const main = node.query(`PRAGMA main.${pragma}`);
        expect(main.rows?.length, pragma).toBeGreaterThan(0);
        const temp = node.query(`PRAGMA temp.${pragma}`);
        expect(temp, pragma).toMatchObject({ columns: main.columns, rows: [] });
        expect(temp.error, pragma).toBeUndefined();
        expect(temp.types, pragma).toEqual(main.columns?.map(() => ""));
      }
      expect(node.query('PRAGMA "temp".foreign_key_list("m")')).toMatchObject({
        columns: ["id", "seq", "table", "from", "to", "on_update", "on_delete", "match"],
        rows: [],
      });
      expect(node.query("PRAGMA temp.table_list").rows).toEqual([["temp", "sqlite_temp_schema", "table", 5, 0, 0]]);
      expect(node.query("PRAGMA temp.table_list(m)").rows).toEqual([]);
      expect(node.query("PRAGMA temp.quick_check")).toMatchObject({ columns: ["quick_check"], rows: [["ok"]] });
      expect(node.query("PRAGMA temp.integrity_check(5)")).toMatchObject({
        columns: ["integrity_check"],
        rows: [["ok"]],
      });
      expect(node.query("PRAGMA temp.foreign_key_check")).toMatchObject({
        columns: ["table", "rowid", "parent", "fkid"],
        rows: [],
      });
      expect(node.query("PRAGMA temp.foreign_key_check(m)").error).toBe("no such table: temp.m");
      expect(node.query("SELECT * FROM sqlite_temp_master")).toMatchObject({
        columns: ["type", "name", "tbl_name", "rootpage", "sql"],
        rows: [],
      });
    });
  });

  it("names the PRAGMAs the platform refuses instead of a bare 'not authorized'", async () => {
    await withStorage("refused-pragmas", (storage) => {
      const node = new Node(storage);
      expect(node.query("PRAGMA user_version").error).toBe(
        "PRAGMA user_version is not available: the platform refuses it (not authorized)",
      );
      expect(node.query("PRAGMA temp.user_version").error).toMatch(/PRAGMA temp.user_version is not available/);
      expect(node.query("PRAGMA foreign_keys")).toMatchObject({ columns: ["foreign_keys"], rows: [[1]] });
    });
  });
});

describe("the schema as users see it (issue 10, item 4)", () => {
  const USER_OBJECTS = [
    ["table", "m"],
    ["index", "m_label"],
    ["table", "sqlite_sequence"],
  ];

  it("lists only user objects in sqlite_master / sqlite_schema, however the query names them", async () => {
    await withStorage("schema-tables", (storage) => {
      const node = new Node(storage);
      node.exec("CREATE TABLE m(id INTEGER PRIMARY KEY AUTOINCREMENT, label TEXT)");
      node.exec("CREATE INDEX m_label ON m(label)");
      // The platform's table exists (the state machine keeps its state in ctx.storage.kv); Miniflare's and ours
      // are made here the way the platform makes its own, past the validation user statements go through.
      storage.sql.exec("CREATE TABLE __miniflare_do_name(name TEXT)");
      storage.sql.exec("CREATE TABLE _dha_internal(x)");
      const everything = [...storage.sql.exec("SELECT name FROM sqlite_master").raw()].map(([name]) => name);
      expect(everything).toEqual(expect.arrayContaining(["_cf_KV", "__miniflare_do_name", "_dha_internal"]));

      for (const sql of [
        "SELECT type, name FROM sqlite_master ORDER BY name",
        "select type, name from SQLITE_SCHEMA order by name",
        "SELECT type, name FROM main.sqlite_master ORDER BY name",
        'SELECT type, name FROM "sqlite_master" ORDER BY name',
        "SELECT s.type, s.name FROM sqlite_master AS s ORDER BY s.name",
        "SELECT s.type, s.name FROM sqlite_schema s WHERE s.name <> '' ORDER BY 2",
        "SELECT sqlite_master.type, sqlite_master.name FROM sqlite_master ORDER BY sqlite_master.name",
        "SELECT type, name FROM (SELECT * FROM sqlite_master) ORDER BY name",
        "WITH o AS (SELECT type, name FROM sqlite_master) SELECT * FROM o ORDER BY name",
      ]) {
        const read = node.query(sql);
        expect(read.error, sql).toBeUndefined();
        expect(read.rows, sql).toEqual(USER_OBJECTS);
      }
      expect(node.query("SELECT count(*) FROM sqlite_master, m").rows).toEqual([[0]]);
      expect(node.query("SELECT name FROM sqlite_master WHERE type = ? ORDER BY name", ["table"]).rows).toEqual([
        ["m"],
        ["sqlite_sequence"],
      ]);
      // A reflection query an ORM sends, joining each table's columns.
      const columns = node.query(
        "SELECT t.name, c.name FROM sqlite_master AS t JOIN pragma_table_info(t.name) AS c WHERE t.type = 'table' ORDER BY 1, c.cid",
      );
      expect(columns.rows).toEqual([
        ["m", "id"],
        ["m", "label"],
        ["sqlite_sequence", "name"],
        ["sqlite_sequence", "seq"],
      ]);
      expect(
        node.query("SELECT type, name, tbl_name, rootpage > 0, sql IS NOT NULL FROM sqlite_master WHERE name = 'm'")
          .rows,
      ).toEqual([["table", "m", "m", 1, 1]]);
      // The temp schema's table and a column called sqlite_master are left alone.
      expect(node.query("SELECT 1 AS sqlite_master").columns).toEqual(["sqlite_master"]);
      expect(node.query("SELECT count(*) FROM temp.sqlite_master").rows).toEqual([[0]]);
      // Writing to it is still SQLite's refusal.
      expect(node.apply([{ sql: "DELETE FROM sqlite_master" }])[0]?.error).toMatch(/may not be modified/);
    });
  });

  it("leaves the platform's tables out of PRAGMA table_list and pragma_table_list, and out of what writes copy", async () => {
    await withStorage("table-list", (storage) => {
      const node = new Node(storage);
      node.exec("CREATE TABLE m(id INTEGER PRIMARY KEY)");
      storage.sql.exec("CREATE TABLE __miniflare_do_name(name TEXT)");
      const listed = (rows: readonly (readonly unknown[])[] | undefined): unknown[] =>
        (rows ?? []).map((row) => row[1]).sort();
      expect(listed(node.query("PRAGMA table_list").rows)).toEqual(["m", "sqlite_schema", "sqlite_temp_schema"]);
      expect(listed(node.query("PRAGMA main.table_list").rows)).toEqual(["m", "sqlite_schema"]);
      expect(listed(node.query("SELECT * FROM pragma_table_list").rows)).toEqual([
        "m",
        "sqlite_schema",
        "sqlite_temp_schema",
      ]);
      expect(listed(node.query("SELECT * FROM pragma_table_list() WHERE schema = ?", ["main"]).rows)).toEqual([
        "m",
        "sqlite_schema",
      ]);
      expect(node.query("SELECT name FROM pragma_table_list(?)", ["_cf_KV"]).rows).toEqual([]);
      expect(node.query("SELECT p.name FROM pragma_table_list p WHERE p.name = 'm'").rows).toEqual([["m"]]);
      node.exec("CREATE TABLE copy(name TEXT)");
      node.exec("INSERT INTO copy SELECT name FROM sqlite_master WHERE type = 'table'");
      expect(node.query("SELECT name FROM copy ORDER BY name").rows).toEqual([["copy"], ["m"]]);
      // Preparing a prepared statement again (a strong read goes through the log) changes nothing more.
      const once = prepareRead([{ sql: "SELECT name FROM sqlite_master" }]);
      if (!once.ok) {
        throw new Error(once.error);
      }
      const twice = prepareRead(once.statements);
      expect(twice).toEqual(once);
    });
  });
});

describe("bounded results (issue 10, item 9)", () => {
  const ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c)";

  it("stops reading an endless query at the row limit and fails the read as a whole, changing nothing", async () => {
    await withStorage("endless-read", (storage) => {
      const node = new Node(storage, { maxResultRows: 1000 });
      node.exec("CREATE TABLE t(x)");
      expect(() => node.machine.query([{ sql: `${ENDLESS} SELECT x FROM c` }], { transaction: false })).toThrow(
        ResultLimitError,
      );
      expect(() => node.machine.query([{ sql: `${ENDLESS} SELECT x FROM c` }], { transaction: false })).toThrow(
        "statement 1: the results hold more than 1000 rows, the most one request may return (DHA_MAX_RESULT_ROWS): add a LIMIT, or page with WHERE",
      );
      // The budget is per request: two statements of 600 rows each exceed it together; the second is named.
      expect(() =>
        node.machine.query(
          [{ sql: `${ENDLESS} SELECT x FROM c LIMIT 600` }, { sql: `${ENDLESS} SELECT x FROM c LIMIT 600` }],
          { transaction: false },
        ),
      ).toThrow(/^statement 2: /);
      expect(
        node.machine.query([{ sql: `${ENDLESS} SELECT x FROM c LIMIT 1000` }], { transaction: false })[0]?.rows,
      ).toHaveLength(1000);
      // Bytes too: 2 MB values run out a 16 MiB budget after a few rows.
      expect(() =>
        new SqlStateMachine(storage).query([{ sql: `${ENDLESS} SELECT zeroblob(2000000) FROM c` }], {
          transaction: false,
        }),
      ).toThrow(/DHA_MAX_RESULT_BYTES/);
    });
  });

  it("in a log entry reports the limit as the statement's error, applies the rest, and commits", async () => {
    await withStorage("endless-write", (storage) => {
      const node = new Node(storage, { maxResultRows: 1000 });
      node.exec("CREATE TABLE t(x)");
      const results = node.apply([{ sql: `${ENDLESS} SELECT x FROM c` }, { sql: "INSERT INTO t VALUES (1)" }]);
      expect(results[0]?.error).toMatch(/more than 1000 rows/);
      expect(results[1]).toMatchObject({ rowsAffected: 1 });
      expect(node.query("SELECT count(*) FROM t").rows).toEqual([[1]]);
      expect(node.machine.appliedIndex()).toBe(2);
    });
  });

  it("takes its limits from the deployment's variables, and refuses nonsense", () => {
    expect(stateMachineOptionsFromEnv({})).toEqual({ stateMachine: {} });
    expect(stateMachineOptionsFromEnv({ DHA_MAX_RESULT_ROWS: "500", DHA_MAX_RESULT_BYTES: "65536" })).toEqual({
      stateMachine: { maxResultRows: 500, maxResultBytes: 65536 },
    });
    expect(() => stateMachineOptionsFromEnv({ DHA_MAX_RESULT_ROWS: "lots" })).toThrow(
      'DHA_MAX_RESULT_ROWS must be a positive integer, got "lots"',
    );
    expect(() => stateMachineOptionsFromEnv({ DHA_MAX_RESULT_BYTES: "0" })).toThrow(
      /DHA_MAX_RESULT_BYTES must be a positive integer/,
    );
  });
});
