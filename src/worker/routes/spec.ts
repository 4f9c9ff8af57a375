// Every route of the API, declared once: method, path, who may call it, the query schema the route validates with
// (app.ts hands it to the handler), the body and header schemas the handlers read with, and every status it can
// answer. /openapi.json is generated from these declarations (routes/openapi.ts), and a test checks that every
// route the app serves is declared here and the other way round.
import { createRoute, z, type RouteConfig } from "@hono/zod-openapi";
import type { Role } from "../middleware/auth";
import { queryOf } from "../http/params";
import {
  clusterSchema,
  errorSchema,
  eventsQuerySchema,
  eventsResponseSchema,
  executeResponseSchema,
  healthSchema,
  idempotencyHeaderSchema,
  leaderBodySchema,
  leaderEntrySchema,
  leadershipSchema,
  memberBodySchema,
  memberNameParamsSchema,
  membershipSchema,
  nodesResponseSchema,
  queryResponseSchema,
  repairSchema,
  raftIndexHeaderSchema,
  requestErrorSchema,
  requestResponseSchema,
  statementsSchema,
  statusResponseSchema,
  transferBodySchema,
} from "../http/schemas";
import {
  createDatabaseBodySchema,
  databaseEntrySchema,
  databaseListSchema,
  databaseParamsSchema,
  databasePathSchema,
  MAX_ADDED_NODES,
} from "../databases/schemas";

/** Who may call a route: anyone, or a token holding any one of the roles. */
export type Access = "public" | { readonly anyRole: readonly Role[] };

export interface ApiRoute {
  readonly route: RouteConfig;
  readonly access: Access;
  /**
   * Where the route lives: undefined for a route of the default database (wrangler.toml's, at the root), which is
   * also served for every database under /databases/{database}/ ("prefixed", generated below); "deployment" for
   * the routes of the whole deployment (/livez, /openapi.json, /api/v1/databases).
   */
  readonly scope?: "deployment" | "prefixed";
}

type Responses = RouteConfig["responses"];

const JSON_TYPE = "application/json";
const TEXT_TYPE = "text/plain";

const json = (schema: z.ZodType, description: string, headers?: Record<string, z.ZodType>) => ({
  description,
  ...(headers === undefined ? {} : { headers: z.object(headers) }),
  content: { [JSON_TYPE]: { schema } },
});

const error = (description: string, headers?: Record<string, z.ZodType>) => json(errorSchema, description, headers);
const requestError = (description: string, headers?: Record<string, z.ZodType>) =>
  json(requestErrorSchema, description, headers);

const retryAfter = {
  "Retry-After": z
    .string()
    .regex(/^[0-9]+$/)
    .openapi({ description: "Seconds before a retry has a fair chance" }),
};
const dataHeaders = {
  "X-DHA-Node": z.string().openapi({ description: "The node that served the request" }),
  "X-DHA-Raft-Index": z
    .string()
    .regex(/^[0-9]+$/)
    .openapi({ description: "Log index of the write, or the applied index the read saw" }),
};
/**
 * Reads: a read no node could serve within its freshness answers 200 "stale read" with no raft index, and a
 * /db/query whose every statement would write is answered without asking a node (neither header).
 */
const readHeaders = {
  "X-DHA-Node": dataHeaders["X-DHA-Node"].optional(),
  "X-DHA-Raft-Index": dataHeaders["X-DHA-Raft-Index"].optional(),
  "X-DHA-Error-Code": z.literal("STALE").optional().openapi({
    description: 'With the body {"results":[],"error":"stale read"}: no node could serve the read within freshness',
  }),
};
const requestIdDescription = "The id the write was proposed under: resend it as Idempotency-Key to retry safely";
const writeHeaders = { ...dataHeaders, "X-DHA-Request-Id": z.string().openapi({ description: requestIdDescription }) };
/** /db/request: a request id only when the statements went through the log. */
const mixedHeaders = {
  ...readHeaders,
  "X-DHA-Request-Id": z
    .string()
    .optional()
    .openapi({ description: `${requestIdDescription} (only when a statement may write)` }),
};

/** Every route: a URL over the platform's 16 KiB limit. */
const urlTooLong = (shape: "plain" | "rqlite"): Responses => ({
  414: (shape === "rqlite" ? requestError : error)(
    "The URL is longer than 16 KiB: send long statements with POST /db/query and a JSON body",
  ),
});

