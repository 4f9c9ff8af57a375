// SQL text backups in the form of SQLite's .dump (what rqlite serves for GET /db/backup?fmt=sql), and the parser that
// turns such a text back into statements for one transactional request (/db/load).
import type { SqlValue, Statement } from "../../shared/sql";
import { listSchemaObjects, listTables, qualifiedColumns, rowsOf, type TableInfo } from "../sqlite/catalog";
import { createTarget } from "../../shared/sql-text/classify";
import { statementText, streamStatements } from "../../shared/sql-text/split";
import {
  isSignificant,
  keywordOf,
  quoteSqlIdentifier,
  SqlSyntaxError,
  streamTokens,
  type SqlToken,
} from "../../shared/sql-text/tokenizer";
import { bytesToHex, utf8ByteLength } from "../sqlite/values";
import { LostTextRecovery, scanOrder } from "./exact-text";

export interface DumpOptions {
  /** Refuse to build a dump larger than this many UTF-8 bytes (it is built in memory). */
  readonly maxBytes?: number;
}

export const DEFAULT_MAX_DUMP_BYTES = 64 * 1024 * 1024;

export class DumpError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DumpError";
  }
}

class BoundedText {
  private readonly parts: string[] = [];
  private bytes = 0;

  constructor(private readonly maxBytes: number) {}

  line(text: string): void {
    this.bytes += utf8ByteLength(text) + 1;
    if (this.bytes > this.maxBytes) {
      throw new DumpError(`the dump is larger than ${this.maxBytes} bytes`);
    }
    this.parts.push(text);
  }

  toString(): string {
    return `${this.parts.join("\n")}\n`;
  }
}

/**
 * SQL that renders a column's value as a literal that reads back exactly: quote() does, except for TEXT holding a
 * NUL character, which quote() cuts at the NUL. Such text is written as its UTF-8 bytes cast to TEXT. So is text
 * whose bytes are not valid UTF-8 (exact-text.ts): its quote() reaches JS with U+FFFD in place of those bytes.
 */
function exactLiteral(column: string): string {
  return `CASE WHEN typeof(${column}) = 'text' AND instr(${column}, char(0)) > 0 THEN 'CAST(X''' || hex(${column}) || ''' AS TEXT)' ELSE quote(${column}) END`;
}

function bytesAsTextLiteral(bytes: Uint8Array): string {
  return `CAST(X'${bytesToHex(bytes).toUpperCase()}' AS TEXT)`;
}

function dumpRows(sql: SqlStorage, table: TableInfo, out: BoundedText): void {
  if (table.columns.length === 0) {
    return;
  }
  const quoted = table.columns.map((column) => exactLiteral(quoteSqlIdentifier(column))).join(", ");
  const target = table.hasHiddenColumns
    ? `${quoteSqlIdentifier(table.name)}(${qualifiedColumns(table.columns)})`
    : quoteSqlIdentifier(table.name);
  // An order the second cursor of LostTextRecovery meets the rows in too (by rowid, as before, when there is one).
  const order = scanOrder(sql, table);
  const recovery = new LostTextRecovery(sql, table.name, table.columns, order);
  for (const row of sql.exec(`SELECT ${quoted} FROM ${quoteSqlIdentifier(table.name)}${order.orderBy}`).raw()) {
    const literals = row.map((value) => String(value));
    recoverText(table, recovery, literals)?.forEach((bytes, i) => {
      literals[i] = bytesAsTextLiteral(bytes);
    });
    out.line(`INSERT INTO ${target} VALUES(${literals.join(",")});`);
  }
  recoverText(table, recovery, null);
}

/** exactTexts for a row, or (row null) the end of the table; a failure is the dump's. */
function recoverText(
  table: TableInfo,
  recovery: LostTextRecovery,
  literals: readonly string[] | null,
): ReadonlyMap<number, Uint8Array> | null {
  try {
    if (literals === null) {
      recovery.finish();
      return null;
    }
    return recovery.exactTexts(literals);
  } catch (error) {
    throw new DumpError(`cannot dump table ${table.name}: ${(error as Error).message}`);
  }
}

/**
 * Tables ordered so that a table's rows come after those of the tables its foreign keys reference, so that the
 * dump also loads where foreign keys are checked row by row. Cycles (and self-references) keep creation order:
 * a load here checks keys at its end (LOAD_DEFERS_FOREIGN_KEYS).
 */
function parentsFirst(sql: SqlStorage, tables: readonly TableInfo[]): TableInfo[] {
  const byName = new Map(tables.map((table) => [table.name.toLowerCase(), table]));
  const ordered: TableInfo[] = [];
  const state = new Map<string, "visiting" | "done">();
  const visit = (table: TableInfo): void => {
    const key = table.name.toLowerCase();
    if (state.has(key)) {
      return;
    }
    state.set(key, "visiting");
    for (const [parent] of rowsOf(sql, 'SELECT DISTINCT "table" FROM pragma_foreign_key_list(?)', table.name)) {
      const parentTable = byName.get(String(parent).toLowerCase());
      if (parentTable !== undefined) {
        visit(parentTable);
      }
    }
    state.set(key, "done");
    ordered.push(table);
  };
  for (const table of tables) {
    visit(table);
  }
  return ordered;
}

