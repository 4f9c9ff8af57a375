// SQLite database files for GET /db/backup and POST /db/load, built and read in the worker with SQLite compiled to
// WebAssembly (./sqlite-wasm.ts). A file is only ever another encoding of a SQL dump:
//  - backup runs the leader's dump (the nodes' own dumpDatabase) in an empty in-memory database and exports its bytes;
//  - load opens the uploaded file, checks it, and writes it out as a dump with that same dumpDatabase, so that the
//    route applies it exactly as a dump load: parsed by parseDump, validated by the nodes, one transaction.
import type { SqlJsDatabase, SqlJsStatic, SqlJsValue } from "sql.js/dist/sql-wasm-browser.js";
import { dumpDatabase, DumpError, listTables, utf8ByteLength } from "../../objects/api";
import { splitSqlStatements } from "../../shared/sql-text/split";
import { quoteSqlIdentifier, SqlSyntaxError } from "../../shared/sql-text/tokenizer";
import { loadSqlJs } from "./sqlite-wasm";

/** The first 16 bytes of every SQLite database file. */
export const SQLITE_FILE_HEADER: Uint8Array = new TextEncoder().encode("SQLite format 3\0");
const HEADER_BYTES = 100;

export interface SqliteFileLimits {
  /** Largest database file read or produced. */
  readonly maxFileBytes: number;
  /** Largest SQL dump turned into a file, or produced from one. */
  readonly maxDumpBytes: number;
  /** Most statements (rows plus schema entries) a file's dump may hold; counted before any SQL is written. */
  readonly maxStatements: number;
  /** SQLite's own allocations (page cache, parser) are refused beyond this (PRAGMA hard_heap_limit). */
  readonly maxHeapBytes: number;
}

/**
 * Backups: the worker holds the dump, the WebAssembly heap's copy of it, the database and the exported file at once,
 * and a Worker has 128 MB; 8 MiB of dump keeps that near 50 MB. Larger databases are backed up with ?fmt=sql.
 */
export const DEFAULT_BACKUP_FILE_LIMITS: SqliteFileLimits = {
  maxFileBytes: 16 * 1024 * 1024,
  maxDumpBytes: 8 * 1024 * 1024,
  maxStatements: Number.MAX_SAFE_INTEGER,
  maxHeapBytes: 32 * 1024 * 1024,
};

/** Why a file could not be made or read: "invalid" is the file's (or database's) fault, "too-large" a limit's. */
export class SqliteFileError extends Error {
  override readonly name = "SqliteFileError";

  constructor(
    readonly kind: "invalid" | "too-large",
    message: string,
  ) {
    super(message);
  }
}

export function isSqliteFile(bytes: Uint8Array): boolean {
  return bytes.length >= SQLITE_FILE_HEADER.length && SQLITE_FILE_HEADER.every((byte, i) => bytes[i] === byte);
}

/** The dump as a SQLite database file (rollback-journal mode, so that any sqlite3 opens it alone). */
export async function sqliteFileFromDump(dump: string, limits: SqliteFileLimits): Promise<Uint8Array> {
  const dumpBytes = utf8ByteLength(dump);
  if (dumpBytes > limits.maxDumpBytes) {
    throw new SqliteFileError(
      "too-large",
      `the database's SQL dump is ${dumpBytes} bytes; a SQLite file is built from at most ${limits.maxDumpBytes}: use ?fmt=sql`,
    );
  }
  const sqlJs = await loadSqlJs();
  const db = new sqlJs.Database();
  try {
    runOrExplain(() => guard(db, limits), "the database cannot be written as a SQLite file");
    runOrExplain(() => db.exec(dump), "the database cannot be written as a SQLite file");
    const file = runOrExplain(() => db.export(), "the database cannot be written as a SQLite file");
    if (file.length > limits.maxFileBytes) {
      throw new SqliteFileError(
        "too-large",
        `the SQLite file would be ${file.length} bytes, more than ${limits.maxFileBytes}: use ?fmt=sql`,
      );
    }
    return file;
  } finally {
    db.close();
  }
}

/**
 * The file's contents as a SQL dump (schema, rows parents first, indexes, views, triggers), after checking that it
 * is a sound SQLite database whose schema holds exactly what it claims. Throws SqliteFileError; nothing is applied.
 */
