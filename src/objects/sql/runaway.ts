// Writes that would never finish must not reach the log. A committed entry is applied by every replica, again after
// every restart from storage: an entry that runs until the platform's CPU limit ends the invocation stops every
// replica from applying anything after it, for good. The leader therefore looks at a write before proposing it
// (SqlStateMachine.checkBeforeProposing), in two steps:
//
// 1. Endless work needs recursion, and SQLite's only recursion a statement can start is a recursive common table
//    expression (triggers do not recurse: recursive_triggers is off and writing PRAGMAs are refused). Every recursive
//    CTE written in a write's text (at any depth, in CREATE VIEW and CREATE TRIGGER bodies too, so views and triggers
//    cannot hide one) is run by itself, reading at most maxRows + 1 of its rows: more than maxRows and the write is
//    refused (400). That bound is ours, so it holds everywhere, locally too, and costs at most maxRows + 1 rows per
//    recursive CTE. A recursive CTE that cannot run by itself (it reads NEW/OLD or an outer query's columns) is
//    refused: it could not be shown to end. The generator idiom (`SELECT cols FROM c LIMIT n`, nothing else reading
//    c) needs no run: SQLite makes a recursive CTE's rows as they are read, so at most n of them (boundedByConsumer).
// 2. What step 1 cannot bound is finite work that is merely too large (a cross join of large tables, a write that
//    fires triggers doing such joins). A write that can do it (its text reads tables: SELECT, WITH, UPDATE ... FROM,
//    `IN table`; or the schema has triggers) runs once on the leader in a transaction that is always rolled back. If
//    it does not finish, the CPU limit ends the leader's invocation there, before anything is proposed: the leader
//    restarts from storage having lost nothing and the log never holds the write. Plain writes (INSERT ... VALUES,
//    UPDATE/DELETE of one table, DDL) on a schema without triggers do work bounded by the rows they touch and skip
//    the trial.
//
// Both steps see the leader's applied state. A write proposed while earlier entries are committed but not yet applied
// is checked without them (an earlier write in flight that raises the bound a recursive CTE reads, or adds a
// trigger, is not seen). Step 2 relies on replicas being about as fast as the leader.
import type { SqlValue, Statement } from "../../shared/sql";
import {
  isPunct,
  isSignificant,
  keywordOf,
  matchingParen,
  quoteSqlIdentifier,
  tokenizeSql,
  type SqlToken,
} from "../../shared/sql-text/tokenizer";

/** One recursive CTE of a statement, as a query that reads its rows by itself. */
export interface RecursionCheck {
  /** The CTE's name as written (unquoted). */
  readonly name: string;
  /** `WITH RECURSIVE <its clause up to it> SELECT 1 FROM <it> LIMIT maxRows + 1`. */
  readonly sql: string;
  readonly params: readonly SqlValue[];
}

interface CommonTableExpression {
  readonly name: string;
  /** Index (in the significant tokens) of the name, of the AS keyword, and of the body's parentheses. */
  readonly nameAt: number;
  readonly asAt: number;
  readonly openAt: number;
  readonly closeAt: number;
}

/** The CTEs of the WITH clause whose WITH keyword is at `withAt`; stops at anything it does not recognise. */
function clauseAt(significant: readonly SqlToken[], withAt: number): CommonTableExpression[] {
  const ctes: CommonTableExpression[] = [];
  let i = withAt + 1;
  if (keywordOf(significant[i]) === "RECURSIVE") {
    i += 1;
  }
  for (;;) {
    const nameToken = significant[i];
    if (nameToken === undefined || (nameToken.kind !== "word" && nameToken.kind !== "quoted")) {
      return ctes;
    }
    const nameAt = i;
    i += 1;
    if (isPunct(significant[i], "(")) {
      const close = matchingParen(significant, i);
      if (close === -1) {
        return ctes;
      }
      i = close + 1;
    }
    if (keywordOf(significant[i]) !== "AS") {
      return ctes;
    }
    const asAt = i;
    i += 1;
    if (keywordOf(significant[i]) === "NOT") {
      i += 1;
    }
    if (keywordOf(significant[i]) === "MATERIALIZED") {
      i += 1;
    }
    if (!isPunct(significant[i], "(")) {
      return ctes;
    }
    const closeAt = matchingParen(significant, i);
    if (closeAt === -1) {
      return ctes;
    }
    ctes.push({ name: nameToken.value, nameAt, asAt, openAt: i, closeAt });
    i = closeAt + 1;
    if (!isPunct(significant[i], ",")) {
      return ctes;
    }
    i += 1;
  }
}