/** Every protected route. */
const guarded = (shape: "plain" | "rqlite"): Responses => ({
  401: error("Missing or invalid credentials (WWW-Authenticate names Bearer and Basic)", {
    "WWW-Authenticate": z.string(),
  }),
  403: error("The token lacks the role the route needs"),
  ...urlTooLong(shape),
  500: (shape === "rqlite" ? requestError : error)(
    "The deployment is misconfigured (DHA_TOKENS or the cluster variables; the error names the setting), or a node failed internally",
  ),
});

/** Data routes: refusals before the log, limits, no leader, and outcomes left unknown by a deadline. */
const dataFailures: Responses = {
  400: requestError("Unparseable request, bad parameter, or a statement refused before the log: nothing was applied"),
  413: requestError("Body, statement count, statement length or parameter count over the limit: nothing was applied"),
  503: requestError(
    "No leader (an election did not end in time), no node reachable, a node overloaded, or the request's own deadline (timeout, db_timeout; it runs from the request's arrival, so reading and parsing the body spend it too) passed before a node answered: nothing was applied",
    retryAfter,
  ),
  504: requestError(
    "The deadline passed: a write's outcome is unknown (resend with Idempotency-Key set to X-DHA-Request-Id); a read was not served",
  ),
  ...guarded("rqlite"),
};

/** Routes that take an Idempotency-Key: the data failures, and a key reused for another request. */
const writeFailures: Responses = {
  ...dataFailures,
  422: requestError(
    "The Idempotency-Key was already used for a different request (other statements or transaction flag): nothing was applied",
  ),
};

/** Admin changes: refused, conflicting with one under way, no leader, or unknown outcome. */
const adminFailures = (extra: Responses): Responses => ({
  400: error("Bad parameter or body, or the leader refused the change"),
  409: error(
    "A leadership transfer or config change was still under way when the deadline passed (asked again until " +
      "then); nothing was applied",
  ),
  503: error("No leader, or no node reachable", retryAfter),
  504: error("The deadline passed: the change may still complete (check GET /api/v1/cluster)"),
  ...extra,
  ...guarded("plain"),
});

/**
 * Membership changes: admin failures, the bound on the nodes a named database records (MEMBER_LIMIT), and the
 * catalog's record of the node not confirmed in time.
 */
const memberFailures = (extra: Responses): Responses =>
  adminFailures({
    409: error(
      "A leadership transfer or config change was still under way when the deadline passed (asked again until " +
        `then); or, on a named database, ${MAX_ADDED_NODES} node names were added at run time already (MEMBER_LIMIT; ` +
        "a removal of a node an earlier version added, which is not among them, is refused too): nothing was applied",
    ),
    503: error(
      "No leader, or no node reachable; or, on a named database, the catalog did not confirm its record of the " +
        "node in time (the change was not sent): nothing was applied",
      retryAfter,
    ),
    ...extra,
  });

/** Leadership transfers: admin failures, with what is refused at once and what a deadline that passed means. */
const transferFailures = (extra: Responses): Responses =>
  adminFailures({
    400: error(
      "Bad parameter or body, or a target that cannot lead: a learner, a voter whose removal is proposed but not " +
        "applied, or no other voter to hand over to",
    ),
    504: error(
      "The target did not take over before the deadline (the message says why the last attempt was given up, and " +
        "how many attempts were made); it may still take over (check GET /api/v1/cluster)",
    ),
    ...extra,
  });

const statementsBody = {
  required: true,
  content: {
    [JSON_TYPE]: { schema: statementsSchema },
    [TEXT_TYPE]: { schema: z.string().regex(/\S/).openapi({ description: "One SQL statement as the whole body" }) },
  },
};

const DATA_FLAGS = ["pretty", "timings", "transaction", "raft_index", "redirect", "timeout", "db_timeout"] as const;
const READ_FIELDS = [
  "associative",
  "blob_array",
  "level",
  "freshness",
  "linearizable_timeout",
  "min_raft_index",
] as const;

const readRole = { anyRole: ["read"] } as const;
const writeRole = { anyRole: ["write"] } as const;
const adminRole = { anyRole: ["admin"] } as const;

