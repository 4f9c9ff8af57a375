// What the leader does to a request before proposing it (prepareWrite) and what the query path does before
// reading (prepareRead): refuse what cannot be replicated safely, make non-deterministic SQL deterministic, and turn
// every parameter into a positional one that sql.exec can bind. Nothing here touches storage.
import type { SqlParams, SqlRequest, SqlValue, Statement } from "../../shared/sql";
import { MAX_REQUEST_ID_LENGTH, requestFingerprint } from "./codec";
import {
  createTarget,
  DML_VERBS,
  mainVerbIndex,
  READ_PRAGMAS_WITH_ARGUMENT,
  READ_VERBS,
  shapeOf,
  STATEMENT_VERBS,
  TRANSACTION_VERBS,
  UNKNOWN_SHAPE,
  type StatementShape,
} from "../../shared/sql-text/classify";
import { SQL_LIMITS } from "../../shared/sql-text/limits";
import { DEFER_NEEDS_TRANSACTION, deferForeignKeysSetting, FOREIGN_KEYS_ALWAYS_ON } from "./pragmas";
import { splitTokensIntoStatements } from "../../shared/sql-text/split";
import {
  isPunct,
  isSignificant,
  keywordOf,
  matchingParen,
  quoteSqlIdentifier,
  quoteSqlString,
  significantTokens,
  SqlSyntaxError,
  tokenizeSql,
  type SqlToken,
} from "../../shared/sql-text/tokenizer";
import {
  bytesToHex,
  isInt64,
  isSqlValue,
  MAX_INT64,
  MIN_INT64,
  sqlValueByteLength,
  utf8ByteLength,
} from "../sqlite/values";

/** What the leader supplies so that every replica stores the same values. */
export interface WriteContext {
  /** The leader's clock: 'now' and CURRENT_* become this instant. */
  readonly nowMs: number;
  /** Random bytes (e.g. crypto.getRandomValues) for random() and randomblob(). */
  readonly randomBytes: (length: number) => Uint8Array;
}

export type PrepareWriteResult =
  { readonly ok: true; readonly request: SqlRequest } | { readonly ok: false; readonly error: string };
export type PrepareReadResult =
  { readonly ok: true; readonly statements: readonly Statement[] } | { readonly ok: false; readonly error: string };

/** rqlite's words for a write sent to the query endpoint. */
export const READ_ONLY_VIOLATION = "attempt to change database via query operation";

const INTERNAL_PREFIXES = ["_cf_", "_dha_", "__miniflare_"];

/** Date/time functions and which argument positions hold a time value (where 'now' means the clock). */
const TIME_FUNCTIONS = new Map<string, { readonly timeArgs: readonly number[]; readonly firstTimeArg: number }>([
  ["DATE", { timeArgs: [0], firstTimeArg: 0 }],
  ["TIME", { timeArgs: [0], firstTimeArg: 0 }],
  ["DATETIME", { timeArgs: [0], firstTimeArg: 0 }],
  ["JULIANDAY", { timeArgs: [0], firstTimeArg: 0 }],
  ["UNIXEPOCH", { timeArgs: [0], firstTimeArg: 0 }],
  ["STRFTIME", { timeArgs: [1], firstTimeArg: 1 }],
  ["TIMEDIFF", { timeArgs: [0, 1], firstTimeArg: 0 }],
]);
const CURRENT_KEYWORDS = new Set(["CURRENT_TIMESTAMP", "CURRENT_DATE", "CURRENT_TIME"]);

// Words before a "name(" that make it an object name with a column list rather than a function call.
const NAME_BEFORE_PAREN = new Set(["TABLE", "INTO", "VIEW", "REFERENCES", "EXISTS", "USING", "INDEX", "TRIGGER"]);

class Refusal extends Error {}

function refuse(message: string): never {
  throw new Refusal(message);
}

// ---------------------------------------------------------------------------------------------------------------
// Refusals

/** Names of the platform's objects and ours (_cf_*, _dha_*, __miniflare_*), which users never see or touch. */
export function isInternalName(name: string): boolean {
  const lower = name.toLowerCase();
  return INTERNAL_PREFIXES.some((prefix) => lower.startsWith(prefix));
}

/** True when the word at `i` followed by "(" is a function call rather than an object name with a column list. */
function isFunctionCall(significant: readonly SqlToken[], i: number, shape: StatementShape): boolean {
  const token = significant[i];
  if (token === undefined || token.kind !== "word" || !isPunct(significant[i + 1], "(")) {
    return false;
  }
  const previous = significant[i - 1];
  if (isPunct(previous, ".")) {
    return false;
  }
  const previousKeyword = keywordOf(previous);
  if (previousKeyword !== null && NAME_BEFORE_PAREN.has(previousKeyword)) {
    return false;
  }
  if (previousKeyword === "ON" && shape.verb === "CREATE" && createTarget(significant).object === "INDEX") {
    return false;
  }
  // A common table expression "name(columns) AS (" / "AS NOT MATERIALIZED (" / "AS MATERIALIZED (".
  const close = matchingParen(significant, i + 1);
  if (close !== -1 && keywordOf(significant[close + 1]) === "AS") {
    const after = significant[close + 2];
    if (isPunct(after, "(") || keywordOf(after) === "NOT" || keywordOf(after) === "MATERIALIZED") {
      return false;
    }
  }
  return true;
}

/**
 * The readable PRAGMAs a refusal names as examples: those that answer on the platform (it refuses integrity_check,
 * which README lists among the PRAGMAs that are not available; quick_check answers).
 */
const PRAGMAS_NAMED_IN_REFUSALS = [...READ_PRAGMAS_WITH_ARGUMENT]
  .filter((name) => name !== "integrity_check")
  .join(", ");

