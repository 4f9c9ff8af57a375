// What kind of statement a SQL text is, from its tokens alone: the node decides from this how to run it (read path
// or log, hazards, rewriting), and the worker which route a statement takes before any node sees it. SQLite itself
// (sqlite3_stmt_readonly) is not reachable from the worker, so both read the same tokens the same way here.
//
// Statement verbs fall in three groups: those that only read (SELECT, VALUES, EXPLAIN), those that always write
// (DML, DDL, transaction control, ATTACH/DETACH, VACUUM, REINDEX, ANALYZE), and two whose effect depends on what
// follows: WITH (the statement after the common table expressions) and PRAGMA (which one, and whether it assigns).
// The node resolves all three (StatementShape.access), and the worker routes with the same answer: /db/request takes
// the read path when every statement reads as the node sees it (isReadStatement), as rqlite asks SQLite whether a
// statement is read-only; on /db/query the worker answers what the node would classify as a write itself
// (isWriteOnQueryPath).
import { splitTokensIntoStatements } from "./split";
import {
  isPunct,
  isSignificant,
  keywordOf,
  significantTokens,
  SqlSyntaxError,
  streamTokens,
  tokenizeSql,
  type SqlToken,
} from "./tokenizer";

export interface StatementShape {
  /** The first keyword, upper case ("" when there is none). */
  readonly verb: string;
  /** The statement that runs: for WITH ... the keyword after the common table expressions. */
  readonly mainVerb: string;
  readonly access: "read" | "write";
  /** INSERT, UPDATE, DELETE or REPLACE: rowsAffected and lastInsertId mean something. */
  readonly isDml: boolean;
  /** CREATE, DROP or ALTER: the schema may change. */
  readonly changesSchema: boolean;
  /** A definition stored in the schema and evaluated later (CREATE TABLE (...), VIEW, TRIGGER, INDEX, ALTER). */
  readonly storedDefinition: boolean;
  /** For PRAGMA statements: which one, on which schema, with what. */
  readonly pragma?: PragmaShape;
}

// PRAGMAs that only read. Those in the first set take a table/index name or limit as argument; the others take none
// (with an argument they would set something).
export const READ_PRAGMAS_WITH_ARGUMENT = new Set([
  "table_info",
  "table_xinfo",
  "table_list",
  "index_list",
  "index_info",
  "index_xinfo",
  "foreign_key_list",
  "foreign_key_check",
  "integrity_check",
  "quick_check",
]);
const READ_PRAGMAS_WITHOUT_ARGUMENT = new Set([
  ...READ_PRAGMAS_WITH_ARGUMENT,
  "foreign_keys",
  "defer_foreign_keys",
  // Answered by the node itself (pragmas.ts): the platform refuses it, and it is always 0 here.
  "read_uncommitted",
  "ignore_check_constraints",
  "legacy_alter_table",
  "reverse_unordered_selects",
  "recursive_triggers",
  "user_version",
  "schema_version",
  "application_id",
  "page_size",
  "page_count",
  "freelist_count",
  "data_version",
  "encoding",
  "collation_list",
  "function_list",
  "module_list",
  "pragma_list",
  "compile_options",
  "database_list",
]);

export const TRANSACTION_VERBS = new Set(["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"]);
export const READ_VERBS = new Set(["SELECT", "VALUES"]);
export const DML_VERBS = new Set(["INSERT", "UPDATE", "DELETE", "REPLACE"]);
export const SCHEMA_VERBS = new Set(["CREATE", "DROP", "ALTER"]);
/** Every keyword a SQLite statement can start with. */
export const STATEMENT_VERBS = new Set([
  ...TRANSACTION_VERBS,
  ...READ_VERBS,
  ...DML_VERBS,
  ...SCHEMA_VERBS,
  "WITH",
  "EXPLAIN",
  "PRAGMA",
  "ATTACH",
  "DETACH",
  "VACUUM",
  "REINDEX",
  "ANALYZE",
]);