export async function dumpFromSqliteFile(file: Uint8Array, limits: SqliteFileLimits): Promise<string> {
  if (file.length > limits.maxFileBytes) {
    throw new SqliteFileError(
      "too-large",
      `the SQLite file is ${file.length} bytes; at most ${limits.maxFileBytes} may be loaded`,
    );
  }
  const image = checkedImage(file);
  const sqlJs = await loadSqlJs();
  const db = openImage(sqlJs, image);
  try {
    runOrExplain(() => {
      guard(db, limits);
      // Reading a file never writes it: a hostile schema gets no chance to either.
      db.exec("PRAGMA query_only=ON;");
      checkIntegrity(db);
    }, "the file is not a readable SQLite database");
    runOrExplain(() => checkSchema(db), "the file's schema cannot be read");
    runOrExplain(() => checkStatementCount(db, limits.maxStatements), "the file's tables cannot be read");
    try {
      return dumpDatabase(sqlStorageOf(db), { maxBytes: limits.maxDumpBytes });
    } catch (error) {
      if (error instanceof DumpError) {
        throw new SqliteFileError(
          "too-large",
          `the file's contents as SQL are larger than the ${limits.maxDumpBytes} bytes a load may carry`,
        );
      }
      throw explain(error, "the file's contents cannot be read");
    }
  } finally {
    db.close();
  }
}

/**
 * The header fields SQLite itself insists on (the database header of its file format: page size, format versions,
 * payload fractions), checked before the library sees the bytes. Returns a copy; a WAL-mode file (rqlite's backups are) is switched to rollback mode:
 * the upload is the main file alone, which is complete once checkpointed, and an in-memory database has no WAL.
 */
function checkedImage(file: Uint8Array): Uint8Array {
  if (!isSqliteFile(file) || file.length < HEADER_BYTES) {
    throw new SqliteFileError("invalid", "the body is not a SQLite database file (its header is missing or cut short)");
  }
  const view = new DataView(file.buffer, file.byteOffset, file.byteLength);
  const rawPageSize = view.getUint16(16);
  const pageSizeBytes = rawPageSize === 1 ? 65536 : rawPageSize;
  const isPowerOfTwo = (pageSizeBytes & (pageSizeBytes - 1)) === 0;
  if (!isPowerOfTwo || pageSizeBytes < 512 || pageSizeBytes > 65536) {
    throw new SqliteFileError("invalid", `the SQLite file's page size (${rawPageSize}) is invalid`);
  }
  if (file.length % pageSizeBytes !== 0) {
    throw new SqliteFileError(
      "invalid",
      `the SQLite file is ${file.length} bytes, not a whole number of ${pageSizeBytes}-byte pages: it is truncated`,
    );
  }
  const writeVersion = view.getUint8(18);
  const readVersion = view.getUint8(19);
  if ((writeVersion !== 1 && writeVersion !== 2) || (readVersion !== 1 && readVersion !== 2)) {
    throw new SqliteFileError(
      "invalid",
      `the SQLite file's format versions (${writeVersion}, ${readVersion}) are unknown`,
    );
  }
  if (view.getUint8(21) !== 64 || view.getUint8(22) !== 32 || view.getUint8(23) !== 32) {
    throw new SqliteFileError("invalid", "the SQLite file's payload fractions are not 64, 32, 32");
  }
  const image = file.slice();
  image[18] = 1;
  image[19] = 1;
  return image;
}

function openImage(sqlJs: SqlJsStatic, image: Uint8Array): SqlJsDatabase {
  return runOrExplain(() => new sqlJs.Database(image), "the file cannot be opened as a SQLite database");
}

/** Bounds SQLite's memory, keeps a hostile schema from calling functions, and checks every cell's size as it reads. */
function guard(db: SqlJsDatabase, limits: SqliteFileLimits): void {
  db.exec(`PRAGMA hard_heap_limit=${limits.maxHeapBytes}; PRAGMA trusted_schema=OFF; PRAGMA cell_size_check=ON;`);
}

const MAX_INTEGRITY_PROBLEMS = 5;

function checkIntegrity(db: SqlJsDatabase): void {
  const problems = rowsOf(db, `PRAGMA integrity_check(${MAX_INTEGRITY_PROBLEMS})`).map(([problem]) => String(problem));
  if (problems.length !== 1 || problems[0] !== "ok") {
    throw new SqliteFileError("invalid", `the SQLite file is damaged (integrity_check: ${problems.join("; ")})`);
  }
}

/** Names the nodes keep for themselves: a file cannot bring them in (a dump naming them is refused the same way). */
const RESERVED_NAME_PATTERNS = ["_cf_*", "_dha_*", "__miniflare_*"];

/**
 * SQLite compiles only the first statement of a schema entry's text and ignores the rest, so a crafted file can
 * carry `CREATE TABLE t(x); DROP TABLE u` in sqlite_master: a dump would replay both. Every entry must be one
 * statement, and no name may be reserved.
 */
