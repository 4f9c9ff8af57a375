// The log's encoding of a SqlRequest, and of the results kept for request-id deduplication: JSON, with bytes and
// non-finite numbers tagged (see values.ts). Decoding validates the whole shape: a log entry is data from another
// node, and garbage must fail loudly rather than apply half-understood.
import { sha256Hex } from "../sha256";
import type { SqlParams, SqlRequest, SqlValue, Statement, StatementResult } from "../../shared/sql";
import { decodeValue, encodeValue, isInt64, toSqlValue, utf8ByteLength, type EncodedValue } from "../sqlite/values";

/** Request ids are short client tokens; they are also storage keys. */
export const MAX_REQUEST_ID_LENGTH = 256;

export class SqlCodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SqlCodecError";
  }
}

interface EncodedStatement {
  readonly sql: string;
  readonly params?: EncodedValue[] | Record<string, EncodedValue>;
}

interface EncodedRequest {
  readonly id: string;
  readonly transaction: boolean;
  readonly statements: EncodedStatement[];
  readonly fingerprint?: string;
  readonly defersForeignKeys?: true;
}

/** requestFingerprint's length: 64 bits of SHA-256 tell two requests under one id apart. */
const FINGERPRINT_HEX_DIGITS = 16;

function encodeParams(params: SqlParams): EncodedValue[] | Record<string, EncodedValue> {
  if (Array.isArray(params)) {
    return (params as readonly SqlValue[]).map((value) => encodeValue(value));
  }
  const out: Record<string, EncodedValue> = {};
  for (const [name, value] of Object.entries(params as Readonly<Record<string, SqlValue>>)) {
    out[name] = encodeValue(value);
  }
  return out;
}

export function encodeSqlRequest(request: SqlRequest): string {
  const encoded: EncodedRequest = {
    id: request.id,
    transaction: request.transaction,
    statements: request.statements.map((statement) =>
      statement.params === undefined
        ? { sql: statement.sql }
        : { sql: statement.sql, params: encodeParams(statement.params) },
    ),
    ...(request.fingerprint === undefined ? {} : { fingerprint: request.fingerprint }),
    ...(request.defersForeignKeys === true ? { defersForeignKeys: true } : {}),
  };
  return JSON.stringify(encoded);
}

/**
 * What identifies a request's content apart from its id: the first hex digits of the SHA-256 of its encoding with an
 * empty id. Taken of the request as the client sent it, before prepareWrite fixes times and random values.
 */
export function requestFingerprint(request: SqlRequest): string {
  const content = encodeSqlRequest({ id: "", transaction: request.transaction, statements: request.statements });
  return sha256Hex(content).slice(0, FINGERPRINT_HEX_DIGITS);
}

/** Bytes the request occupies in the log (UTF-8 of its encoding). */
export function sqlRequestSizeBytes(request: SqlRequest): number {
  return utf8ByteLength(encodeSqlRequest(request));
}