const ROOT_ROUTES: readonly ApiRoute[] = [
  {
    access: "public",
    scope: "deployment",
    route: createRoute({
      method: "get",
      path: "/livez",
      summary: "The worker is up",
      security: [],
      responses: {
        200: { description: "ok", content: { [TEXT_TYPE]: { schema: z.literal("ok\n") } } },
        ...urlTooLong("plain"),
      },
    }),
  },
  {
    access: "public",
    scope: "deployment",
    route: createRoute({
      method: "get",
      path: "/openapi.json",
      summary: "This document (OpenAPI 3.1)",
      security: [],
      responses: {
        200: { description: "OpenAPI 3.1", content: { [JSON_TYPE]: { schema: z.record(z.string(), z.unknown()) } } },
        ...urlTooLong("plain"),
      },
    }),
  },
  {
    access: writeRole,
    route: createRoute({
      method: "post",
      path: "/db/execute",
      summary: "Execute statements through the log, on the leader (role write)",
      request: { query: queryOf(...DATA_FLAGS), headers: idempotencyHeaderSchema, body: statementsBody },
      responses: {
        200: json(
          executeResponseSchema,
          "Per-statement results; a failed statement has error, the others still ran unless transaction",
          writeHeaders,
        ),
        ...writeFailures,
      },
    }),
  },
  {
    access: readRole,
    route: createRoute({
      method: "get",
      path: "/db/query",
      summary: "Read with one statement in ?q= (role read)",
      request: { query: queryOf("q", ...DATA_FLAGS, ...READ_FIELDS), headers: raftIndexHeaderSchema },
      responses: { 200: json(queryResponseSchema, "Rows", readHeaders), ...dataFailures },
    }),
  },
  {
    access: readRole,
    route: createRoute({
      method: "post",
      path: "/db/query",
      summary: "Read (role read)",
      request: { query: queryOf(...DATA_FLAGS, ...READ_FIELDS), headers: raftIndexHeaderSchema, body: statementsBody },
      responses: { 200: json(queryResponseSchema, "Rows", readHeaders), ...dataFailures },
    }),
  },
  {
    access: readRole,
    route: createRoute({
      method: "post",
      path: "/db/request",
      summary: "Reads and writes together (role read; write too unless every statement only reads)",
      request: {
        query: queryOf(...DATA_FLAGS, ...READ_FIELDS),
        headers: idempotencyHeaderSchema.extend(raftIndexHeaderSchema.shape),
        body: statementsBody,
      },
      responses: {
        200: json(requestResponseSchema, "Per-statement execute or query results", mixedHeaders),
        ...writeFailures,
      },
    }),
  },
  backupRoute(),
  {
    access: writeRole,
    route: createRoute({
      method: "post",
      path: "/db/load",
      summary: "Apply a SQL dump or a SQLite database file as one transaction (role write)",
      request: {
        query: queryOf(...DATA_FLAGS),
        headers: idempotencyHeaderSchema,
        body: {
          required: true,
          content: {
            [TEXT_TYPE]: { schema: z.string() },
            "application/sql": { schema: z.string() },
            "application/octet-stream": {
              schema: z.string().openapi({ format: "binary", description: "A SQLite database file" }),
            },
          },
        },
      },
      responses: { 200: json(executeResponseSchema, "One result per statement", writeHeaders), ...writeFailures },
    }),
  },
  {
    access: readRole,
    route: createRoute({
      method: "get",
      path: "/status",
      summary: "rqlite-like status of one node (role read)",
      request: { query: queryOf("node", "key", "pretty", "timeout") },
      responses: {
        200: json(
          statusResponseSchema,
          "The status document; with ?key= the sub-document at that path ({} when absent)",
          { "X-DHA-Node": z.string() },
        ),
        400: error("Bad parameter (a malformed node name, a bad timeout)"),
        404: error("?node= names no member of the cluster"),
        503: error("No node answered", retryAfter),
        ...guarded("plain"),
      },
    }),
  },
  {
    access: readRole,
    route: createRoute({
      method: "get",
      path: "/nodes",
      summary: "rqlite nodes: a map keyed by id, or {nodes: [...]} with ver=2 (role read)",
      request: { query: queryOf("ver", "nonvoters", "timeout", "pretty") },
      responses: {
        200: json(nodesResponseSchema, "Nodes (an unreachable one has reachable false and error)"),
        400: error("Bad parameter"),
        ...guarded("plain"),
      },
    }),
  },
  {
    access: readRole,
    route: createRoute({
      method: "get",
      path: "/readyz",
      summary: "Ready: a reachable leader is known and the local node has caught up (role read)",
      request: { query: queryOf("noleader", "sync", "node", "timeout") },
      responses: {
        200: {
          description: "[+]node ok / [+]leader ok / [+]store ok",
          content: { [TEXT_TYPE]: { schema: z.string() } },
        },
        400: error("Bad parameter (a malformed node name, a bad timeout)"),
        404: error("?node= names no member of the cluster"),
        503: {
          description:
            "Not ready (text: the failing line says why), or no configured node answered to tell whether ?node= is a member (JSON)",
          headers: z.object(retryAfter),
          content: { [TEXT_TYPE]: { schema: z.string() }, [JSON_TYPE]: { schema: errorSchema } },
        },
        ...guarded("plain"),
      },
    }),
  },
  {
    access: readRole,
    route: createRoute({
      method: "get",
      path: "/leader",
      summary: "The leader, as a /nodes entry (role read)",
      request: { query: queryOf("timeout", "pretty") },
      responses: {
        200: json(leaderEntrySchema, "Leader", { "X-DHA-Node": z.string() }),
        400: error("Bad parameter"),
        503: error("No leader", retryAfter),
        ...guarded("plain"),
      },
    }),
  },
  {
    access: adminRole,
    route: createRoute({
      method: "post",
      path: "/leader",
      summary: 'Step the leader down; with {"id": name}, to that voter (role admin)',
      request: {
        query: queryOf("timeout", "pretty"),
        body: {
          required: false,
          description: 'Empty, or {"id": name}',
          content: { [JSON_TYPE]: { schema: leaderBodySchema } },
        },
      },
      responses: {
        200: json(leadershipSchema, "The new leader", { "X-DHA-Node": z.string() }),
        ...transferFailures({
          404: error("id names no member of the cluster"),
          413: error("Body over 16 KiB"),
        }),
      },
    }),
  },
  {
    access: readRole,
    route: createRoute({
      method: "get",
      path: "/api/v1/cluster/health",
      summary: "Aggregate health from every node, each within a per-node deadline (role read)",
      request: { query: queryOf("timeout", "pretty") },
      responses: {
        200: json(healthSchema, "A quorum is available"),
        400: error("Bad parameter"),
        503: json(healthSchema, "No quorum", retryAfter),
        ...guarded("plain"),
      },
    }),
  },
  {
    access: readRole,
    route: createRoute({
      method: "get",
      path: "/api/v1/cluster",
      summary: "Members, roles and location hints (role read)",
      request: { query: queryOf("timeout", "pretty") },
      responses: { 200: json(clusterSchema, "Cluster"), 400: error("Bad parameter"), ...guarded("plain") },
    }),
  },
  {
    access: readRole,
    route: createRoute({
      method: "get",
      path: "/api/v1/cluster/events",
      summary:
        "Every node's recent elections, leader changes, breaker and replica transitions, membership changes and snapshots, merged by time (role read)",
      request: { query: eventsQuerySchema },
      responses: {
        200: json(eventsResponseSchema, "Events, newest last; a node that did not answer is listed with its error"),
        400: error("Bad parameter"),
        ...guarded("plain"),
      },
    }),
  },
  {
    access: adminRole,
    route: createRoute({
      method: "post",
      path: "/api/v1/cluster/leader/stepdown",
      summary: "Hand leadership to the most up-to-date voter (role admin)",
      request: { query: queryOf("timeout", "pretty") },
      responses: {
        200: json(leadershipSchema, "The new leader", { "X-DHA-Node": z.string() }),
        ...transferFailures({}),
      },
    }),
  },
  {
    access: adminRole,
    route: createRoute({
      method: "post",
      path: "/api/v1/cluster/leader/transfer",
      summary: "Hand leadership to a named voter (role admin)",
      request: {
        query: queryOf("timeout", "pretty"),
        body: { required: true, content: { [JSON_TYPE]: { schema: transferBodySchema } } },
      },
      responses: {
        200: json(leadershipSchema, "The new leader", { "X-DHA-Node": z.string() }),
        ...transferFailures({ 404: error("to names no member of the cluster"), 413: error("Body over 16 KiB") }),
      },
    }),
  },
  {
    access: adminRole,
    route: createRoute({
      method: "post",
      path: "/api/v1/cluster/members",
      summary: "Add a member; it joins as a learner and is promoted once caught up (role admin)",
      request: {
        query: queryOf("timeout", "pretty"),
        body: { required: true, content: { [JSON_TYPE]: { schema: memberBodySchema } } },
      },
      responses: {
        200: json(membershipSchema, "Membership", { "X-DHA-Node": z.string() }),
        ...memberFailures({ 413: error("Body over 16 KiB") }),
      },
    }),
  },
  {
    access: adminRole,
    route: createRoute({
      method: "delete",
      path: "/api/v1/cluster/members/{name}",
      summary: "Remove a member (the leader hands over first if it is the one) (role admin)",
      request: { params: memberNameParamsSchema, query: queryOf("timeout", "pretty") },
      responses: {
        200: json(membershipSchema, "Membership", { "X-DHA-Node": z.string() }),
        ...memberFailures({ 404: error("name names no member of the cluster") }),
      },
    }),
  },
  {
    access: adminRole,
    route: createRoute({
      method: "post",
      path: "/api/v1/cluster/members/{name}/repair",
      summary:
        "Replace a member's state with the leader's (a snapshot image, installed at once); for a replica the consistency monitor found DIVERGED (role admin)",
      request: { params: memberNameParamsSchema, query: queryOf("timeout", "pretty") },
      responses: {
        200: json(repairSchema, "The member installed the leader's image", { "X-DHA-Node": z.string() }),
        ...adminFailures({
          404: error("name names no member of the cluster"),
          503: error(
            "No leader, or no node reachable; or NOT_REPAIRED: the image did not reach the member (the leader could " +
              "not reach it, or it refused the image): nothing was installed",
            retryAfter,
          ),
          504: error(
            "The member may have installed the image (the answer to its last chunk was lost), or the deadline " +
              "passed while the repair went on: check GET /api/v1/cluster/health",
          ),
        }),
      },
    }),
  },
  {
    access: { anyRole: ["read", "metrics"] },
    route: createRoute({
      method: "get",
      path: "/metrics",
      summary: "The cluster's metrics for Prometheus, gathered from every node on each scrape (role read or metrics)",
      request: { query: queryOf("timeout") },
      responses: {
        200: {
          description: "Prometheus text exposition (or OpenMetrics, by Accept)",
          content: { [TEXT_TYPE]: { schema: z.string() }, "application/openmetrics-text": { schema: z.string() } },
        },
        400: error("Bad parameter"),
        ...guarded("plain"),
      },
    }),
  },
];

