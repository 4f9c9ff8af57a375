// Units of the HTTP layer: rqlite's JSON encoding, Go durations, request bodies, result shapes, config.
import { describe, expect, it } from "vitest";
import type { StatementResult } from "../../src/shared/sql";
import { parseClusterConfig } from "../../src/worker/config";
import { DEFAULT_LIMITS, isSurelyReadOnly, isWriteOnQueryPath } from "../../src/shared/sql-text";
import {
  encodeDataResponse,
  renderExecuteResult,
  renderQueryResult,
  renderRequestResult,
  type RenderOptions,
} from "../../src/worker/data/render";
import { concreteLevel } from "../../src/worker/data/service";
import { inRequestNumbering, parseStatementsBody, withoutEmptyStatements } from "../../src/worker/data/statements";
import { parseGoDurationMs } from "../../src/worker/http/duration";
import { ApiError } from "../../src/worker/http/errors";
import { encodeWire, GoMap } from "../../src/worker/http/wire-json";

const plain: RenderOptions = { associative: false, blobArray: false, timings: false };

function parseError(body: string, contentType?: string): ApiError {
  try {
    parseStatementsBody(body, contentType, DEFAULT_LIMITS);
  } catch (error) {
    if (error instanceof ApiError) {
      return error;
    }
    throw error;
  }
  throw new Error(`expected ${body} to be refused`);
}

describe("Go-compatible JSON", () => {
  it("escapes <, >, & and the line separators as encoding/json does", () => {
    expect(encodeWire({ a: "<b> & \u2028\u2029", c: "\u0001\n" })).toBe(
      '{"a":"\\u003cb\\u003e \\u0026 \\u2028\\u2029","c":"\\u0001\\n"}',
    );
  });

  it("sorts map keys bytewise and keeps a struct's field order", () => {
    expect(
      encodeWire(
        new GoMap([
          ["name", 1],
          ["10", 2],
          ["2", 3],
          ["Age", 4],
        ]),
      ),
    ).toBe('{"10":2,"2":3,"Age":4,"name":1}');
    expect(encodeWire({ z: 1, a: 2, skipped: undefined })).toBe('{"z":1,"a":2}');
  });

  it("indents like json.MarshalIndent with four spaces, empty containers inline", () => {
    expect(encodeWire({ results: [{ a: [1, 2] }, {}], e: [] }, true)).toBe(
      '{\n    "results": [\n        {\n            "a": [\n                1,\n                2\n            ]\n        },\n        {}\n    ],\n    "e": []\n}',
    );
  });
});

describe("Go durations", () => {
  it("parses the forms rqlite accepts", () => {
    expect(parseGoDurationMs("1s")).toBe(1000);
    expect(parseGoDurationMs("500ms")).toBe(500);
    expect(parseGoDurationMs("1m30s")).toBe(90_000);
    expect(parseGoDurationMs("1.5h")).toBe(5_400_000);
    expect(parseGoDurationMs("250us")).toBeCloseTo(0.25);
    expect(parseGoDurationMs("0")).toBe(0);
    expect(parseGoDurationMs("-2s")).toBe(-2000);
  });

  it("refuses what Go refuses", () => {
    for (const bad of ["", "1", "s", "1x", "1s2", "1 s", "abc", ".s"]) {
      expect(parseGoDurationMs(bad), bad).toBeNull();
    }
  });
});

