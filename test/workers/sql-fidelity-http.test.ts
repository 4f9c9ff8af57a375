// What rqlite clients read over HTTP from a real cluster (issue 10, items 1-4 and 9): declared column types, exact
// 64-bit integers both ways, the PRAGMAs ORMs send, the schema tables without the platform's objects, bounded results.
// Each test has its own cluster and halts it at the end.
import { describe, expect, it } from "vitest";
import { parseStatementsBody } from "../../src/worker/data/statements";
import { DEFAULT_LIMITS } from "../../src/shared/sql-text";
import { ApiError } from "../../src/worker/http/errors";
import { encodeWire } from "../../src/worker/http/wire-json";
import { clusterFactory } from "./helpers/cluster";
import { RealHarness } from "./http-support";

const newCluster = clusterFactory();

async function clusterWith(prefix: string, setup: readonly unknown[]): Promise<RealHarness> {
  const h = new RealHarness(newCluster({ prefix, nodes: 3 }));
  const written = await h.send("POST", "/db/execute", { json: setup });
  expect(written.status, written.text).toBe(200);
  expect(written.text).not.toContain("error");
  return h;
}

function query(sql: string, flags = "level=strong"): string {
  return `/db/query?${flags}&q=${encodeURIComponent(sql)}`;
}

describe("declared column types over HTTP (item 1)", () => {
  it("reports a REAL column as real even when its first value is whole, and an empty result with its declared types", async () => {
    const h = await clusterWith("fidelity-types", [
      "CREATE TABLE m (id INTEGER PRIMARY KEY, price REAL, at DATETIME, code VARCHAR(10))",
      "INSERT INTO m(price) VALUES (3.0), (0.5), (-7.25)",
    ]);
    const read = await h.send("GET", query("SELECT price FROM m ORDER BY id"));
    expect(read.text).toBe('{"results":[{"columns":["price"],"types":["real"],"values":[[3],[0.5],[-7.25]]}]}');
    const empty = await h.send("GET", query("SELECT * FROM m WHERE 0", "level=weak&associative"));
    expect(empty.text).toBe(
      '{"results":[{"types":{"at":"datetime","code":"varchar(10)","id":"integer","price":"real"},"rows":[]}]}',
    );
  });
});

