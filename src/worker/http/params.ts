// Query parameters, as rqlite reads them: flags count by presence (`?pretty`, `?timings&transaction`), the first of
// repeated keys wins, and values are validated with clear errors. Unknown parameters are ignored, as rqlite does.
import { z } from "@hono/zod-openapi";
import type { ReadLevel } from "../../shared/sql";
import type { RoutingPolicy } from "../routing/router";
import { parseGoDurationMs } from "./duration";
import { ApiError, badRequest, type ErrorShape } from "./errors";

export const READ_LEVELS = ["none", "weak", "linearizable", "strong", "auto"] as const satisfies readonly ReadLevel[];

/** The request header that carries a read-your-writes bookmark (the raft index a write returned). */
export const RAFT_INDEX_HEADER = "X-DHA-Raft-Index";
/** The response header naming the node that served the request. */
export const NODE_HEADER = "X-DHA-Node";
/** The response header with the id a write was proposed under (resend it as Idempotency-Key to retry safely). */
export const REQUEST_ID_HEADER = "X-DHA-Request-Id";
export const IDEMPOTENCY_HEADER = "Idempotency-Key";

export const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;
/** What validateMember accepts as a node name, for the document; the check itself is the objects' own. */
export const NODE_NAME_PATTERN = "^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$";
/** A log index as a client may send it: a whole number of at most 15 digits (exact as a JavaScript number). */
export const RAFT_INDEX = /^[0-9]{1,15}$/;
/**
 * Go's duration syntax as parseGoDurationMs reads it, without a sign: "0", or numbers each with a unit
 * ("500ms", "2s", "1m30s", "1.5h"). Negative durations are refused.
 */
const GO_DURATION = /^(?:0|(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:ns|us|\u00b5s|\u03bcs|ms|s|m|h))+)$/;

function durationMs(name: string, description: string) {
  const invalid = (text: string) =>
    `${name} ${JSON.stringify(text)} is not a valid duration: use Go syntax such as 500ms, 2s or 1m30s`;
  return z
    .string()
    .regex(GO_DURATION, { error: (issue) => invalid(String(issue.input)) })
    .transform((text, ctx) => {
      const ms = parseGoDurationMs(text);
      if (ms === null || ms < 0) {
        ctx.addIssue({ code: "custom", message: invalid(text) });
        return z.NEVER;
      }
      return ms;
    })
    .openapi({
      description: `${description} (a Go duration: 500ms, 2s, 1m30s)`,
      pattern: GO_DURATION.source,
      example: "2s",
    });
}

function raftIndex(name: string, description: string) {
  return z
    .string()
    .regex(RAFT_INDEX, { error: `${name} must be a log index (a whole number of at most 15 digits)` })
    .transform(Number)
    .openapi({ description, pattern: RAFT_INDEX.source, example: "42" });
}

/** A flag: present means on, whatever its value, as in rqlite (`?pretty`, `?timings&transaction`). */
function flag(description: string) {
  return z
    .string()
    .optional()
    .openapi({
      description: `${description} (a flag: present means on, as in rqlite)`,
      param: { allowEmptyValue: true },
    });
}

/**
 * Every query parameter the API reads, each with its validation and its documentation. Routes take the ones they
 * use (see queryOf); the OpenAPI document is generated from these very schemas.
 */
