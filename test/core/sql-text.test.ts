// The one SQL classifier and its two readers: the node (classifyStatement: which path runs a statement) and the
// worker's routing (isReadStatement: /db/request reads; isWriteOnQueryPath: /db/query answers rqlite's error for
// it). The worker routes as the node classifies: /db/request reads what the node reads (WITH ... SELECT and read-only
// PRAGMAs included, as rqlite asks SQLite), and /db/query answers what the node would refuse as a write.
import { describe, expect, it } from "vitest";
import {
  classifyStatement,
  DEFAULT_LIMITS,
  isReadStatement,
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
  // WITH: the node and the worker look past the common table expressions.
  ["WITH x AS (SELECT 1) SELECT * FROM x", "read", true, false],
  ["WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3) SELECT x FROM c", "read", true, false],
  ["WITH x AS (SELECT 1 AS v) INSERT INTO t SELECT v FROM x", "write", false, true],
  ["WITH x AS (SELECT 1) DELETE FROM t", "write", false, true],
  // PRAGMA: the node knows which ones only read, and the worker asks it the same way.
  ["PRAGMA table_info(t)", "read", true, false],
  ["PRAGMA foreign_keys", "read", true, false],
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
    expect(isReadStatement(sql)).toBe(reads);
    expect(isWriteOnQueryPath(sql)).toBe(answers);
  });

  it("never lets the worker route a statement the node would classify otherwise", () => {
    for (const [sql, node] of TABLE) {
      expect(isReadStatement(sql), sql).toBe(node === "read");
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