describe("BOOLEAN and date/time columns over HTTP, as rqlite 8.26.8 shows them", () => {
  // Every expected body is what rqlited 8.26.8 answered for the same statements.
  it("shows declared BOOLEAN as true/false and DATE/DATETIME/TIMESTAMP as RFC 3339, through aliases, views, joins and RETURNING", async () => {
    const h = await clusterWith("fidelity-bool-time", [
      "CREATE TABLE e (id INTEGER PRIMARY KEY, ok BOOLEAN, at DATETIME, day DATE, ts TIMESTAMP, flag BOOL, n INTEGER)",
      "INSERT INTO e VALUES (1, 1, '2024-01-02 03:04:05', '2024-01-02', 1700000000123, 1, 1)",
      "INSERT INTO e VALUES (2, -1, 1700000000, 'garbage', '2024-01-02T03:04:05.5-05:30', 0, 9223372036854775807)",
      "CREATE TABLE other (id INTEGER PRIMARY KEY, seen BOOLEAN)",
      "INSERT INTO other VALUES (1, 2)",
      "CREATE VIEW ev AS SELECT id, ok AS good, at FROM e",
    ]);
    const all = await h.send("GET", query("SELECT ok, at, day, ts, flag, n FROM e ORDER BY id"));
    expect(all.text).toBe(
      '{"results":[{"columns":["ok","at","day","ts","flag","n"],' +
        '"types":["boolean","datetime","date","timestamp","bool","integer"],' +
        '"values":[[true,"2024-01-02T03:04:05Z","2024-01-02T00:00:00Z","2023-11-14T22:13:20.123Z",1,1],' +
        '[false,"2023-11-14T22:13:20Z","0001-01-01T00:00:00Z","2024-01-02T03:04:05.5-05:30",0,9223372036854775807]]}]}',
    );
    const shapes = await h.send("POST", "/db/query?level=strong&associative", {
      json: [
        "SELECT ok AS b, at + 0 AS plus, ok + 0 AS sum FROM e WHERE id = 1",
        "SELECT good, at FROM ev WHERE id = 1",
        "SELECT e.ok, o.seen FROM e JOIN other o ON o.id = e.id",
      ],
    });
    expect(shapes.text).toBe(
      '{"results":[{"types":{"b":"boolean","plus":"integer","sum":"integer"},"rows":[{"b":true,"plus":2024,"sum":1}]},' +
        '{"types":{"at":"datetime","good":"boolean"},"rows":[{"at":"2024-01-02T03:04:05Z","good":true}]},' +
        '{"types":{"ok":"boolean","seen":"boolean"},"rows":[{"ok":true,"seen":true}]}]}',
    );
    const returning = await h.send("POST", "/db/execute", {
      json: [
        "UPDATE e SET ok = 0 WHERE id = 1 RETURNING ok, at",
        "UPDATE e SET at = 999999999999 WHERE id = 2 RETURNING at",
      ],
    });
    expect(returning.text).toBe(
      '{"results":[{"columns":["ok","at"],"types":["boolean","datetime"],"values":[[false,"2024-01-02T03:04:05Z"]]},' +
        '{"error":"Time.MarshalText: year outside of range [0,9999]"}]}',
    );
    // The value is stored as written: only what is shown changes. A time beyond year 9999 fails its statement.
    const stored = await h.send("POST", "/db/request?level=strong", {
      json: ["SELECT at FROM e", "SELECT typeof(at), CAST(at AS TEXT) FROM e WHERE id = 2"],
    });
    expect(stored.text).toBe(
      '{"results":[{"error":"Time.MarshalText: year outside of range [0,9999]"},' +
        '{"columns":["typeof(at)","CAST(at AS TEXT)"],"types":["text","text"],"values":[["integer","999999999999"]]}]}',
    );
  });
});

describe("64-bit integers over HTTP (item 2)", () => {
  it("parses request integers from their source text, reads those outside int64 as REALs (as rqlite), and writes exact integers", () => {
    const [statement] = parseStatementsBody(
      '[["INSERT INTO t VALUES (?, ?, ?)", 9223372036854775807, -9223372036854775808, 1.5]]',
      "application/json",
      DEFAULT_LIMITS,
    );
    expect(statement?.params).toEqual([9223372036854775807n, -9223372036854775808n, 1.5]);
    const named = parseStatementsBody('[["SELECT :a", {"a": 9007199254740993}]]', "application/json", DEFAULT_LIMITS);
    expect(named[0]?.params).toEqual({ a: 9007199254740993n });
    // Outside int64 an integer binds as a REAL, as rqlite binds it: -2^63 written by JSON.stringify included.
    const beyond = parseStatementsBody(
      '[["SELECT ?, ?", 9223372036854775808, -9223372036854776000]]',
      "application/json",
      DEFAULT_LIMITS,
    );
    expect(beyond[0]?.params).toEqual([2 ** 63, -(2 ** 63)]);
    // An integer too long for a double is not a finite number: refused, as 1e400 is.
    expect(() =>
      parseStatementsBody(`[["SELECT ?", 1${"0".repeat(400)}]]`, "application/json", DEFAULT_LIMITS),
    ).toThrow(ApiError);
    expect(encodeWire({ values: [[9223372036854775807n, -9223372036854775808n, 1]] })).toBe(
      '{"values":[[9223372036854775807,-9223372036854775808,1]]}',
    );
  });

  it("round-trips 9223372036854775807 through SELECT, a bound parameter and last_insert_id", async () => {
    const h = await clusterWith("fidelity-int64", ["CREATE TABLE t (id INTEGER PRIMARY KEY, v)"]);
    const literal = await h.send("GET", query("SELECT 9223372036854775807, -9223372036854775808"));
    expect(literal.text).toBe(
      '{"results":[{"columns":["9223372036854775807","-9223372036854775808"],"types":["integer","integer"],"values":[[9223372036854775807,-9223372036854775808]]}]}',
    );
    const bound = await h.send("POST", "/db/execute", {
      body: '[["INSERT INTO t(id, v) VALUES (?, ?)", 9223372036854775807, 9007199254740993]]',
      headers: { "Content-Type": "application/json" },
    });
    expect(bound.text).toBe('{"results":[{"last_insert_id":9223372036854775807,"rows_affected":1}]}');
    const stored = await h.send("GET", query("SELECT id, v, typeof(v) FROM t"));
    expect(stored.text).toBe(
      '{"results":[{"columns":["id","v","typeof(v)"],"types":["integer","integer","text"],"values":[[9223372036854775807,9007199254740993,"integer"]]}]}',
    );
    const outOfRange = await h.send("POST", "/db/execute", {
      body: '[["INSERT INTO t(v) VALUES (?)", 9223372036854775808]]',
      headers: { "Content-Type": "application/json" },
    });
    expect(outOfRange.status).toBe(200);
    expect(outOfRange.text).toContain('"rows_affected":1');
    const real = await h.send("GET", query("SELECT v, typeof(v) FROM t WHERE id <> 9223372036854775807"));
    expect(real.text).toBe(
      '{"results":[{"columns":["v","typeof(v)"],"types":["real","text"],"values":[[9223372036854776000,"real"]]}]}',
    );
  });
});