/** Why a PRAGMA that sets something may not run, or null for the one that may (defer_foreign_keys, in context). */
function writingPragmaHazard(shape: StatementShape): string | null {
  const defer = deferForeignKeysSetting(shape.pragma);
  if (defer === "invalid") {
    return "PRAGMA defer_foreign_keys takes ON or OFF (or 1, 0, true, false, yes, no)";
  }
  if (defer !== null) {
    // Allowed only in a request with `transaction`: prepareWrite refuses it elsewhere, runEach answers an error.
    return null;
  }
  if (shape.pragma?.name === "foreign_keys") {
    return FOREIGN_KEYS_ALWAYS_ON;
  }
  const named = shape.pragma?.name === undefined || shape.pragma.name === "" ? "PRAGMA" : `PRAGMA ${shape.pragma.name}`;
  return `${named} is not supported here: only read-only PRAGMAs are allowed (${PRAGMAS_NAMED_IN_REFUSALS}, ...)`;
}

/**
 * Constructs that would reset the node or make replicas diverge whatever the context: checked when preparing and
 * again when applying (a leader must never be able to crash its followers). Returns a message or null.
 */
function hazardIn(significant: readonly SqlToken[], shape: StatementShape): string | null {
  if (shape.verb === "ATTACH" || shape.verb === "DETACH") {
    return `${shape.verb} is not supported: a node has exactly one database`;
  }
  if (TRANSACTION_VERBS.has(shape.verb)) {
    return `${shape.verb} is not supported: set the request's transaction flag to run its statements all or nothing`;
  }
  if (shape.verb === "VACUUM") {
    return "VACUUM is not supported";
  }
  if (shape.verb === "PRAGMA" && shape.access === "write") {
    return writingPragmaHazard(shape);
  }
  for (let i = 0; i < significant.length; i += 1) {
    const token = significant[i];
    if (token === undefined) {
      continue;
    }
    if ((token.kind === "word" || token.kind === "quoted") && isInternalName(token.value)) {
      return `${JSON.stringify(token.value)} is an internal object: names starting with ${INTERNAL_PREFIXES.join(", ")} are reserved`;
    }
    const keyword = keywordOf(token);
    if (keyword === "ROLLBACK") {
      return "ROLLBACK (as a conflict clause or RAISE action) is not supported: it would abort the node's whole transaction; use ABORT or FAIL";
    }
    if (
      keyword === "INITIALLY" &&
      keywordOf(significant[i + 1]) === "DEFERRED" &&
      keywordOf(significant[i - 2]) !== "NOT"
    ) {
      return "deferred foreign keys (DEFERRABLE INITIALLY DEFERRED) are not supported: a violation found only at commit would reset the node";
    }
    if (keyword === "LOAD_EXTENSION" && isPunct(significant[i + 1], "(")) {
      return "load_extension() is not supported";
    }
  }
  return null;
}

/**
 * What the apply and read paths need of a statement, from one pass: its shape, and the hazard that forbids running
 * it (a message), or null. Text SQLite itself cannot tokenize gets a neutral shape and no hazard: SQLite reports it.
 */
export function inspectStatement(sql: string): StatementInspection {
  const cached = inspections.get(sql);
  if (cached !== undefined) {
    return cached;
  }
  const inspection = inspectUncached(sql);
  if (sql.length <= INSPECTION_CACHE.maxSqlChars) {
    if (inspections.size >= INSPECTION_CACHE.maxEntries) {
      // The oldest first: Map iterates in insertion order.
      inspections.delete(inspections.keys().next().value as string);
    }
    inspections.set(sql, inspection);
  }
  return inspection;
}

/** Whether a statement sets PRAGMA defer_foreign_keys (on or off). */
export function setsDeferForeignKeys(sql: string): boolean {
  // Nearly no statement names it: skip the inspection (uncached for long texts, and a load has thousands).
  if (!/defer_foreign_keys/i.test(sql)) {
    return false;
  }
  const setting = deferForeignKeysSetting(inspectStatement(sql).shape.pragma);
  return setting === true || setting === false;
}

export interface StatementInspection {
  readonly shape: StatementShape;
  readonly hazard: string | null;
}

/**
 * Every node inspects every statement it applies, and a workload runs the same few statement texts over and over
 * (values go in parameters): inspections of recent texts are kept, bounded in count and text length (about 1 MB at
 * most). An inspection is a pure function of the text, so a kept one is the one a fresh pass would give.
 */
const INSPECTION_CACHE = { maxEntries: 256, maxSqlChars: 2_048 } as const;
const inspections = new Map<string, StatementInspection>();

function inspectUncached(sql: string): StatementInspection {
  try {
    const statements = splitTokensIntoStatements(tokenizeSql(sql));
    if (statements.length !== 1 || statements[0] === undefined) {
      return {
        shape: UNKNOWN_SHAPE,
        hazard: statements.length === 0 ? "the statement is empty" : "exactly one SQL statement per entry is supported",
      };
    }
    const significant = significantTokens(statements[0]);
    const shape = shapeOf(significant);
    return { shape, hazard: hazardIn(significant, shape) };
  } catch (error) {
    if (error instanceof SqlSyntaxError) {
      return { shape: UNKNOWN_SHAPE, hazard: null };
    }
    throw error;
  }
}

/**
 * For INSERT/UPDATE/DELETE/REPLACE ... RETURNING: `SELECT <returned expressions> FROM <target> [AS alias]`, which
 * has the same result columns (RETURNING may only name the table it changes), as significant tokens; else null.
 */
function returningAsSelect(significant: readonly SqlToken[]): SqlToken[] | null {
  const verbAt = mainVerbIndex(significant);
  const verb = keywordOf(significant[verbAt]);
  if (verbAt === -1 || verb === null || !DML_VERBS.has(verb)) {
    return null;
  }
  let returningAt = -1;
  let depth = 0;
  for (let i = verbAt + 1; i < significant.length && returningAt === -1; i += 1) {
    const token = significant[i];
    if (isPunct(token, "(")) {
      depth += 1;
    } else if (isPunct(token, ")")) {
      depth -= 1;
    } else if (depth === 0 && keywordOf(token) === "RETURNING") {
      returningAt = i;
    }
  }
  if (returningAt === -1) {
    return null;
  }
  let i = verbAt + 1;
  if (keywordOf(significant[i]) === "OR") {
    i += 2;
  } // INSERT OR REPLACE, UPDATE OR IGNORE, ...
  if (keywordOf(significant[i]) === "INTO" || keywordOf(significant[i]) === "FROM") {
    i += 1;
  }
  const targetStart = i;
  i += isPunct(significant[i + 1], ".") ? 3 : 1;
  const target = significant.slice(targetStart, i);
  const alias = keywordOf(significant[i]) === "AS" ? significant.slice(i, i + 2) : [];
  const word = (text: string): SqlToken => ({ kind: "word", text, value: text, start: 0 });
  return [word("SELECT"), ...significant.slice(returningAt + 1), word("FROM"), ...target, ...alias];
}

