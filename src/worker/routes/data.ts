// rqlite's data API: /db/execute, /db/query, /db/request, /db/backup, /db/load.
import { Hono, type Context } from "hono";
import { DumpError, DumpTooLargeError, parseDump, type ExecuteValue, type QueryValue } from "../../objects/api";
import { namespacedRequestId, type Statement, type StatementResult } from "../../shared/sql";
import {
  backupBody,
  backupDumpLimit,
  backupFormatOf,
  backupTooLarge,
  dumpOfUploadedFile,
} from "../data/backup-formats";
import {
  encodeDataResponse,
  renderExecuteResult,
  renderQueryResult,
  renderRequestResult,
  type RenderOptions,
} from "../data/render";
import {
  backupFromLeader,
  concreteLevel,
  executeStatements,
  isFreshnessBound,
  nodePreference,
  queryStatements,
  requestNeedsLog,
} from "../data/service";
import { isSqliteFile } from "../data/sqlite-file";
import { leadingKeyword } from "../../shared/sql-text/classify";
import { checkStatements, inRequestNumbering, parseStatementsBody, withoutEmptyStatements } from "../data/statements";
import { ApiError, badRequest, ERROR_CODE_HEADER } from "../http/errors";
import {
  deadlineFor,
  IDEMPOTENCY_HEADER,
  idempotencyKeyOf,
  minRaftIndexOf,
  NODE_HEADER,
  parseQueryParams,
  RAFT_INDEX_HEADER,
  REQUEST_ID_HEADER,
  type QueryParams,
} from "../http/params";
import { errorBody, failureError, jsonResponse } from "../http/respond";
import type { WireValue } from "../http/wire-json";
import { assertRoles, authenticate, requireRole } from "../middleware/auth";
import { limitBody } from "../middleware/body-limit";
import type { RouteFailure, RouteOutcome } from "../routing/router";
import { resolveLimits, type AppOptions, type Runtime } from "../runtime";
import type { AppBindings } from "../types";
import { newRequestId } from "../data/request-ids";
import { mergeQueryResults, planQuery, type QueryPlan } from "../data/query-writes";

type Render = (result: StatementResult, options: RenderOptions) => WireValue;

