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
  /** Per statement of the request: its answer when the worker gives it (a write), else null (a read). */
  readonly answers: readonly (StatementResult | null)[];
}

/** Splits a /db/query request into the reads the nodes run and the writes answered with rqlite's error. */
export function planQuery(statements: readonly Statement[]): QueryPlan {
  const answers = statements.map((statement): StatementResult | null =>
    isWriteOnQueryPath(statement.sql) ? { error: READ_ONLY_VIOLATION } : null,
  );
  return { reads: statements.filter((_, i) => answers[i] === null), answers };
}

/** The request's results in its own order: the nodes' results for the reads, the worker's answer for the writes. */
export function mergeQueryResults(plan: QueryPlan, readResults: readonly StatementResult[]): StatementResult[] {
  if (readResults.length !== plan.reads.length) {
    throw new Error(`a node answered ${readResults.length} results for ${plan.reads.length} read statements`);
  }
  let next = 0;
  return plan.answers.map((answer) => answer ?? (readResults[next++] as StatementResult));
}
