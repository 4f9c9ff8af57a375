// rqlite's /db/query runs each statement on a read-only connection: a statement that would change the database
// answers "attempt to change database via query operation" in its place, with HTTP 200, and the statements around
// it still run (rqlite db/db.go, queryWithConn), at every read level. The worker answers those statements itself,
// so the nodes see only the reads, and nothing of the request can be written.
import { READ_ONLY_VIOLATION } from "../../objects/api";
import type { Statement, StatementResult } from "../../shared/sql";
import { isWriteOnQueryPath } from "../../shared/sql-text/classify";

export interface QueryPlan {
  /** The statements the nodes run, in request order. */
  readonly reads: readonly Statement[];
  /** Per read: its index in the request, to name it as the client numbered it (inRequestNumbering). */
  readonly readIndexes: readonly number[];
  /**
   * Per statement of the request: its answer when the worker gives it (a write), SKIPPED for an empty one (rqlite
   * answers nothing in its place), else null (a read).
   */
  readonly answers: readonly (StatementResult | typeof SKIPPED | null)[];
}

/** The answer of an empty statement (SQL exactly ""): none, as rqlite skips it (db/db.go). */
export const SKIPPED = "skipped";

/**
 * Splits a /db/query request into the reads the nodes run and the writes answered with rqlite's error; with
 * `writesRead` (/db/request, whose writes go through the log) every non-empty statement is a read here.
 */
export function planQuery(
  statements: readonly Statement[],
  options: { readonly writesRead?: boolean } = {},
): QueryPlan {
  const answers = statements.map((statement): StatementResult | typeof SKIPPED | null => {
    if (statement.sql === "") {
      return SKIPPED;
    }
    return options.writesRead !== true && isWriteOnQueryPath(statement.sql) ? { error: READ_ONLY_VIOLATION } : null;
  });
  const readIndexes = answers.flatMap((answer, i) => (answer === null ? [i] : []));
  return { reads: readIndexes.map((i) => statements[i] as Statement), readIndexes, answers };
}

/**
 * The request's results in its own order: the nodes' results for the reads, the worker's answer for the writes,
 * nothing for the empty statements. A node of an earlier version stops a transaction's reads at the first that fails,
 * answering fewer results than reads (a rolling deploy): the request's results then end with that failure.
 */
export function mergeQueryResults(
  plan: QueryPlan,
  readResults: readonly StatementResult[],
  options: { readonly transaction: boolean },
): StatementResult[] {
  const stoppedAtFailure =
    options.transaction && readResults.length < plan.reads.length && readResults.at(-1)?.error !== undefined;
  if (readResults.length !== plan.reads.length && !stoppedAtFailure) {
    throw new Error(`a node answered ${readResults.length} results for ${plan.reads.length} read statements`);
  }
  const merged: StatementResult[] = [];
  let next = 0;
  for (const answer of plan.answers) {
    if (answer === SKIPPED) {
      continue;
    }
    if (answer !== null) {
      merged.push(answer);
      continue;
    }
    const read = readResults[next++];
    if (read === undefined) {
      break;
    }
    merged.push(read);
    if (stoppedAtFailure && next === readResults.length) {
      break;
    }
  }
  return merged;
}
