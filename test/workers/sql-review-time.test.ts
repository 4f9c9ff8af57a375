// Review finding A: a time value that reaches 'now' through an expression ('n'||'ow', upper('now'), a column
// holding 'now') must be fixed by the leader like the literal 'now', or refused where it would be stored; otherwise
// every replica reads its own clock and the replicas diverge.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { SqlRequest, Statement } from "../../src/shared/sql";
import { prepareWrite } from "../../src/objects/sql/index";
import { clusterFactory } from "./helpers/cluster";
import { RealHarness } from "./http-support";

const NOW_MS = Date.UTC(2026, 0, 2, 3, 4, 5, 678); // far from the test's real clock
const LEADER_TIME = "2026-01-02 03:04:05.678";

function prepared(statements: Statement[]): SqlRequest | string {
  const result = prepareWrite(
    { id: "r", transaction: false, statements },
    { nowMs: NOW_MS, randomBytes: (n) => new Uint8Array(n) },
  );
  return result.ok ? result.request : result.error;
}

/** Runs the statements as the leader prepared them on real SQLite and returns the rows of `query`. */
async function runPrepared(
  label: string,
  setup: string[],
  statements: Statement[],
  query: string,
): Promise<unknown[][]> {
  const request = prepared(statements);
  if (typeof request === "string") {
    throw new Error(`refused: ${request}`);
  }
  const stub = env.CLUSTER_NODE.getByName(`sql-review-time-${label}-${crypto.randomUUID()}`);
  return runInDurableObject(stub, (_instance, state) => {
    for (const sql of setup) {
      state.storage.sql.exec(sql);
    }
    for (const statement of request.statements) {
      state.storage.sql.exec(statement.sql, ...((statement.params ?? []) as unknown[]));
    }
    return [...state.storage.sql.exec(query).raw()] as unknown[][];
  });
}

const EXPRESSION_FORMS: ReadonlyArray<readonly [string, string]> = [
  ["concatenation", "INSERT INTO div VALUES('c', strftime('%Y-%m-%d %H:%M:%f', 'n'||'ow'))"],
  ["upper", "INSERT INTO div VALUES('u', strftime('%Y-%m-%d %H:%M:%f', upper('now')))"],
  ["column", "INSERT INTO div SELECT 'col', strftime('%Y-%m-%d %H:%M:%f', s) FROM src"],
];

