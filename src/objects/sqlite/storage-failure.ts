// Which errors are a statement's result, and which are the storage failing underneath it.
//
// A committed entry must give the same results, and leave the same state, on every replica. An error that the
// statement's own SQL and the data decide (a constraint, a missing table, a syntax error, a type mismatch, one of the
// platform's refusals) is such a result, and is recorded like any other. An error of the storage underneath (I/O,
// a full disk, out of memory, a busy or reset object, anything the platform raises without one of those SQLite
// codes) happens on one replica only: recorded as the statement's result, it would make this replica's results and
// state differ from the others'. It stops the apply instead (StorageFailure): the entry's transaction rolls back,
// nothing of it remains, and the node reloads from storage and applies the entry again.

/** SQLite primary result codes that only the statement, the schema and the data decide. */
const STATEMENT_RESULT_CODES: ReadonlySet<string> = new Set([
  "SQLITE_ERROR",
  "SQLITE_CONSTRAINT",
  "SQLITE_MISMATCH",
  "SQLITE_RANGE",
  "SQLITE_TOOBIG",
  "SQLITE_AUTH",
]);

/** The platform reports SQLite errors as "<message>: SQLITE_X" or "<message>: SQLITE_X (extended: SQLITE_X_Y)". */
const SQLITE_CODE_SUFFIX = /: (SQLITE_[A-Z]+)(?: \(extended: SQLITE_[A-Z_]+\))?$/;

/** The platform's own refusals of a statement, before SQLite runs it (pinned by test/sim/platform/sql-fixture.json). */
const PLATFORM_REFUSALS: readonly RegExp[] = [
  /^To execute a transaction, please use the state\.storage\.transaction\(\)/,
  /^SQL code did not contain a statement\.$/,
  /^Wrong number of parameter bindings for SQL query\.$/,
];

/** The storage failed under a statement: not a result of it. Thrown out of apply so that the node stops and reloads. */
export class StorageFailure extends Error {
  constructor(
    what: string,
    override readonly cause: unknown,
  ) {
    super(`the storage failed ${what}: ${cause instanceof Error ? cause.message : String(cause)}`);
    this.name = "StorageFailure";
  }
}

/**
 * Whether an error thrown by running a statement is the statement's own result (the same on every replica):
 * an SQLite error with a code the statement decides, a platform refusal, or a value the platform cannot bind
 * (TypeError). Everything else is the storage's.
 */
export function isStatementResultError(error: unknown): boolean {
  if (error instanceof StorageFailure) {
    return false;
  }
  if (error instanceof TypeError) {
    return true;
  }
  if (!(error instanceof Error)) {
    return false;
  }
  const code = SQLITE_CODE_SUFFIX.exec(error.message)?.[1];
  if (code !== undefined) {
    return STATEMENT_RESULT_CODES.has(code);
  }
  return PLATFORM_REFUSALS.some((refusal) => refusal.test(error.message));
}

/** Returns the error when it is the statement's result; throws a StorageFailure otherwise. */
export function statementResultError(error: unknown, what: string): unknown {
  if (isStatementResultError(error)) {
    return error;
  }
  throw error instanceof StorageFailure ? error : new StorageFailure(what, error);
}
