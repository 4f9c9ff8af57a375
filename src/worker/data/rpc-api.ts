// The data API for other Workers (through a service binding): typed inputs and results instead of HTTP and JSON.
// Same validation, limits, routing and retries as the HTTP routes.
import {
  namespacedRequestId,
  type ReadLevel,
  type SqlValue,
  type Statement,
  type StatementResult,
} from "../../shared/sql";
import { gatherCluster } from "../cluster/gather";
import { summarizeHealth, type ClusterHealth } from "../cluster/health";
import { ApiError } from "../http/errors";
import { READ_LEVELS } from "../http/params";
import type { RouteOutcome } from "../routing/router";
import type { Runtime } from "../runtime";
import { executeStatements, queryStatements } from "./service";
import { checkStatements, inRequestNumbering, withoutEmptyStatements, type SentStatements } from "./statements";
import { newRequestId } from "./request-ids";

/** A statement as SQL text, or SQL with positional or named parameters (BLOBs as Uint8Array). */
export type StatementInput = string | Statement;

export interface RpcExecuteOptions {
  /** All statements or none. */
  readonly transaction?: boolean;
  /** Deadline in milliseconds (default 10 s, at most 60 s). */
  readonly timeoutMs?: number;
  /** Resending the same key (from the same caller) applies the write at most once. */
  readonly idempotencyKey?: string;
}

export interface RpcQueryOptions {
  /** Default "weak" (the leader reads locally). */
  readonly level?: ReadLevel;
  /** Level "none": refuse when the serving node last heard from the leader longer ago than this. */
  readonly freshnessMs?: number;
  /** Read-your-writes: the raftIndex a write returned; any node that has applied it may serve. */
  readonly minRaftIndex?: number;
  readonly transaction?: boolean;
  readonly timeoutMs?: number;
}

export type RpcResult =
  | {
      readonly ok: true;
      /** The node that served the request. */
      readonly node: string;
      readonly results: readonly StatementResult[];
      /** The log index of the write, or the applied index the read saw. */
      readonly raftIndex: number;
    }
  | {
      readonly ok: false;
      /** The HTTP status the same failure gets on the HTTP API. */
      readonly status: number;
      readonly code: string;
      readonly error: string;
      readonly retryAfterSeconds?: number;
      /** A write may or may not have been applied (resend with the same idempotencyKey). */
      readonly outcomeUnknown: boolean;
    };

/** Callers through a service binding are other Workers of the same account; they share one idempotency namespace. */
const RPC_PRINCIPAL = "rpc";
const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

export async function rpcExecute(
  runtime: Runtime,
  statements: unknown,
  options: RpcExecuteOptions = {},
): Promise<RpcResult> {
  return guarded(async () => {
    const sent = normalizeStatements(runtime, statements);
    const key = options.idempotencyKey;
    if (key !== undefined && !IDEMPOTENCY_KEY.test(key)) {
      throw invalid("idempotencyKey must be 1-128 characters from A-Z a-z 0-9 . _ : -");
    }
    const outcome = await executeStatements(runtime, {
      statements: sent.statements,
      transaction: options.transaction === true,
      requestId: namespacedRequestId(RPC_PRINCIPAL, key ?? newRequestId()),
      deadlineAt: deadline(runtime, options.timeoutMs),
    });
    return toResult(outcome, sent);
  });
}

export async function rpcQuery(
  runtime: Runtime,
  statements: unknown,
  options: RpcQueryOptions = {},
): Promise<RpcResult> {
  return guarded(async () => {
    const sent = normalizeStatements(runtime, statements);
    if (options.level !== undefined && !(READ_LEVELS as readonly string[]).includes(options.level)) {
      throw invalid(`level ${JSON.stringify(options.level)} is unknown: use none, weak, linearizable, strong or auto`);
    }
    if (options.freshnessMs !== undefined && !(Number.isFinite(options.freshnessMs) && options.freshnessMs >= 0)) {
      throw invalid("freshnessMs must be a non-negative number of milliseconds");
    }
    if (
      options.minRaftIndex !== undefined &&
      !(Number.isSafeInteger(options.minRaftIndex) && options.minRaftIndex >= 0)
    ) {
      throw invalid("minRaftIndex must be a log index (a non-negative whole number)");
    }
    const outcome = await queryStatements(runtime, {
      statements: sent.statements,
      ...(options.level === undefined ? {} : { level: options.level }),
      ...(options.freshnessMs === undefined ? {} : { freshnessMs: options.freshnessMs }),
      ...(options.minRaftIndex === undefined ? {} : { minRaftIndex: options.minRaftIndex }),
      transaction: options.transaction === true,
      deadlineAt: deadline(runtime, options.timeoutMs),
    });
    return toResult(outcome, sent);
  });
}

