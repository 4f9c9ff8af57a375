// The Durable Object storage API the runtime and the SQL state machine use (ctx.storage.sql, ctx.storage.kv,
// ctx.storage.transactionSync), over Node's built-in node:sqlite, so that the simulator runs the real state machine.
// It behaves like the platform where the state machine could notice (each behaviour below was observed in workerd
// and is pinned by sql-fixture.json, which a workerd test and a core test both run):
//  - BEGIN/COMMIT/ROLLBACK/SAVEPOINT/RELEASE are refused with the platform's message; ATTACH/DETACH, TEMP objects
//    and any `_cf_*` name are refused with "not authorized: SQLITE_AUTH" (node:sqlite in Node 22 has no authorizer
//    hook, so statements are checked with the repository's tokenizer before SQLite sees them);
//  - values: JS numbers bind as REAL, booleans as their text, undefined as NULL, Uint8Array/ArrayBuffer as BLOB,
//    a bigint binding throws; integers read back as JS numbers (beyond 2^53 rounded, as the platform does), BLOBs as
//    ArrayBuffers;
//  - several statements in one exec() all run, the cursor holds the last one's rows; the first row is stepped at
//    exec() (so its errors throw there), the rest lazily;
//  - the KV API lives in a `_cf_KV` table of the same database, values kept as structured clones (v8 serialize), so
//    transactionSync rolls back SQL and KV together;
//  - the platform runs every event inside an implicit transaction that commits when the event ends and is lost if
//    the object crashes first: beginImplicit/commitImplicit/rollbackImplicit let the simulator do the same;
//  - foreign keys are on; PRAGMA defer_foreign_keys set in a transactionSync stays set after it ends.
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { deserialize, serialize } from "node:v8";
import {
  keywordOf,
  isSignificant,
  splitTokensIntoStatements,
  statementText,
  tokenizeSql,
  type SqlToken,
} from "../../../src/shared/sql-text";

export const TRANSACTION_REFUSAL =
  "To execute a transaction, please use the state.storage.transaction() or state.storage.transactionSync() APIs instead of the SQL BEGIN TRANSACTION or SAVEPOINT statements. The JavaScript API is safer because it will automatically roll back on exceptions, and because it interacts correctly with Durable Objects' automatic atomic write coalescing.";
export const NOT_AUTHORIZED = "not authorized: SQLITE_AUTH";

const KV_TABLE = "_cf_KV";
const TRANSACTION_KEYWORDS = new Set(["BEGIN", "COMMIT", "END", "ROLLBACK", "SAVEPOINT", "RELEASE"]);

/** SQLite's primary result codes by number, for the platform's ": SQLITE_X" error suffix. */
const PRIMARY_CODES: Readonly<Record<number, string>> = {
  1: "SQLITE_ERROR",
  2: "SQLITE_INTERNAL",
  3: "SQLITE_PERM",
  4: "SQLITE_ABORT",
  5: "SQLITE_BUSY",
  6: "SQLITE_LOCKED",
  7: "SQLITE_NOMEM",
  8: "SQLITE_READONLY",
  9: "SQLITE_INTERRUPT",
  10: "SQLITE_IOERR",
  11: "SQLITE_CORRUPT",
  13: "SQLITE_FULL",
  17: "SQLITE_SCHEMA",
  18: "SQLITE_TOOBIG",
  19: "SQLITE_CONSTRAINT",
  20: "SQLITE_MISMATCH",
  21: "SQLITE_MISUSE",
  23: "SQLITE_AUTH",
  25: "SQLITE_RANGE",
};

/** Extended constraint codes (the only extended codes the state machine's users see often). */
const EXTENDED_CODES: Readonly<Record<number, string>> = {
  275: "SQLITE_CONSTRAINT_CHECK",
  531: "SQLITE_CONSTRAINT_COMMITHOOK",
  787: "SQLITE_CONSTRAINT_FOREIGNKEY",
  1043: "SQLITE_CONSTRAINT_FUNCTION",
  1299: "SQLITE_CONSTRAINT_NOTNULL",
  1555: "SQLITE_CONSTRAINT_PRIMARYKEY",
  1811: "SQLITE_CONSTRAINT_TRIGGER",
  2067: "SQLITE_CONSTRAINT_UNIQUE",
  2323: "SQLITE_CONSTRAINT_VTAB",
  2579: "SQLITE_CONSTRAINT_ROWID",
  3091: "SQLITE_CONSTRAINT_DATATYPE",
};

export type StorageValue = ArrayBuffer | string | number | null;