export function dataRoutes(options: AppOptions): Hono<AppBindings> {
  const limits = resolveLimits(options);
  const app = new Hono<AppBindings>();
  const limitDataBody = limitBody(limits.maxBodyBytes, "rqlite");

  app.post("/db/execute", requireRole("write"), limitDataBody, async (c) => {
    const { runtime, params } = prepare(c);
    const deadlineAt = deadlineFor(params, c.var.startedAt, runtime.policy, "rqlite");
    const statements = parseStatementsBody(await c.req.text(), c.req.header("content-type"), runtime.limits);
    return executeAndRespond(c, runtime, params, statements, deadlineAt, renderExecuteResult);
  });

  app.on(["GET", "POST"], "/db/query", requireRole("read"), limitDataBody, async (c) => {
    const { runtime, params } = prepare(c);
    const statements = await queryStatementsOf(c, params, runtime);
    return queryAndRespond(c, runtime, params, planQuery(statements), renderQueryResult);
  });

  app.post("/db/request", requireRole("read"), limitDataBody, async (c) => {
    const { runtime, params } = prepare(c);
    const statements = parseStatementsBody(await c.req.text(), c.req.header("content-type"), runtime.limits);
    // Both headers are documented for /db/request: a bad one is refused whichever path the statements take.
    if (requestNeedsLog(withoutEmptyStatements(statements).statements)) {
      assertRoles(await authenticate(c), ["write"]);
      minRaftIndexOf(params, c.req.header(RAFT_INDEX_HEADER), "rqlite");
      const deadlineAt = deadlineFor(params, c.var.startedAt, runtime.policy, "rqlite");
      return executeAndRespond(c, runtime, params, statements, deadlineAt, renderRequestResult);
    }
    idempotencyKeyOf(c.req.header(IDEMPOTENCY_HEADER), "rqlite");
    return queryAndRespond(c, runtime, params, planQuery(statements, { writesRead: true }), renderRequestResult);
  });

  app.get("/db/backup", requireRole("read"), async (c) => {
    const { runtime, params } = prepare(c, "plain");
    const format = backupFormatOf(params);
    const deadlineAt = deadlineFor(params, c.var.startedAt, runtime.policy, "plain");
    const maxDumpBytes = backupDumpLimit(format, runtime.limits);
    const outcome = await backupFromLeader(runtime, { deadlineAt, maxDumpBytes });
    if (!outcome.ok) {
      throw outcome.code === "TOO_LARGE" ? backupTooLarge(outcome.message, format) : failureError(outcome, "plain");
    }
    const backup = await backupBody(outcome.value, { format, compress: params.has("compress") });
    return new Response(backup.body, {
      status: 200,
      headers: {
        "Content-Type": backup.contentType,
        [NODE_HEADER]: outcome.node,
        [RAFT_INDEX_HEADER]: String(outcome.value.raftIndex),
      },
    });
  });

  app.post("/db/load", requireRole("write"), limitBody(limits.maxLoadBodyBytes, "rqlite"), async (c) => {
    const { runtime, params } = prepare(c);
    const deadlineAt = deadlineFor(params, c.var.startedAt, runtime.policy, "rqlite");
    const body = new Uint8Array(await c.req.arrayBuffer());
    // A SQLite database file (recognised by its header, as rqlite does) is loaded as the SQL dump of its contents.
    const dump = isSqliteFile(body) ? await dumpOfUploadedFile(body, runtime.limits) : dumpText(body);
    const statements = dumpStatements(dump, runtime);
    // The dump is applied as one transaction: all of it or nothing.
    return executeAndRespond(c, runtime, params, statements, deadlineAt, renderExecuteResult, {
      transaction: true,
      what: "the load",
    });
  });

  return app;
}

function prepare(
  c: Context<AppBindings>,
  shape: "rqlite" | "plain" = "rqlite",
): { runtime: Runtime; params: QueryParams } {
  return { runtime: c.var.runtime(), params: parseQueryParams(new URL(c.req.url), shape, c.var.querySchema) };
}

async function queryStatementsOf(c: Context<AppBindings>, params: QueryParams, runtime: Runtime): Promise<Statement[]> {
  // HEAD is a GET without the body (Hono routes it to the GET handler): it reads ?q=, not a request body.
  if (c.req.method === "GET" || c.req.method === "HEAD") {
    // rqlite 8.26.8 answers a GET without q 200 {"results":[]}, and refuses an empty q (400).
    if (params.q === undefined) {
      return [];
    }
    if (params.q.trim() === "") {
      throw badRequest("the query parameter q is empty: GET /db/query?q=SELECT...", "rqlite");
    }
    return checkStatements([{ sql: params.q }], runtime.limits);
  }
  return parseStatementsBody(await c.req.text(), c.req.header("content-type"), runtime.limits);
}

async function executeAndRespond(
  c: Context<AppBindings>,
  runtime: Runtime,
  params: QueryParams,
  statements: Statement[],
  deadlineAt: number,
  render: Render,
  overrides: { transaction?: boolean; what?: string } = {},
): Promise<Response> {
  const principal = await authenticate(c);
  const clientKey = idempotencyKeyOf(c.req.header(IDEMPOTENCY_HEADER), "rqlite");
  const visibleId = clientKey ?? newRequestId();
  assertTimeLeft(c, runtime, { deadlineAt, what: overrides.what ?? "the request", write: true });
  const sent = withoutEmptyStatements(statements);
  if (sent.statements.length === 0) {
    // Every statement is empty: rqlite answers no result for each, and no node has anything to run.
    return respondWith(c, runtime, { results: [] }, params, render, { headers: { [REQUEST_ID_HEADER]: visibleId } });
  }
  const outcome = await executeStatements(runtime, {
    statements: sent.statements,
    transaction: overrides.transaction ?? params.has("transaction"),
    // Namespaced by the caller, so that two tokens' idempotency keys can never collide.
    requestId: namespacedRequestId(principal.id, visibleId),
    deadlineAt,
  });
  return respond(c, runtime, outcome.ok ? outcome : renumbered(outcome, sent.requestIndexes), params, render, {
    [REQUEST_ID_HEADER]: visibleId,
  });
}