function checkSchema(db: SqlJsDatabase): void {
  const reservedTest = RESERVED_NAME_PATTERNS.map((pattern) => `lower(name) GLOB '${pattern}'`).join(" OR ");
  const reserved = rowsOf(db, `SELECT name FROM sqlite_master WHERE ${reservedTest}`).map(([name]) => String(name));
  if (reserved.length > 0) {
    throw new SqliteFileError(
      "invalid",
      `the SQLite file holds objects with reserved names (${reserved.join(", ")}): names starting with _cf_, _dha_ or __miniflare_ are the nodes' own`,
    );
  }
  for (const [type, name, text] of rowsOf(db, "SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL")) {
    let count: number;
    try {
      count = splitSqlStatements(String(text)).length;
    } catch (error) {
      if (!(error instanceof SqlSyntaxError)) {
        throw error;
      }
      count = Number.NaN;
    }
    if (count !== 1) {
      throw new SqliteFileError(
        "invalid",
        `the SQLite file's ${String(type)} ${JSON.stringify(String(name))} is not defined by exactly one statement`,
      );
    }
  }
}

/**
 * Refuses a file with more rows than a load may carry before its dump is written: parsing a dump costs far more
 * memory than the dump itself (every token is an object), so the count comes first, from the file.
 */
function checkStatementCount(db: SqlJsDatabase, maxStatements: number): void {
  let statements =
    rowsOf(db, "SELECT count(*) FROM sqlite_master WHERE sql IS NOT NULL").map(([count]) => Number(count))[0] ?? 0;
  for (const table of listTables(sqlStorageOf(db))) {
    if (table.kind === "shadow") {
      continue;
    }
    const [count] = rowsOf(db, `SELECT count(*) FROM ${quoteSqlIdentifier(table.name)}`).map(([rows]) => Number(rows));
    statements += count ?? 0;
    if (statements > maxStatements) {
      throw new SqliteFileError(
        "too-large",
        `the SQLite file holds more than ${maxStatements} rows and schema entries; at most ${maxStatements} statements may be loaded at once`,
      );
    }
  }
}

function rowsOf(db: SqlJsDatabase, query: string, bindings: readonly unknown[] = []): SqlJsValue[][] {
  return [...rowsOfStatement(db, query, bindings)];
}

function* rowsOfStatement(db: SqlJsDatabase, query: string, bindings: readonly unknown[]): Generator<SqlJsValue[]> {
  const statement = db.prepare(query);
  try {
    statement.bind(bindings.map(toBindable));
    while (statement.step()) {
      yield statement.get();
    }
  } finally {
    statement.free();
  }
}

function toBindable(value: unknown): number | string | Uint8Array | null {
  if (value === null || typeof value === "number" || typeof value === "string" || value instanceof Uint8Array) {
    return value;
  }
  throw new TypeError(`cannot bind a ${typeof value}`);
}

/**
 * dumpDatabase and the catalog it uses read a database only through `exec(query, ...bindings).raw()`, row by row;
 * this gives them that over the in-memory database (each cursor is a prepared statement, freed when drained or
 * abandoned).
 */
function sqlStorageOf(db: SqlJsDatabase): SqlStorage {
  const exec = (query: string, ...bindings: unknown[]): { raw: () => Generator<SqlJsValue[]> } => ({
    raw: () => rowsOfStatement(db, query, bindings),
  });
  return { exec } as unknown as SqlStorage;
}

function runOrExplain<T>(run: () => T, context: string): T {
  try {
    return run();
  } catch (error) {
    throw explain(error, context);
  }
}

/** SQLite's answers that mean "beyond the memory or size allowed", not "broken". */
const LIMIT_CODES = new Set(["SQLITE_NOMEM", "SQLITE_TOOBIG", "SQLITE_FULL"]);

/**
 * sql.js throws Errors carrying SQLite's message and result code (`code`), and plain strings for misuse; all become
 * a SqliteFileError.
 */
function explain(error: unknown, context: string): SqliteFileError {
  if (error instanceof SqliteFileError) {
    return error;
  }
  const code = error instanceof Error ? (error as Error & { code?: unknown }).code : undefined;
  if (typeof code === "string" && LIMIT_CODES.has(code)) {
    return new SqliteFileError(
      "too-large",
      `${context}: ${error instanceof Error ? error.message : String(error)} (SQLite is limited to the memory a Worker can spare)`,
    );
  }
  if (error instanceof Error && error.name === "RuntimeError") {
    // A trap inside the WebAssembly module (out of memory, most likely): the file or database is beyond what fits.
    return new SqliteFileError("too-large", `${context}: ${error.message}`);
  }
  const message = error instanceof Error ? error.message : String(error);
  return new SqliteFileError("invalid", `${context}: ${message}`);
}