/**
 * The database as SQL: PRAGMA foreign_keys=OFF; BEGIN TRANSACTION; every table's CREATE, then their INSERTs (values
 * through SQLite's quote(), so integers, reals and blobs are exact; parents before children); planner statistics and AUTOINCREMENT
 * counters; then indexes, views and triggers in creation order; COMMIT;. Virtual tables are dumped as CREATE
 * VIRTUAL TABLE plus their rows (their shadow tables are left to the module). Rowids are not preserved, as in
 * SQLite's default .dump.
 */
export function dumpDatabase(sql: SqlStorage, options: DumpOptions = {}): string {
  const maxBytes = options.maxBytes ?? DEFAULT_MAX_DUMP_BYTES;
  if (!Number.isSafeInteger(maxBytes) || maxBytes < 1) {
    throw new DumpError("maxBytes must be a positive integer");
  }
  const out = new BoundedText(maxBytes);
  out.line("PRAGMA foreign_keys=OFF;");
  out.line("BEGIN TRANSACTION;");
  const tables = new Map(listTables(sql).map((table) => [table.name, table]));
  const objects = listSchemaObjects(sql);
  const isSqliteName = (name: string): boolean => name.toLowerCase().startsWith("sqlite_");
  const dumped: TableInfo[] = [];
  for (const object of objects) {
    if (object.type !== "table" || object.sql === null || isSqliteName(object.name)) {
      continue;
    }
    const table = tables.get(object.name);
    if (table === undefined || table.kind === "shadow") {
      continue;
    }
    out.line(`${object.sql};`);
    dumped.push(table);
  }
  for (const table of parentsFirst(sql, dumped)) {
    dumpRows(sql, table, out);
  }
  const stat1 = tables.get("sqlite_stat1");
  if (stat1 !== undefined) {
    out.line("ANALYZE sqlite_schema;");
    dumpRows(sql, stat1, out);
  }
  const sequence = tables.get("sqlite_sequence");
  if (sequence !== undefined) {
    out.line("DELETE FROM sqlite_sequence;");
    dumpRows(sql, sequence, out);
  }
  const shadowTables = new Set(
    [...tables.values()].filter((table) => table.kind === "shadow").map((table) => table.name),
  );
  for (const object of objects) {
    if (object.type === "table" || object.sql === null || shadowTables.has(object.tableName)) {
      continue;
    }
    out.line(`${object.sql};`);
  }
  out.line("COMMIT;");
  return out.toString();
}

/** Literals longer than this become bound parameters, so that a row with large values still fits in a statement. */
const LITERAL_TO_PARAMETER_CHARS = 1024;
const MAX_PARAMETERS = 100;

function hexToBytes(hex: string): Uint8Array {
  const bytes = new Uint8Array(hex.length / 2);
  for (let i = 0; i < bytes.length; i += 1) {
    bytes[i] = Number.parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  }
  return bytes;
}

/** BEGIN/COMMIT/END belong to the dump's framing: the load is one transaction. */
function isFraming(significant: readonly SqlToken[]): boolean {
  const verb = keywordOf(significant[0]);
  return verb === "BEGIN" || verb === "COMMIT" || verb === "END";
}

/** `PRAGMA foreign_keys=...`: a dump's way to load without checks, which the load replaces (see parseDump). */
function isForeignKeysPragma(significant: readonly SqlToken[]): boolean {
  return keywordOf(significant[0]) === "PRAGMA" && significant[1]?.value.toLowerCase() === "foreign_keys";
}

/**
 * The first statement of every load: foreign keys are checked once, when all of it is in (state-machine.ts,
 * runAllOrNothing), so rows may arrive in any order, a table may hold rows that refer to each other, and two tables
 * may refer to each other. Rows that still violate a key then fail the whole load.
 */
export const LOAD_DEFERS_FOREIGN_KEYS: Statement = { sql: "PRAGMA defer_foreign_keys = ON" };

/** How a statement of a dump may move: plain CREATE TABLEs go first, unless the dump drops or alters a table. */
function orderingRole(significant: readonly SqlToken[]): "create" | "blocksReorder" | "other" {
  const verb = keywordOf(significant[0]);
  if (verb === "DROP" || verb === "ALTER") {
    return "blocksReorder";
  }
  if (verb !== "CREATE") {
    return "other";
  }
  const target = createTarget(significant);
  return target.object === "TABLE" && !target.asSelect ? "create" : "other";
}

