// Generators of requests to every documented route, valid and invalid by /openapi.json, for the property tests
// (api-property*.test.ts), and the checks every answer must pass.
import fc from "fast-check";
import { expect } from "vitest";
import { isReadStatement } from "../../src/shared/sql-text";
import { parseGoDurationMs } from "../../src/worker/http/duration";
import { statementsSchema } from "../../src/worker/http/schemas";
import { responseProblems, type OpenApiDocument } from "./api-document";
import { TOKENS } from "./http-support";

export type Role = "read" | "write" | "admin";
export type Credential = "admin" | "writer" | "reader" | "none" | "bogus";

export const ROLES_OF: Record<Credential, readonly Role[]> = {
  admin: ["read", "write", "admin"],
  writer: ["read", "write"],
  reader: ["read"],
  none: [],
  bogus: [],
};

/** One generated request, and what the generator knows about it. */
export interface Generated {
  readonly method: string;
  /** The route as documented (e.g. /api/v1/cluster/members/{name}). */
  readonly route: string;
  readonly path: string;
  readonly query: readonly (readonly [string, string])[];
  readonly headers: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  /** Every part is valid by the document (and by the cluster's state: members exist, reads read). */
  readonly valid: boolean;
  /** The role the request needs. */
  readonly role: Role | "public";
}

/** A part of a request: its value (or none) and whether it is valid. */
interface Part<T> {
  readonly value: T;
  readonly valid: boolean;
}

const valid = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<Part<T>> => arb.map((value) => ({ value, valid: true }));
const invalid = <T>(arb: fc.Arbitrary<T>): fc.Arbitrary<Part<T>> => arb.map((value) => ({ value, valid: false }));

// ---------------------------------------------------------------------------------------------------------------
// Query parameters

const FLAGS = [
  "pretty",
  "timings",
  "transaction",
  "raft_index",
  "redirect",
  "associative",
  "blob_array",
  "nonvoters",
  "noleader",
  "sync",
  "compress",
];
const MEMBERS = ["n1", "n2", "n3"];

const flagValue = fc.constantFrom("", "true", "1", "false", "yes");
const shortDuration = fc.oneof(
  fc.integer({ min: 1, max: 300 }).map((n) => `${n}ms`),
  fc.constantFrom("0.25s", "1s", "150ms", "1.5s"),
);

/** Valid and invalid values of each query parameter (the request's deadline stays short: fakes answer at once). */
function parameterValue(name: string): fc.Arbitrary<Part<string>> | undefined {
  if (FLAGS.includes(name)) {
    return valid(flagValue);
  }
  switch (name) {
    case "timeout":
      return fc.oneof(valid(shortDuration), invalid(fc.constantFrom("", "0", "-1s", "abc", "10", "61s", "1x", "1s-")));
    case "db_timeout":
    case "linearizable_timeout":
    case "freshness":
      return fc.oneof(
        valid(fc.oneof(shortDuration, fc.constant("0"))),
        invalid(fc.constantFrom("", "-1s", "abc", "5", ".s")),
      );
    case "level":
      return fc.oneof(
        valid(fc.constantFrom("none", "weak", "linearizable", "strong", "auto")),
        invalid(fc.constantFrom("", "WEAK", "fast")),
      );
    case "min_raft_index":
      return fc.oneof(
        valid(fc.integer({ min: 0, max: 12 }).map(String)),
        invalid(fc.constantFrom("", "-1", "1.5", "9999999999999999", "x")),
      );
    case "q":
      return fc.oneof(valid(readSql), invalid(fc.constantFrom("", "   ")));
    case "node":
      return fc.oneof(
        valid(fc.constantFrom(...MEMBERS)),
        invalid(fc.constantFrom("", "a/b", "-x", "ghost", "x".repeat(65))),
      );
    case "ver":
      return fc.oneof(valid(fc.constantFrom("1", "2")), invalid(fc.constantFrom("", "3", "v2")));
    case "key":
      return valid(fc.constantFrom("", "store", "store.raft.state", "node.id", "nothing.here", "build.name.x"));
    case "fmt":
      return fc.oneof(valid(fc.constantFrom("sql", "binary")), invalid(fc.constantFrom("", "csv", "SQL")));
    case "vacuum":
      return valid(flagValue);
    case "limit":
      return fc.oneof(
        valid(fc.integer({ min: 1, max: 1000 }).map(String)),
        invalid(fc.constantFrom("", "0", "1001", "abc", "-5", "1.5")),
      );
    case "since":
      return fc.oneof(
        valid(fc.constantFrom("0", "1767225600000", "2026-01-01T00:00:00Z", "2026-11-30")),
        invalid(fc.constantFrom("", "yesterday", "-1x")),
      );
    default:
      return undefined;
  }
}

