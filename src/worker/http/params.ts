// Query parameters, as rqlite reads them: flags count by presence (`?pretty`, `?timings&transaction`), the first of
// repeated keys wins, and values are validated with clear errors. Unknown parameters are ignored, as rqlite does.
import { z } from "zod";
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

const IDEMPOTENCY_KEY = /^[A-Za-z0-9._:-]{1,128}$/;

function durationMs(name: string) {
  return z.string().transform((text, ctx) => {
    const ms = parseGoDurationMs(text);
    if (ms === null || ms < 0) {
      ctx.addIssue({
        code: "custom",
        message: `${name} ${JSON.stringify(text)} is not a valid duration: use Go syntax such as 500ms, 2s or 1m30s`,
      });
      return z.NEVER;
    }
    return ms;
  });
}

function raftIndex(name: string) {
  return z
    .string()
    .regex(/^[0-9]{1,15}$/, { error: `${name} must be a log index (a whole number)` })
    .transform(Number);
}

const valuesSchema = z.object({
  level: z
    .enum(READ_LEVELS, {
      error: (issue) => `level ${JSON.stringify(issue.input)} is unknown: use none, weak, linearizable, strong or auto`,
    })
    .optional(),
  freshness: durationMs("freshness").optional(),
  timeout: durationMs("timeout").optional(),
  linearizable_timeout: durationMs("linearizable_timeout").optional(),
  db_timeout: durationMs("db_timeout").optional(),
  min_raft_index: raftIndex("min_raft_index").optional(),
  q: z.string().optional(),
  fmt: z.string().optional(),
  ver: z.string().optional(),
  key: z.string().optional(),
  node: z.string().optional(),
});

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

/** Parses the URL's query; throws a 400 (in the given body shape) naming every bad parameter. */
export function parseQueryParams(url: URL, shape: ErrorShape): QueryParams {
  const first: Record<string, string> = {};
  for (const [key, value] of url.searchParams) {
    if (!Object.hasOwn(first, key)) {
      first[key] = value;
    }
  }
  const parsed = valuesSchema.safeParse(first);
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
  const data = parsed.data;
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
  if (!/^[0-9]{1,15}$/.test(trimmed)) {
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