/** The databases API: the catalog of the deployment's databases (routes/databases.ts). */
const CATALOG_ROUTES: readonly ApiRoute[] = [
  {
    access: adminRole,
    scope: "deployment",
    route: createRoute({
      method: "get",
      path: "/api/v1/databases",
      summary:
        "The databases of this deployment (those a scoped token may address), with state, leader and size (role admin)",
      request: { query: queryOf("timeout", "pretty") },
      responses: {
        200: json(databaseListSchema, "The catalog"),
        400: error("Bad parameter"),
        503: error("The catalog (the system database) has no leader, or no node is reachable", retryAfter),
        504: error("The deadline passed"),
        ...guarded("plain"),
      },
    }),
  },
  {
    access: adminRole,
    scope: "deployment",
    route: createRoute({
      method: "get",
      path: "/api/v1/databases/{name}",
      summary: "One database: state, generation, options, leader and size (role admin)",
      request: { params: databaseParamsSchema, query: queryOf("timeout", "pretty") },
      responses: {
        200: json(databaseEntrySchema, "The database"),
        400: error("Bad name or parameter"),
        404: error("No database of that name"),
        503: error("The catalog has no leader, or no node is reachable", retryAfter),
        504: error("The deadline passed"),
        ...guarded("plain"),
      },
    }),
  },
  {
    access: adminRole,
    scope: "deployment",
    route: createRoute({
      method: "put",
      path: "/api/v1/databases/{name}",
      summary:
        "Create a database (its own Raft group) and wait until it has a leader; idempotent for the same options (role admin)",
      request: {
        params: databaseParamsSchema,
        query: queryOf("timeout", "pretty"),
        body: { required: false, content: { [JSON_TYPE]: { schema: createDatabaseBodySchema } } },
      },
      responses: {
        200: json(databaseEntrySchema, "It existed with the same options (now ONLINE)"),
        201: json(databaseEntrySchema, "Created (ONLINE)"),
        400: error("Bad name, body or options"),
        409: error(
          "It exists with other options, is being dropped, or the deployment holds DHA_MAX_DATABASES databases already",
        ),
        413: error("Body over 16 KiB"),
        503: error("The catalog or the new database has no leader yet: repeat the PUT to finish", retryAfter),
        504: error("The deadline passed"),
        ...guarded("plain"),
      },
    }),
  },
  {
    access: adminRole,
    scope: "deployment",
    route: createRoute({
      method: "delete",
      path: "/api/v1/databases/{name}",
      summary:
        "Drop a database: refuse new requests, drain those in flight (bounded), wipe every node and leave a tombstone (role admin)",
      request: { params: databaseParamsSchema, query: queryOf("timeout", "pretty") },
      responses: {
        200: json(databaseEntrySchema, "Dropped (DROPPED)"),
        400: error("Bad name or parameter"),
        404: error("No database of that name"),
        503: error(
          "Not every node could be dropped yet (the database refuses requests): repeat the DELETE",
          retryAfter,
        ),
        504: error("The deadline passed"),
        ...guarded("plain"),
      },
    }),
  },
];