describe("request bodies", () => {
  it("takes plain, positional, named, mixed and text/plain statements", () => {
    const body = JSON.stringify([
      "CREATE TABLE foo (id INTEGER, name TEXT)",
      ["INSERT INTO foo(name, age) VALUES(?, ?)", "fiona", 20],
      ["INSERT INTO foo(name, age) VALUES(:name, :age)", { name: "fiona", age: 20 }],
      ["SELECT 1"],
      ["INSERT INTO b(data, flag) VALUES(?, ?)", [1, 2, 255], true],
    ]);
    const statements = parseStatementsBody(body, "application/json", DEFAULT_LIMITS);
    expect(statements).toEqual([
      { sql: "CREATE TABLE foo (id INTEGER, name TEXT)" },
      { sql: "INSERT INTO foo(name, age) VALUES(?, ?)", params: ["fiona", 20] },
      { sql: "INSERT INTO foo(name, age) VALUES(:name, :age)", params: { name: "fiona", age: 20 } },
      { sql: "SELECT 1" },
      { sql: "INSERT INTO b(data, flag) VALUES(?, ?)", params: [new Uint8Array([1, 2, 255]), 1] },
    ]);
    expect(parseStatementsBody("SELECT * FROM foo", "text/plain; charset=utf-8", DEFAULT_LIMITS)).toEqual([
      { sql: "SELECT * FROM foo" },
    ]);
  });

  it('takes an empty statement (""), which the data routes skip as rqlite does', () => {
    expect(parseStatementsBody('["", "SELECT 1"]', undefined, DEFAULT_LIMITS)).toEqual([
      { sql: "" },
      { sql: "SELECT 1" },
    ]);
    const sent = withoutEmptyStatements([{ sql: "" }, { sql: "SELECT 1" }, { sql: "" }, { sql: "SELECT 2" }]);
    expect(sent).toEqual({ statements: [{ sql: "SELECT 1" }, { sql: "SELECT 2" }], requestIndexes: [1, 3] });
    // A node names statements by their index in what it was sent; the client's numbering counts the empty ones.
    expect(inRequestNumbering("statements[1]: only one SQL statement per entry", sent.requestIndexes)).toBe(
      "statements[3]: only one SQL statement per entry",
    );
    expect(inRequestNumbering("the request has no statements", sent.requestIndexes)).toBe(
      "the request has no statements",
    );
  });

  it("refuses malformed bodies with a message that says where", () => {
    expect(parseError("[").message).toMatch(/^invalid JSON body/);
    expect(parseError('{"sql": "x"}').message).toBe("invalid request: the body must be a JSON array of statements");
    expect(parseError("[]").message).toBe("no statements");
    expect(parseError('["SELECT 1", 5]').message).toMatch(/^statement 2: expected a SQL string/);
    expect(parseError("[[1, 2]]").message).toBe("statement 1: the first element must be the SQL string");
    expect(parseError('[["SELECT ?", [1, 300]]]').message).toMatch(/byte/);
    expect(parseError('[["SELECT ?", [[1]]]]').message).toMatch(/byte/);
    expect(parseError('[["SELECT ?, :a", 1, {"a": 2}]]').message).toMatch(/mixes positional and named/);
    // Only whitespace: rqlited 8.26.8 hangs on it; refused, naming the statement as the client numbered it.
    expect(parseError('["SELECT 1", "", "   "]').message).toBe(
      'statement 3 is only whitespace: send "" to have it skipped, or leave it out',
    );
    expect(parseError("", "text/plain").message).toBe(
      "the body is empty: send the statement as the body, or a JSON array of statements",
    );
    expect(parseError("[]").status).toBe(400);
  });

  it("enforces the statement, length and parameter limits with 413", () => {
    const many = JSON.stringify(Array.from({ length: 1001 }, () => "SELECT 1"));
    const tooMany = parseError(many);
    expect(tooMany.status).toBe(413);
    expect(tooMany.message).toMatch(/1001 statements; at most 1000/);
    const params = parseError(JSON.stringify([["SELECT 1", ...Array.from({ length: 101 }, (_, i) => i)]]));
    expect(params.status).toBe(413);
    expect(params.message).toMatch(/101 parameters; at most 100/);
    const long = parseError(JSON.stringify([`SELECT '${"x".repeat(100_001)}'`]));
    expect(long.status).toBe(413);
    expect(long.message).toMatch(/bytes long; at most 100000/);
  });

  it("classifies statements conservatively", () => {
    expect(isSurelyReadOnly("  /* c */ -- x\n (SELECT 1)")).toBe(true);
    expect(isSurelyReadOnly("WITH x AS (SELECT 1) DELETE FROM t")).toBe(false);
    expect(isSurelyReadOnly("PRAGMA table_info(t)")).toBe(false);
    expect(isWriteOnQueryPath("insert into t values (1)")).toBe(true);
    expect(isWriteOnQueryPath("SELECT 1")).toBe(false);
    expect(isWriteOnQueryPath("WITH x AS (SELECT 1) SELECT * FROM x")).toBe(false);
    expect(isWriteOnQueryPath("WITH x AS (SELECT 1) DELETE FROM t")).toBe(true);
  });
});

