// POST /db/load with SQL text: the dump is split one token and one statement at a time, counted as it goes, and a
// dump past the statement limit is refused (413) where the limit is passed, before the rest is read or built.
import { describe, expect, it } from "vitest";
import { DumpTooLargeError, LOAD_DEFERS_FOREIGN_KEYS, parseDump } from "../../src/objects/sql/dump";
import { splitTokensIntoStatements, streamStatements, streamTokens, tokenizeSql } from "../../src/shared/sql-text";
import { FakeCluster, harness } from "./http-support";

function dumpOf(rows: number): string {
  const lines = [
    "PRAGMA foreign_keys=OFF;",
    "BEGIN TRANSACTION;",
    "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT);",
  ];
  for (let i = 0; i < rows; i += 1) {
    lines.push(`INSERT INTO t VALUES(${i},'row ${i}; not the end');`);
  }
  lines.push("COMMIT;");
  return lines.join("\n");
}

describe("splitting a dump", () => {
  it("streams the same statements as the whole-text splitter, trigger bodies and comments included", () => {
    const text =
      "CREATE TABLE a(x); -- c;\nCREATE TRIGGER tr AFTER INSERT ON a BEGIN INSERT INTO a VALUES(1); END;\n;; /* x; */ INSERT INTO a VALUES('a;b')";
    expect([...streamStatements(streamTokens(text))]).toEqual(splitTokensIntoStatements(tokenizeSql(text)));
    expect([...streamStatements(streamTokens(text))]).toHaveLength(3);
  });

  it("stops at the first statement past the limit, without reading the rest of the text", () => {
    const text = dumpOf(10_000);
    let thrown: unknown;
    try {
      parseDump(text, { maxStatements: 100 });
    } catch (error) {
      thrown = error;
    }
    expect(thrown).toBeInstanceOf(DumpTooLargeError);
    const tooLarge = thrown as DumpTooLargeError;
    expect(tooLarge.message).toBe("the dump holds more than 100 statements; at most 100 may be loaded at once");
    // Statement 101 (the load's PRAGMA defer_foreign_keys, the CREATE TABLE and 98 INSERTs fit; framing does not
    // count) ends where reading stopped.
    const endOf101st = text.indexOf("\n", text.indexOf("INSERT INTO t VALUES(98,"));
    expect(tooLarge.stoppedAtOffset).toBe(endOf101st);
    expect(tooLarge.stoppedAtOffset).toBeLessThan(text.length / 50);
  });

  it("parses a dump of exactly the limit, framing left out, PRAGMA defer_foreign_keys in front", () => {
    const statements = parseDump(dumpOf(98), { maxStatements: 100 });
    expect(statements).toHaveLength(100);
    expect(statements[0]).toEqual(LOAD_DEFERS_FOREIGN_KEYS);
    expect(statements[1]).toEqual({ sql: "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT)" });
    expect(statements[100 - 1]).toEqual({ sql: "INSERT INTO t VALUES(97,'row 97; not the end')" });
  });
});

describe("the order a dump loads in", () => {
  const SQLITE3_ORDER = [
    "PRAGMA foreign_keys=OFF;",
    "BEGIN TRANSACTION;",
    "CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES par(id));",
    "INSERT INTO child VALUES(1,1);",
    "CREATE TABLE par (id INTEGER PRIMARY KEY);",
    "INSERT INTO par VALUES(1);",
    "CREATE TABLE copy AS SELECT * FROM par;",
    "CREATE INDEX child_p ON child(p);",
    "COMMIT;",
  ];

  it("defers foreign keys first, then creates every plain table, then the rest in the dump's order", () => {
    expect(parseDump(SQLITE3_ORDER.join("\n")).map((statement) => statement.sql)).toEqual([
      "PRAGMA defer_foreign_keys = ON",
      "CREATE TABLE child (id INTEGER PRIMARY KEY, p INTEGER REFERENCES par(id))",
      "CREATE TABLE par (id INTEGER PRIMARY KEY)",
      "INSERT INTO child VALUES(1,1)",
      "INSERT INTO par VALUES(1)",
      "CREATE TABLE copy AS SELECT * FROM par",
      "CREATE INDEX child_p ON child(p)",
    ]);
  });

  it("keeps the dump's order when it drops or alters a table, and holds nothing for an empty dump", () => {
    const withDrop = ["DROP TABLE IF EXISTS par;", ...SQLITE3_ORDER.slice(2)].join("\n");
    expect(parseDump(withDrop).map((statement) => statement.sql.split(" (")[0])).toEqual([
      "PRAGMA defer_foreign_keys = ON",
      "DROP TABLE IF EXISTS par;".slice(0, -1),
      "CREATE TABLE child",
      "INSERT INTO child VALUES(1,1)",
      "CREATE TABLE par",
      "INSERT INTO par VALUES(1)",
      "CREATE TABLE copy AS SELECT * FROM par",
      "CREATE INDEX child_p ON child(p)",
    ]);
    expect(parseDump("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCOMMIT;")).toEqual([]);
  });
});

describe("POST /db/load with a dump past the statement limit", () => {
  it("answers 413 and proposes nothing", async () => {
    const { cluster, request } = harness(new FakeCluster(), { limits: { maxLoadStatements: 50 } });
    const response = await request("POST", "/db/load", {
      body: dumpOf(5_000),
      headers: { "Content-Type": "text/plain" },
    });
    expect(response.status).toBe(413);
    expect(response.headers.get("X-DHA-Error-Code")).toBe("LIMIT");
    expect(((await response.json()) as { error: string }).error).toBe(
      "the dump holds more than 50 statements; at most 50 may be loaded at once",
    );
    expect(cluster.callsTo("execute")).toEqual([]);
    const fits = await request("POST", "/db/load", { body: dumpOf(48), headers: { "Content-Type": "text/plain" } });
    expect(fits.status).toBe(200);
    expect(cluster.callsTo("execute")).toHaveLength(1);
  });
});