/** Whether the body names the CTE itself and is a compound (UNION) at its top level: the shape of recursion. */
function isRecursive(significant: readonly SqlToken[], cte: CommonTableExpression): boolean {
  const name = cte.name.toLowerCase();
  let namesItself = false;
  let compound = false;
  for (const { token, depth } of bodyTokens(significant, cte)) {
    if ((token.kind === "word" || token.kind === "quoted") && token.value.toLowerCase() === name) {
      namesItself = true;
    } else if (depth === 0 && keywordOf(token) === "UNION") {
      compound = true;
    }
  }
  return namesItself && compound;
}

function hasTopLevelLimit(significant: readonly SqlToken[], cte: CommonTableExpression): boolean {
  for (const { token, depth } of bodyTokens(significant, cte)) {
    if (depth === 0 && keywordOf(token) === "LIMIT") {
      return true;
    }
  }
  return false;
}

/** The tokens of the CTE's body other than parentheses, each with its nesting depth (0 at the body's top level). */
function* bodyTokens(
  significant: readonly SqlToken[],
  cte: CommonTableExpression,
): Generator<{ readonly token: SqlToken; readonly depth: number }> {
  let depth = 0;
  for (let i = cte.openAt + 1; i < cte.closeAt; i += 1) {
    const token = significant[i] as SqlToken;
    if (isPunct(token, "(")) {
      depth += 1;
    } else if (isPunct(token, ")")) {
      depth -= 1;
    } else {
      yield { token, depth };
    }
  }
}

/** Aggregate and window-capable functions: a query calling one reads every row of its FROM. */
const AGGREGATES = new Set([
  "COUNT",
  "SUM",
  "TOTAL",
  "AVG",
  "MIN",
  "MAX",
  "GROUP_CONCAT",
  "STRING_AGG",
  "JSON_GROUP_ARRAY",
  "JSON_GROUP_OBJECT",
  "JSONB_GROUP_ARRAY",
  "JSONB_GROUP_OBJECT",
  "MEDIAN",
  "PERCENTILE",
  "PERCENTILE_CONT",
  "PERCENTILE_DISC",
]);

/** Index of the first significant token at or after `from` that closes a parenthesis opened before it (or the end). */
function scopeEnd(significant: readonly SqlToken[], from: number): number {
  let depth = 0;
  for (let i = from; i < significant.length; i += 1) {
    if (isPunct(significant[i], "(")) {
      depth += 1;
    } else if (isPunct(significant[i], ")")) {
      if (depth === 0) {
        return i;
      }
      depth -= 1;
    } else if (depth === 0 && significant[i]?.kind === "semicolon") {
      return i;
    }
  }
  return significant.length;
}

/** An integer LIMIT as written or as prepareWrite writes whole parameters: `n` or `(n+0)`; else null. */
function literalLimit(tokens: readonly SqlToken[]): number | null {
  const texts = tokens.map((token) => token.text);
  const digits =
    texts.length === 1
      ? texts[0]
      : texts.length === 5 && texts[0] === "(" && texts[2] === "+" && texts[3] === "0" && texts[4] === ")"
        ? texts[1]
        : undefined;
  return digits !== undefined && /^[0-9]{1,15}$/.test(digits) ? Number(digits) : null;
}

/**
 * The generator idiom `WITH RECURSIVE c(x) AS (... endless ...) [INSERT INTO t] SELECT cols FROM c LIMIT n`: SQLite
 * computes a recursive CTE's rows as they are read, so a consumer that reads c alone, without WHERE, ORDER BY,
 * DISTINCT, grouping or aggregates, and stops at LIMIT n (n <= maxRows), makes at most n of them. Only exactly that
 * shape is recognised (c named nowhere else); anything else is checked by running the CTE by itself.
 */
