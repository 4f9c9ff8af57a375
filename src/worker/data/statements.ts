// rqlite's request bodies: a JSON array whose items are SQL strings, [sql, ...positional] or [sql, {named}];
// or, with Content-Type text/plain, one statement as the whole body.
import type { SqlValue, Statement } from "../../shared/sql";
import { ApiError, badRequest } from "../http/errors";
import { MAX_PARAMS_PER_REQUEST, type RequestLimits } from "../../shared/sql-text/limits";

const UTF8 = new TextEncoder();

export type StatementLimits = Pick<RequestLimits, "maxStatements" | "maxParamsPerStatement" | "maxSqlBytes">;

/** Parses a request body into statements, or throws a 400 that says what is wrong and where. */
export function parseStatementsBody(
  body: string,
  contentType: string | undefined,
  limits: StatementLimits,
): Statement[] {
  // A body starting with "[" can never be SQL: it is JSON whatever the content type says (fetch sends a string body
  // as text/plain;charset=UTF-8 unless told otherwise).
  if (isPlainText(contentType) && !/^\s*\[/.test(body)) {
    if (body.trim() === "") {
      throw badRequest("the body is empty: send the statement as the body, or a JSON array of statements", "rqlite");
    }
    return checkStatements([{ sql: body }], limits);
  }
  let parsed: unknown;
  try {
    parsed = parseJsonExactly(body);
  } catch (error) {
    if (error instanceof ApiError) {
      throw error;
    }
    if (error instanceof RangeError) {
      // The parser ran out of stack: thousands of nested arrays. A request body is at most three levels deep.
      throw badRequest("invalid JSON body: nested too deeply (statements are at most [[sql, [values]]])", "rqlite");
    }
    throw badRequest(`invalid JSON body: ${(error as Error).message}`, "rqlite");
  }
  return parseStatementsJson(parsed, limits);
}

const INTEGER_SOURCE = /^-?(?:0|[1-9][0-9]*)$/;
const MIN_INT64 = -(2n ** 63n);
const MAX_INT64 = 2n ** 63n - 1n;

/** What JSON.parse hands a reviver as its third argument (ES2025 "JSON.parse source text access"). */
interface ReviverContext {
  readonly source?: string;
}

/**
 * JSON.parse, except that an integer beyond JavaScript's safe range becomes a bigint read from its source text rather
 * than a rounded double: 9223372036854775807 binds as exactly that. An integer outside SQLite's 64-bit range stays a
 * number and binds as a REAL, as rqlite binds it and as SQLite reads such a literal: no INTEGER could hold it.
 * Numbers written with a fraction or exponent stay numbers.
 */
export function parseJsonExactly(text: string): unknown {
  const reviver = (_key: string, value: unknown, context?: ReviverContext): unknown => {
    if (typeof value !== "number" || Number.isSafeInteger(value)) {
      return value;
    }
    const source = context?.source;
    if (source === undefined || !INTEGER_SOURCE.test(source)) {
      return value;
    }
    const exact = BigInt(source);
    return exact < MIN_INT64 || exact > MAX_INT64 ? value : exact;
  };
  return JSON.parse(text, reviver as (this: unknown, key: string, value: unknown) => unknown) as unknown;
}

/** Parses an already-decoded JSON value (also used by the RPC entrypoint). */
export function parseStatementsJson(parsed: unknown, limits: StatementLimits): Statement[] {
  if (!Array.isArray(parsed)) {
    throw badRequest("invalid request: the body must be a JSON array of statements", "rqlite");
  }
  if (parsed.length === 0) {
    throw badRequest("no statements", "rqlite");
  }
  if (parsed.length > limits.maxStatements) {
    throw tooMany(
      `the request has ${parsed.length} statements; at most ${limits.maxStatements} are allowed per request`,
    );
  }
  return checkStatements(
    parsed.map((item, index) => parseStatement(item, index + 1)),
    limits,
  );
}

function parseStatement(item: unknown, position: number): Statement {
  if (typeof item === "string") {
    return { sql: item };
  }
  if (!Array.isArray(item)) {
    throw badRequest(`statement ${position}: expected a SQL string or an array [sql, ...parameters]`, "rqlite");
  }
  const [sql, ...rawParams] = item as unknown[];
  if (typeof sql !== "string") {
    throw badRequest(`statement ${position}: the first element must be the SQL string`, "rqlite");
  }
  if (rawParams.length === 0) {
    return { sql };
  }
  const positional: SqlValue[] = [];
  // No prototype: a parameter named "__proto__" (or "constructor") is a parameter like any other.
  const named = Object.create(null) as Record<string, SqlValue>;
  let namedCount = 0;
  for (const raw of rawParams) {
    if (isPlainObject(raw)) {
      for (const [name, value] of Object.entries(raw)) {
        if (!Object.hasOwn(named, name)) {
          namedCount++;
        }
        named[name] = toSqlValue(value, position, `parameter "${name}"`);
      }
    } else {
      positional.push(toSqlValue(raw, position, `parameter ${positional.length + 1}`));
    }
  }
  if (positional.length > 0 && namedCount > 0) {
    throw badRequest(`statement ${position}: mixes positional and named parameters; use one form`, "rqlite");
  }
  // An ordinary object for the RPC to the node (it cannot carry a prototype-less one); Object.fromEntries defines
  // own data properties, so "__proto__" stays a key rather than setting the prototype.
  return namedCount > 0 ? { sql, params: Object.fromEntries(Object.entries(named)) } : { sql, params: positional };
}

/** A UTF-16 surrogate without its other half: it has no UTF-8 encoding. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** JSON to SQLite values as rqlite binds them: booleans become 1/0, arrays of bytes become BLOBs. */
function toSqlValue(value: unknown, position: number, what: string): SqlValue {
  if (value === null) {
    return value;
  }
  if (typeof value === "string") {
    if (LONE_SURROGATE.test(value)) {
      throw badRequest(
        `statement ${position}, ${what}: the string holds a lone UTF-16 surrogate, which is not valid UTF-8 text`,
        "rqlite",
      );
    }
    return value;
  }
  if (typeof value === "number") {
    if (!Number.isFinite(value)) {
      throw badRequest(
        `statement ${position}, ${what}: ${value} is not a finite number (JSON numbers beyond ±1.8e308 cannot be stored exactly)`,
        "rqlite",
      );
    }
    return value;
  }
  if (typeof value === "bigint") {
    return value;
  }
  if (typeof value === "boolean") {
    return value ? 1 : 0;
  }
  if (Array.isArray(value)) {
    if (value.every((byte) => Number.isInteger(byte) && byte >= 0 && byte <= 255)) {
      return Uint8Array.from(value as number[]);
    }
    throw badRequest(
      `statement ${position}, ${what}: an array parameter must hold bytes (integers 0-255), for a BLOB`,
      "rqlite",
    );
  }
  throw badRequest(
    `statement ${position}, ${what}: unsupported type (use null, a number, a string, a boolean or a byte array)`,
    "rqlite",
  );
}

/**
 * Checks each statement against the limits: not blank, not too long, not too many parameters. An empty statement
 * (SQL exactly "") passes: rqlite skips it (db/db.go) and so do the data routes (withoutEmptyStatements). One of
 * only whitespace is refused: rqlited 8.26.8 hangs on it rather than skip it.
 */
export function checkStatements(statements: Statement[], limits: StatementLimits): Statement[] {
  let requestParams = 0;
  statements.forEach((statement, index) => {
    const position = index + 1;
    if (statement.sql !== "" && statement.sql.trim() === "") {
      throw badRequest(
        `statement ${position} is only whitespace: send "" to have it skipped, or leave it out`,
        "rqlite",
      );
    }
    if (LONE_SURROGATE.test(statement.sql)) {
      throw badRequest(
        `statement ${position}: the SQL holds a lone UTF-16 surrogate, which is not valid UTF-8 text`,
        "rqlite",
      );
    }
    const sqlBytes = UTF8.encode(statement.sql).length;
    if (sqlBytes > limits.maxSqlBytes) {
      throw tooMany(`statement ${position} is ${sqlBytes} bytes long; at most ${limits.maxSqlBytes} are allowed`);
    }
    const paramCount = countParams(statement);
    if (paramCount > limits.maxParamsPerStatement) {
      throw tooMany(
        `statement ${position} has ${paramCount} parameters; at most ${limits.maxParamsPerStatement} are allowed`,
      );
    }
    requestParams += paramCount;
    if (requestParams > MAX_PARAMS_PER_REQUEST) {
      throw tooMany(
        `the request has more than ${MAX_PARAMS_PER_REQUEST} parameters (all statements together); send them in several requests`,
      );
    }
  });
  return statements;
}

function countParams(statement: Statement): number {
  const params = statement.params;
  if (params === undefined) {
    return 0;
  }
  return Array.isArray(params) ? params.length : Object.keys(params).length;
}

function tooMany(message: string): ApiError {
  return new ApiError(413, message, { shape: "rqlite", code: "LIMIT" });
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isPlainText(contentType: string | undefined): boolean {
  return contentType !== undefined && /^\s*text\/plain\s*(;|$)/i.test(contentType);
}

/**
 * The statements a node is sent: the request's without its empty ones (SQL exactly ""), which rqlite skips and answers
 * nothing for (db/db.go), with each one's index in the request.
 */
export interface SentStatements {
  readonly statements: readonly Statement[];
  /** Per statement sent: its index (0-based) in the request. */
  readonly requestIndexes: readonly number[];
}

export function withoutEmptyStatements(statements: readonly Statement[]): SentStatements {
  const requestIndexes = statements.flatMap((statement, i) => (statement.sql === "" ? [] : [i]));
  return { statements: requestIndexes.map((i) => statements[i] as Statement), requestIndexes };
}

/**
 * A node's message naming a statement by its place in what it was sent, renamed to the statement's place in the
 * request: the client numbered statements the worker did not send too. Nodes write "statements[k]: ..." (0-based,
 * sql/validate.ts) and, for a read past the result limits, "statement n: ..." (1-based, sql/state-machine.ts).
 */
export function inRequestNumbering(message: string, requestIndexes: readonly number[]): string {
  const renamed = message.replace(/^statements\[(\d+)\]/, (whole, sent: string) => {
    const index = requestIndexes[Number(sent)];
    return index === undefined ? whole : `statements[${index}]`;
  });
  return renamed.replace(/^statement (\d+):/, (whole, sent: string) => {
    const index = requestIndexes[Number(sent) - 1];
    return index === undefined ? whole : `statement ${index + 1}:`;
  });
}