function fail(message: string): never {
  throw new SqlCodecError(`invalid SQL request encoding: ${message}`);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function checkKeys(value: Record<string, unknown>, allowed: readonly string[], where: string): void {
  for (const key of Object.keys(value)) {
    if (!allowed.includes(key)) {
      fail(`${where} has an unexpected field ${JSON.stringify(key)}`);
    }
  }
}

function decodeSqlValue(encoded: unknown, where: string): SqlValue {
  let value;
  try {
    value = decodeValue(encoded, where);
  } catch (error) {
    fail((error as Error).message);
  }
  if (
    value !== null &&
    typeof value === "object" &&
    !(value instanceof Uint8Array) &&
    "bigint" in value &&
    !isInt64(BigInt(value.bigint))
  ) {
    fail(`${where}: ${value.bigint} is outside SQLite's 64-bit integer range`);
  }
  return toSqlValue(value);
}

function decodeStatement(encoded: unknown, where: string): Statement {
  if (!isPlainObject(encoded)) {
    fail(`${where} is not an object`);
  }
  checkKeys(encoded, ["sql", "params"], where);
  if (typeof encoded.sql !== "string") {
    fail(`${where}.sql is not a string`);
  }
  if (encoded.params === undefined) {
    return { sql: encoded.sql };
  }
  if (Array.isArray(encoded.params)) {
    const params = encoded.params.map((value, i) => decodeSqlValue(value, `${where}.params[${i}]`));
    return { sql: encoded.sql, params };
  }
  if (!isPlainObject(encoded.params)) {
    fail(`${where}.params is neither an array nor an object`);
  }
  const params: Record<string, SqlValue> = {};
  for (const [name, value] of Object.entries(encoded.params)) {
    params[name] = decodeSqlValue(value, `${where}.params.${name}`);
  }
  return { sql: encoded.sql, params };
}

export function decodeSqlRequest(data: string): SqlRequest {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch (error) {
    fail(`not JSON (${(error as Error).message})`);
  }
  if (!isPlainObject(parsed)) {
    fail("not an object");
  }
  checkKeys(parsed, ["id", "transaction", "statements", "fingerprint", "defersForeignKeys"], "request");
  if (typeof parsed.id !== "string" || parsed.id.length === 0 || parsed.id.length > MAX_REQUEST_ID_LENGTH) {
    fail(`id must be a string of 1 to ${MAX_REQUEST_ID_LENGTH} characters`);
  }
  if (typeof parsed.transaction !== "boolean") {
    fail("transaction must be a boolean");
  }
  if (!Array.isArray(parsed.statements)) {
    fail("statements must be an array");
  }
  if (
    parsed.fingerprint !== undefined &&
    (typeof parsed.fingerprint !== "string" || parsed.fingerprint.length !== FINGERPRINT_HEX_DIGITS)
  ) {
    fail(`fingerprint must be a string of ${FINGERPRINT_HEX_DIGITS} hex digits`);
  }
  if (parsed.defersForeignKeys !== undefined && parsed.defersForeignKeys !== true) {
    fail("defersForeignKeys must be true when present");
  }
  const statements = parsed.statements.map((statement, i) => decodeStatement(statement, `statements[${i}]`));
  return {
    id: parsed.id,
    transaction: parsed.transaction,
    statements,
    ...(parsed.fingerprint === undefined ? {} : { fingerprint: parsed.fingerprint }),
    ...(parsed.defersForeignKeys === true ? { defersForeignKeys: true as const } : {}),
  };
}

// Results, as kept for deduplication. Same value tagging; the fields are StatementResult's.

interface EncodedResult {
  columns?: readonly string[];
  types?: readonly string[];
  rows?: EncodedValue[][];
  lastInsertId?: number | { $int: string };
  rowsAffected?: number;
  error?: string;
  time?: number;
}

export function encodeStatementResults(results: readonly StatementResult[]): string {
  const encoded: EncodedResult[] = results.map((result) => {
    const out: EncodedResult = {};
    if (result.columns !== undefined) {
      out.columns = result.columns;
    }
    if (result.types !== undefined) {
      out.types = result.types;
    }
    if (result.rows !== undefined) {
      out.rows = result.rows.map((row) => row.map((value) => encodeValue(value)));
    }
    if (result.lastInsertId !== undefined) {
      out.lastInsertId =
        typeof result.lastInsertId === "bigint" ? { $int: result.lastInsertId.toString() } : result.lastInsertId;
    }
    if (result.rowsAffected !== undefined) {
      out.rowsAffected = result.rowsAffected;
    }
    if (result.error !== undefined) {
      out.error = result.error;
    }
    if (result.time !== undefined) {
      out.time = result.time;
    }
    return out;
  });
  return JSON.stringify(encoded);
}

function stringArray(value: unknown, where: string): string[] {
  if (!Array.isArray(value) || !value.every((item) => typeof item === "string")) {
    fail(`${where} is not an array of strings`);
  }
  return value as string[];
}

function optionalNumber(value: unknown, where: string): number | undefined {
  if (value === undefined) {
    return undefined;
  }
  if (typeof value !== "number") {
    fail(`${where} is not a number`);
  }
  return value;
}

export function decodeStatementResults(data: string): StatementResult[] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch (error) {
    fail(`results are not JSON (${(error as Error).message})`);
  }
  if (!Array.isArray(parsed)) {
    fail("results are not an array");
  }
  return parsed.map((item, i): StatementResult => {
    const where = `results[${i}]`;
    if (!isPlainObject(item)) {
      fail(`${where} is not an object`);
    }
    checkKeys(item, ["columns", "types", "rows", "lastInsertId", "rowsAffected", "error", "time"], where);
    const result: {
      -readonly [K in keyof StatementResult]: StatementResult[K];
    } = {};
    if (item.columns !== undefined) {
      result.columns = stringArray(item.columns, `${where}.columns`);
    }
    if (item.types !== undefined) {
      result.types = stringArray(item.types, `${where}.types`);
    }
    if (item.rows !== undefined) {
      if (!Array.isArray(item.rows)) {
        fail(`${where}.rows is not an array`);
      }
      result.rows = item.rows.map((row, r) => {
        if (!Array.isArray(row)) {
          fail(`${where}.rows[${r}] is not an array`);
        }
        return row.map((value, c) => decodeSqlValue(value, `${where}.rows[${r}][${c}]`));
      });
    }
    if (item.lastInsertId !== undefined) {
      const lastInsertId =
        typeof item.lastInsertId === "number"
          ? item.lastInsertId
          : decodeSqlValue(item.lastInsertId, `${where}.lastInsertId`);
      if (typeof lastInsertId !== "number" && typeof lastInsertId !== "bigint") {
        fail(`${where}.lastInsertId is not an integer`);
      }
      result.lastInsertId = lastInsertId;
    }
    const rowsAffected = optionalNumber(item.rowsAffected, `${where}.rowsAffected`);
    if (rowsAffected !== undefined) {
      result.rowsAffected = rowsAffected;
    }
    if (item.error !== undefined) {
      if (typeof item.error !== "string") {
        fail(`${where}.error is not a string`);
      }
      result.error = item.error;
    }
    const time = optionalNumber(item.time, `${where}.time`);
    if (time !== undefined) {
      result.time = time;
    }
    return result;
  });
}