export async function rpcHealth(runtime: Runtime): Promise<ClusterHealth> {
  return summarizeHealth(await gatherCluster(runtime.router, runtime.policy.statusTimeoutMs));
}

function deadline(runtime: Runtime, timeoutMs: number | undefined): number {
  const budget = timeoutMs ?? runtime.policy.defaultTimeoutMs;
  if (!Number.isFinite(budget) || budget <= 0 || budget > runtime.policy.maxTimeoutMs) {
    throw invalid(`timeoutMs must be between 0 and ${runtime.policy.maxTimeoutMs}`);
  }
  return runtime.now() + budget;
}

function normalizeStatements(runtime: Runtime, input: unknown): SentStatements {
  if (!Array.isArray(input) || input.length === 0) {
    throw invalid("statements must be a non-empty array of SQL strings or {sql, params} objects");
  }
  if (input.length > runtime.limits.maxStatements) {
    throw new ApiError(
      413,
      `${input.length} statements; at most ${runtime.limits.maxStatements} are allowed per request`,
    );
  }
  const statements = input.map((item: unknown, index): Statement => {
    if (typeof item === "string") {
      return { sql: item };
    }
    const candidate = item as { sql?: unknown; params?: unknown } | null;
    if (typeof candidate !== "object" || candidate === null || typeof candidate.sql !== "string") {
      throw invalid(`statement ${index + 1}: expected a SQL string or {sql, params}`);
    }
    if (candidate.params === undefined) {
      return { sql: candidate.sql };
    }
    return { sql: candidate.sql, params: normalizeParams(candidate.params, index + 1) };
  });
  // Empty statements ("") are skipped, as on the HTTP routes; a result always names a node, so not all of them.
  const sent = withoutEmptyStatements(checkStatements(statements, runtime.limits));
  if (sent.statements.length === 0) {
    throw invalid('every statement is empty (""): there is nothing to run');
  }
  return sent;
}

function normalizeParams(params: unknown, position: number): Statement["params"] {
  if (Array.isArray(params)) {
    return params.map((value, i) => sqlValue(value, position, `parameter ${i + 1}`));
  }
  if (typeof params === "object" && params !== null) {
    return Object.fromEntries(
      Object.entries(params as Record<string, unknown>).map(([name, value]) => [
        name,
        sqlValue(value, position, `parameter "${name}"`),
      ]),
    );
  }
  throw invalid(`statement ${position}: params must be an array or an object`);
}

const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

function sqlValue(value: unknown, position: number, what: string): SqlValue {
  if (value === null || typeof value === "string" || value instanceof Uint8Array) {
    return value;
  }
  if (typeof value === "number" && Number.isFinite(value)) {
    return value;
  }
  if (typeof value === "bigint") {
    // Bound exactly, as a JSON integer beyond 2^53 is on the HTTP routes (the node writes it into the SQL as a literal).
    if (value < MIN_INT64 || value > MAX_INT64) {
      throw invalid(
        `statement ${position}, ${what}: the integer ${value} is outside SQLite's 64-bit range (${MIN_INT64} to ${MAX_INT64})`,
      );
    }
    return value;
  }
  if (typeof value === "boolean") {
    return value ? 1 : 0;
  }
  throw invalid(
    `statement ${position}, ${what}: unsupported type (use null, a finite number, a bigint, a string or a Uint8Array)`,
  );
}

/** The answer; a failure names a statement as the caller numbered it (`sent`: the empty ones were not sent). */
function toResult(
  outcome: RouteOutcome<{ readonly results: readonly StatementResult[]; readonly raftIndex: number }>,
  sent: SentStatements,
): RpcResult {
  if (outcome.ok) {
    return { ok: true, node: outcome.node, results: outcome.value.results, raftIndex: outcome.value.raftIndex };
  }
  return {
    ok: false,
    status: outcome.status,
    code: outcome.code,
    error: inRequestNumbering(outcome.message, sent.requestIndexes),
    outcomeUnknown: outcome.outcomeUnknown,
    ...(outcome.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: outcome.retryAfterSeconds }),
  };
}

async function guarded(run: () => Promise<RpcResult>): Promise<RpcResult> {
  try {
    return await run();
  } catch (error) {
    if (error instanceof ApiError) {
      return {
        ok: false,
        status: error.status,
        code: error.options.code ?? "BAD_REQUEST",
        error: error.message,
        outcomeUnknown: false,
      };
    }
    throw error;
  }
}

function invalid(message: string): ApiError {
  return new ApiError(400, message, { code: "BAD_REQUEST" });
}