describe("named parameters in result columns", () => {
  it("keep their names, so associative rows keep every column (as rqlite names them)", async () => {
    const h = await clusterWith("fidelity-named", ["CREATE TABLE unused (a)"]);
    const answer = await h.send("POST", "/db/query?associative&level=strong", {
      body: '[["SELECT $first, $last, upper(:name)", {"first": "Ada", "last": "Lovelace", "name": "ab"}]]',
      headers: { "Content-Type": "application/json" },
    });
    expect(answer.status).toBe(200);
    expect(JSON.parse(answer.text)).toMatchObject({
      results: [{ rows: [{ $first: "Ada", $last: "Lovelace", "upper(:name)": "AB" }] }],
    });
  });
});

describe("PRAGMAs over HTTP (item 3)", () => {
  it("answers what an ORM sends when it connects and reflects, as rqlite does", async () => {
    const h = await clusterWith("fidelity-pragmas", [
      "CREATE TABLE m (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES m(id))",
    ]);
    const uncommitted = await h.send("GET", query("PRAGMA read_uncommitted", "level=weak"));
    expect(uncommitted.status).toBe(200);
    expect(uncommitted.text).toBe('{"results":[{"columns":["read_uncommitted"],"types":["integer"],"values":[[0]]}]}');
    const temp = await h.send("POST", "/db/query", {
      json: ['PRAGMA temp.table_info("m")', 'PRAGMA temp.foreign_key_list("m")', 'PRAGMA main.foreign_key_list("m")'],
    });
    expect(temp.status).toBe(200);
    expect(temp.text).toBe(
      '{"results":[{"columns":["cid","name","type","notnull","dflt_value","pk"],"types":["","","","","",""]},' +
        '{"columns":["id","seq","table","from","to","on_update","on_delete","match"],"types":["","","","","","","",""]},' +
        '{"columns":["id","seq","table","from","to","on_update","on_delete","match"],"types":["integer","integer","text","text","text","text","text","text"],"values":[[0,0,"m","parent","id","NO ACTION","NO ACTION","NONE"]]}]}',
    );
    // The unified endpoint serves a PRAGMA that reads on its read path, as rqlite does: same answers.
    const unified = await h.send("POST", "/db/request", { json: ["PRAGMA read_uncommitted"] });
    expect(unified.text).toBe('{"results":[{"columns":["read_uncommitted"],"types":["integer"],"values":[[0]]}]}');
  });
});