/** A route of the default database, served for database {database} under /databases/{database}. */
function perDatabase({ route, access }: ApiRoute): ApiRoute {
  const shape = route.path.startsWith("/db/") ? "rqlite" : "plain";
  const params = route.request?.params as z.ZodObject | undefined;
  const failure = shape === "rqlite" ? requestError : error;
  return {
    access,
    scope: "prefixed",
    route: {
      ...route,
      path: `/databases/{database}${route.path}`,
      request: {
        ...route.request,
        params: params === undefined ? databasePathSchema : databasePathSchema.extend(params.shape),
      },
      responses: {
        ...route.responses,
        400: route.responses[400] ?? failure("Bad database name or parameter"),
        404: failure(`No database of that name${route.responses[404] === undefined ? "" : ", or no such member"}`),
        410: failure("The database was dropped, or is being dropped"),
      },
    },
  };
}

/** Every route: the default database's, the deployment's, and each database's under /databases/{database}. */
export const API_ROUTES: readonly ApiRoute[] = [
  ...ROOT_ROUTES,
  ...CATALOG_ROUTES,
  ...ROOT_ROUTES.filter((route) => route.scope === undefined).map(perDatabase),
];

/** GET /db/backup, on its own: the backup formats are the backup module's (data/backup-formats.ts). */
function backupRoute(): ApiRoute {
  return {
    access: readRole,
    route: createRoute({
      method: "get",
      path: "/db/backup",
      summary: "Backup of the leader's state: a SQLite database file, or with fmt=sql a SQL dump (role read)",
      request: {
        query: queryOf("timeout", "db_timeout").extend({
          fmt: z
            .enum(["binary", "sql"], {
              error: (issue) =>
                `backup format ${JSON.stringify(issue.input)} is unknown: leave fmt out for a SQLite database file, or use fmt=sql`,
            })
            .optional()
            .openapi({ description: "sql: a SQL dump; binary or absent: a SQLite database file" }),
          compress: z
            .string()
            .optional()
            .openapi({ description: "Gzip the backup (a flag)", param: { allowEmptyValue: true } }),
          vacuum: z
            .string()
            .optional()
            .openapi({
              description: "Accepted for SQLite files (a flag; the file is always compact)",
              param: { allowEmptyValue: true },
            }),
        }),
      },
      responses: {
        200: {
          description: "The backup",
          headers: z.object(dataHeaders),
          content: {
            "application/octet-stream": { schema: z.string().openapi({ format: "binary" }) },
            "application/sql": { schema: z.string() },
          },
        },
        400: error("fmt unknown, or a file cannot be built (the SQL dump still can)"),
        413: error("The SQL dump is larger than a backup holds"),
        503: error("No leader", retryAfter),
        504: error("The deadline passed"),
        ...guarded("plain"),
      },
    }),
  };
}

/** The routing path of a declared route, in Hono's syntax ({name} becomes :name). */
export function honoPath(route: RouteConfig): string {
  return route.path.replace(/\{([^}]+)\}/g, ":$1");
}
