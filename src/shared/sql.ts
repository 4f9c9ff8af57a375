// SQL request and result shapes shared by the worker (HTTP) and the node (state machine).
// Plain data only: these cross Durable Object RPC and are stored in the Raft log.

/**
 * A value bound to or read from SQLite. BLOBs are bytes. An INTEGER beyond JavaScript's safe range (±(2^53 - 1)) is a
 * bigint, so that it survives exactly; every other number is a number.
 */
export type SqlValue = null | number | bigint | string | Uint8Array;

/** Positional (`?`, `?NNN`) or named (`:name`, `@name`, `$name`) parameters. */
export type SqlParams = readonly SqlValue[] | Readonly<Record<string, SqlValue>>;

export interface Statement {
  readonly sql: string;
  readonly params?: SqlParams;
}

/** One client request: what one log entry carries. */
export interface SqlRequest {
  /** Unique per client request; a retried id is applied once and answered with the first result. */
  readonly id: string;
  readonly statements: readonly Statement[];
  /** All statements or none. Without it each statement runs on its own and an error does not stop the rest. */
  readonly transaction: boolean;
  /**
   * Set by the leader's prepareWrite: a digest of the request as the client sent it (before non-deterministic values
   * are fixed), so that a request id reused for a different request is refused, not answered with the first's results.
   */
  readonly fingerprint?: string;
  /**
   * Set by the leader's prepareWrite when a statement sets PRAGMA defer_foreign_keys (every load does). A node of an
   * earlier version refuses to decode such an entry and stops applying until it is upgraded, rather than refuse the
   * pragma and roll the request back where newer replicas apply it: the replicas would diverge.
   */
  readonly defersForeignKeys?: true;
}

/**
 * The id a write is proposed under: the caller's namespace (a token's digest prefix, or "rpc"), a colon, then the
 * client's Idempotency-Key or a generated id. Two callers' keys can never meet; the namespace has no colon, so the
 * key (which may hold colons) is everything after the first one.
 */
export function namespacedRequestId(namespace: string, key: string): string {
  if (namespace.length === 0 || namespace.includes(":")) {
    throw new Error(`a request id namespace must be non-empty and hold no colon, got ${JSON.stringify(namespace)}`);
  }
  return `${namespace}:${key}`;
}

/** What the client sent of a request id (its key, without the caller's namespace): the part its messages may show. */
export function clientPartOfRequestId(id: string): string {
  const colon = id.indexOf(":");
  return colon === -1 ? id : id.slice(colon + 1);
}

/** The result of one statement, in rqlite's vocabulary (the worker renders the exact wire shape). */
export interface StatementResult {
  readonly columns?: readonly string[];
  readonly types?: readonly string[];
  readonly rows?: readonly (readonly SqlValue[])[];
  /** A bigint when the rowid is beyond JavaScript's safe integer range. */
  readonly lastInsertId?: number | bigint;
  readonly rowsAffected?: number;
  readonly error?: string;
  /** Seconds spent on this statement. */
  readonly time?: number;
}

/** Read consistency levels, as rqlite names them. */
export type ReadLevel = "none" | "weak" | "linearizable" | "strong" | "auto";