/** Rewrites a node:sqlite error into the platform's message shape ("<sqlite message>: SQLITE_X (extended: ...)"). */
function platformError(error: unknown): Error {
  if (!(error instanceof Error)) {
    return new Error(String(error));
  }
  const errcode = (error as { errcode?: unknown }).errcode;
  if (typeof errcode !== "number") {
    return error;
  }
  const primary = PRIMARY_CODES[errcode & 0xff] ?? `SQLITE_${errcode & 0xff}`;
  const extended = errcode > 0xff ? EXTENDED_CODES[errcode] : undefined;
  return new Error(`${error.message}: ${primary}${extended === undefined ? "" : ` (extended: ${extended})`}`);
}

function bindValue(value: unknown): null | number | string | Uint8Array {
  if (value === null || value === undefined) {
    return null;
  }
  if (typeof value === "number" || typeof value === "string") {
    return value;
  }
  if (typeof value === "boolean") {
    return String(value);
  }
  if (typeof value === "bigint") {
    throw new TypeError("Cannot convert a BigInt value to a number");
  }
  if (value instanceof ArrayBuffer) {
    return new Uint8Array(value);
  }
  if (ArrayBuffer.isView(value)) {
    return new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  throw new TypeError(`a ${typeof value} cannot be bound to an SQL parameter`);
}

function readValue(value: unknown): StorageValue {
  if (value === null || typeof value === "string" || typeof value === "number") {
    return value;
  }
  if (typeof value === "bigint") {
    return Number(value);
  }
  if (value instanceof Uint8Array) {
    return value.buffer.slice(value.byteOffset, value.byteOffset + value.byteLength) as ArrayBuffer;
  }
  throw new Error(`node:sqlite returned an unexpected ${typeof value}`);
}

/** Why the platform would refuse this statement, or null. */
function refusalOf(tokens: readonly SqlToken[]): string | null {
  const significant = tokens.filter(isSignificant);
  const first = keywordOf(significant[0]);
  if (first !== null && TRANSACTION_KEYWORDS.has(first)) {
    return TRANSACTION_REFUSAL;
  }
  if (first === "ATTACH" || first === "DETACH") {
    return NOT_AUTHORIZED;
  }
  if (first === "CREATE") {
    const modifier = keywordOf(significant[1]);
    if (modifier === "TEMP" || modifier === "TEMPORARY") {
      return NOT_AUTHORIZED;
    }
  }
  for (const [position, token] of significant.entries()) {
    if ((token.kind === "word" || token.kind === "quoted") && token.value.toLowerCase().startsWith("_cf_")) {
      return NOT_AUTHORIZED;
    }
    // temp.name: an object of the temp schema
    if (keywordOf(token) === "TEMP" && significant[position + 1]?.text === ".") {
      return NOT_AUTHORIZED;
    }
  }
  return null;
}

interface SplitStatement {
  readonly text: string;
  readonly tokens: SqlToken[] | null;
}

/** Splitting is pure and the same few statements run again and again: remember the latest ones (bounded). */
const splitCache = new Map<string, readonly SplitStatement[]>();
const SPLIT_CACHE_ENTRIES = 512;

function splitStatementsCached(query: string): readonly SplitStatement[] {
  const known = splitCache.get(query);
  if (known !== undefined) {
    return known;
  }
  const split = splitStatements(query);
  if (splitCache.size >= SPLIT_CACHE_ENTRIES) {
    splitCache.delete(splitCache.keys().next().value as string);
  }
  splitCache.set(query, split);
  return split;
}

/** The statements of one exec() call, each with its tokens (null when the tokenizer itself could not read it). */
function splitStatements(query: string): SplitStatement[] {
  let tokens: SqlToken[];
  try {
    tokens = tokenizeSql(query);
  } catch {
    // SQLite reports the syntax error itself.
    return [{ text: query, tokens: null }];
  }
  return splitTokensIntoStatements(tokens).map((statement) => ({ text: statementText(statement), tokens: statement }));
}

type Bindable = null | number | string | Uint8Array;

/** The platform binds every parameter by position; node:sqlite wants named ones in an object before the rest. */
function bindingsFor(
  layout: readonly (string | null)[],
  values: readonly Bindable[],
): (Bindable | Record<string, Bindable>)[] {
  if (layout.every((name) => name === null)) {
    return [...values];
  }
  const named: Record<string, Bindable> = {};
  const anonymous: Bindable[] = [];
  layout.forEach((name, position) => {
    const value = values[position] ?? null;
    if (name === null) {
      anonymous.push(value);
    } else {
      named[name] = value;
    }
  });
  return [named, ...anonymous];
}

/** A cursor like the platform's SqlStorageCursor: the first row stepped at creation, the rest on demand. */
export class SqliteCursor implements Iterator<Record<string, StorageValue>> {
  readonly columnNames: string[];
  private rowsReadCount = 0;
  private rowsWrittenCount = 0;
  private readonly rows: Iterator<unknown[]> | null;
  private buffered: IteratorResult<unknown[]> | null = null;
  private exhausted = false;

  constructor(
    statement: StatementSync | null,
    params: readonly (Bindable | Record<string, Bindable>)[],
    options: { readonly changes: () => number },
  ) {
    if (statement === null) {
      this.columnNames = [];
      this.rows = null;
      return;
    }
    this.columnNames = statement.columns().map((column) => column.name);
    if (this.columnNames.length === 0) {
      try {
        statement.run(...(params as Parameters<StatementSync["run"]>));
      } catch (error) {
        throw platformError(error);
      }
      this.rowsWrittenCount = options.changes();
      this.rows = null;
      return;
    }
    statement.setReadBigInts(true);
    statement.setReturnArrays(true);
    this.rows = statement.iterate(...(params as Parameters<StatementSync["iterate"]>)) as Iterator<unknown[]>;
    this.buffered = this.step();
  }

  get rowsRead(): number {
    return this.rowsReadCount;
  }

  get rowsWritten(): number {
    return this.rowsWrittenCount;
  }

  private step(): IteratorResult<unknown[]> {
    if (this.rows === null || this.exhausted) {
      return { done: true, value: undefined };
    }
    let result: IteratorResult<unknown[]>;
    try {
      result = this.rows.next();
    } catch (error) {
      throw platformError(error);
    }
    if (result.done === true) {
      this.exhausted = true;
    } else {
      this.rowsReadCount += 1;
    }
    return result;
  }

  private nextRaw(): IteratorResult<StorageValue[]> {
    const current = this.buffered ?? this.step();
    if (current.done === true) {
      return { done: true, value: undefined };
    }
    // The platform keeps one row stepped ahead (rowsRead counts it, and its error surfaces here).
    this.buffered = this.step();
    return { done: false, value: current.value.map(readValue) };
  }

  next(): IteratorResult<Record<string, StorageValue>> {
    const raw = this.nextRaw();
    if (raw.done === true) {
      return { done: true, value: undefined };
    }
    return { done: false, value: this.toObject(raw.value) };
  }

  [Symbol.iterator](): Iterator<Record<string, StorageValue>> {
    return this;
  }

  raw(): IterableIterator<StorageValue[]> {
    const iterator: IterableIterator<StorageValue[]> = {
      next: () => this.nextRaw(),
      [Symbol.iterator]: () => iterator,
    };
    return iterator;
  }

  toArray(): Record<string, StorageValue>[] {
    const out: Record<string, StorageValue>[] = [];
    for (let row = this.next(); row.done !== true; row = this.next()) {
      out.push(row.value);
    }
    return out;
  }

  one(): Record<string, StorageValue> {
    const first = this.next();
    if (first.done === true) {
      throw new Error("Expected exactly one result from SQL query, but got no results.");
    }
    if (this.next().done !== true) {
      throw new Error("Expected exactly one result from SQL query, but got multiple results.");
    }
    return first.value;
  }

  private toObject(row: readonly StorageValue[]): Record<string, StorageValue> {
    // Duplicate column names: the last one wins, as on the platform.
    const object: Record<string, StorageValue> = {};
    this.columnNames.forEach((name, position) => {
      object[name] = row[position] ?? null;
    });
    return object;
  }
}

export interface KvListOptions {
  readonly start?: string;
  readonly startAfter?: string;
  readonly end?: string;
  readonly prefix?: string;
  readonly reverse?: boolean;
  readonly limit?: number;
}

/** Hooks through which the simulator observes and faults storage (see test/sim/host.ts). */
export interface StorageObserver {
  /** Called before every KV write (put or delete); throwing from it fails the write like a storage error. */
  beforeWrite?(key: string): void;
}

export class SqliteStorage {
  readonly sql: {
    exec: (query: string, ...bindings: unknown[]) => SqliteCursor;
    readonly databaseSize: number;
  };
  readonly kv: {
    get: <T = unknown>(key: string) => T | undefined;
    put: <T>(key: string, value: T) => void;
    delete: (key: string) => boolean;
    list: <T = unknown>(options?: KvListOptions) => IterableIterator<[string, T]>;
  };
  /** Depth of open transactions: the implicit one of the current event counts as one. */
  private depth = 0;
  private savepointCounter = 0;
  private readonly statements = new Map<string, StatementSync>();
  /**
   * Serialized KV values as stored (null: absent), read through: only this class writes the KV table (user SQL
   * cannot reach it), so an entry stays right until a write to its key or a rollback, which clears everything.
   */
  private readonly kvCache = new Map<string, Uint8Array | null>();
  observer: StorageObserver | null = null;

  constructor(readonly db: DatabaseSync = new DatabaseSync(":memory:")) {
    this.db.exec("PRAGMA foreign_keys = ON");
    this.db.exec(`CREATE TABLE IF NOT EXISTS ${KV_TABLE} (key TEXT PRIMARY KEY, value BLOB) WITHOUT ROWID`);
    const databaseSize = (): number => {
      const pages = this.internal("PRAGMA page_count").get() as { page_count: number };
      const size = this.internal("PRAGMA page_size").get() as { page_size: number };
      return Number(pages.page_count) * Number(size.page_size);
    };
    this.sql = {
      exec: (query, ...bindings) => this.exec(query, bindings),
      get databaseSize(): number {
        return databaseSize();
      },
    };
    this.kv = {
      get: <T>(key: string) => this.kvGet<T>(key),
      put: (key, value) => this.kvPut(key, value),
      delete: (key) => this.kvDelete(key),
      list: <T>(options: KvListOptions = {}) => this.kvList<T>(options),
    };
  }

  /** Like ctx.storage.transactionSync: nests (inner savepoints), rolls back SQL and KV together when fn throws. */
  transactionSync<T>(fn: () => T): T {
    const savepoint = this.depth === 0 ? null : `dha_sim_${++this.savepointCounter}`;
    this.db.exec(savepoint === null ? "BEGIN" : `SAVEPOINT ${savepoint}`);
    this.depth += 1;
    let result: T;
    try {
      result = fn();
    } catch (error) {
      this.depth -= 1;
      this.db.exec(savepoint === null ? "ROLLBACK" : `ROLLBACK TO ${savepoint}; RELEASE ${savepoint}`);
      this.kvCache.clear();
      throw error;
    }
    this.depth -= 1;
    if (savepoint !== null) {
      this.db.exec(`RELEASE ${savepoint}`);
      return result;
    }
    // The platform's outermost transactionSync is a savepoint inside the event's transaction, so defer_foreign_keys
    // outlives it; SQLite's COMMIT turns it off: set it again.
    const deferring = (this.internal("PRAGMA defer_foreign_keys").get() as { defer_foreign_keys: number })
      .defer_foreign_keys;
    this.db.exec("COMMIT");
    if (Number(deferring) === 1) {
      this.db.exec("PRAGMA defer_foreign_keys = ON");
    }
    return result;
  }

  /** The platform's implicit transaction around one event: writes commit when it ends, a crash loses them. */
  beginImplicit(): void {
    if (this.depth !== 0) {
      throw new Error(`an event began with ${this.depth} transaction(s) open`);
    }
    this.db.exec("BEGIN");
    this.depth = 1;
  }

  commitImplicit(): void {
    if (this.depth !== 1) {
      throw new Error(`an event ended with ${this.depth} transaction(s) open`);
    }
    this.depth = 0;
    this.db.exec("COMMIT");
  }

  rollbackImplicit(): void {
    if (this.depth === 0) {
      return;
    }
    this.depth = 0;
    this.db.exec("ROLLBACK");
    this.kvCache.clear();
  }

  get inImplicitTransaction(): boolean {
    return this.depth > 0;
  }

  private internal(sql: string): StatementSync {
    let statement = this.statements.get(sql);
    if (statement === undefined) {
      statement = this.db.prepare(sql);
      this.statements.set(sql, statement);
    }
    return statement;
  }

  private exec(query: string, bindings: readonly unknown[]): SqliteCursor {
    const params = bindings.map(bindValue);
    const statements = splitStatementsCached(query);
    if (statements.length === 0) {
      throw new Error("SQL code did not contain a statement.");
    }
    for (const statement of statements) {
      const refusal = statement.tokens === null ? null : refusalOf(statement.tokens);
      if (refusal !== null) {
        throw new Error(refusal);
      }
    }
    const prepared = statements.map((statement) => this.prepare(statement.text));
    const totalParams = prepared.reduce((sum, { layout }) => sum + layout.length, 0);
    if (totalParams !== params.length) {
      throw new Error("Wrong number of parameter bindings for SQL query.");
    }
    let cursor: SqliteCursor | null = null;
    let offset = 0;
    for (const [position, { statement, layout }] of prepared.entries()) {
      const own = params.slice(offset, offset + layout.length);
      offset += layout.length;
      cursor = new SqliteCursor(statement, bindingsFor(layout, own), { changes: () => this.changes() });
      // Every statement but the last runs to completion, as the platform's exec() does.
      if (position < prepared.length - 1) {
        for (const _row of cursor.raw()) {
          void _row;
        }
      }
    }
    return cursor ?? new SqliteCursor(null, [], { changes: () => 0 });
  }

  private prepare(text: string): { statement: StatementSync; layout: (string | null)[] } {
    try {
      return { statement: this.db.prepare(text), layout: parameterLayout(text) };
    } catch (error) {
      throw platformError(error);
    }
  }

  private changes(): number {
    const row = this.internal("SELECT changes() AS n").get() as { n: number };
    return Number(row.n);
  }

  private kvGet<T>(key: string): T | undefined {
    let stored = this.kvCache.get(key);
    if (stored === undefined) {
      const row = this.internal(`SELECT value FROM ${KV_TABLE} WHERE key = ?`).get(key) as
        { value: Uint8Array } | undefined;
      stored = row === undefined ? null : row.value;
      this.kvCache.set(key, stored);
    }
    // A fresh copy every time, as the platform's structured clone gives.
    return stored === null ? undefined : (deserialize(stored) as T);
  }

  private kvPut(key: string, value: unknown): void {
    this.observer?.beforeWrite?.(key);
    const bytes = serialize(value);
    this.internal(
      `INSERT INTO ${KV_TABLE} (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value`,
    ).run(key, bytes);
    this.kvCache.set(key, bytes);
  }

  private kvDelete(key: string): boolean {
    this.observer?.beforeWrite?.(key);
    const result = this.internal(`DELETE FROM ${KV_TABLE} WHERE key = ?`).run(key);
    this.kvCache.set(key, null);
    return Number(result.changes) > 0;
  }

  private *kvList<T>(options: KvListOptions): IterableIterator<[string, T]> {
    const conditions: string[] = [];
    const params: string[] = [];
    if (options.prefix !== undefined && options.prefix !== "") {
      // Keys are compared as bytes (BINARY collation), so the prefix range is [prefix, prefix + U+10FFFF).
      conditions.push("key >= ? AND key < ?");
      params.push(options.prefix, `${options.prefix}\u{10FFFF}`);
    }
    if (options.start !== undefined) {
      conditions.push("key >= ?");
      params.push(options.start);
    }
    if (options.startAfter !== undefined) {
      conditions.push("key > ?");
      params.push(options.startAfter);
    }
    if (options.end !== undefined) {
      conditions.push("key < ?");
      params.push(options.end);
    }
    const where = conditions.length === 0 ? "" : ` WHERE ${conditions.join(" AND ")}`;
    const order = options.reverse === true ? "DESC" : "ASC";
    const limit = options.limit === undefined ? "" : ` LIMIT ${Math.max(0, Math.floor(options.limit))}`;
    // Read eagerly: callers delete while they iterate (as the platform allows).
    const rows = this.db
      .prepare(`SELECT key, value FROM ${KV_TABLE}${where} ORDER BY key ${order}${limit}`)
      .all(...params) as { key: string; value: Uint8Array }[];
    for (const row of rows) {
      yield [row.key, deserialize(row.value) as T];
    }
  }
}

/**
 * The parameters of one statement in SQLite's numbering: `?` takes the next number, `?NNN` that number, a named one
 * (:a, @a, $a) the next number the first time it appears. Returns the name (or null) of each number, 1-based.
 */
function parameterLayout(text: string): (string | null)[] {
  let tokens: SqlToken[];
  try {
    tokens = tokenizeSql(text);
  } catch {
    return [];
  }
  const names: (string | null)[] = [];
  const named = new Map<string, number>();
  for (const token of tokens) {
    if (token.kind !== "param") {
      continue;
    }
    if (token.text === "?") {
      names.push(null);
    } else if (/^\?\d+$/.test(token.text)) {
      const number = Number(token.text.slice(1));
      while (names.length < number) {
        names.push(null);
      }
    } else if (!named.has(token.text)) {
      names.push(token.text);
      named.set(token.text, names.length);
    }
  }
  return names;
}
