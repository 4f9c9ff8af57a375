// The one SQL classifier and its two readers: the node (classifyStatement: which path runs a statement) and the
// worker's routing (isSurelyReadOnly: /db/request reads; isWriteOnQueryPath: /db/query answers rqlite's error for
// it). Each keeps the behaviour the HTTP API documents: /db/request reads only SELECT, VALUES and EXPLAIN, and sends
// WITH and PRAGMA through the log; /db/query runs WITH ... SELECT and read-only PRAGMAs, and answers what writes.
import { describe, expect, it } from "vitest";
import {
  classifyStatement,
  DEFAULT_LIMITS,
  isSurelyReadOnly,
  isWriteOnQueryPath,
  leadingKeyword,
  SQL_LIMITS,
} from "../../src/shared/sql-text";

type Row = readonly [sql: string, node: "read" | "write", requestReads: boolean, queryAnswersError: boolean];

const TABLE: readonly Row[] = [
  ["SELECT * FROM t", "read", true, false],
  ["  /* c */ -- x\n select 1", "read", true, false],
  ["VALUES (1), (2)", "read", true, false],
  ["EXPLAIN QUERY PLAN SELECT 1", "read", true, false],
  // WITH: the node looks past the common table expressions; the worker's route does not.
  ["WITH x AS (SELECT 1) SELECT * FROM x", "read", false, false],
  ["WITH x AS (SELECT 1 AS v) INSERT INTO t SELECT v FROM x", "write", false, true],
  ["WITH x AS (SELECT 1) DELETE FROM t", "write", false, true],
  // PRAGMA: the node knows which ones only read; the worker sends every PRAGMA through the log.
  ["PRAGMA table_info(t)", "read", false, false],
  ["PRAGMA foreign_keys", "read", false, false],
  ["PRAGMA foreign_keys = OFF", "write", false, true],
  ["INSERT INTO t VALUES (1)", "write", false, true],
  ["insert into t values (1)", "write", false, true],
  ["CREATE TABLE t(a)", "write", false, true],
  ["BEGIN", "write", false, true],
  ["VACUUM", "write", false, true],
  // Not a statement: left to the node, which says what is wrong with it.
  ["nonsense", "write", false, false],
];

describe("one classifier, two documented routing rules", () => {
  it.each(TABLE)("%s: node %s, /db/request reads %s, /db/query answers the error %s", (sql, node, reads, answers) => {
    expect(classifyStatement(sql)).toBe(node);
    expect(isSurelyReadOnly(sql)).toBe(reads);
    expect(isWriteOnQueryPath(sql)).toBe(answers);
  });

  it("never lets the worker route a statement the node would classify otherwise", () => {
    for (const [sql, node] of TABLE) {
      if (isSurelyReadOnly(sql)) {
        expect(node, sql).toBe("read");
      }
      if (isWriteOnQueryPath(sql)) {
        expect(node, sql).toBe("write");
      }
    }
  });

  it("finds the leading keyword past comments and parentheses, and never throws on text SQLite cannot tokenize", () => {
    expect(leadingKeyword("  /* c */ -- x\n (SELECT 1)")).toBe("SELECT");
    expect(isSurelyReadOnly("  /* c */ -- x\n (SELECT 1)")).toBe(true);
    expect(leadingKeyword("ROLLBACK; -- errors")).toBe("ROLLBACK");
    expect(leadingKeyword("SELECT 'unterminated")).toBe("SELECT");
    expect(leadingKeyword("'unterminated")).toBe("");
    expect(leadingKeyword("[unterminated")).toBe("");
    expect(leadingKeyword("")).toBe("");
    expect(classifyStatement("SELECT 'unterminated")).toBe("write");
  });
});

describe("limits", () => {
  it("keeps the worker's per-statement defaults within the platform's limits and a dump within one log entry", () => {
    expect(DEFAULT_LIMITS.maxParamsPerStatement).toBeLessThanOrEqual(SQL_LIMITS.maxBoundParameters);
    expect(DEFAULT_LIMITS.maxSqlBytes).toBeLessThanOrEqual(SQL_LIMITS.maxStatementBytes);
    expect(DEFAULT_LIMITS.maxStatements).toBeLessThanOrEqual(SQL_LIMITS.maxStatementsPerRequest);
    expect(DEFAULT_LIMITS.maxLoadStatements).toBeLessThanOrEqual(SQL_LIMITS.maxStatementsPerRequest);
  });
});