/** A failure whose message names a statement the way the client numbered it (inRequestNumbering). */
function renumbered(failure: RouteFailure, requestIndexes: readonly number[]): RouteFailure {
  return { ...failure, message: inRequestNumbering(failure.message, requestIndexes) };
}

async function queryAndRespond(
  c: Context<AppBindings>,
  runtime: Runtime,
  params: QueryParams,
  plan: QueryPlan,
  render: Render,
): Promise<Response> {
  const minRaftIndex = minRaftIndexOf(params, c.req.header(RAFT_INDEX_HEADER), "rqlite");
  const level = concreteLevel({ level: params.level, freshnessMs: params.freshnessMs, minRaftIndex });
  const deadlineAt = deadlineFor(params, c.var.startedAt, runtime.policy, "rqlite", {
    linearizable: level === "linearizable",
  });
  assertTimeLeft(c, runtime, { deadlineAt, what: "the request", write: false });
  if (plan.reads.length === 0) {
    // Every statement would write: each answers rqlite's error, and no node has anything to read.
    return respondWith(c, runtime, { results: mergeQueryResults(plan, [], { transaction: false }) }, params, render);
  }
  const outcome = await queryStatements(runtime, {
    statements: plan.reads,
    ...(params.level === undefined ? {} : { level: params.level }),
    ...(params.freshnessMs === undefined ? {} : { freshnessMs: params.freshnessMs }),
    ...(minRaftIndex === undefined ? {} : { minRaftIndex }),
    transaction: params.has("transaction"),
    deadlineAt,
    preference: nodePreference(runtime, continentOf(c)),
  });
  if (
    !outcome.ok &&
    outcome.code === "STALE" &&
    isFreshnessBound({ level: params.level, freshnessMs: params.freshnessMs, minRaftIndex })
  ) {
    return staleRead(outcome.node);
  }
  if (!outcome.ok) {
    throw failureError(renumbered(outcome, plan.readIndexes), "rqlite");
  }
  const results = mergeQueryResults(plan, outcome.value.results, { transaction: params.has("transaction") });
  const value = { results, raftIndex: outcome.value.raftIndex };
  return respondWith(c, runtime, value, params, render, { node: outcome.node });
}

/**
 * rqlite's answer to a read no node could serve within its freshness: HTTP 200 and exactly "stale read" (rqlite
 * http/service.go puts the store's error in the body), which clients such as rqdb match to fall back to level weak.
 * X-DHA-Error-Code says it too, for clients that read headers.
 */
function staleRead(node: string | undefined): Response {
  return jsonResponse(200, errorBody("stale read", "rqlite"), {
    [ERROR_CODE_HEADER]: "STALE",
    ...(node === undefined ? {} : { [NODE_HEADER]: node }),
  });
}

/**
 * The deadline runs from the request's arrival (c.var.startedAt), so reading and parsing the body spend it too: a
 * large load can use it all up before any node is asked. Say so, rather than let the router report a deadline that
 * passed after no call.
 */
function assertTimeLeft(
  c: Context<AppBindings>,
  runtime: Runtime,
  request: { readonly deadlineAt: number; readonly what: string; readonly write: boolean },
): void {
  const now = runtime.now();
  if (now < request.deadlineAt) {
    return;
  }
  const budgetMs = Math.round(request.deadlineAt - c.var.startedAt);
  const spentMs = Math.round(now - c.var.startedAt);
  throw new ApiError(
    503,
    `the deadline (${budgetMs} ms) passed while the worker read and parsed ${request.what} (${spentMs} ms); ` +
      `nothing was sent${request.write ? ", nothing applied" : ""}: send it again with a longer timeout`,
    { shape: "rqlite", code: "DEADLINE", retryAfterSeconds: 1 },
  );
}