/** Index in `significant` of the keyword that runs (past WITH's common table expressions), or -1. */
export function mainVerbIndex(significant: readonly SqlToken[]): number {
  if (keywordOf(significant[0]) !== "WITH") {
    return 0;
  }
  let depth = 0;
  for (let i = 1; i < significant.length; i += 1) {
    const token = significant[i];
    if (isPunct(token, "(")) {
      depth += 1;
    } else if (isPunct(token, ")")) {
      depth -= 1;
    } else if (depth === 0) {
      const keyword = keywordOf(token);
      if (keyword !== null && (READ_VERBS.has(keyword) || DML_VERBS.has(keyword))) {
        return i;
      }
    }
  }
  return -1;
}

export interface PragmaShape {
  /** Lower case. */
  readonly name: string;
  /** The schema it names (lower case: "main", "temp"), or null when none is named. */
  readonly schema: string | null;
  readonly hasArgument: boolean;
  /** The argument when it is one token (a name, string or number), unquoted; null otherwise. */
  readonly argument: string | null;
  readonly assigns: boolean;
  /** What `= value` or `(value)` gives it when that is one token (a name, string or number), unquoted; else null. */
  readonly value: string | null;
}

export function pragmaShape(significant: readonly SqlToken[]): PragmaShape {
  let i = 1;
  let schema: string | null = null;
  if (isPunct(significant[i + 1], ".")) {
    schema = significant[i]?.value.toLowerCase() ?? null;
    i += 2;
  }
  const name = significant[i]?.value.toLowerCase() ?? "";
  const next = significant[i + 1];
  const hasArgument = isPunct(next, "(");
  const argument = hasArgument && isPunct(significant[i + 3], ")") ? (significant[i + 2]?.value ?? null) : null;
  const assigns = isPunct(next, "=");
  const assigned = assigns && significant.length === i + 3 ? (significant[i + 2]?.value ?? null) : null;
  return { name, schema, hasArgument, argument, assigns, value: assigns ? assigned : argument };
}

function isReadOnlyPragma(shape: PragmaShape): boolean {
  if (shape.assigns) {
    return false;
  }
  if (shape.hasArgument) {
    return READ_PRAGMAS_WITH_ARGUMENT.has(shape.name);
  }
  return READ_PRAGMAS_WITHOUT_ARGUMENT.has(shape.name);
}

/** The object a CREATE makes, and whether a CREATE TABLE is CREATE TABLE ... AS SELECT. */
export function createTarget(significant: readonly SqlToken[]): {
  readonly object: string;
  readonly asSelect: boolean;
} {
  let i = 1;
  while (["TEMP", "TEMPORARY", "UNIQUE", "VIRTUAL"].includes(keywordOf(significant[i]) ?? "")) {
    i += 1;
  }
  const object = keywordOf(significant[i]) ?? "";
  if (object !== "TABLE") {
    return { object, asSelect: false };
  }
  i += 1;
  if (keywordOf(significant[i]) === "IF") {
    i += 3;
  } // IF NOT EXISTS
  i += isPunct(significant[i + 1], ".") ? 3 : 1; // [schema.]name
  return { object, asSelect: keywordOf(significant[i]) === "AS" };
}

/** The shape of one statement, given its significant tokens. */
export function shapeOf(significant: readonly SqlToken[]): StatementShape {
  const verb = keywordOf(significant[0]) ?? "";
  const mainVerb = keywordOf(significant[mainVerbIndex(significant)]) ?? "";
  let access: "read" | "write" = "write";
  if (verb === "EXPLAIN" || READ_VERBS.has(mainVerb)) {
    access = "read";
  } else if (verb === "PRAGMA" && isReadOnlyPragma(pragmaShape(significant))) {
    access = "read";
  }
  const changesSchema = SCHEMA_VERBS.has(verb);
  let storedDefinition = verb === "ALTER";
  if (verb === "CREATE") {
    storedDefinition = !createTarget(significant).asSelect;
  }
  const shape = {
    verb,
    mainVerb,
    access,
    isDml: verb !== "EXPLAIN" && DML_VERBS.has(mainVerb),
    changesSchema,
    storedDefinition,
  };
  return verb === "PRAGMA" ? { ...shape, pragma: pragmaShape(significant) } : shape;
}

