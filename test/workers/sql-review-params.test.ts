// Review finding C: integer parameters and the work one request may cause.
import { env, runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { prepareRead, prepareWrite, SqlStateMachine } from "../../src/objects/sql/index";
import { DEFAULT_LIMITS, MAX_PARAMS_PER_REQUEST } from "../../src/shared/sql-text";
import { parseStatementsBody } from "../../src/worker/data/statements";
import { ApiError } from "../../src/worker/http/errors";

function statusOf(body: string): number {
  try {
    parseStatementsBody(body, "application/json", DEFAULT_LIMITS);
    return 200;
  } catch (error) {
    if (error instanceof ApiError) {
      return error.status;
    }
    throw error;
  }
}

function intStatements(count: number, from = 0): string {
  let next = from;
  const select = `SELECT ${Array.from({ length: 100 }, () => "?").join(",")}`;
  return JSON.stringify(Array.from({ length: count }, () => [select, ...Array.from({ length: 100 }, () => next++)]));
}

describe("work per request", () => {
  it("bounds the parameters of one request, all statements together (413 past the bound)", () => {
    expect(MAX_PARAMS_PER_REQUEST).toBe(10_000);
    expect(statusOf(intStatements(100))).toBe(200);
    expect(statusOf(intStatements(101))).toBe(413);
    // The request of the review: 900 statements of 100 integers each.
    expect(statusOf(intStatements(900))).toBe(413);
  });

  it("answers the largest allowed request of integer parameters with the values and types expected", async () => {
    const statements = parseStatementsBody(intStatements(100), "application/json", DEFAULT_LIMITS);
    const prepared = prepareRead(statements);
    if (!prepared.ok) {
      throw new Error(prepared.error);
    }
    const stub = env.CLUSTER_NODE.getByName(`sql-review-params-${crypto.randomUUID()}`);
    const results = await runInDurableObject(stub, (_instance, state) =>
      new SqlStateMachine(state.storage).query(prepared.statements, { transaction: false }),
    );
    expect(results).toHaveLength(100);
    expect(results[99]?.rows).toEqual([Array.from({ length: 100 }, (_, i) => 9_900 + i)]);
    expect(results[0]?.types).toEqual(Array.from({ length: 100 }, () => "integer"));
  });
});

describe("integer parameters", () => {
  it("name their result column ? as a bound value does (rqlite: ?), and -0.0 stays a REAL", async () => {
    const write = prepareWrite(
      {
        id: "r",
        transaction: false,
        statements: [
          {
            sql: "CREATE TABLE t AS SELECT ? AS named, ?, ?, typeof(?) AS kind, max(?, 1) FROM (SELECT 1) ORDER BY ?",
            params: [1, 2, "s", -0, 5, 1],
          },
        ],
      },
      { nowMs: 0, randomBytes: (n) => new Uint8Array(n) },
    );
    if (!write.ok) {
      throw new Error(write.error);
    }
    const read = prepareRead([{ sql: "SELECT ?, ? + 1, ?", params: [7, 7, -0] }]);
    if (!read.ok) {
      throw new Error(read.error);
    }
    const stub = env.CLUSTER_NODE.getByName(`sql-review-params-names-${crypto.randomUUID()}`);
    const [columns, rows, readColumns, readRows] = await runInDurableObject(stub, (_instance, state) => {
      const [statement] = write.request.statements;
      state.storage.sql.exec(statement!.sql, ...((statement!.params ?? []) as unknown[]));
      const cursor = state.storage.sql.exec("SELECT * FROM t");
      const [readStatement] = read.statements;
      const readCursor = state.storage.sql.exec(readStatement!.sql, ...((readStatement!.params ?? []) as unknown[]));
      return [cursor.columnNames, [...cursor.raw()], readCursor.columnNames, [...readCursor.raw()]];
    });
    expect(columns).toEqual(["named", "?", "?:1", "kind", "max(?, 1)"]);
    expect(rows).toEqual([[1, 2, "s", "real", 5]]);
    expect(readColumns).toEqual(["?", "? + 1", "?"]);
    expect(readRows).toEqual([[7, 8, -0]]);
  });
});

describe("result column aliases", () => {
  it("are added only where a result column ends, never inside an upsert or a RETURNING list", async () => {
    const write = prepareWrite(
      {
        id: "r",
        transaction: false,
        statements: [
          { sql: "CREATE TABLE u(a PRIMARY KEY, b)" },
          { sql: "INSERT INTO u(a, b) SELECT ?, ? ON CONFLICT(a) DO UPDATE SET b = ?", params: [1, 2, 3] },
          {
            sql: "INSERT INTO u(a, b) SELECT ?, ? ON CONFLICT(a) DO UPDATE SET b = ? RETURNING b + ?",
            params: [1, 2, 4, 10],
          },
        ],
      },
      { nowMs: 0, randomBytes: (n) => new Uint8Array(n) },
    );
    if (!write.ok) {
      throw new Error(write.error);
    }
    const stub = env.CLUSTER_NODE.getByName(`sql-review-params-upsert-${crypto.randomUUID()}`);
    const returned = await runInDurableObject(stub, (_instance, state) => {
      let rows: unknown[][] = [];
      for (const statement of write.request.statements) {
        rows = [...state.storage.sql.exec(statement.sql, ...((statement.params ?? []) as unknown[])).raw()];
      }
      return rows;
    });
    expect(returned).toEqual([[14]]);
  });
});