function boundedByConsumer(
  significant: readonly SqlToken[],
  clause: readonly CommonTableExpression[],
  k: number,
  maxRows: number,
): boolean {
  const cte = clause[k] as CommonTableExpression;
  const last = clause[clause.length - 1] as CommonTableExpression;
  const name = cte.name.toLowerCase();
  const namesIt = (token: SqlToken | undefined): boolean =>
    token !== undefined && (token.kind === "word" || token.kind === "quoted") && token.value.toLowerCase() === name;
  const mainStart = last.closeAt + 1;
  const mainEnd = scopeEnd(significant, mainStart);
  for (let i = cte.closeAt + 1; i < mainStart; i += 1) {
    if (namesIt(significant[i])) {
      return false;
    }
  }
  let i = mainStart;
  const verb = keywordOf(significant[i]);
  if (verb === "INSERT" || verb === "REPLACE") {
    while (i < mainEnd && keywordOf(significant[i]) !== "SELECT") {
      if (keywordOf(significant[i]) === "VALUES" || keywordOf(significant[i]) === "WITH") {
        return false;
      }
      i += 1;
    }
  }
  if (keywordOf(significant[i]) !== "SELECT") {
    return false;
  }
  i += 1;
  if (keywordOf(significant[i]) === "ALL") {
    i += 1;
  }
  let depth = 0;
  for (; i < mainEnd; i += 1) {
    const token = significant[i] as SqlToken;
    const keyword = keywordOf(token);
    if (isPunct(token, "(")) {
      depth += 1;
    } else if (isPunct(token, ")")) {
      depth -= 1;
    } else if (depth === 0 && keyword === "FROM") {
      break;
    } else if (keyword === "SELECT" || keyword === "OVER" || keyword === "DISTINCT" || namesIt(token)) {
      return false;
    } else if (keyword !== null && AGGREGATES.has(keyword) && isPunct(significant[i + 1], "(")) {
      return false;
    }
  }
  if (keywordOf(significant[i]) !== "FROM" || !namesIt(significant[i + 1])) {
    return false;
  }
  i += 2;
  if (keywordOf(significant[i]) === "AS") {
    i += 1;
  }
  const alias = significant[i];
  if (alias !== undefined && keywordOf(alias) !== "LIMIT" && (alias.kind === "word" || alias.kind === "quoted")) {
    i += 1;
  }
  if (keywordOf(significant[i]) !== "LIMIT") {
    return false;
  }
  const limit = literalLimit(significant.slice(i + 1, mainEnd));
  return limit !== null && limit <= maxRows;
}

/**
 * A query per recursive CTE of the statement (as prepareWrite left it: only `?` parameters, in order) that reads at
 * most maxRows + 1 of the CTE's rows. The CTE's own clause comes along up to it (it may read the CTEs before it);
 * MATERIALIZED hints are left out (a materialized CTE is computed to its end before the first row is read), and a
 * body without a LIMIT of its own gets one, so the recursion itself stops there too.
 */
export function recursionChecks(statement: Statement, maxRows: number): RecursionCheck[] {
  const sql = statement.sql;
  const tokens = tokenizeSql(sql);
  const significant = tokens.filter(isSignificant);
  const params = Array.isArray(statement.params) ? (statement.params as readonly SqlValue[]) : [];
  const paramAt = new Map<number, number>();
  for (const token of significant) {
    if (token.kind === "param") {
      paramAt.set(token.start, paramAt.size);
    }
  }
  const limit = maxRows + 1;

  const textOf = (from: number, to: number, bound: SqlValue[]): string => {
    // Significant tokens [from, to] as written (comments inside kept), with the values of their parameters.
    const first = significant[from] as SqlToken;
    const last = significant[to] as SqlToken;
    for (let i = from; i <= to; i += 1) {
      const token = significant[i] as SqlToken;
      if (token.kind === "param") {
        bound.push(params[paramAt.get(token.start) ?? -1] ?? null);
      }
    }
    return sql.slice(first.start, last.start + last.text.length);
  };

  const checks: RecursionCheck[] = [];
  significant.forEach((token, withAt) => {
    if (keywordOf(token) !== "WITH") {
      return;
    }
    const clause = clauseAt(significant, withAt);
    clause.forEach((cte, k) => {
      if (!isRecursive(significant, cte) || boundedByConsumer(significant, clause, k, maxRows)) {
        return;
      }
      const bound: SqlValue[] = [];
      const parts = clause.slice(0, k + 1).map((each) => {
        const header = textOf(each.nameAt, each.asAt, bound);
        let body = textOf(each.openAt, each.closeAt, bound);
        if (each === cte && !hasTopLevelLimit(significant, cte)) {
          body = `${body.slice(0, -1)} LIMIT ${limit})`;
        }
        return `${header} ${body}`;
      });
      checks.push({
        name: cte.name,
        sql: `WITH RECURSIVE ${parts.join(", ")} SELECT 1 FROM ${quoteSqlIdentifier(cte.name)} LIMIT ${limit}`,
        params: bound,
      });
    });
  });
  return checks;
}

const READS_TABLES = new Set(["SELECT", "WITH"]);

/**
 * Whether the statement's work may go beyond the rows it names: it reads tables or views through SELECT or WITH,
 * joins in UPDATE ... FROM, or tests `x IN table`. Such a write is trial-run before it is proposed (see above).
 */
export function readsOtherTables(sql: string): boolean {
  const significant = tokenizeSql(sql).filter(isSignificant);
  return significant.some((token, i) => {
    const keyword = keywordOf(token);
    if (keyword === null) {
      return false;
    }
    if (READS_TABLES.has(keyword)) {
      return true;
    }
    if (keyword === "FROM") {
      return keywordOf(significant[i - 1]) !== "DELETE";
    }
    if (keyword === "IN") {
      return !isPunct(significant[i + 1], "(");
    }
    return false;
  });
}