describe("rqlite result shapes", () => {
  it("renders execute results without zero fields", () => {
    const results = [{ lastInsertId: 1, rowsAffected: 1, time: 0.01 }, {}, { error: 'near "nonsense": syntax error' }];
    expect(encodeDataResponse({ results: results.map((r) => renderExecuteResult(r, plain)) }, false)).toBe(
      '{"results":[{"last_insert_id":1,"rows_affected":1},{},{"error":"near \\"nonsense\\": syntax error"}]}',
    );
    const timed = { ...plain, timings: true };
    expect(
      encodeDataResponse(
        { results: [renderExecuteResult(results[0] ?? {}, timed)], timeSeconds: 0.5, raftIndex: 7 },
        false,
      ),
    ).toBe('{"results":[{"last_insert_id":1,"rows_affected":1,"time":0.01}],"time":0.5,"raft_index":7}');
  });

  it("renders a write's RETURNING rows on /db/execute as rqlite 8.26.8 does: a query result, never associative", () => {
    // What rqlite answered: UPDATE rt SET v = v * 10 RETURNING id, v; one matching no row; SELECT 1; a failed one.
    const results: StatementResult[] = [
      {
        columns: ["id", "v"],
        types: ["integer", "integer"],
        rows: [
          [1, 10],
          [2, 20],
        ],
        lastInsertId: 3,
        rowsAffected: 2,
      },
      { columns: ["id"], types: ["integer"], rows: [], lastInsertId: 3, rowsAffected: 0 },
      { columns: ["1"], types: ["integer"], rows: [[1]] },
      { error: "the result holds an integer beyond ±2^53", rowsAffected: 1, lastInsertId: 4 },
    ];
    const expected =
      '{"results":[{"columns":["id","v"],"types":["integer","integer"],"values":[[1,10],[2,20]]},' +
      '{"columns":["id"],"types":["integer"]},{},' +
      '{"last_insert_id":4,"rows_affected":1,"error":"the result holds an integer beyond ±2^53"}]}';
    for (const options of [plain, { ...plain, associative: true }]) {
      expect(encodeDataResponse({ results: results.map((r) => renderExecuteResult(r, options)) }, false)).toBe(
        expected,
      );
    }
  });

  it("renders a RETURNING BLOB on /db/execute as base64 even with blob_array, as rqlite 8.26.8 does", () => {
    // What rqlite answered to POST /db/execute?blob_array: INSERT INTO bl(b) VALUES(X'0102') RETURNING b
    // (/db/request?blob_array answers [[1,2]]: it reads blob_array, /db/execute does not).
    const returning: StatementResult = {
      columns: ["b"],
      types: ["blob"],
      rows: [[new Uint8Array([1, 2])]],
      lastInsertId: 1,
      rowsAffected: 1,
    };
    const expected = '{"columns":["b"],"types":["blob"],"values":[["AQI="]]}';
    expect(encodeWire(renderExecuteResult(returning, { ...plain, blobArray: true }))).toBe(expected);
    expect(encodeWire(renderRequestResult(returning, { ...plain, blobArray: true }))).toBe(
      '{"columns":["b"],"types":["blob"],"values":[[[1,2]]]}',
    );
  });

  it("renders query results: no values key on an empty set, BLOBs as base64 or byte arrays", () => {
    const empty = { columns: ["id"], types: ["integer"], rows: [] };
    expect(encodeWire(renderQueryResult(empty, plain))).toBe('{"columns":["id"],"types":["integer"]}');
    const blob = { columns: ["b"], types: ["blob"], rows: [[new Uint8Array([1, 2, 3])]] };
    expect(encodeWire(renderQueryResult(blob, plain))).toBe('{"columns":["b"],"types":["blob"],"values":[["AQID"]]}');
    expect(encodeWire(renderQueryResult(blob, { ...plain, blobArray: true }))).toBe(
      '{"columns":["b"],"types":["blob"],"values":[[[1,2,3]]]}',
    );
    expect(encodeWire(renderQueryResult({ error: "no such table: bar" }, plain))).toBe(
      '{"error":"no such table: bar"}',
    );
  });

  it("shows BOOLEAN and date/time columns as rqlite 8.26.8 does, and a value it cannot show as the statement's error", () => {
    const typed: StatementResult = {
      columns: ["b", "d", "n"],
      types: ["boolean", "datetime", "integer"],
      rows: [
        [1, 1700000000123, 1],
        [0, "2024-01-02 03:04:05+02:00", 0],
      ],
      time: 0.25,
    };
    expect(encodeWire(renderQueryResult(typed, plain))).toBe(
      '{"columns":["b","d","n"],"types":["boolean","datetime","integer"],' +
        '"values":[[true,"2023-11-14T22:13:20.123Z",1],[false,"2024-01-02T03:04:05+02:00",0]]}',
    );
    expect(encodeWire(renderQueryResult(typed, { ...plain, associative: true }))).toBe(
      '{"types":{"b":"boolean","d":"datetime","n":"integer"},' +
        '"rows":[{"b":true,"d":"2023-11-14T22:13:20.123Z","n":1},{"b":false,"d":"2024-01-02T03:04:05+02:00","n":0}]}',
    );
    // 999999999999 seconds is beyond year 9999: rqlite answers the error alone, without time, in each shape it has.
    const unshowable: StatementResult = {
      ...typed,
      rows: [
        [1, 1, 1],
        [1, 999999999999, 1],
      ],
    };
    const returning: StatementResult = { ...unshowable, rowsAffected: 2, lastInsertId: 2 };
    const error = '"error":"Time.MarshalText: year outside of range [0,9999]"';
    const timed = { ...plain, timings: true };
    const assoc = { ...timed, associative: true };
    expect(encodeWire(renderQueryResult(unshowable, timed))).toBe(`{${error}}`);
    expect(encodeWire(renderQueryResult(unshowable, assoc))).toBe(`{"rows":[],${error}}`);
    expect(encodeWire(renderRequestResult(unshowable, assoc))).toBe(`{"rows":[],${error}}`);
    expect(encodeWire(renderRequestResult(returning, assoc))).toBe(`{${error}}`);
    expect(encodeWire(renderExecuteResult(returning, assoc))).toBe(`{${error}}`);
    expect(encodeWire(renderExecuteResult(returning, timed))).toBe(`{${error}}`);
  });

  it("gives a failed statement no time under timings: rqlite answers its error alone (db/db.go times successes)", () => {
    const timed = { ...plain, timings: true };
    const assoc = { ...timed, associative: true };
    const failed: StatementResult = { error: "no such table: bar", time: 0.25 };
    const error = '"error":"no such table: bar"';
    for (const options of [timed, assoc]) {
      expect(encodeWire(renderExecuteResult(failed, options))).toBe(`{${error}}`);
      expect(encodeWire(renderRequestResult(failed, options))).toBe(`{${error}}`);
    }
    expect(encodeWire(renderQueryResult(failed, timed))).toBe(`{${error}}`);
    expect(encodeWire(renderQueryResult(failed, assoc))).toBe(`{"rows":[],${error}}`);
    // A failed read on /db/request, and a write that failed after counting its rows: no time either.
    const failedRead: StatementResult = { ...failed, columns: [], types: [], rows: [] };
    expect(encodeWire(renderRequestResult(failedRead, timed))).toBe(`{${error}}`);
    expect(encodeWire(renderRequestResult(failedRead, assoc))).toBe(`{"rows":[],${error}}`);
    expect(encodeWire(renderExecuteResult({ ...failed, rowsAffected: 1, lastInsertId: 4 }, timed))).toBe(
      `{"last_insert_id":4,"rows_affected":1,${error}}`,
    );
    // What succeeded keeps its time.
    expect(encodeWire(renderQueryResult({ columns: ["x"], types: ["integer"], rows: [[1]], time: 0.25 }, timed))).toBe(
      '{"columns":["x"],"types":["integer"],"values":[[1]],"time":0.25}',
    );
    expect(encodeWire(renderExecuteResult({ rowsAffected: 1, time: 0.25 }, timed))).toBe(
      '{"rows_affected":1,"time":0.25}',
    );
    expect(encodeWire(renderRequestResult({ rowsAffected: 1, time: 0.25 }, assoc))).toBe(
      '{"rows_affected":1,"time":0.25,"rows":null}',
    );
  });

  it("renders associative results with sorted maps and an always-present rows list", () => {
    const result = { columns: ["name", "id", "age"], types: ["text", "integer", "integer"], rows: [["fiona", 1, 20]] };
    const assoc = { ...plain, associative: true };
    expect(encodeWire(renderQueryResult(result, assoc))).toBe(
      '{"types":{"age":"integer","id":"integer","name":"text"},"rows":[{"age":20,"id":1,"name":"fiona"}]}',
    );
    expect(encodeWire(renderQueryResult({ columns: ["id"], types: ["integer"], rows: [] }, assoc))).toBe(
      '{"types":{"id":"integer"},"rows":[]}',
    );
  });

  it("renders unified results as query or execute results", () => {
    expect(encodeWire(renderRequestResult({ lastInsertId: 2, rowsAffected: 1 }, plain))).toBe(
      '{"last_insert_id":2,"rows_affected":1}',
    );
    expect(encodeWire(renderRequestResult({ lastInsertId: 2, rowsAffected: 1 }, { ...plain, associative: true }))).toBe(
      '{"last_insert_id":2,"rows_affected":1,"rows":null}',
    );
    expect(encodeWire(renderRequestResult({ error: "no such table: bar" }, { ...plain, associative: true }))).toBe(
      '{"error":"no such table: bar"}',
    );
    expect(encodeWire(renderRequestResult({ columns: ["x"], types: [""], rows: [[1]] }, plain))).toBe(
      '{"columns":["x"],"types":[""],"values":[[1]]}',
    );
  });
});