/**
 * For asking SQLite the declared types of a statement's result columns through a view: `text` is a query with the
 * same result columns (the statement itself for SELECT, VALUES and WITH ... SELECT; the RETURNING expressions over
 * the changed table for a write) with every parameter replaced by NULL (views cannot hold parameters); `key` is that
 * query with every literal replaced by "?", which names the same answer (declared types come from the columns a
 * query names, never from a value); `query` says whether the statement itself only reads. Null for anything else,
 * or text that is not one statement.
 */
export function typeProbe(
  sql: string,
): { readonly text: string; readonly key: string; readonly query: boolean } | null {
  try {
    const statements = splitTokensIntoStatements(tokenizeSql(sql));
    const statement = statements[0];
    if (statements.length !== 1 || statement === undefined) {
      return null;
    }
    const significant = significantTokens(statement);
    const shape = shapeOf(significant);
    const query = READ_VERBS.has(shape.mainVerb) && (shape.verb === "WITH" || READ_VERBS.has(shape.verb));
    const tokens = query ? significant : shape.verb === "EXPLAIN" ? null : returningAsSelect(significant);
    if (tokens === null) {
      return null;
    }
    const literal = new Set(["param", "number", "string", "blob"]);
    const text = tokens.map((token) => (token.kind === "param" ? "NULL" : token.text)).join(" ");
    const key = tokens.map((token) => (literal.has(token.kind) ? "?" : token.text)).join(" ");
    return { text, key, query };
  } catch (error) {
    if (error instanceof SqlSyntaxError) {
      return null;
    }
    throw error;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Parameters

interface ParameterPlan {
  /** For each param token (by index into the statement's tokens): its 1-based SQLite parameter number. */
  readonly numberOfToken: Map<number, number>;
  /** Value of each parameter number. */
  readonly values: Map<number, SqlValue>;
}

function checkValue(value: unknown, where: string): SqlValue {
  if (!isSqlValue(value)) {
    refuse(`${where} is not a SQL value (null, number, string or bytes)`);
  }
  if (typeof value === "number" && Number.isNaN(value)) {
    refuse(`${where} is NaN, which SQLite cannot store`);
  }
  if (typeof value === "bigint" && !isInt64(value)) {
    refuse(`${where} is ${value}, outside SQLite's 64-bit integer range (${MIN_INT64} to ${MAX_INT64})`);
  }
  const bytes = sqlValueByteLength(value);
  if (bytes > SQL_LIMITS.maxValueBytes) {
    refuse(`${where} is ${bytes} bytes; a value may be at most ${SQL_LIMITS.maxValueBytes}`);
  }
  return value;
}

function planParameters(tokens: readonly SqlToken[], params: SqlParams | undefined): ParameterPlan {
  const numberOfToken = new Map<number, number>();
  const numberOfName = new Map<string, number>();
  const names = new Map<number, string>();
  let highest = 0;
  tokens.forEach((token, index) => {
    if (token.kind !== "param") {
      return;
    }
    let number: number;
    if (token.text === "?") {
      number = highest + 1;
    } else if (token.text.startsWith("?")) {
      number = Number(token.text.slice(1));
      if (!Number.isSafeInteger(number) || number < 1 || number > SQL_LIMITS.maxBoundParameters) {
        refuse(`parameter ${token.text} is out of range (1 to ${SQL_LIMITS.maxBoundParameters})`);
      }
    } else {
      number = numberOfName.get(token.text) ?? highest + 1;
      numberOfName.set(token.text, number);
      names.set(number, token.text);
    }
    highest = Math.max(highest, number);
    numberOfToken.set(index, number);
  });
  if (highest > SQL_LIMITS.maxBoundParameters) {
    refuse(`the statement has ${highest} parameters; at most ${SQL_LIMITS.maxBoundParameters} are allowed`);
  }
  const values = new Map<number, SqlValue>();
  if (params === undefined || (Array.isArray(params) && params.length === 0 && highest === 0)) {
    if (highest > 0) {
      refuse(`the statement has ${highest} parameter(s) but no values were given`);
    }
    return { numberOfToken, values };
  }
  if (Array.isArray(params)) {
    const list = params as readonly unknown[];
    if (list.length !== highest) {
      refuse(`the statement has ${highest} parameter(s) but ${list.length} value(s) were given`);
    }
    list.forEach((value, i) => values.set(i + 1, checkValue(value, `parameter ${i + 1}`)));
    return { numberOfToken, values };
  }
  if (typeof params !== "object" || params === null) {
    refuse("params must be an array or an object");
  }
  const named = params as Readonly<Record<string, unknown>>;
  const used = new Set<string>();
  for (let number = 1; number <= highest; number += 1) {
    const text = names.get(number);
    if (text === undefined) {
      refuse(`parameter ?${number} is positional, but params were given by name`);
    }
    const bare = text.slice(1);
    const key = Object.hasOwn(named, bare) ? bare : Object.hasOwn(named, text) ? text : null;
    if (key === null) {
      refuse(`no value was given for parameter ${text}`);
    }
    used.add(key);
    values.set(number, checkValue(named[key], `parameter ${text}`));
  }
  const unused = Object.keys(named).filter((key) => !used.has(key));
  if (unused.length > 0) {
    refuse(`params ${unused.map((key) => JSON.stringify(key)).join(", ")} match no parameter in the statement`);
  }
  return { numberOfToken, values };
}

/**
 * A JavaScript number bound through sql.exec always becomes a REAL (so 1 would be stored as 1.0 and as '1.0' in a
 * TEXT column). Whole numbers are therefore written into the SQL as integer literals, as rqlite binds them.
 * "(n+0)" keeps a bare integer from meaning "column n" in ORDER BY / GROUP BY, has no affinity (like a bound
 * value), and cannot merge with a preceding "-" into a comment.
 */
function integerLiteral(value: number | bigint): string {
  return `(${value.toString()}+0)`;
}

// ---------------------------------------------------------------------------------------------------------------
// Rewriting

interface Edit {
  /** Index into the statement's tokens of the first token replaced. */
  readonly from: number;
  /** Index one past the last token replaced. */
  readonly to: number;
  readonly text: string;
}

/** An expression (tokens [from, to)) written into a template: `around` calls `inner` for each copy it needs. */
interface Wrap {
  readonly from: number;
  readonly to: number;
  readonly around: (inner: () => string) => string;
}

interface RewriteContext extends WriteContext {
  readonly isoNow: string;
}

function isoTimestamp(nowMs: number): string {
  if (!Number.isFinite(nowMs)) {
    refuse("the leader's clock reading is not a finite number");
  }
  const date = new Date(nowMs);
  if (Number.isNaN(date.getTime()) || date.getUTCFullYear() < 0 || date.getUTCFullYear() > 9999) {
    refuse(`the leader's clock reading ${nowMs} is outside SQLite's date range`);
  }
  // 2026-11-26T08:00:00.123Z -> 2026-11-26 08:00:00.123, the form SQLite prints and parses.
  return date.toISOString().replace("T", " ").replace("Z", "");
}

function randomInteger(context: RewriteContext): bigint {
  const bytes = takeRandomBytes(context, 8);
  let value = 0n;
  for (const byte of bytes) {
    value = (value << 8n) | BigInt(byte);
  }
  const signed = BigInt.asIntN(64, value);
  // -9223372036854775808 cannot be written as a literal (its magnitude overflows before the minus applies).
  return signed === -(2n ** 63n) ? signed + 1n : signed;
}

function takeRandomBytes(context: RewriteContext, length: number): Uint8Array {
  const bytes = context.randomBytes(length);
  if (!(bytes instanceof Uint8Array) || bytes.length !== length) {
    throw new Error(
      `randomBytes(${length}) returned ${bytes instanceof Uint8Array ? bytes.length : typeof bytes} bytes`,
    );
  }
  return bytes;
}

/** The top-level argument ranges [start, end) (indices into `significant`) of the call whose "(" is at `open`. */
function callArguments(significant: readonly SqlToken[], open: number, close: number): Array<[number, number]> {
  const args: Array<[number, number]> = [];
  let depth = 0;
  let start = open + 1;
  for (let i = open + 1; i < close; i += 1) {
    if (isPunct(significant[i], "(")) {
      depth += 1;
    } else if (isPunct(significant[i], ")")) {
      depth -= 1;
    } else if (depth === 0 && isPunct(significant[i], ",")) {
      args.push([start, i]);
      start = i + 1;
    }
  }
  if (close > open + 1) {
    args.push([start, close]);
  }
  return args;
}

function describeConstruct(name: string): string {
  return CURRENT_KEYWORDS.has(name) ? name : `${name.toLowerCase()}()`;
}

function storedDefinitionRefusal(construct: string): string {
  return (
    `${construct} in a stored definition (table default, view, trigger, index) would be evaluated separately on ` +
    "every replica and make them diverge; supply the value in the INSERT or UPDATE instead, where it is fixed once by the leader"
  );
}

/**
 * Finds the non-deterministic constructs of one statement and returns the edits that fix them (or refuses them in
 * stored definitions). `significant` holds the statement's significant tokens and `positions` their indices in the
 * full token list.
 */
function nondeterminismEdits(
  significant: readonly SqlToken[],
  positions: readonly number[],
  shape: StatementShape,
  plan: ParameterPlan,
  context: RewriteContext,
  isFirstStatement: boolean,
): { readonly edits: Edit[]; readonly wraps: Wrap[] } {
  const edits: Edit[] = [];
  const wraps: Wrap[] = [];
  const at = (i: number): number => positions[i] ?? -1;
  const valueOfParam = (i: number): SqlValue | undefined => {
    const number = plan.numberOfToken.get(at(i));
    return number === undefined ? undefined : plan.values.get(number);
  };
  for (let i = 0; i < significant.length; i += 1) {
    const token = significant[i];
    const keyword = keywordOf(token);
    if (token === undefined || keyword === null) {
      continue;
    }

    if (CURRENT_KEYWORDS.has(keyword)) {
      if (shape.storedDefinition) {
        refuse(storedDefinitionRefusal(keyword));
      }
      const [day, clock] = context.isoNow.split(" ") as [string, string];
      const literal =
        keyword === "CURRENT_DATE"
          ? day
          : keyword === "CURRENT_TIME"
            ? clock.slice(0, 8)
            : `${day} ${clock.slice(0, 8)}`;
      edits.push({ from: at(i), to: at(i) + 1, text: quoteSqlString(literal) });
      continue;
    }
    if (!isFunctionCall(significant, i, shape)) {
      continue;
    }
    const open = i + 1;
    const close = matchingParen(significant, open);
    if (close === -1) {
      continue;
    } // unbalanced: SQLite reports the syntax error
    const args = callArguments(significant, open, close);

    if (keyword === "TOTAL_CHANGES") {
      refuse("total_changes() depends on each node's connection history and is not supported in writes");
    }
    if ((keyword === "CHANGES" || keyword === "LAST_INSERT_ROWID") && isFirstStatement) {
      refuse(
        `${keyword.toLowerCase()}() in the first statement of a request depends on each node's history; use it after the statement it refers to, in the same request`,
      );
    }

    if (keyword === "RANDOM" && args.length === 0) {
      if (shape.storedDefinition) {
        refuse(storedDefinitionRefusal(describeConstruct(keyword)));
      }
      edits.push({ from: at(i), to: at(close) + 1, text: integerLiteral(randomInteger(context)) });
      i = close;
      continue;
    }
    if (keyword === "RANDOMBLOB" && args.length === 1) {
      if (shape.storedDefinition) {
        refuse(storedDefinitionRefusal(describeConstruct(keyword)));
      }
      const [start, end] = args[0] as [number, number];
      let length: number | undefined;
      if (end === start + 1) {
        const arg = significant[start];
        if (arg?.kind === "number" && /^[0-9]+$/.test(arg.text)) {
          length = Number(arg.text);
        } else if (arg?.kind === "param") {
          const value = valueOfParam(start);
          if (typeof value === "number" && Number.isSafeInteger(value)) {
            length = value;
          }
        }
      }
      if (length === undefined) {
        refuse("randomblob(N) needs N as an integer literal or integer parameter, so the leader can fix the bytes");
      }
      const bytes = Math.max(1, length); // SQLite: N < 1 gives one byte
      if (bytes * 2 + 3 > SQL_LIMITS.maxStatementBytes) {
        refuse(
          `randomblob(${length}) would not fit in a ${SQL_LIMITS.maxStatementBytes}-byte statement once fixed as a literal`,
        );
      }
      edits.push({ from: at(i), to: at(close) + 1, text: `x'${bytesToHex(takeRandomBytes(context, bytes))}'` });
      i = close;
      continue;
    }
    const timeFunction = TIME_FUNCTIONS.get(keyword);
    if (timeFunction === undefined) {
      continue;
    }
    const timeLiteral = quoteSqlString(context.isoNow);
    if (args.length <= timeFunction.firstTimeArg) {
      // No time value given: SQLite uses the clock.
      if (shape.storedDefinition) {
        refuse(storedDefinitionRefusal(describeConstruct(keyword)));
      }
      const closeToken = at(close);
      edits.push({
        from: closeToken,
        to: closeToken + 1,
        text: args.length === 0 ? `${timeLiteral})` : `, ${timeLiteral})`,
      });
      i = close;
      continue;
    }
    for (const argIndex of timeFunction.timeArgs) {
      const range = args[argIndex];
      if (range === undefined) {
        continue;
      }
      const name = keyword.toLowerCase();
      const value = timeValueOf(significant, range, valueOfParam);
      if (value === "quoted-now") {
        refuse(`"now" in ${name}() is ambiguous (a column, or by SQLite's legacy rule the string 'now'); write 'now'`);
      }
      if (value === "literal") {
        continue;
      }
      if (value === "now" || value === "subsec") {
        if (shape.storedDefinition) {
          refuse(storedDefinitionRefusal(`${name}('${value}')`));
        }
        // 'subsec' as the time value is the clock read with fractional seconds kept: the same with the modifier.
        const text = value === "now" ? timeLiteral : `${timeLiteral}, 'subsec'`;
        edits.push({ from: at(range[0]), to: at(range[0]) + 1, text });
        continue;
      }
      // An expression (a column, a concatenation, upper('now'), ...) may turn out to be 'now' on each replica, which
      // would then read its own clock. Stored definitions evaluated later cannot be fixed once: refuse them there,
      // except where SQLite itself refuses a clock read (CHECK, generated columns, indexes: "non-deterministic use
      // of date()"), which fails alike on every replica.
      if (shape.storedDefinition && evaluatedLaterWithClock(significant, shape, i)) {
        refuse(
          `${name}() with a time value that is not a literal, in a stored definition (table default, view, trigger), ` +
            "would read each replica's clock whenever the value is 'now'; use a literal time value there, or compute the value in the INSERT or UPDATE",
        );
      }
      if (shape.storedDefinition) {
        continue;
      }
      // SQLite takes a time value equal to 'now', 'subsec' or 'subsecond' (ASCII case-insensitive, up to a NUL:
      // date.c parseDateOrTime) as the clock. LIKE without wildcards is that same comparison, so the value becomes
      // the leader's time exactly when SQLite would read the clock. (A 'subsec' value loses its fractional
      // seconds here: deterministic, and rare enough.) Evaluating the expression more than once is harmless:
      // non-deterministic functions are fixed or refused above. Modifiers stay as they are: 'localtime' and 'utc'
      // convert with the node's time zone, which is UTC on every Worker, so they agree on every replica.
      wraps.push({
        from: at(range[0]),
        to: at(range[1] - 1) + 1,
        around: (inner) =>
          `CASE WHEN (${inner()}) LIKE 'now' OR (${inner()}) LIKE 'subsec' OR (${inner()}) LIKE 'subsecond' THEN ${timeLiteral} ELSE (${inner()}) END`,
      });
    }
  }
  return { edits, wraps };
}

type TimeValue = "literal" | "now" | "subsec" | "quoted-now" | "expression";

/** What a time-value argument is: a fixed literal, the clock ('now', 'subsec'), or an expression known only later. */
function timeValueOf(
  significant: readonly SqlToken[],
  range: readonly [number, number],
  valueOfParam: (i: number) => SqlValue | undefined,
): TimeValue {
  if (range[1] !== range[0] + 1) {
    return "expression";
  }
  const arg = significant[range[0]];
  if (arg === undefined) {
    return "expression";
  }
  let text: string;
  if (arg.kind === "string") {
    text = arg.value;
  } else if (arg.kind === "param") {
    const value = valueOfParam(range[0]);
    if (typeof value !== "string") {
      return "literal";
    } // a number, NULL or bytes never reads the clock
    text = value;
  } else if (arg.kind === "number" || arg.kind === "blob") {
    return "literal";
  } else if (arg.kind === "quoted") {
    return arg.value.toLowerCase() === "now" ? "quoted-now" : "expression";
  } else {
    const keyword = keywordOf(arg);
    if (
      keyword === "NULL" ||
      keyword === "TRUE" ||
      keyword === "FALSE" ||
      (keyword !== null && CURRENT_KEYWORDS.has(keyword))
    ) {
      return "literal";
    }
    return "expression";
  }
  const clock = clockWord(text);
  return clock ?? "literal";
}

/** 'now' or 'subsec' when SQLite reads `text` as the clock (ASCII case-insensitive, up to the first NUL). */
function clockWord(text: string): "now" | "subsec" | null {
  const nul = text.indexOf("\u0000");
  const lower = (nul === -1 ? text : text.slice(0, nul)).replace(/[A-Z]/g, (c) => c.toLowerCase());
  if (lower === "now") {
    return "now";
  }
  if (lower === "subsec" || lower === "subsecond") {
    return "subsec";
  }
  return null;
}

/**
 * Whether a call at `i` in a stored definition would be evaluated later in a context where SQLite lets it read the
 * clock: anywhere in a view or trigger; in a table only inside a DEFAULT (...) (CHECK, generated columns and index
 * expressions are evaluated as pure functions: SQLite refuses 'now' there on every replica alike).
 */
function evaluatedLaterWithClock(significant: readonly SqlToken[], shape: StatementShape, i: number): boolean {
  if (shape.verb === "CREATE") {
    const object = createTarget(significant).object;
    if (object === "INDEX") {
      return false;
    }
    if (object !== "TABLE") {
      return true;
    }
  }
  if (shape.verb !== "CREATE" && shape.verb !== "ALTER") {
    return true;
  }
  const defaults: boolean[] = [];
  for (let j = 0; j < i; j += 1) {
    if (isPunct(significant[j], "(")) {
      defaults.push(keywordOf(significant[j - 1]) === "DEFAULT" || defaults[defaults.length - 1] === true);
    } else if (isPunct(significant[j], ")")) {
      defaults.pop();
    }
  }
  return defaults[defaults.length - 1] === true;
}

// ---------------------------------------------------------------------------------------------------------------
// Preparing one statement

interface PrepareOptions {
  readonly mode: "write" | "read";
  readonly context?: RewriteContext;
  readonly isFirstStatement: boolean;
}

function prepareStatement(statement: Statement, options: PrepareOptions): Statement {
  if (typeof statement !== "object" || statement === null || typeof statement.sql !== "string") {
    refuse("a statement needs an sql string");
  }
  const inputBytes = utf8ByteLength(statement.sql);
  if (inputBytes > SQL_LIMITS.maxStatementBytes) {
    refuse(`the statement is ${inputBytes} bytes; at most ${SQL_LIMITS.maxStatementBytes} are allowed`);
  }
  let tokens: SqlToken[];
  try {
    tokens = tokenizeSql(statement.sql);
  } catch (error) {
    if (error instanceof SqlSyntaxError) {
      refuse(error.message);
    }
    throw error;
  }
  const statements = splitTokensIntoStatements(tokens);
  if (statements.length === 0) {
    refuse("the statement is empty");
  }
  if (statements.length > 1) {
    refuse("only one SQL statement per entry is supported; send several statements as separate entries");
  }

  const positions: number[] = [];
  tokens.forEach((token, index) => {
    if (isSignificant(token) && token.kind !== "semicolon") {
      positions.push(index);
    }
  });
  const significant = positions.map((index) => tokens[index] as SqlToken);
  const shape = shapeOf(significant);

  // Checked here, on the way in only (never when applying: entries already in a log keep their meaning). SQLite reads
  // SQL text only up to a NUL: cut inside a comment, what is left is a shorter statement that runs (`DELETE FROM t
  // /* NUL */ WHERE ...` deleted every row); cut inside a literal, an "unrecognized token" error that says nothing of
  // why. Refused wherever it is, with the way to store such text.
  if (tokens.some((token) => token.text.includes("\u0000"))) {
    refuse(
      "the SQL holds a NUL character; SQLite would read only the text before it (pass text with NUL as a parameter)",
    );
  }
  const hazard = hazardIn(significant, shape);
  if (hazard !== null) {
    refuse(hazard);
  }
  if (options.mode === "read" && shape.access === "write") {
    // Text that starts with no statement keyword is not a write: say what SQLite would say of it.
    if (!STATEMENT_VERBS.has(shape.verb)) {
      refuse(`near ${JSON.stringify(significant[0]?.text ?? "")}: syntax error`);
    }
    refuse(READ_ONLY_VIOLATION);
  }

  const plan = planParameters(tokens, statement.params);
  const fixes =
    options.mode === "write" && options.context !== undefined
      ? nondeterminismEdits(significant, positions, shape, plan, options.context, options.isFirstStatement)
      : { edits: [], wraps: [] };
  const edits = [...userSchemaEdits(tokens, significant, positions, shape), ...fixes.edits];
  const aliases = resultColumnAliases(tokens, significant, positions, plan);
  return render(tokens, positions, { edits, wraps: fixes.wraps, aliases }, plan);
}

// ---------------------------------------------------------------------------------------------------------------
// The schema as users see it

/** Marks a reference this module wrote, so that preparing a prepared statement again leaves it alone. */
const USER_OBJECTS_MARK = "/*user objects only*/";
const SQL_INTERNAL_NAME_FILTER = INTERNAL_PREFIXES.map((prefix) => `name NOT GLOB '${prefix}*'`).join(" AND ");
const SQL_INTERNAL_TABLE_FILTER = INTERNAL_PREFIXES.map((prefix) => `tbl_name NOT GLOB '${prefix}*'`).join(" AND ");
const SCHEMA_TABLES = new Set(["sqlite_master", "sqlite_schema"]);
/** Words that may follow a table in a FROM clause; anything else there is the table's alias. */
const AFTER_TABLE_KEYWORDS = new Set([
  "WHERE",
  "GROUP",
  "ORDER",
  "LIMIT",
  "HAVING",
  "WINDOW",
  "JOIN",
  "LEFT",
  "RIGHT",
  "FULL",
  "INNER",
  "CROSS",
  "NATURAL",
  "OUTER",
  "ON",
  "USING",
  "UNION",
  "INTERSECT",
  "EXCEPT",
  "INDEXED",
  "NOT",
  "RETURNING",
  "SET",
  "VALUES",
  "SELECT",
  "DO",
  "WHEN",
  "THEN",
  "ELSE",
  "END",
]);

function hasAlias(next: SqlToken | undefined): boolean {
  if (next === undefined) {
    return false;
  }
  if (next.kind === "quoted") {
    return true;
  }
  const keyword = keywordOf(next);
  return keyword !== null && (keyword === "AS" || !AFTER_TABLE_KEYWORDS.has(keyword));
}

function isTablePosition(significant: readonly SqlToken[], i: number, shape: StatementShape): boolean {
  const previous = significant[i - 1];
  const keyword = keywordOf(previous);
  // DELETE FROM sqlite_master: SQLite's own refusal is clearer than a rewritten statement's syntax error.
  if (keyword === "FROM" && i - 1 === 1 && shape.verb === "DELETE") {
    return false;
  }
  return keyword === "FROM" || keyword === "JOIN" || isPunct(previous, ",");
}

/**
 * The platform keeps its own tables in the user's database (_cf_KV, _cf_METADATA; locally Miniflare's
 * __miniflare_do_name). Users must see only their own objects: every read of sqlite_master / sqlite_schema (and of
 * pragma_table_list) in a FROM clause becomes a subquery that leaves internal objects out, under the same name.
 * Writes are rewritten too, so every replica copies the same rows whatever its platform's tables.
 */
function userSchemaEdits(
  tokens: readonly SqlToken[],
  significant: readonly SqlToken[],
  positions: readonly number[],
  shape: StatementShape,
): Edit[] {
  const edits: Edit[] = [];
  const at = (i: number): number => positions[i] ?? -1;
  for (let i = 0; i < significant.length; i += 1) {
    const token = significant[i];
    if (token === undefined || (token.kind !== "word" && token.kind !== "quoted")) {
      continue;
    }
    const name = token.value.toLowerCase();
    if (tokens[at(i) + 1]?.text === USER_OBJECTS_MARK) {
      continue;
    }
    const qualified = isPunct(significant[i - 1], ".");
    if (qualified && significant[i - 2]?.value.toLowerCase() !== "main") {
      continue;
    }
    const first = qualified ? i - 2 : i;
    if (!isTablePosition(significant, first, shape) || isPunct(significant[i + 1], ".")) {
      continue;
    }
    if (SCHEMA_TABLES.has(name)) {
      const alias = hasAlias(significant[i + 1]) ? "" : ` AS ${token.text}`;
      const text = `(SELECT type, name, tbl_name, rootpage, sql FROM main.sqlite_schema${USER_OBJECTS_MARK} WHERE ${SQL_INTERNAL_NAME_FILTER} AND ${SQL_INTERNAL_TABLE_FILTER})${alias}`;
      edits.push({ from: at(first), to: at(i) + 1, text });
    } else if (name === "pragma_table_list" && !qualified) {
      const close = isPunct(significant[i + 1], "(") ? matchingParen(significant, i + 1) : i;
      if (close === -1) {
        continue;
      }
      const alias = hasAlias(significant[close + 1]) ? "" : ` AS ${token.text}`;
      const head = `(SELECT * FROM pragma_table_list${USER_OBJECTS_MARK}`;
      const tail = ` WHERE ${SQL_INTERNAL_NAME_FILTER})${alias}`;
      if (close === i) {
        edits.push({ from: at(i), to: at(i) + 1, text: `${head}${tail}` });
      } else {
        // Two edits, so that the arguments (parameters included) stay as they are.
        edits.push({ from: at(i), to: at(i) + 1, text: head });
        edits.push({ from: at(close), to: at(close) + 1, text: `)${tail}` });
      }
    }
  }
  return edits;
}

/** Whether a parameter's value is written into the SQL as an integer literal rather than bound (see render). */
function isInlinedInteger(value: SqlValue | undefined): boolean {
  return (
    (typeof value === "number" && Number.isSafeInteger(value) && !Object.is(value, -0)) || typeof value === "bigint"
  );
}

/** Keywords that end a SELECT's result column list at its own depth. */
const AFTER_RESULT_COLUMNS = new Set([
  "FROM",
  "WHERE",
  "GROUP",
  "HAVING",
  "ORDER",
  "LIMIT",
  "WINDOW",
  "UNION",
  "INTERSECT",
  "EXCEPT",
  "ON",
  "RETURNING",
]);

/**
 * SQLite names an unaliased result column by its text: `SELECT ?` gives "?", `SELECT $first` gives "$first". An
 * integer parameter written into the SQL as a literal would rename it "(1+0)", and a named or numbered parameter
 * made positional would rename it "?" (two such columns would then share a name, and an associative row would keep
 * one of them): such columns get their text as written for an alias, as rqlite names them. Returns, by the index one
 * past a column's last token, the alias to append. A column ending in a word (an implicit alias, or NULL of IS NULL)
 * is left alone.
 */
function resultColumnAliases(
  tokens: readonly SqlToken[],
  significant: readonly SqlToken[],
  positions: readonly number[],
  plan: ParameterPlan,
): Map<number, string> {
  const aliases = new Map<number, string>();
  const at = (i: number): number => positions[i] ?? -1;
  const considerColumn = (first: number, last: number): void => {
    if (last < first) {
      return;
    }
    let renamed = false;
    for (let k = first; k <= last && !renamed; k += 1) {
      const number = plan.numberOfToken.get(at(k));
      if (number !== undefined && (isInlinedInteger(plan.values.get(number)) || significant[k]?.text !== "?")) {
        renamed = true;
      }
    }
    if (!renamed) {
      return;
    }
    const end = significant[last];
    if (end === undefined || end.kind === "word" || end.kind === "quoted") {
      return;
    }
    const text = tokens
      .slice(at(first), at(last) + 1)
      .map((token) => token.text)
      .join("");
    aliases.set(at(last) + 1, ` AS ${quoteSqlIdentifier(text)}`);
  };
  for (let i = 0; i < significant.length; i += 1) {
    if (keywordOf(significant[i]) !== "SELECT") {
      continue;
    }
    let j = i + 1;
    if (keywordOf(significant[j]) === "DISTINCT" || keywordOf(significant[j]) === "ALL") {
      j += 1;
    }
    let depth = 0;
    let columnStart = j;
    for (; j < significant.length; j += 1) {
      const token = significant[j];
      if (isPunct(token, "(")) {
        depth += 1;
      } else if (isPunct(token, ")")) {
        if (depth === 0) {
          break;
        }
        depth -= 1;
      } else if (depth === 0 && isPunct(token, ",")) {
        considerColumn(columnStart, j - 1);
        columnStart = j + 1;
      } else if (depth === 0 && AFTER_RESULT_COLUMNS.has(keywordOf(token) ?? "")) {
        break;
      }
    }
    considerColumn(columnStart, j - 1);
  }
  return aliases;
}

/** Rebuilds the statement text with the edits applied and every remaining parameter made positional. */
function render(
  tokens: readonly SqlToken[],
  positions: readonly number[],
  changes: {
    readonly edits: readonly Edit[];
    readonly wraps: readonly Wrap[];
    readonly aliases: ReadonlyMap<number, string>;
  },
  plan: ParameterPlan,
): Statement {
  const firstSignificant = positions[0] ?? 0;
  const lastSignificant = positions[positions.length - 1] ?? -1;
  // Keep leading comments (they may matter to whoever reads the log), drop leading space and anything after the
  // last significant token (the terminating semicolon, trailing comments).
  let start = 0;
  while (start < firstSignificant && tokens[start]?.kind === "space") {
    start += 1;
  }
  const byStart = new Map(changes.edits.map((edit) => [edit.from, edit]));
  // At most one wrap starts at a token: each wraps one argument of one call, which starts after its "(" or ",".
  const wrapByStart = new Map(changes.wraps.map((wrap) => [wrap.from, wrap]));
  const params: SqlValue[] = [];
  // Tokens [from, to); a wrap starting at `from` itself is not applied again (it is the one being rendered).
  const renderRange = (from: number, to: number, inside: Wrap | null): string => {
    let sql = "";
    for (let i = from; i < to;) {
      const wrap = wrapByStart.get(i);
      if (wrap !== undefined && wrap !== inside) {
        sql += wrap.around(() => renderRange(wrap.from, wrap.to, wrap));
        i = wrap.to;
        continue;
      }
      const edit = byStart.get(i);
      if (edit !== undefined) {
        sql += edit.text;
        i = edit.to;
        continue;
      }
      const token = tokens[i] as SqlToken;
      const number = plan.numberOfToken.get(i);
      if (number !== undefined) {
        const value = plan.values.get(number) ?? null;
        // 64-bit integers become literals too: the platform cannot bind a bigint, and a double would round it.
        // -0 is a REAL (JSON -0.0): bound as the double it is, not written as the integer 0.
        if (isInlinedInteger(value)) {
          sql += integerLiteral(value as number | bigint);
        } else {
          sql += "?";
          params.push(value);
        }
      } else {
        sql += token.text;
      }
      i += 1;
      sql += changes.aliases.get(i) ?? "";
    }
    return sql;
  };
  const sql = renderRange(start, lastSignificant + 1, null);
  const outputBytes = utf8ByteLength(sql);
  if (outputBytes > SQL_LIMITS.maxStatementBytes) {
    refuse(
      `the statement is ${outputBytes} bytes once made deterministic; at most ${SQL_LIMITS.maxStatementBytes} are allowed`,
    );
  }
  if (params.length > SQL_LIMITS.maxBoundParameters) {
    refuse(`the statement binds ${params.length} values; at most ${SQL_LIMITS.maxBoundParameters} are allowed`);
  }
  return params.length === 0 ? { sql } : { sql, params };
}

function checkStatementList(statements: unknown): asserts statements is readonly Statement[] {
  if (!Array.isArray(statements)) {
    refuse("statements must be an array");
  }
  if (statements.length === 0) {
    refuse("the request has no statements");
  }
  if (statements.length > SQL_LIMITS.maxStatementsPerRequest) {
    refuse(
      `the request has ${statements.length} statements; at most ${SQL_LIMITS.maxStatementsPerRequest} are allowed`,
    );
  }
}

/**
 * Validates and rewrites a write request on the leader, before it is proposed. On refusal nothing is logged and the
 * error says why. The returned request is what every replica applies: deterministic SQL, positional parameters.
 */
export function prepareWrite(request: SqlRequest, context: WriteContext): PrepareWriteResult {
  try {
    if (typeof request.id !== "string" || request.id.length === 0 || request.id.length > MAX_REQUEST_ID_LENGTH) {
      refuse(`the request id must be a string of 1 to ${MAX_REQUEST_ID_LENGTH} characters`);
    }
    if (typeof request.transaction !== "boolean") {
      refuse("transaction must be a boolean");
    }
    checkStatementList(request.statements);
    const rewriteContext: RewriteContext = { ...context, isoNow: isoTimestamp(context.nowMs) };
    let defers = false;
    const statements = request.statements.map((statement, i) => {
      try {
        const prepared = prepareStatement(statement, {
          mode: "write",
          context: rewriteContext,
          isFirstStatement: i === 0,
        });
        if (setsDeferForeignKeys(prepared.sql)) {
          if (!request.transaction) {
            refuse(DEFER_NEEDS_TRANSACTION);
          }
          defers = true;
        }
        return prepared;
      } catch (error) {
        if (error instanceof Refusal) {
          refuse(`statements[${i}]: ${error.message}`);
        }
        throw error;
      }
    });
    return {
      ok: true,
      request: {
        id: request.id,
        transaction: request.transaction,
        statements,
        fingerprint: requestFingerprint(request),
        ...(defers ? { defersForeignKeys: true as const } : {}),
      },
    };
  } catch (error) {
    if (error instanceof Refusal) {
      return { ok: false, error: error.message };
    }
    throw error;
  }
}

/**
 * Validates read statements for the query path: writes are refused with rqlite's message, internal objects and
 * unsafe constructs as for writes. Parameters become positional. Non-deterministic functions stay: reads are local.
 */
export function prepareRead(statements: readonly Statement[]): PrepareReadResult {
  try {
    checkStatementList(statements);
    const prepared = statements.map((statement, i) => {
      try {
        return prepareStatement(statement, { mode: "read", isFirstStatement: i === 0 });
      } catch (error) {
        if (error instanceof Refusal) {
          if (error.message === READ_ONLY_VIOLATION) {
            refuse(READ_ONLY_VIOLATION);
          }
          refuse(`statements[${i}]: ${error.message}`);
        }
        throw error;
      }
    });
    return { ok: true, statements: prepared };
  } catch (error) {
    if (error instanceof Refusal) {
      return { ok: false, error: error.message };
    }
    throw error;
  }
}