/** How a statement is handled: "read" (SELECT, WITH ... SELECT, VALUES, EXPLAIN, read-only PRAGMA) or "write". */
export function classifyStatement(sql: string): "read" | "write" {
  try {
    const statements = splitTokensIntoStatements(tokenizeSql(sql));
    if (statements.length !== 1 || statements[0] === undefined) {
      return "write";
    }
    return shapeOf(significantTokens(statements[0])).access;
  } catch (error) {
    if (error instanceof SqlSyntaxError) {
      return "write";
    }
    throw error;
  }
}

export const UNKNOWN_SHAPE: StatementShape = {
  verb: "",
  mainVerb: "",
  access: "write",
  isDml: false,
  changesSchema: false,
  storedDefinition: false,
};

/** The shape of one (already validated) statement; never throws (unparseable text gets a neutral "write" shape). */
export function describeStatement(sql: string): StatementShape {
  try {
    const statements = splitTokensIntoStatements(tokenizeSql(sql));
    if (statements.length !== 1 || statements[0] === undefined) {
      return UNKNOWN_SHAPE;
    }
    return shapeOf(significantTokens(statements[0]));
  } catch (error) {
    if (error instanceof SqlSyntaxError) {
      return UNKNOWN_SHAPE;
    }
    throw error;
  }
}

/**
 * The first keyword, past whitespace, comments and opening parentheses, upper-cased ("" when the text starts with
 * anything else). Reads only as many tokens as it needs, so text that fails to tokenize later still has one.
 */
export function leadingKeyword(sql: string): string {
  try {
    for (const token of streamTokens(sql)) {
      if (!isSignificant(token) || isPunct(token, "(")) {
        continue;
      }
      return keywordOf(token) ?? "";
    }
    return "";
  } catch (error) {
    if (error instanceof SqlSyntaxError) {
      return "";
    }
    throw error;
  }
}

/** The verbs that only read whatever follows them. */
const ALWAYS_READ_VERBS = new Set([...READ_VERBS, "EXPLAIN"]);
/** Whether a statement surely only reads, from its first keyword alone: SELECT, VALUES or EXPLAIN. */
export function isSurelyReadOnly(sql: string): boolean {
  return ALWAYS_READ_VERBS.has(leadingKeyword(sql));
}

/**
 * The worker's routing rule for /db/request: a statement is served on the read path when the node would serve it as a
 * read (its shape only reads: what inspectStatement checks there). SELECT, VALUES and EXPLAIN are known at a glance;
 * WITH and PRAGMA, which may read or write, are read in full. Text the node cannot take as one statement has a write
 * shape and goes through the log, where the node says what is wrong with it.
 */
export function isReadStatement(sql: string): boolean {
  return isSurelyReadOnly(sql) || describeStatement(sql).access === "read";
}

/**
 * The worker's rule on /db/query: a statement the node would classify as a write (WITH ... DELETE and a PRAGMA that
 * sets something included) answers rqlite's "attempt to change database via query operation" in its place. Text that
 * starts with no statement keyword, or holds several statements, is left to the node, which says what is wrong.
 */
export function isWriteOnQueryPath(sql: string): boolean {
  // Most reads say so in their first token: tokenize the whole text only for the rest.
  if (isSurelyReadOnly(sql)) {
    return false;
  }
  const shape = describeStatement(sql);
  return shape.access === "write" && STATEMENT_VERBS.has(shape.verb);
}
