// Bounds on SQL text and requests, in one place: the platform's limits on one statement, which the node checks on
// every statement it proposes or runs (as given and as rewritten), and the worker's bounds on one request, which
// refuse it with 413 naming the limit before any node sees it. The worker's defaults stay within the platform's.

/** The platform's limits on one statement (Durable Object SQL) and the node's own bound on one request. */
export const SQL_LIMITS = {
  /** The platform: 100 KB per SQL statement. Checked on the statement as given and as rewritten. */
  maxStatementBytes: 100_000,
  /** The platform: 100 bound parameters per statement. */
  maxBoundParameters: 100,
  /** The platform: 2 MB per string, BLOB or row. */
  maxValueBytes: 2_000_000,
  /** Our bound on statements in one request (one log entry), whichever route proposed it (/db/load included). */
  maxStatementsPerRequest: 100_000,
} as const;

/** What one HTTP request may carry. Refusals name the limit, so a client knows what to change. */
export interface RequestLimits {
  /** Body of /db/execute, /db/query and /db/request. */
  readonly maxBodyBytes: number;
  readonly maxStatements: number;
  /** At most the platform's bound parameters per statement. */
  readonly maxParamsPerStatement: number;
  /** At most the platform's statement length. */
  readonly maxSqlBytes: number;
  /** Body of /db/load (a SQL dump, applied as one log entry). */
  readonly maxLoadBodyBytes: number;
  /** At most the node's statements per request: a dump is one log entry. */
  readonly maxLoadStatements: number;
  /** Body of the cluster admin routes (small JSON objects). */
  readonly maxAdminBodyBytes: number;
  /** The SQL dump a backup (GET /db/backup?fmt=sql) may hold; the node caps it at MAX_BACKUP_DUMP_BYTES. */
  readonly maxBackupDumpBytes: number;
}

/**
 * The largest SQL dump a node builds for a backup. The dump is built in the node's memory (a Durable Object has
 * 128 MB), its lines first and then joined, so for a moment it takes twice its size.
 */
export const MAX_BACKUP_DUMP_BYTES = 48 * 1024 * 1024;

export const DEFAULT_LIMITS: RequestLimits = {
  maxBodyBytes: 1024 * 1024,
  maxStatements: 1000,
  maxParamsPerStatement: SQL_LIMITS.maxBoundParameters,
  maxSqlBytes: SQL_LIMITS.maxStatementBytes,
  maxLoadBodyBytes: 4 * 1024 * 1024,
  maxLoadStatements: 50_000,
  maxAdminBodyBytes: 16 * 1024,
  maxBackupDumpBytes: MAX_BACKUP_DUMP_BYTES,
};

/**
 * Bound parameters one request may carry, all statements together. Each parameter costs the nodes work on every
 * statement (checked, rewritten, parsed by SQLite): 1,000 statements of 100 integers took the leader seconds, long
 * enough to lose its leadership. At this bound a request stays within a few hundred milliseconds of node CPU.
 */
export const MAX_PARAMS_PER_REQUEST = 10_000;
