// Review findings E and F: request bodies that used to be stored wrongly or misread.
import { describe, expect, it } from "vitest";
import { parseStatementsBody } from "../../src/worker/data/statements";
import { DEFAULT_LIMITS } from "../../src/shared/sql-text";
import { ApiError } from "../../src/worker/http/errors";
import { clusterFactory } from "./helpers/cluster";
import { RealHarness } from "./http-support";

const newCluster = clusterFactory();

function statusOf(body: string, contentType = "application/json"): number {
  try {
    parseStatementsBody(body, contentType, DEFAULT_LIMITS);
    return 200;
  } catch (error) {
    if (error instanceof ApiError) {
      return error.status;
    }
    throw error;
  }
}

describe("parameter values", () => {
  it("refuses non-finite numbers and lone surrogates with 400", () => {
    expect(statusOf('[["SELECT ?", 1e400]]')).toBe(400);
    expect(statusOf('[["SELECT ?", -1e400]]')).toBe(400);
    expect(statusOf('[["SELECT :x", {"x": 1e999}]]')).toBe(400);
    expect(statusOf('[["SELECT ?", "\\ud800"]]')).toBe(400);
    const deep = "[".repeat(100_000) + "]".repeat(100_000);
    expect(() => parseStatementsBody(deep, "application/json", DEFAULT_LIMITS)).toThrow(/nested too deeply/);
    expect(statusOf('[["SELECT ?", "a\\udc00b"]]')).toBe(400);
    expect(statusOf("[\"SELECT '\\ud800'\"]")).toBe(400);
    // Well-formed pairs and ordinary numbers stay fine.
    expect(statusOf('[["SELECT ?, ?", "\\ud83d\\ude00", 1.7976931348623157e308]]')).toBe(200);
  });

  it("keeps a named parameter called __proto__", () => {
    const [statement] = parseStatementsBody(
      '[["SELECT :__proto__, :constructor", {"__proto__": 1, "constructor": "c"}]]',
      "application/json",
      DEFAULT_LIMITS,
    );
    expect(Object.keys(statement?.params ?? {})).toEqual(["__proto__", "constructor"]);
  });
});

describe("content types", () => {
  it("reads a body starting with [ as JSON even when it is sent as text/plain (fetch's default for strings)", () => {
    const statements = parseStatementsBody(' \n[["SELECT ?", 1]]', "text/plain;charset=UTF-8", DEFAULT_LIMITS);
    expect(statements).toEqual([{ sql: "SELECT ?", params: [1] }]);
    // A statement sent as text/plain still is one.
    expect(parseStatementsBody("SELECT 1", "text/plain", DEFAULT_LIMITS)).toEqual([{ sql: "SELECT 1" }]);
  });
});

describe("over HTTP", () => {
  it("stores and reads back a __proto__ parameter, refuses 1e400 and runs a text/plain JSON body", async () => {
    const h = new RealHarness(newCluster({ prefix: "sql-review-body", nodes: 1 }));
    const created = await h.send("POST", "/db/execute", { json: ["CREATE TABLE t(v)"] });
    expect(created.status, created.text).toBe(200);
    const proto = await h.send("POST", "/db/execute", {
      body: '[["INSERT INTO t(v) VALUES(:__proto__)", {"__proto__": 7}]]',
      headers: { "Content-Type": "application/json" },
    });
    expect(proto.status, proto.text).toBe(200);
    expect(proto.text).not.toContain("error");
    const infinite = await h.send("POST", "/db/execute", {
      body: '[["INSERT INTO t(v) VALUES(?)", 1e400]]',
      headers: { "Content-Type": "application/json" },
    });
    expect(infinite.status, infinite.text).toBe(400);
    const surrogate = await h.send("POST", "/db/execute", {
      body: '[["INSERT INTO t(v) VALUES(?)", "\\ud800"]]',
      headers: { "Content-Type": "application/json" },
    });
    expect(surrogate.status, surrogate.text).toBe(400);
    const plain = await h.send("POST", "/db/query?level=strong", {
      body: '["SELECT v FROM t"]',
      headers: { "Content-Type": "text/plain;charset=UTF-8" },
    });
    expect(plain.status, plain.text).toBe(200);
    expect(plain.text).toBe('{"results":[{"columns":["v"],"types":["integer"],"values":[[7]]}]}');
  });
});

describe("unparsable SQL on the query path", () => {
  it("answers a parse error, not rqlite's read-only message, for garbage and for NUL characters", async () => {
    const h = new RealHarness(newCluster({ prefix: "sql-review-parse", nodes: 1 }));
    const garbage = await h.send("POST", "/db/query", { json: ["SELEC 1"] });
    expect(garbage.text).not.toContain("attempt to change database");
    expect(garbage.text).toContain('near \\"SELEC\\": syntax error');
    const nul = await h.send("POST", "/db/query", { json: ["SELECT 1\u0000 FROM t"] });
    expect(nul.status, nul.text).toBe(400);
    expect(nul.text).toContain("NUL character");
  });
});

// Outside check (issue 11 session): SQLite reads SQL text only up to a NUL, so a NUL in a comment turned
// `DELETE ... /* NUL */ WHERE ...` into `DELETE FROM t`, applied on every replica while the answer was an error.
describe("NUL characters in a write's SQL", () => {
  it("refuses a NUL in a comment or a quoted name with 400, and applies nothing", async () => {
    const h = new RealHarness(newCluster({ prefix: "sql-review-nul", nodes: 1 }));
    const setUp = await h.send("POST", "/db/execute", {
      json: [
        "CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)",
        "INSERT INTO t(v) VALUES('keep')",
        "INSERT INTO t(v) VALUES('drop')",
      ],
    });
    expect(setUp.status, setUp.text).toBe(200);
    const refusals = [
      { json: ["DELETE FROM t /* \u0000 */ WHERE v = 'drop'"] },
      { json: ["UPDATE t SET v = 'x' -- \u0000\nWHERE v = 'drop'"] },
      { json: ['DELETE FROM t WHERE "v\u0000" = 1'] },
      { body: "DELETE FROM t -- \u0000\nWHERE v = 'drop'", headers: { "Content-Type": "text/plain" } },
    ];
    for (const request of refusals) {
      const answer = await h.send("POST", "/db/execute", request);
      expect(answer.status, answer.text).toBe(400);
      expect(answer.text).toContain("NUL character");
    }
    const rows = await h.send("POST", "/db/query?level=strong", { json: ["SELECT v FROM t ORDER BY id"] });
    expect(rows.text).toContain('"values":[["keep"],["drop"]]');
  });

  it("refuses a NUL inside a string literal too, and stores it as a parameter", async () => {
    const h = new RealHarness(newCluster({ prefix: "sql-review-nul-literal", nodes: 1 }));
    await h.send("POST", "/db/execute", { json: ["CREATE TABLE t(v TEXT)"] });
    const literal = await h.send("POST", "/db/execute", { json: ["INSERT INTO t(v) VALUES('a\u0000b')"] });
    expect(literal.status, literal.text).toBe(400);
    expect(literal.text).toContain("as a parameter");
    const bound = await h.send("POST", "/db/execute", { json: [["INSERT INTO t(v) VALUES(?)", "a\u0000b"]] });
    expect(bound.status, bound.text).toBe(200);
    const rows = await h.send("POST", "/db/query?level=strong", { json: ["SELECT hex(v) FROM t"] });
    expect(rows.text).toContain('"values":[["610062"]]');
  });
});