export const QUERY_FIELDS = {
  level: z
    .enum(READ_LEVELS, {
      error: (issue) => `level ${JSON.stringify(issue.input)} is unknown: use none, weak, linearizable, strong or auto`,
    })
    .optional()
    .openapi({ description: "Read consistency; default weak. auto is none when freshness is given, else weak." }),
  freshness: durationMs("freshness", "Level none: refuse if the node last heard from the leader longer ago").optional(),
  timeout: durationMs(
    "timeout",
    "The request's deadline: more than 0, at most 60s; default 10s (per node on status routes: default 2s)",
  ).optional(),
  linearizable_timeout: durationMs(
    "linearizable_timeout",
    "Shortens the deadline of a linearizable read (0: no effect)",
  ).optional(),
  db_timeout: durationMs("db_timeout", "Shortens the request's deadline (0: no effect)").optional(),
  min_raft_index: raftIndex("min_raft_index", "Read-your-writes bookmark, as the X-DHA-Raft-Index header").optional(),
  q: z
    .string()
    .regex(/\S/, { error: "the query parameter q is empty: GET /db/query?q=SELECT..." })
    .optional()
    .openapi({
      description:
        "One SQL statement (URLs are limited to 16 KiB: send longer ones with POST). Without q the answer is " +
        '{"results":[]}, as rqlite answers; an empty q is refused',
    }),
  fmt: z.string().optional(),
  ver: z
    .enum(["1", "2"], {
      error: (issue) => `ver ${JSON.stringify(issue.input)} is unknown: use 2 for {"nodes": [...]}, or leave it out`,
    })
    .optional()
    .openapi({ description: '2: {"nodes": [...]}; otherwise (or 1) rqlite\'s legacy map keyed by node id' }),
  key: z
    .string()
    .optional()
    .openapi({ description: "Return only this dotted sub-document, e.g. store.raft ({} when absent)" }),
  node: z.string().optional().openapi({
    description: "The member to ask (a configured node or one added at run time)",
    pattern: NODE_NAME_PATTERN,
  }),
  pretty: flag("Indent the JSON"),
  timings: flag("Add time fields (seconds)"),
  transaction: flag("All statements or none"),
  raft_index: flag("Add raft_index (the log index of a write, the applied index a read saw) to the body"),
  redirect: flag("Accepted for rqlite compatibility; the worker always forwards to the leader itself"),
  associative: flag("Rows as objects keyed by column"),
  blob_array: flag("BLOBs as arrays of byte values instead of base64"),
  nonvoters: flag("Include learners"),
  noleader: flag("Check only the node"),
  sync: flag("Wait (bounded by timeout) until the node has applied the leader's commit index"),
};

export type QueryField = keyof typeof QUERY_FIELDS;

/** The query schema of a route: the listed fields (unknown parameters are ignored, as rqlite does). */
export function queryOf<const Fields extends readonly QueryField[]>(...fields: Fields) {
  const shape = Object.fromEntries(fields.map((field) => [field, QUERY_FIELDS[field]])) as {
    [F in Fields[number]]: (typeof QUERY_FIELDS)[F];
  };
  return z.object(shape);
}

/** Every value parameter with its check: what routes without their own schema parse. */
const ALL_VALUES = queryOf(
  "level",
  "freshness",
  "timeout",
  "linearizable_timeout",
  "db_timeout",
  "min_raft_index",
  "fmt",
  "ver",
  "key",
  "node",
);
const DEFAULT_QUERY = ALL_VALUES.extend({ q: z.string().optional() });

interface ParsedValues {
  readonly level?: ReadLevel;
  readonly freshness?: number;
  readonly timeout?: number;
  readonly linearizable_timeout?: number;
  readonly db_timeout?: number;
  readonly min_raft_index?: number;
  readonly q?: string;
  readonly fmt?: string;
  readonly ver?: string;
  readonly key?: string;
  readonly node?: string;
}

export interface QueryParams {
  readonly flags: ReadonlySet<string>;
  readonly level?: ReadLevel;
  readonly freshnessMs?: number;
  readonly timeoutMs?: number;
  readonly linearizableTimeoutMs?: number;
  readonly dbTimeoutMs?: number;
  readonly minRaftIndex?: number;
  readonly q?: string;
  readonly fmt?: string;
  readonly ver?: string;
  readonly key?: string;
  readonly node?: string;
  has(flag: string): boolean;
}

/**
 * Parses the URL's query with the route's schema (by default every value parameter; `q` is then unchecked);
 * throws a 400 (in the given body shape) naming every bad parameter. The first of repeated keys wins.
 */