describe("read levels", () => {
  it("resolves defaults, auto and read-your-writes", () => {
    expect(concreteLevel({})).toBe("weak");
    expect(concreteLevel({ level: "auto" })).toBe("weak");
    expect(concreteLevel({ level: "auto", freshnessMs: 1000 })).toBe("none");
    expect(concreteLevel({ minRaftIndex: 5 })).toBe("none");
    expect(concreteLevel({ level: "strong", minRaftIndex: 5 })).toBe("strong");
    expect(concreteLevel({ level: "linearizable" })).toBe("linearizable");
  });
});

describe("cluster configuration", () => {
  const base = {
    CLUSTER_NAME: "main",
    CLUSTER_NODES: "n1,n2@weur,n3",
    HEARTBEAT_INTERVAL_MS: "100",
    ELECTION_TIMEOUT_MS: "1000",
  };

  it("parses names, location hints and timings", () => {
    expect(parseClusterConfig(base)).toEqual({
      name: "main",
      members: [{ name: "n1" }, { name: "n2", locationHint: "weur" }, { name: "n3" }],
      heartbeatIntervalMs: 100,
      electionTimeoutMs: 1000,
    });
  });

  it("says which variable is wrong and why, with the objects' own validation", () => {
    expect(() => parseClusterConfig({ ...base, CLUSTER_NAME: undefined })).toThrow("CLUSTER_NAME is not set");
    expect(() => parseClusterConfig({ ...base, CLUSTER_NAME: "a/b" })).toThrow(
      /^cluster name "a\/b" is invalid: .* \(set by CLUSTER_NAME, /,
    );
    expect(() => parseClusterConfig({ ...base, CLUSTER_NODES: "n1,,n2" })).toThrow(/empty entry/);
    expect(() => parseClusterConfig({ ...base, CLUSTER_NODES: "n1,n1" })).toThrow(/member "n1" is listed twice/);
    expect(() => parseClusterConfig({ ...base, CLUSTER_NODES: "n1@mars" })).toThrow(
      /^CLUSTER_NODES entry "n1@mars" is invalid: member "n1": unknown location hint "mars"/,
    );
    expect(() => parseClusterConfig({ ...base, CLUSTER_NODES: "n1,bad/name" })).toThrow(
      /^CLUSTER_NODES entry "bad\/name" is invalid: member name "bad\/name" is invalid/,
    );
    expect(() => parseClusterConfig({ ...base, CLUSTER_NODES: "n1@weur@x" })).toThrow(/expected "name" or "name@hint"/);
    expect(() =>
      parseClusterConfig({ ...base, CLUSTER_NODES: Array.from({ length: 10 }, (_, i) => `n${i}`).join(",") }),
    ).toThrow(/at most 9 members, got 10/);
    expect(() => parseClusterConfig({ ...base, HEARTBEAT_INTERVAL_MS: "1e2" })).toThrow(
      /HEARTBEAT_INTERVAL_MS "1e2" is not a whole number/,
    );
    expect(() => parseClusterConfig({ ...base, HEARTBEAT_INTERVAL_MS: "5" })).toThrow(
      /heartbeat interval must be an integer from 10 to 10000 ms, got 5/,
    );
    expect(() => parseClusterConfig({ ...base, ELECTION_TIMEOUT_MS: "0" })).toThrow(
      /election timeout must be an integer of at least 3 heartbeat intervals/,
    );
    expect(() => parseClusterConfig({ ...base, ELECTION_TIMEOUT_MS: "200" })).toThrow(
      /at least 3 heartbeat intervals \(300 ms\).*got 200/,
    );
  });
});