function queryArb(names: readonly string[]): fc.Arbitrary<Part<(readonly [string, string])[]>> {
  const parts = names.map((name) => {
    const value = parameterValue(name);
    if (value === undefined) {
      throw new Error(`no generator for the query parameter ${name}`);
    }
    return fc.option(
      value.map((part) => ({ value: [name, part.value] as const, valid: part.valid })),
      { freq: 2 },
    );
  });
  return fc.tuple(...parts).map((chosen) => {
    const present = chosen.filter((part) => part !== null);
    return { value: present.map((part) => part.value), valid: present.every((part) => part.valid) };
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Bodies

const readSql = fc.constantFrom(
  "SELECT 1",
  "SELECT * FROM foo WHERE id = ?",
  "VALUES (1, 2)",
  "EXPLAIN SELECT 1",
  "select name from foo",
);
const writeSql = fc.constantFrom(
  "INSERT INTO foo VALUES (?, ?)",
  "CREATE TABLE t (a)",
  "UPDATE foo SET name = :name",
  "DELETE FROM foo",
);
const sqlValue = fc.oneof(
  fc.constant(null),
  fc.string({ maxLength: 8 }),
  fc.integer(),
  fc.double({ noNaN: true, noDefaultInfinity: true }),
  fc.boolean(),
  fc.array(fc.integer({ min: 0, max: 255 }), { maxLength: 4 }),
);

function statementArb(sql: fc.Arbitrary<string>): fc.Arbitrary<unknown> {
  return fc.oneof(
    sql,
    fc.tuple(sql, fc.array(sqlValue, { maxLength: 3 })).map(([text, values]) => [text, ...values]),
    fc
      .tuple(sql, fc.dictionary(fc.stringMatching(/^[a-z]{1,4}$/), sqlValue, { maxKeys: 3 }))
      .map(([text, named]) => [text, named]),
  );
}

/** A statements body: valid ones by construction, others as arbitrary JSON classified by the documented schema. */
function statementsBodyArb(sql: fc.Arbitrary<string>): fc.Arbitrary<Part<{ text: string; contentType: string }>> {
  const json = (value: unknown) => JSON.stringify(value);
  const generated = fc.array(statementArb(sql), { minLength: 1, maxLength: 4 }).map((statements) => ({
    value: { text: json(statements), contentType: "application/json" },
    valid: true,
  }));
  const arbitrary = fc.jsonValue({ maxDepth: 3 }).map((value) => ({
    value: { text: json(value), contentType: "application/json" },
    valid: statementsSchema.safeParse(value).success,
  }));
  const plain = fc.oneof(
    valid(sql.map((text) => ({ text, contentType: "text/plain" }))),
    invalid(fc.constantFrom("", "  \n").map((text) => ({ text, contentType: "text/plain" }))),
  );
  const broken = invalid(
    fc
      .constantFrom(
        "{not json",
        "",
        "[",
        "nul",
        '[["SELECT ?", 1, {"a": 2}]]',
        "[9223372036854775808]",
        `[["SELECT ?", 1${"0".repeat(400)}]]`,
      )
      .map((text) => ({
        text,
        contentType: "application/json",
      })),
  );
  const exactInt64 = valid(
    // Beyond int64 an integer binds as a REAL, as in rqlite.
    fc
      .constantFrom(
        "9223372036854775807",
        "-9223372036854775808",
        "9007199254740993",
        "99999999999999999999",
        "-9223372036854776000",
      )
      .map((literal) => ({
        text: `[["SELECT ?", ${literal}]]`,
        contentType: "application/json",
      })),
  );
  return fc.oneof({ arbitrary: generated, weight: 4 }, { arbitrary: arbitrary, weight: 2 }, plain, broken, exactInt64);
}

/** Whether the route must treat a valid statements body as a write (the server's own test, isReadStatement). */
function mayWrite(text: string, contentType: string): boolean {
  if (contentType === "text/plain") {
    return !isReadStatement(text);
  }
  const items = JSON.parse(text) as (string | [string, ...unknown[]])[];
  return !items.every((item) => isReadStatement(typeof item === "string" ? item : item[0]));
}

function jsonBody(value: unknown): string {
  return JSON.stringify(value);
}

const junkJson = fc.jsonValue({ maxDepth: 2 }).map(jsonBody);
const malformedName = fc.constantFrom("", "a/b", "-n", "x".repeat(65), "n 1");

// ---------------------------------------------------------------------------------------------------------------
// Headers

const idempotencyHeader: fc.Arbitrary<Part<Record<string, string>>> = fc.oneof(
  valid(fc.constant({})),
  valid(fc.stringMatching(/^[A-Za-z0-9._:-]{1,24}$/).map((key) => ({ "Idempotency-Key": key }))),
  invalid(
    fc
      .constantFrom("", "has space", "x".repeat(129), "ключ!")
      .map((key) => ({ "Idempotency-Key": encodeURIComponent(key) === key ? key : "bad key" })),
  ),
);
const raftIndexHeader: fc.Arbitrary<Part<Record<string, string>>> = fc.oneof(
  valid(fc.constant({})),
  valid(fc.integer({ min: 0, max: 12 }).map((index) => ({ "X-DHA-Raft-Index": String(index) }))),
  invalid(fc.constantFrom("abc", "-1", "1.5", "9999999999999999").map((index) => ({ "X-DHA-Raft-Index": index }))),
);

// ---------------------------------------------------------------------------------------------------------------
// Routes

const DATA_QUERY = ["pretty", "timings", "transaction", "raft_index", "redirect", "timeout", "db_timeout"];
const READ_QUERY = ["associative", "blob_array", "level", "freshness", "linearizable_timeout", "min_raft_index"];

function request(
  method: string,
  route: string,
  role: Role | "public",
  parts: {
    query?: Part<(readonly [string, string])[]>;
    headers?: Part<Record<string, string>>[];
    body?: Part<string | Uint8Array>;
    path?: string;
    contentType?: string;
  },
): Generated {
  const headerParts = parts.headers ?? [];
  const headers: Record<string, string> = Object.assign({}, ...headerParts.map((part) => part.value));
  if (parts.contentType !== undefined) {
    headers["Content-Type"] = parts.contentType;
  }
  const validParts = [parts.query, parts.body, ...headerParts].every((part) => part === undefined || part.valid);
  return {
    method,
    route,
    path: parts.path ?? route,
    query: parts.query?.value ?? [],
    headers,
    ...(parts.body === undefined ? {} : { body: parts.body.value }),
    valid: validParts,
    role,
  };
}

const dataRequest = (path: string, sql: fc.Arbitrary<string>, read: boolean, baseRole: Role) =>
  fc
    .tuple(
      queryArb(read ? [...DATA_QUERY, ...READ_QUERY] : DATA_QUERY),
      statementsBodyArb(sql),
      idempotencyHeader,
      raftIndexHeader,
    )
    .map(([query, body, idempotency, raftIndex]) => {
      // /db/request needs the write role once a statement may write (arbitrary JSON counts as possibly writing).
      // (An unparseable body is refused before the route knows whether it writes.)
      const writes = body.valid && mayWrite(body.value.text, body.value.contentType);
      const role: Role = path === "/db/request" && writes ? "write" : baseRole;
      return request("POST", path, role, {
        query,
        body: { value: body.value.text, valid: body.valid },
        contentType: body.value.contentType,
        headers: read ? [idempotency, raftIndex].slice(path === "/db/request" ? 0 : 1) : [idempotency],
      });
    });

const dumps = fc.oneof(
  valid(
    fc.constantFrom(
      "CREATE TABLE t (a);\nINSERT INTO t VALUES (1);\n",
      "BEGIN TRANSACTION;\nCREATE TABLE u (b TEXT);\nCOMMIT;\n",
    ),
  ),
  invalid(fc.constantFrom("", "ROLLBACK;\n", "CREATE TABLE t (a);\nROLLBACK;\n")),
  invalid(fc.uint8Array({ minLength: 1, maxLength: 64 }).map((bytes) => Uint8Array.from([0xff, 0xfe, ...bytes]))),
  invalid(fc.constant(new TextEncoder().encode("SQLite format 3\0not really a database file"))),
);

export const ROUTES: Record<string, fc.Arbitrary<Generated>> = {
  "GET /livez": queryArb([]).map((query) => request("GET", "/livez", "public", { query })),
  "GET /openapi.json": queryArb([]).map((query) => request("GET", "/openapi.json", "public", { query })),
  "POST /db/execute": dataRequest("/db/execute", fc.oneof(readSql, writeSql), false, "write"),
  // q is optional: without it rqlite (and the worker) answers 200 {"results":[]}.
  "GET /db/query": fc
    .tuple(queryArb(["q", ...DATA_QUERY, ...READ_QUERY]), raftIndexHeader)
    .map(([query, header]) => request("GET", "/db/query", "read", { query, headers: [header] })),
  "POST /db/query": dataRequest("/db/query", readSql, true, "read"),
  "POST /db/request": dataRequest("/db/request", fc.oneof(readSql, writeSql), true, "read"),
  "GET /db/backup": queryArb(["timeout", "db_timeout", "fmt", "compress", "vacuum"]).map((query) => {
    // vacuum applies to SQLite files only: with fmt=sql it is refused.
    const sqlWithVacuum =
      query.value.some(([name, value]) => name === "fmt" && value === "sql") &&
      query.value.some(([name]) => name === "vacuum");
    const fmtFirst = query.value.find(([name]) => name === "fmt");
    return request("GET", "/db/backup", "read", {
      query: { value: query.value, valid: query.valid && !(sqlWithVacuum && fmtFirst !== undefined) },
    });
  }),
  "POST /db/load": fc
    .tuple(queryArb(DATA_QUERY), dumps, idempotencyHeader)
    .map(([query, body, idempotency]) =>
      request("POST", "/db/load", "write", { query, body, headers: [idempotency], contentType: "text/plain" }),
    ),
  "GET /status": queryArb(["node", "key", "pretty", "timeout"]).map((query) =>
    request("GET", "/status", "read", { query }),
  ),
  "GET /nodes": queryArb(["ver", "nonvoters", "timeout", "pretty"]).map((query) =>
    request("GET", "/nodes", "read", { query }),
  ),
  "GET /readyz": queryArb(["noleader", "sync", "node", "timeout"]).map((query) =>
    request("GET", "/readyz", "read", { query }),
  ),
  "GET /leader": queryArb(["timeout", "pretty"]).map((query) => request("GET", "/leader", "read", { query })),
  "POST /leader": fc
    .tuple(
      queryArb(["timeout", "pretty"]),
      fc.oneof(
        valid(fc.constant("")),
        valid(fc.constantFrom(...MEMBERS).map((id) => jsonBody({ id }))),
        invalid(
          fc.oneof(
            junkJson.filter((text) => text !== '""'),
            malformedName.map((id) => jsonBody({ id })),
            fc.constant(jsonBody({ id: "ghost" })),
            fc.constant(jsonBody({ id: "n2", to: "n3" })),
          ),
        ),
      ),
    )
    .map(([query, body]) => request("POST", "/leader", "admin", { query, body, contentType: "application/json" })),
  "GET /api/v1/cluster/health": queryArb(["timeout", "pretty"]).map((query) =>
    request("GET", "/api/v1/cluster/health", "read", { query }),
  ),
  "GET /api/v1/cluster": queryArb(["timeout", "pretty"]).map((query) =>
    request("GET", "/api/v1/cluster", "read", { query }),
  ),
  "GET /api/v1/cluster/events": queryArb(["timeout", "limit", "since"]).map((query) =>
    request("GET", "/api/v1/cluster/events", "read", { query }),
  ),
  "POST /api/v1/cluster/leader/stepdown": queryArb(["timeout", "pretty"]).map((query) =>
    request("POST", "/api/v1/cluster/leader/stepdown", "admin", { query }),
  ),
  "POST /api/v1/cluster/leader/transfer": fc
    .tuple(
      queryArb(["timeout", "pretty"]),
      fc.oneof(
        valid(fc.constantFrom(...MEMBERS).map((to) => jsonBody({ to }))),
        invalid(
          fc.oneof(
            junkJson,
            malformedName.map((to) => jsonBody({ to })),
            fc.constant(jsonBody({ to: "ghost" })),
            fc.constant(""),
          ),
        ),
      ),
    )
    .map(([query, body]) =>
      request("POST", "/api/v1/cluster/leader/transfer", "admin", { query, body, contentType: "application/json" }),
    ),
  "POST /api/v1/cluster/members": fc
    .tuple(
      queryArb(["timeout", "pretty"]),
      fc.oneof(
        valid(
          fc
            .tuple(
              fc.constantFrom("n5", "n6", "edge.1", "A_9"),
              fc.option(fc.constantFrom("wnam", "weur", "apac", "oc")),
            )
            .map(([name, hint]) => jsonBody(hint === null ? { name } : { name, locationHint: hint })),
        ),
        invalid(
          fc.oneof(
            junkJson,
            malformedName.map((name) => jsonBody({ name })),
            fc.constant(jsonBody({ name: "n5", locationHint: "mars" })),
            fc.constant(jsonBody({ name: "n5", extra: 1 })),
          ),
        ),
      ),
    )
    .map(([query, body]) =>
      request("POST", "/api/v1/cluster/members", "admin", { query, body, contentType: "application/json" }),
    ),
  "DELETE /api/v1/cluster/members/{name}": fc
    .tuple(
      queryArb(["timeout", "pretty"]),
      fc.oneof(valid(fc.constantFrom("n2", "n3")), invalid(fc.constantFrom("ghost", "a b", "-x", "x".repeat(65)))),
    )
    .map(([query, name]) =>
      request("DELETE", "/api/v1/cluster/members/{name}", "admin", {
        query,
        path: `/api/v1/cluster/members/${encodeURIComponent(name.value)}`,
        body: { value: "", valid: name.valid },
      }),
    ),
  "POST /api/v1/cluster/members/{name}/repair": fc
    .tuple(
      queryArb(["timeout", "pretty"]),
      fc.oneof(valid(fc.constantFrom("n2", "n3")), invalid(fc.constantFrom("ghost", "a b", "-x", "x".repeat(65)))),
    )
    .map(([query, name]) =>
      request("POST", "/api/v1/cluster/members/{name}/repair", "admin", {
        query,
        path: `/api/v1/cluster/members/${encodeURIComponent(name.value)}/repair`,
        body: { value: "", valid: name.valid },
      }),
    ),
};

export const credential = fc.oneof(
  { arbitrary: fc.constant<Credential>("admin"), weight: 5 },
  { arbitrary: fc.constantFrom<Credential>("writer", "reader", "none", "bogus"), weight: 3 },
);

// ---------------------------------------------------------------------------------------------------------------

/** The highest read-your-writes bookmark the request carries (query or header), if a valid one. */
export function bookmarkOf(generated: Generated): number | undefined {
  const values = [
    ...generated.query
      .filter(([name]) => name === "min_raft_index")
      .slice(0, 1)
      .map(([, value]) => value),
    generated.headers["X-DHA-Raft-Index"] ?? "",
  ].filter((value) => /^[0-9]{1,15}$/.test(value));
  return values.length === 0 ? undefined : Math.max(...values.map(Number));
}

/** Anything that sends a request to the app as a client would (the fake and the real harness both do). */
export interface Sender {
  request(
    method: string,
    path: string,
    init: { token: string | null; headers: Record<string, string>; body?: string | Uint8Array },
  ): Promise<Response>;
}

export function send(h: Sender, generated: Generated, who: Credential): Promise<Response> {
  const query = new URLSearchParams(generated.query.map(([name, value]) => [name, value])).toString();
  const path = `${generated.path}${query === "" ? "" : `?${query}`}`;
  const token = who === "none" ? null : who === "bogus" ? "not-a-known-token-000" : TOKENS[who];
  const body =
    generated.body === undefined || generated.method === "GET" || generated.method === "DELETE"
      ? undefined
      : generated.body;
  return h.request(generated.method, path, {
    token,
    headers: { ...generated.headers },
    ...(body === undefined ? {} : { body }),
  });
}

/** Whether the request sets a deadline (timeout, db_timeout, linearizable_timeout) shorter than a second. */
export function hasShortDeadline(generated: Generated): boolean {
  const names = ["timeout", "db_timeout", "linearizable_timeout"];
  const firsts = new Map<string, string>();
  for (const [name, value] of generated.query) {
    if (!firsts.has(name)) {
      firsts.set(name, value);
    }
  }
  return names.some((name) => {
    const ms = parseGoDurationMs(firsts.get(name) ?? "");
    return ms !== null && ms > 0 && ms < 1_000;
  });
}

export function describeRequest(generated: Generated, who: Credential): string {
  const query = new URLSearchParams(generated.query.map(([n, v]) => [n, v])).toString();
  const body = typeof generated.body === "string" ? generated.body.slice(0, 200) : String(generated.body);
  return `${generated.method} ${generated.path}?${query} as ${who} (${generated.valid ? "valid" : "invalid"}) body=${body}`;
}

/**
 * The checks every answer passes: no 5xx (but 503/504 for a bookmark beyond what `appliedIndex` the nodes hold),
 * a documented status with a body of the documented shape, and 401/403 for a caller without the route's role.
 * Returns whether the caller held the roles (further checks apply only then).
 */
export async function checkAnswer(
  document: OpenApiDocument,
  generated: Generated,
  who: Credential,
  response: Response,
  appliedIndex: number,
): Promise<boolean> {
  const label = describeRequest(generated, who);
  const status = response.status;
  // A bookmark beyond every node's applied index waits for a write that may still come: 503 (Retry-After)
  // or 504 at the deadline, as documented. Nothing else may answer 5xx.
  // So may a deadline the client set too short to reach a node (under a second: on a loaded machine 1 ms is).
  const bookmark = bookmarkOf(generated);
  const waitsForIndex = bookmark !== undefined && bookmark > appliedIndex;
  // /readyz and the health route answer 503 as their report (not ready, no quorum), whatever the input.
  const reportsState = generated.route === "/readyz" || generated.route === "/api/v1/cluster/health";
  if ((waitsForIndex || hasShortDeadline(generated) || reportsState) && status >= 500) {
    expect([503, 504], label).toContain(status);
  } else {
    expect(status, `${label}: ${status >= 500 ? await response.clone().text() : ""}`).toBeLessThan(500);
  }
  expect(await responseProblems(document, generated.method, generated.route, response.clone()), label).toEqual([]);
  const authorized = generated.role === "public" || ROLES_OF[who].includes(generated.role);
  if (!authorized) {
    // Without the route's own role: 401/403 before anything else. Without the write role /db/request asks
    // for once it knows the statements write: 403, unless the request is refused as bad input first.
    const escalated = generated.route === "/db/request" && ROLES_OF[who].includes("read");
    expect(escalated && !generated.valid ? [400, 403, 413] : [401, 403], label).toContain(status);
  }
  return authorized;
}