describe("the schema tables over HTTP (item 4)", () => {
  it("lists only the user's objects on every node, whichever way a client asks", async () => {
    const h = await clusterWith("fidelity-schema", [
      "CREATE TABLE m (id INTEGER PRIMARY KEY)",
      "CREATE VIEW v AS SELECT id FROM m",
    ]);
    const expected =
      '{"results":[{"columns":["type","name"],"types":["text","text"],"values":[["table","m"],["view","v"]]}]}';
    expect((await h.send("GET", query("SELECT type, name FROM sqlite_master ORDER BY name"))).text).toBe(expected);
    expect((await h.send("GET", query("SELECT type, name FROM sqlite_schema ORDER BY name", "level=weak"))).text).toBe(
      expected,
    );
    const listed = await h.send("POST", "/db/request", {
      json: ["PRAGMA table_list", "SELECT name FROM pragma_table_list ORDER BY name"],
    });
    expect(listed.status).toBe(200);
    expect(listed.text).not.toMatch(/_cf_|__miniflare|_dha_/);
    expect(listed.text).toContain('"values":[["m"],["sqlite_schema"],["sqlite_temp_schema"],["v"]]');
  });
});

describe("runaway reads over HTTP (item 9)", () => {
  it("answers an endless query 400 once it reaches the row limit, and the node goes on serving", async () => {
    const h = await clusterWith("fidelity-endless", ["CREATE TABLE t (x)"]);
    const endless = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c";
    for (const level of ["weak", "none"]) {
      const read = await h.send("GET", query(endless, `level=${level}`));
      expect(read.status, read.text).toBe(400);
      expect(read.headers.get("X-DHA-Error-Code")).toBe("INVALID_REQUEST");
      expect(JSON.parse(read.text)).toEqual({
        results: [],
        error:
          "statement 1: the results hold more than 100000 rows, the most one request may return (DHA_MAX_RESULT_ROWS): add a LIMIT, or page with WHERE",
      });
    }
    const write = await h.send("POST", "/db/execute", { json: ["INSERT INTO t VALUES (1)"] });
    expect(write.text).toBe('{"results":[{"last_insert_id":1,"rows_affected":1}]}');
    const bounded = await h.send("GET", query(`${endless} LIMIT 3`));
    expect(bounded.text).toBe('{"results":[{"columns":["x"],"types":["integer"],"values":[[1],[2],[3]]}]}');
  });
});

describe("RETURNING on /db/execute", () => {
  it("answers the rows, as rqlite 8.26.8 does, and a retry under the same key answers them again", async () => {
    const h = await clusterWith("fidelity-returning", [
      "CREATE TABLE rt (id INTEGER PRIMARY KEY, v INTEGER)",
      "INSERT INTO rt(v) VALUES(1),(2),(3)",
    ]);
    const body = { json: ["UPDATE rt SET v = v * 10 RETURNING id, v", "INSERT INTO rt(v) VALUES (4)"] };
    const headers = { "Idempotency-Key": "returning-1" };
    const expected =
      '{"results":[{"columns":["id","v"],"types":["integer","integer"],"values":[[1,10],[2,20],[3,30]]},' +
      '{"last_insert_id":4,"rows_affected":1}]}';
    const first = await h.send("POST", "/db/execute", { ...body, headers });
    expect(first.text).toBe(expected);
    const retried = await h.send("POST", "/db/execute?associative", { ...body, headers });
    expect(retried.text).toBe(expected);
    const request = await h.send("POST", "/db/request", { json: ["DELETE FROM rt WHERE id = 4 RETURNING id"] });
    expect(request.text).toBe('{"results":[{"columns":["id"],"types":["integer"],"values":[[4]]}]}');
  });
});