describe("time values reached through expressions", () => {
  it("become the leader's time on SQLite, for every date and time function", async () => {
    const setup = ["CREATE TABLE div(k, v)", "CREATE TABLE src(s)", "INSERT INTO src VALUES('now')"];
    const rows = await runPrepared(
      "forms",
      setup,
      [
        ...EXPRESSION_FORMS.map(([, sql]) => ({ sql })),
        { sql: "INSERT INTO div SELECT 'date', date(s) || ' ' || time(s) FROM src" },
        { sql: "INSERT INTO div SELECT 'datetime', datetime(s, '+1 day') FROM src" },
        { sql: "INSERT INTO div SELECT 'julianday', julianday(s) = julianday(?) FROM src", params: [LEADER_TIME] },
        { sql: "INSERT INTO div SELECT 'unixepoch', unixepoch(lower(s)) FROM src" },
        { sql: "INSERT INTO div SELECT 'timediff', timediff(s, 'N' || 'OW') FROM src" },
        { sql: "INSERT INTO div SELECT 'subsec', datetime(s || 'sec') FROM (SELECT 'sub' AS s)" },
        { sql: "INSERT INTO div SELECT 'null', date(NULLIF(s, s)) FROM src" },
        { sql: "INSERT INTO div SELECT 'plain', date(s || '') FROM (SELECT '2020-05-06 07:08:09' AS s)" },
      ],
      "SELECT k, v FROM div ORDER BY rowid",
    );
    expect(rows).toEqual([
      ["c", LEADER_TIME],
      ["u", LEADER_TIME],
      ["col", LEADER_TIME],
      ["date", "2026-01-02 03:04:05"],
      ["datetime", "2026-01-03 03:04:05"],
      ["julianday", 1],
      ["unixepoch", Math.floor(NOW_MS / 1000)],
      ["timediff", "+0000-00-00 00:00:00.000"],
      ["subsec", "2026-01-02 03:04:05"],
      ["null", null],
      ["plain", "2020-05-06"],
    ]);
  });

  it("binds parameters inside a rewritten expression once per copy, in order", async () => {
    const rows = await runPrepared(
      "params",
      ["CREATE TABLE div(k, v)"],
      [
        { sql: "INSERT INTO div VALUES(?, date(? || ?))", params: ["p", "N", "ow"] },
        { sql: "INSERT INTO div VALUES(?, date(? || ?))", params: ["q", "2021-", "03-04"] },
      ],
      "SELECT k, v FROM div ORDER BY rowid",
    );
    expect(rows).toEqual([
      ["p", "2026-01-02"],
      ["q", "2021-03-04"],
    ]);
  });

  it("fixes the literal time values 'subsec' and 'subsecond' too, keeping the fractional seconds", async () => {
    const rows = await runPrepared(
      "subsec",
      [],
      [{ sql: "CREATE TABLE t AS SELECT datetime('subsec') AS a, datetime('SubSecond', '+1 hour') AS b" }],
      "SELECT a, b FROM t",
    );
    expect(rows).toEqual([[LEADER_TIME, "2026-01-02 04:04:05.678"]]);
  });

  it("refuses non-literal time values in defaults, views and triggers, where they would be evaluated later", () => {
    const refusals = [
      "CREATE TABLE dd(k, x DEFAULT (date('n'||'ow')))",
      "ALTER TABLE dd ADD COLUMN y DEFAULT (datetime(upper('now')))",
      "CREATE VIEW v AS SELECT date(s) FROM src",
      "CREATE TRIGGER tr AFTER INSERT ON src BEGIN INSERT INTO div VALUES('t', datetime(NEW.s)); END",
      "CREATE TABLE dd(k, x DEFAULT (datetime('subsec')))",
    ];
    for (const sql of refusals) {
      const result = prepared([{ sql }]);
      expect(typeof result, sql).toBe("string");
      expect(result as string, sql).toMatch(/stored definition/);
    }
    // Literal time values there are fixed forever and stay allowed.
    expect(typeof prepared([{ sql: "CREATE TABLE dd(k, x DEFAULT (date('2020-01-01', '+1 day')))" }])).toBe("object");
  });

  it("allows columns in CHECK constraints, generated columns and indexes, where SQLite refuses 'now' on every replica alike", async () => {
    const statements = [
      { sql: "CREATE TABLE g(s TEXT CHECK (date(s) IS NOT NULL), d TEXT AS (date(s)))" },
      { sql: "CREATE INDEX gi ON g(julianday(s))" },
      { sql: "INSERT INTO g(s) VALUES('2020-01-01')" },
    ];
    const rows = await runPrepared("pure", [], statements, "SELECT s, d FROM g");
    expect(rows).toEqual([["2020-01-01", "2020-01-01"]]);
    const stub = env.CLUSTER_NODE.getByName(`sql-review-time-pure-now-${crypto.randomUUID()}`);
    const error = await runInDurableObject(stub, (_instance, state) => {
      for (const statement of statements.slice(0, 1)) {
        state.storage.sql.exec(statement.sql);
      }
      try {
        state.storage.sql.exec("INSERT INTO g(s) VALUES('now')");
        return "accepted";
      } catch (caught) {
        return String(caught);
      }
    });
    expect(error).toMatch(/non-deterministic use of date\(\)/);
  });
});

const newCluster = clusterFactory();

describe("time values reached through expressions, on a real cluster", () => {
  it("store identical rows on every replica", async () => {
    // A longer election timeout than the default: the machine running the tests may be loaded.
    const cluster = newCluster({
      prefix: "sql-review-time",
      nodes: 3,
      heartbeatIntervalMs: 100,
      electionTimeoutMs: 1_500,
    });
    const h = new RealHarness(cluster);
    const setup = await h.send("POST", "/db/execute", {
      json: ["CREATE TABLE div(k, v)", "CREATE TABLE src(s)", "INSERT INTO src VALUES('now')"],
    });
    expect(setup.status, setup.text).toBe(200);
    const written = await h.send("POST", "/db/execute", { json: EXPRESSION_FORMS.map(([, sql]) => sql) });
    expect(written.status, written.text).toBe(200);
    expect(written.text).not.toMatch(/error/);

    const index = Number(written.headers.get("X-DHA-Raft-Index"));
    await cluster.waitForConvergence({ index });
    const answers: unknown[][][] = [];
    for (const node of cluster.names) {
      const read = await cluster.queryLocal(node, "SELECT k, v FROM div ORDER BY k");
      expect(read.error, node).toBeUndefined();
      answers.push((read.rows ?? []) as unknown[][]);
    }
    const values = answers[0] ?? [];
    expect(values.map(([k]) => k)).toEqual(["c", "col", "u"]);
    // One instant for all three: the leader fixed it once for the whole request.
    expect(new Set(values.map(([, v]) => v)).size).toBe(1);
    expect(answers[1]).toEqual(answers[0]);
    expect(answers[2]).toEqual(answers[0]);
    const refused = await h.send("POST", "/db/execute", { json: ["CREATE TABLE dd(k, x DEFAULT (date('n'||'ow')))"] });
    expect(refused.status, refused.text).toBe(400);
  });
});