export function parseQueryParams(url: URL, shape: ErrorShape, schema?: z.ZodType): QueryParams {
  const first: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (!Object.hasOwn(first, key)) {
      first[key] = value;
    }
  }
  const parsed = (schema ?? DEFAULT_QUERY).safeParse(first);
  if (!parsed.success) {
    throw badRequest(parsed.error.issues.map((issue) => issue.message).join("; "), shape);
  }
  if (Object.hasOwn(first, "freshness_strict")) {
    throw badRequest(
      "freshness_strict is not supported: use freshness, or send the X-DHA-Raft-Index of your last write to read it back",
      shape,
    );
  }
  if (Object.hasOwn(first, "queue")) {
    throw badRequest("queued writes (queue) are not supported: every write is acknowledged once committed", shape);
  }
  const data = parsed.data as ParsedValues;
  const flags = new Set(Object.keys(first));
  return {
    flags,
    has: (flag) => flags.has(flag),
    ...(data.level === undefined ? {} : { level: data.level }),
    ...(data.freshness === undefined ? {} : { freshnessMs: data.freshness }),
    ...(data.timeout === undefined ? {} : { timeoutMs: data.timeout }),
    ...(data.linearizable_timeout === undefined ? {} : { linearizableTimeoutMs: data.linearizable_timeout }),
    ...(data.db_timeout === undefined ? {} : { dbTimeoutMs: data.db_timeout }),
    ...(data.min_raft_index === undefined ? {} : { minRaftIndex: data.min_raft_index }),
    ...(data.q === undefined ? {} : { q: data.q }),
    ...(data.fmt === undefined ? {} : { fmt: data.fmt }),
    ...(data.ver === undefined ? {} : { ver: data.ver }),
    ...(data.key === undefined ? {} : { key: data.key }),
    ...(data.node === undefined ? {} : { node: data.node }),
  };
}

/** The request's deadline: ?timeout= (bounded by the policy), shortened by db_timeout / linearizable_timeout. */
export function deadlineFor(
  params: QueryParams,
  startedAt: number,
  policy: RoutingPolicy,
  shape: ErrorShape,
  options: { linearizable?: boolean } = {},
): number {
  const requested = params.timeoutMs ?? policy.defaultTimeoutMs;
  if (requested <= 0) {
    throw badRequest("timeout must be longer than zero", shape);
  }
  if (requested > policy.maxTimeoutMs) {
    throw badRequest(`timeout may be at most ${policy.maxTimeoutMs / 1000}s`, shape);
  }
  let budgetMs = requested;
  if (params.dbTimeoutMs !== undefined && params.dbTimeoutMs > 0) {
    budgetMs = Math.min(budgetMs, params.dbTimeoutMs);
  }
  if (options.linearizable === true && params.linearizableTimeoutMs !== undefined && params.linearizableTimeoutMs > 0) {
    budgetMs = Math.min(budgetMs, params.linearizableTimeoutMs);
  }
  return startedAt + budgetMs;
}

/** The read-your-writes bookmark: the X-DHA-Raft-Index header, or ?min_raft_index= for clients without headers. */
export function minRaftIndexOf(params: QueryParams, header: string | undefined, shape: ErrorShape): number | undefined {
  if (header === undefined || header.trim() === "") {
    return params.minRaftIndex;
  }
  const trimmed = header.trim();
  if (!RAFT_INDEX.test(trimmed)) {
    throw badRequest(`${RAFT_INDEX_HEADER} must be a log index (a whole number), got ${JSON.stringify(header)}`, shape);
  }
  const fromHeader = Number(trimmed);
  return params.minRaftIndex === undefined ? fromHeader : Math.max(fromHeader, params.minRaftIndex);
}

/** A client's Idempotency-Key, validated; namespaced by the caller so that keys of different tokens never meet. */
export function idempotencyKeyOf(header: string | undefined, shape: ErrorShape): string | undefined {
  if (header === undefined) {
    return undefined;
  }
  if (!IDEMPOTENCY_KEY.test(header)) {
    throw new ApiError(400, `${IDEMPOTENCY_HEADER} must be 1-128 characters from A-Z a-z 0-9 . _ : -`, {
      shape,
      code: "BAD_REQUEST",
    });
  }
  return header;
}