/** Large string and blob literals of an INSERT/REPLACE become positional parameters. */
function parameterizeLiterals(tokens: readonly SqlToken[]): Statement {
  const significant = tokens.filter(isSignificant);
  const verb = keywordOf(significant[0]);
  const hasParameters = tokens.some((token) => token.kind === "param");
  if ((verb !== "INSERT" && verb !== "REPLACE") || hasParameters) {
    return { sql: statementText(tokens) };
  }
  const params: SqlValue[] = [];
  const rewritten = tokens.map((token): SqlToken => {
    const large = (token.kind === "string" || token.kind === "blob") && token.text.length > LITERAL_TO_PARAMETER_CHARS;
    if (!large || params.length >= MAX_PARAMETERS) {
      return token;
    }
    params.push(token.kind === "string" ? token.value : hexToBytes(token.value));
    return { ...token, kind: "param", text: "?", value: "?" };
  });
  const sql = statementText(rewritten);
  return params.length === 0 ? { sql } : { sql, params };
}

/** A dump holding more statements than the load may carry (the caller answers 413). */
export class DumpTooLargeError extends DumpError {
  constructor(
    readonly maxStatements: number,
    /** Where reading stopped: the end of the first statement past the limit (UTF-16 offset into the text). */
    readonly stoppedAtOffset: number,
  ) {
    super(`the dump holds more than ${maxStatements} statements; at most ${maxStatements} may be loaded at once`);
    this.name = "DumpTooLargeError";
  }
}

export interface ParseDumpOptions {
  /**
   * Stop reading, with DumpTooLargeError, at the first statement past this many (framing not counted; the
   * LOAD_DEFERS_FOREIGN_KEYS that opens every load counted).
   */
  readonly maxStatements?: number;
}

/**
 * Splits a dump (ours or SQLite's) into statements, respecting strings, quoted names, comments and trigger bodies,
 * and drops the framing (BEGIN TRANSACTION, COMMIT), so that the load can be proposed as one transactional request.
 * The load begins with LOAD_DEFERS_FOREIGN_KEYS, in place of any PRAGMA foreign_keys=..., and creates its tables
 * before anything else (tablesFirst). Everything else is kept, in order, for prepareWrite to validate.
 *
 * The text is read one token and one statement at a time: only the statements (about the text's size) are kept,
 * never every token at once (a token object costs tens of times its text: a 2 MiB dump of small rows took over
 * 80 MB that way). Counting as it goes, it stops at the first statement past maxStatements.
 */
export function parseDump(text: string, options: ParseDumpOptions = {}): Statement[] {
  const maxStatements = options.maxStatements ?? Number.POSITIVE_INFINITY;
  const statements: Statement[] = [LOAD_DEFERS_FOREIGN_KEYS];
  const creates = new Set<number>();
  let mayReorder = true;
  try {
    for (const statement of streamStatements(streamTokens(text))) {
      const significant = statement.filter((token) => isSignificant(token) && token.kind !== "semicolon");
      if (isFraming(significant)) {
        continue;
      }
      if (isForeignKeysPragma(significant)) {
        // Replaced by LOAD_DEFERS_FOREIGN_KEYS, already first: foreign keys cannot be turned off here.
        continue;
      }
      if (keywordOf(significant[0]) === "ROLLBACK") {
        // sqlite3 .dump ends with ROLLBACK when it hit errors: the dump is incomplete and must not be applied.
        // Numbered among the dump's statements (framing aside), not counting the deferral in front.
        throw new DumpError(
          `statement ${statements.length} of the dump is ROLLBACK: it was written after errors; refusing to load it`,
        );
      }
      if (statements.length >= maxStatements) {
        const last = statement[statement.length - 1];
        throw new DumpTooLargeError(maxStatements, last === undefined ? 0 : last.start + last.text.length);
      }
      const role = orderingRole(significant);
      mayReorder &&= role !== "blocksReorder";
      if (role === "create") {
        creates.add(statements.length);
      }
      statements.push(parameterizeLiterals(statement));
    }
  } catch (error) {
    if (error instanceof SqlSyntaxError) {
      throw new DumpError(`the dump cannot be read: ${error.message}`);
    }
    throw error;
  }
  if (statements.length === 1) {
    return []; // Nothing but the deferral: the dump holds no statements.
  }
  return mayReorder ? tablesFirst(statements, creates) : statements;
}

/**
 * SQLite's own .dump (and rqlite's) writes each table's rows right after its CREATE, tables in creation order, and
 * loads them with foreign keys off. Here foreign keys stay on, and even deferred, a row cannot name a table that
 * does not exist yet ("no such table"): every plain CREATE TABLE goes first, in its order, the rest after it.
 */
function tablesFirst(statements: readonly Statement[], creates: ReadonlySet<number>): Statement[] {
  const [pragma, ...rest] = statements;
  const moved = rest.filter((_, i) => creates.has(i + 1));
  const others = rest.filter((_, i) => !creates.has(i + 1));
  return pragma === undefined ? [] : [pragma, ...moved, ...others];
}