function respond(
  c: Context<AppBindings>,
  runtime: Runtime,
  outcome: RouteOutcome<ExecuteValue | QueryValue>,
  params: QueryParams,
  render: Render,
  extraHeaders: Readonly<Record<string, string>> = {},
): Response {
  if (!outcome.ok) {
    throw failureError(outcome, "rqlite", extraHeaders);
  }
  return respondWith(c, runtime, outcome.value, params, render, { node: outcome.node, headers: extraHeaders });
}

/**
 * The 200 of a data route. `node` and the raft index are absent only when no node was asked (a /db/query whose
 * every statement would write): then the body carries no raft_index, and neither header is sent.
 */
function respondWith(
  c: Context<AppBindings>,
  runtime: Runtime,
  value: { readonly results: readonly StatementResult[]; readonly raftIndex?: number },
  params: QueryParams,
  render: Render,
  served: { readonly node?: string; readonly headers?: Readonly<Record<string, string>> } = {},
): Response {
  const options: RenderOptions = {
    associative: params.has("associative"),
    blobArray: params.has("blob_array"),
    timings: params.has("timings"),
  };
  const raftIndex = value.raftIndex;
  const body = encodeDataResponse(
    {
      results: value.results.map((result) => render(result, options)),
      ...(options.timings ? { timeSeconds: (runtime.now() - c.var.startedAt) / 1000 } : {}),
      ...(params.has("raft_index") && raftIndex !== undefined ? { raftIndex } : {}),
    },
    params.has("pretty"),
  );
  return jsonResponse(200, body, {
    ...served.headers,
    ...(served.node === undefined ? {} : { [NODE_HEADER]: served.node }),
    ...(raftIndex === undefined ? {} : { [RAFT_INDEX_HEADER]: String(raftIndex) }),
  });
}

function dumpText(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw badRequest("the dump is not valid UTF-8 text", "rqlite");
  }
}

function dumpStatements(text: string, runtime: Runtime): Statement[] {
  // The nodes' own dump parser: it reads what their backups write (and sqlite3 .dump), drops the framing
  // (BEGIN/COMMIT, PRAGMA foreign_keys) and binds long literals as parameters so that big rows fit a statement.
  let statements: Statement[];
  try {
    // Counted while splitting: a dump past the limit is refused before its statements are all built.
    statements = parseDump(text, { maxStatements: runtime.limits.maxLoadStatements });
  } catch (error) {
    if (error instanceof DumpTooLargeError) {
      throw new ApiError(413, error.message, { shape: "rqlite", code: "LIMIT" });
    }
    if (error instanceof DumpError) {
      throw badRequest(error.message, "rqlite");
    }
    throw error;
  }
  const rollback = statements.findIndex((statement) => leadingKeyword(statement.sql) === "ROLLBACK");
  if (rollback !== -1) {
    // sqlite3 .dump ends with ROLLBACK when it hit errors: the dump is incomplete and must not be applied.
    throw badRequest(
      `statement ${rollback + 1} of the dump is ROLLBACK: it was written after errors; refusing to load it`,
      "rqlite",
    );
  }
  if (statements.length === 0) {
    throw badRequest("the dump holds no statements", "rqlite");
  }
  const limits = runtime.limits;
  if (statements.length > limits.maxLoadStatements) {
    throw new ApiError(
      413,
      `the dump holds ${statements.length} statements; at most ${limits.maxLoadStatements} may be loaded at once`,
      {
        shape: "rqlite",
        code: "LIMIT",
      },
    );
  }
  return checkStatements(statements, { ...limits, maxStatements: limits.maxLoadStatements });
}

function continentOf(c: Context<AppBindings>): string | undefined {
  const cf = (c.req.raw as Request & { cf?: { continent?: unknown } }).cf;
  return typeof cf?.continent === "string" ? cf.continent : undefined;
}
