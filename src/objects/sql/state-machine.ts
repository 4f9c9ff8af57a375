// The replicated SQL state machine of one node: applies committed log entries to the object's SQLite database,
// serves local reads, keeps the schema version and hash, remembers request ids, and produces snapshots and dumps.
//
// Transactions on this platform: BEGIN/SAVEPOINT are refused, but ctx.storage.transactionSync() nests (verified:
// an inner call that throws rolls back only its own work, the outer one carries on). Each entry is applied inside
// one outer transactionSync that also advances the applied index; a transactional request runs in an inner one
// that is thrown away when a statement fails, so the index still advances and the failure is remembered, and a
// crash at any point leaves either all of the entry or none of it.
import type { EntryKind } from "../../replication/types";
import {
  clientPartOfRequestId,
  type SqlRequest,
  type SqlValue,
  type Statement,
  type StatementResult,
} from "../../shared/sql";
import { computeSchemaHash, rowsOf } from "../sqlite/catalog";
import { DeclaredTypes, resultColumnTypes } from "./column-types";
import { answerPragma, DEFER_NEEDS_TRANSACTION, deferForeignKeysSetting } from "./pragmas";
import { decodeSqlRequest, decodeStatementResults, encodeStatementResults, requestFingerprint } from "./codec";
import { dumpDatabase, type DumpOptions } from "./dump";
import { StateKeys, type DedupRecord } from "../storage-keys";
import { DedupWindow } from "./dedup-window";

export { dedupWindowBytes } from "./dedup-window";
import type { StatementShape } from "../../shared/sql-text/classify";
import { statementResultError } from "../sqlite/storage-failure";
import type { SnapshotImage } from "../snapshot-types";
import { writeSnapshot, type SnapshotOptions } from "./snapshot";
import { recursionChecks, readsOtherTables, type RecursionCheck } from "./runaway";
import { inspectStatement, isInternalName, READ_ONLY_VIOLATION, typeProbe } from "./validate";
import { exactInteger, isPossiblyRoundedInteger, utf8ByteLength } from "../sqlite/values";
import { isMonitorCommand } from "../monitor/command";
import { applyMonitorEntry } from "../monitor/records";

/**
 * Strong reads go through the log under ids with this prefix and are not remembered (a read is not retried for its
 * effect). No client key can carry it: '~' and '/' are refused in Idempotency-Keys.
 */
export const STRONG_READ_ID_PREFIX = "~read/";

/** Records and entries written before fingerprints existed have none: they are never called reused. */
function isReusedId(record: DedupRecord, fingerprint: string | undefined): boolean {
  return record.fingerprint !== undefined && fingerprint !== undefined && record.fingerprint !== fingerprint;
}

/** A failed statement's result without what it counted before failing: its error and its time. */
function errorAlone(result: StatementResult, error: string): StatementResult {
  return result.time === undefined ? { error } : { error, time: result.time };
}

/** The client's key only: the caller's namespace in front of it (namespacedRequestId) is not the client's to see. */
function reusedIdMessage(id: string, record: DedupRecord): string {
  return `request id ${JSON.stringify(clientPartOfRequestId(id))} was already used for a different request (applied at index ${record.index}); nothing of this one was applied: use a new Idempotency-Key`;
}

export interface SqlStateMachineOptions {
  /** How many request ids are remembered for deduplication; the oldest (by applied index) are forgotten first. */
  readonly maxDedupEntries?: number;
  /** Largest encoded result kept per remembered request; larger ones are kept without rows. */
  readonly maxDedupResultBytes?: number;
  /**
   * Bytes (UTF-8 of ids and encoded results) the remembered requests may take together; the oldest are forgotten
   * first. With maxDedupEntries it bounds what every snapshot carries.
   */
  readonly maxDedupBytes?: number;
  /**
   * Most rows all statements of one request may return together; reading stops at the limit. Configured with
   * DHA_MAX_RESULT_ROWS.
   */
  readonly maxResultRows?: number;
  /** Most bytes (approximate) all statements of one request may return together. Configured with DHA_MAX_RESULT_BYTES. */
  readonly maxResultBytes?: number;
  /**
   * Check the dedup window's in-memory index against storage, reporting here what differs before throwing (the
   * simulator and tests; see DedupWindowOptions.checkAgainstStorage).
   */
  readonly checkDedupIndex?: (problem: string) => void;
}

export const DEFAULT_STATE_MACHINE_OPTIONS = {
  maxDedupEntries: 10_000,
  maxDedupResultBytes: 64 * 1024,
  maxDedupBytes: 8 * 1024 * 1024,
  maxResultRows: 100_000,
  maxResultBytes: 16 * 1024 * 1024,
} as const;

/**
 * A read whose results exceed the request's row or byte budget (see SqlStateMachineOptions). Reads fail as a whole
 * with it (the caller answers 4xx); in a log entry the statement reports it as its error instead, since the entry
 * is applied either way.
 */
export class ResultLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ResultLimitError";
  }
}

export interface LogEntryToApply {
  readonly index: number;
  readonly kind: EntryKind;
  /** For "normal": encodeSqlRequest(...) of a request that went through prepareWrite. Ignored otherwise. */
  readonly data: string;
}

export interface SchemaInfo {
  /** Bumped by every applied statement that changed the schema. */
  readonly version: number;
  /** SHA-256 (hex) of the user schema; equal on nodes with equal schemas. */
  readonly hash: string;
}

/** Thrown to undo a transactionSync on purpose. */
class Rollback extends Error {}

function positiveInteger(value: number | undefined, fallback: number, name: string): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen < 1) {
    throw new Error(`${name} must be a positive integer, got ${String(value)}`);
  }
  return chosen;
}

function fromStorageValue(value: SqlStorageValue): SqlValue {
  return value instanceof ArrayBuffer ? new Uint8Array(value) : value;
}

function approximateBytes(row: readonly SqlValue[]): number {
  let bytes = 0;
  for (const value of row) {
    if (value === null) {
      bytes += 1;
    } else if (typeof value === "number" || typeof value === "bigint") {
      bytes += 8;
    } else if (typeof value === "string") {
      bytes += value.length;
    } else {
      bytes += value.byteLength;
    }
  }
  return bytes;
}

/** How many foreign key violations a failed transaction counts before it stops and says "at least". */
const MAX_VIOLATIONS_COUNTED = 1_000;

/** What a statement does to defer_foreign_keys (see pragmas.ts); a cheap test first, since most never name it. */
function deferSettingOf(statement: Statement): boolean | null {
  if (typeof statement.sql !== "string" || !/defer_foreign_keys/i.test(statement.sql)) {
    return null;
  }
  const setting = deferForeignKeysSetting(inspectStatement(statement.sql).shape.pragma);
  return setting === "invalid" ? null : setting;
}

/** Reserved prefix (_dha_): user statements can never name it. */
const EXACT_CTE = "_dha_exact";

interface ReadRows {
  readonly rows: SqlValue[][];
  /** Why reading stopped early (a limit), or null when every row was read. */
  readonly tooLarge: string | null;
  /** Set when the rows could not be read exactly. */
  readonly inexact?: string;
}

/** What the statements of one request may still return. */
class ResultBudget {
  rowsLeft: number;
  bytesLeft: number;

  constructor(
    readonly maxRows: number,
    readonly maxBytes: number,
  ) {
    this.rowsLeft = maxRows;
    this.bytesLeft = maxBytes;
  }

  isSpent(): boolean {
    return this.rowsLeft < 0 || this.bytesLeft < 0;
  }

  /** Takes one row; returns why it does not fit, or null. */
  take(row: readonly SqlValue[]): string | null {
    this.rowsLeft -= 1;
    this.bytesLeft -= approximateBytes(row);
    if (this.rowsLeft < 0) {
      return `the results hold more than ${this.maxRows} rows, the most one request may return (DHA_MAX_RESULT_ROWS): add a LIMIT, or page with WHERE`;
    }
    if (this.bytesLeft < 0) {
      return `the results are larger than ${this.maxBytes} bytes, the most one request may return (DHA_MAX_RESULT_BYTES): select fewer columns or rows`;
    }
    return null;
  }
}

/**
 * Reads a cursor's rows into the budget. A query stops reading at the limit: SQLite computes rows as they are read,
 * so a runaway query (an endless recursive CTE) ends there. A statement that writes (RETURNING) is read to its end
 * without keeping the rows: its changes are all made by then (SQLite makes them on the first step) and an
 * unfinished write statement must not stay open under the transaction.
 */
function readRows(
  cursor: SqlStorageCursor<Record<string, SqlStorageValue>>,
  budget: ResultBudget,
  options: { readonly drain: boolean },
): ReadRows {
  const rows: SqlValue[][] = [];
  let tooLarge: string | null = null;
  for (const raw of cursor.raw()) {
    if (tooLarge !== null) {
      continue;
    }
    const row = raw.map(fromStorageValue);
    tooLarge = budget.take(row);
    if (tooLarge === null) {
      rows.push(row);
      continue;
    }
    rows.length = 0;
    if (!options.drain) {
      break;
    }
  }
  return { rows, tooLarge };
}

/** A row of readExactly's query, (typeof, value) per column, back to values with exact integers. */
function exactRow(raw: readonly SqlValue[], columnCount: number): SqlValue[] {
  const row: SqlValue[] = [];
  for (let i = 0; i < columnCount; i += 1) {
    const kind = raw[2 * i];
    const value = raw[2 * i + 1] ?? null;
    row.push(kind === "integer" ? exactInteger(BigInt(String(value))) : value);
  }
  return row;
}

/** SQLite's message without the platform's suffixes (": SQLITE_CONSTRAINT (extended: ...)", " at offset N"). */
export function cleanSqliteError(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message
    .replace(/ at offset \d+/, "")
    .replace(/: SQLITE_[A-Z_]+(?: \(extended: [A-Z_]+\))?$/, "")
    .trim();
}

export class SqlStateMachine {
  private readonly sql: SqlStorage;
  private readonly kv: SyncKvStorage;
  private readonly maxDedupResultBytes: number;
  private readonly maxResultRows: number;
  private readonly maxResultBytes: number;
  private readonly declaredTypes: DeclaredTypes;
  private triggersBySchema: { readonly hash: string; readonly found: boolean } | null = null;
  /**
   * The applied index and schema as stored, kept in memory: every peer answer and every read reports them. Null
   * until read. Only this class writes them (and the snapshot installer, after which forgetCachedState() runs); a
   * transaction that rolls back a schema write drops the cached schema (see inTransaction).
   */
  private cachedApplied: number | null = null;
  private cachedSchema: SchemaInfo | null = null;
  /** The dedup window's bookkeeping, with its counts and index entries in memory (every write updates them). */
  private readonly dedupWindow: DedupWindow;
  /** Bumped whenever the remembered requests may change (an entry applied, a transaction undone, state replaced). */
  private stateVersion = 0;
  private lastLookup: {
    readonly id: string;
    readonly record: DedupRecord | undefined;
    readonly stateVersion: number;
  } | null = null;
  /** Counts schema writes, so a rolled-back transaction knows whether the cached schema may be one it undid. */
  private schemaWrites = 0;

  constructor(
    private readonly storage: DurableObjectStorage,
    options: SqlStateMachineOptions = {},
  ) {
    this.sql = storage.sql;
    this.kv = storage.kv;
    const option = (name: keyof typeof DEFAULT_STATE_MACHINE_OPTIONS): number =>
      positiveInteger(options[name], DEFAULT_STATE_MACHINE_OPTIONS[name], name);
    this.maxDedupResultBytes = option("maxDedupResultBytes");
    this.maxResultRows = option("maxResultRows");
    this.maxResultBytes = option("maxResultBytes");
    this.declaredTypes = new DeclaredTypes(storage);
    this.dedupWindow = new DedupWindow(this.kv, {
      maxEntries: option("maxDedupEntries"),
      maxBytes: option("maxDedupBytes"),
      ...(options.checkDedupIndex === undefined ? {} : { checkAgainstStorage: options.checkDedupIndex }),
    });
  }

  /**
   * On the leader, before proposing a prepared request: refuses one whose recursive CTEs yield more than
   * maxResultRows rows, and trial-runs (always rolled back) one that may do large finite work, so that a write that
   * never ends is never proposed (the design is in runaway.ts). Returns whether the trial ran.
   */
  checkBeforeProposing(
    request: SqlRequest,
  ): { readonly ok: true; readonly trialRun: boolean } | { readonly ok: false; readonly error: string } {
    for (const [i, statement] of request.statements.entries()) {
      // Cheap test first: a statement without the word WITH has no CTE (most writes, every row of a dump).
      if (!/with/i.test(statement.sql)) {
        continue;
      }
      for (const check of recursionChecks(statement, this.maxResultRows)) {
        const refusal = this.recursionRefusal(check);
        if (refusal !== null) {
          return { ok: false, error: `statements[${i}]: ${refusal}` };
        }
      }
    }
    const mayReadTables = request.statements.some(
      (statement) => /select|with|from|\bin\b/i.test(statement.sql) && readsOtherTables(statement.sql),
    );
    if (!mayReadTables && !this.hasTriggers()) {
      return { ok: true, trialRun: false };
    }
    this.trialRun(request);
    return { ok: true, trialRun: true };
  }

  /** Why a recursive CTE may not be in a write (more rows than allowed, or it cannot run by itself), or null. */
  private recursionRefusal(check: RecursionCheck): string | null {
    const name = JSON.stringify(check.name);
    let rows = 0;
    try {
      for (const _row of this.sql.exec(check.sql, ...check.params).raw()) {
        rows += 1;
        if (rows > this.maxResultRows) {
          break;
        }
      }
    } catch (error) {
      // A failing storage is no reason to refuse the write (400): it throws on, and the request fails as the node's.
      statementResultError(error, "while checking a recursive common table expression");
      return (
        `the recursive common table expression ${name} cannot run by itself (${cleanSqliteError(error)}), so it cannot ` +
        "be shown to end; in a write, a recursive CTE may not read NEW, OLD or the columns of an enclosing query"
      );
    }
    if (rows <= this.maxResultRows) {
      return null;
    }
    return (
      `the recursive common table expression ${name} yields more than ${this.maxResultRows} rows, the most one may ` +
      "yield in a write (DHA_MAX_RESULT_ROWS): every replica applies a write, so one that never ended would stop them " +
      "all; bound the recursion (a WHERE on its step, or a LIMIT)"
    );
  }

  /** Runs a request as applyEntry would, in a transaction that is always rolled back; the results are dropped. */
  private trialRun(request: SqlRequest): void {
    try {
      this.inTransaction(() => {
        if (request.transaction) {
          this.runAllOrNothing(request.statements);
        } else {
          this.runEach(request.statements);
        }
        throw new Rollback();
      });
    } catch (error) {
      if (!(error instanceof Rollback)) {
        throw error;
      }
    }
  }

  /** Whether the user schema holds a trigger (any write may then fire work beyond its own rows); cached per schema. */
  private hasTriggers(): boolean {
    const hash = this.schemaInfo().hash;
    if (this.triggersBySchema?.hash !== hash) {
      const found = rowsOf(this.sql, "SELECT 1 FROM sqlite_master WHERE type = 'trigger' LIMIT 1").length > 0;
      this.triggersBySchema = { hash, found };
    }
    return this.triggersBySchema.found;
  }

  /** The index of the last entry applied (0 before any). */
  appliedIndex(): number {
    this.cachedApplied ??= this.kv.get<number>(StateKeys.applied) ?? 0;
    return this.cachedApplied;
  }

  /**
   * Applies one committed entry, in order. Returns the per-statement results of a normal entry ([] for noop and
   * config), or null when the entry was already applied (a replay after a crash). Throws, changing nothing, when
   * the entry is out of order or its data cannot be decoded: a node must stop rather than diverge.
   */
  applyEntry(entry: LogEntryToApply): StatementResult[] | null {
    if (!Number.isSafeInteger(entry.index) || entry.index < 1) {
      throw new Error(`invalid log index ${entry.index}`);
    }
    if (entry.kind !== "normal" && entry.kind !== "noop" && entry.kind !== "config") {
      throw new Error(`invalid entry kind ${String(entry.kind)}`);
    }
    this.stateVersion += 1;
    const applied = this.appliedIndex();
    if (entry.index <= applied) {
      return null;
    }
    if (entry.index !== applied + 1) {
      throw new Error(
        `entry ${entry.index} cannot be applied: the last applied entry is ${applied}; entries apply in order`,
      );
    }
    // A consistency checkpoint or verdict (src/objects/monitor) digests the state at exactly this index: no results.
    const monitor = entry.kind === "normal" && isMonitorCommand(entry.data);
    const request = entry.kind === "normal" && !monitor ? decodeSqlRequest(entry.data) : null;
    const results = this.inTransaction(() => {
      if (monitor) {
        applyMonitorEntry(this.storage, entry.data, entry.index, () => performance.now());
      }
      const applied = request === null ? [] : this.applyRequest(request, entry.index);
      this.kv.put(StateKeys.applied, entry.index);
      return applied;
    });
    // Only once committed: a transaction that threw left the stored index (and so the cached one) as it was.
    this.cachedApplied = entry.index;
    return results;
  }

  /**
   * transactionSync that keeps the in-memory copies true: when it rolls back after writing the schema, the cached
   * schema may be the undone one, so it is read from storage again.
   */
  private inTransaction<T>(fn: () => T): T {
    const schemaWritesBefore = this.schemaWrites;
    const dedupWritesBefore = this.dedupWindow.writes;
    try {
      return this.storage.transactionSync(fn);
    } catch (error) {
      this.stateVersion += 1;
      // Reads run in a transaction that always rolls back: only one that wrote the window makes its counts stale.
      if (this.dedupWindow.writes !== dedupWritesBefore) {
        this.dedupWindow.forget();
      }
      if (this.schemaWrites !== schemaWritesBefore) {
        this.cachedSchema = null;
      }
      throw error;
    }
  }

  /** Storage changed behind this object (a snapshot was installed): read the applied index and schema again. */
  forgetCachedState(): void {
    this.cachedApplied = null;
    this.cachedSchema = null;
    this.dedupWindow.forget();
    this.stateVersion += 1;
  }

  private applyRequest(request: SqlRequest, index: number): StatementResult[] {
    const fingerprint = request.fingerprint;
    const remembered = this.dedupWindow.record(request.id);
    if (remembered !== undefined) {
      // Two different requests under one id can both reach the log (sent concurrently): the second applies nothing.
      return isReusedId(remembered, fingerprint)
        ? Array.from({ length: request.statements.length }, () => ({ error: reusedIdMessage(request.id, remembered) }))
        : this.resultsOf(remembered, request.id);
    }
    const results = request.transaction ? this.runAllOrNothing(request.statements) : this.runEach(request.statements);
    if (!request.id.startsWith(STRONG_READ_ID_PREFIX)) {
      this.rememberRequest({ id: request.id, fingerprint }, index, results);
    }
    return results;
  }

  /** rqlite semantics without a transaction: every statement runs; a failure is reported and the rest go on. */
  private runEach(statements: readonly Statement[]): StatementResult[] {
    // Each statement is atomic on its own: SQLite undoes a failed statement's partial effects (statement journal)
    // while the surrounding transaction stays open.
    const budget = this.newBudget();
    return statements.map((statement) =>
      deferSettingOf(statement) === null
        ? this.runStatement(statement, "write", budget)
        : { error: DEFER_NEEDS_TRANSACTION },
    );
  }

  /**
   * All or nothing: stops at the first failure and undoes everything the request did. The results are rqlite's (db.go,
   * executeWithConn): up to and including the failing statement, which answers its error alone, even when it changed
   * rows before failing (a RETURNING value it could not read exactly, a result over the limit): those changes are
   * rolled back. The statements before it keep the counts they had, as rqlite's do.
   */
  private runAllOrNothing(statements: readonly Statement[]): StatementResult[] {
    const results: StatementResult[] = [];
    const budget = this.newBudget();
    const setsDefer = statements.some((statement) => deferSettingOf(statement) !== null);
    let deferring = false;
    try {
      this.inTransaction(() => {
        for (const statement of statements) {
          const setting = setsDefer ? deferSettingOf(statement) : null;
          // Turning deferral off forgets what it deferred (SQLite resets its count): check before it does.
          const violation = setting === false && deferring ? this.foreignKeyViolation() : null;
          if (violation !== null) {
            results.push({ error: violation });
            throw new Rollback();
          }
          const result = this.runStatement(statement, "write", budget);
          if (result.error !== undefined) {
            results.push(errorAlone(result, result.error));
            throw new Rollback();
          }
          deferring = setting ?? deferring;
          results.push(result);
        }
        const atEnd = deferring ? this.foreignKeyViolation() : null;
        const last = results.pop();
        if (atEnd !== null && last !== undefined) {
          // The transaction fails at its end, where SQLite would have checked: its last statement answers so.
          results.push(errorAlone(last, atEnd));
          throw new Rollback();
        }
        if (last !== undefined) {
          results.push(last);
        }
      });
    } catch (error) {
      if (!(error instanceof Rollback)) {
        throw error;
      }
    } finally {
      if (setsDefer) {
        // The setting outlives the transaction (it is the connection's): the next entry must not inherit it.
        this.sql.exec("PRAGMA defer_foreign_keys = OFF");
      }
    }
    return results;
  }

  /**
   * Which deferred foreign key violations the database holds, as a statement's error, or null when none. Every
   * replica holds the same rows, so every replica finds the same first violation and count.
   */
  private foreignKeyViolation(): string | null {
    let first: readonly SqlValue[] | undefined;
    let count = 0;
    try {
      for (const row of this.sql.exec("PRAGMA foreign_key_check").raw()) {
        first ??= row.map(fromStorageValue);
        count += 1;
        if (count >= MAX_VIOLATIONS_COUNTED) {
          break;
        }
      }
    } catch (error) {
      statementResultError(error, "while checking deferred foreign keys");
      return cleanSqliteError(error);
    }
    if (first === undefined) {
      return null;
    }
    const [table, rowid, parent] = first;
    const rows =
      count >= MAX_VIOLATIONS_COUNTED
        ? `at least ${count} rows refer`
        : count === 1
          ? "1 row refers"
          : `${count} rows refer`;
    const where = rowid === null || rowid === undefined ? "" : ` (rowid ${String(rowid)})`;
    return (
      `FOREIGN KEY constraint failed: with defer_foreign_keys the keys were checked at the end of the transaction, ` +
      `and ${rows} to rows that do not exist; the first is in ${JSON.stringify(table)}${where}, referring to ` +
      `${JSON.stringify(parent)}. Nothing was applied`
    );
  }

  private newBudget(): ResultBudget {
    return new ResultBudget(this.maxResultRows, this.maxResultBytes);
  }

  private runStatement(statement: Statement, mode: "write" | "read", budget: ResultBudget): StatementResult {
    const started = performance.now();
    const seconds = (): number => (performance.now() - started) / 1000;
    if (typeof statement.sql !== "string") {
      return { error: "a statement needs an sql string", time: seconds() };
    }
    const { shape, hazard } = inspectStatement(statement.sql);
    if (hazard !== null) {
      return { error: hazard, time: seconds() };
    }
    if (mode === "read" && shape.access !== "read") {
      return { error: READ_ONLY_VIOLATION, time: seconds() };
    }
    const params = statement.params ?? [];
    if (!Array.isArray(params)) {
      return {
        error: "named parameters must be made positional (prepareWrite/prepareRead) before they reach a node",
        time: seconds(),
      };
    }
    if (params.some((value) => typeof value === "bigint")) {
      // prepareWrite/prepareRead write 64-bit integers into the SQL as literals; the platform cannot bind them.
      return {
        error:
          "64-bit integer parameters must be written into the SQL (prepareWrite/prepareRead) before they reach a node",
        time: seconds(),
      };
    }
    const answer = shape.pragma === undefined ? null : answerPragma(shape.pragma);
    if (answer !== null) {
      if ("error" in answer) {
        return { error: answer.error, time: seconds() };
      }
      const rows = answer.rows.map((row) => [...row]);
      return {
        columns: answer.columns,
        types: resultColumnTypes(null, answer.columns.length, rows),
        rows,
        time: seconds(),
      };
    }
    const schemaBefore = shape.changesSchema ? this.schemaInfo() : null;
    let columns: string[];
    let read: ReadRows;
    const budgetAtStart = { rows: budget.rowsLeft, bytes: budget.bytesLeft };
    try {
      const cursor = this.sql.exec(statement.sql, ...(params as readonly SqlValue[]));
      columns = cursor.columnNames;
      read = readRows(cursor, budget, { drain: shape.access === "write" });
    } catch (error) {
      return this.statementFailed(error, shape, seconds());
    }
    if (shape.pragma?.name === "table_list") {
      // PRAGMA table_list names the platform's tables too; users see only their own (column 1 is the name).
      read = { ...read, rows: read.rows.filter((row) => typeof row[1] !== "string" || !isInternalName(row[1])) };
    }
    // From here on only our own bookkeeping runs: whatever fails now is the storage, never the statement's result.
    const result: { -readonly [K in keyof StatementResult]: StatementResult[K] } = {};
    if (shape.isDml) {
      const [changes, lastInsertId] = rowsOf(this.sql, "SELECT changes(), CAST(last_insert_rowid() AS TEXT)")[0] ?? [
        0,
        "0",
      ];
      result.lastInsertId = exactInteger(BigInt(String(lastInsertId)));
      result.rowsAffected = Number(changes);
    } else if (columns.length === 0) {
      result.rowsAffected = 0;
    }
    if (schemaBefore !== null) {
      this.noteSchemaChange(schemaBefore);
    }
    if (read.tooLarge === null && read.rows.some((row) => row.some(isPossiblyRoundedInteger))) {
      // The same rows again, counted once.
      budget.rowsLeft = budgetAtStart.rows;
      budget.bytesLeft = budgetAtStart.bytes;
      let exact: ReadRows | null;
      try {
        exact = this.readExactly(statement.sql, params as readonly SqlValue[], columns.length, budget);
      } catch (error) {
        return this.statementFailed(error, shape, seconds());
      }
      read = exact ?? {
        rows: [],
        tooLarge: null,
        inexact:
          "the result holds an integer beyond ±2^53 that this platform cannot return exactly from this statement; " +
          "select it as text (CAST(x AS TEXT)) in a separate query",
      };
    }
    if (read.tooLarge !== null) {
      result.error = read.tooLarge;
    } else if (read.inexact !== undefined) {
      result.error = read.inexact;
    } else if (columns.length > 0) {
      result.columns = columns;
      const declared = this.declaredTypes.of(statement.sql, columns.length, this.schemaInfo().hash);
      result.types = resultColumnTypes(declared, columns.length, read.rows);
      result.rows = read.rows;
    }
    result.time = seconds();
    return result;
  }

  /**
   * The result of a statement that threw: its error, when the statement's SQL and the data decided it (the same on
   * every replica). An error of the storage underneath is thrown on (StorageFailure): recorded as the result, it
   * would make this replica differ from the others; thrown, it rolls the entry back and the node reloads.
   */
  private statementFailed(error: unknown, shape: StatementShape, time: number): StatementResult {
    statementResultError(error, "while running a statement");
    const message = cleanSqliteError(error);
    if (shape.pragma !== undefined && message === "not authorized") {
      return { error: `PRAGMA ${shape.pragma.name} is not available: the platform refuses it (not authorized)`, time };
    }
    return { error: message, time };
  }

  /**
   * Runs a query again so that every INTEGER comes back exact. The platform hands INTEGERs to JavaScript as doubles,
   * rounding those beyond 2^53; read as text (with typeof beside each value) they survive. Only queries (SELECT,
   * VALUES, WITH ... SELECT) can run twice without effect; for anything else (RETURNING) this returns null.
   * The wrapped query reads the same rows in the same order: the outer SELECT neither filters nor sorts.
   */
  private readExactly(
    sql: string,
    params: readonly SqlValue[],
    columnCount: number,
    budget: ResultBudget,
  ): ReadRows | null {
    if (typeProbe(sql)?.query !== true || columnCount === 0) {
      return null;
    }
    const names = Array.from({ length: columnCount }, (_, i) => `c${i}`);
    const select = names
      .map((c) => `typeof(${c}), CASE typeof(${c}) WHEN 'integer' THEN CAST(${c} AS TEXT) ELSE ${c} END`)
      .join(", ");
    const cursor = this.sql.exec(
      `WITH ${EXACT_CTE}(${names.join(", ")}) AS (${sql}) SELECT ${select} FROM ${EXACT_CTE}`,
      ...params,
    );
    const read = readRows(cursor, budget, { drain: false });
    return { ...read, rows: read.rows.map((raw) => exactRow(raw, columnCount)) };
  }

  private noteSchemaChange(before: SchemaInfo): void {
    const hash = computeSchemaHash(this.sql);
    if (hash === before.hash) {
      return;
    }
    this.schemaWrites += 1;
    this.cachedSchema = null;
    this.kv.put(StateKeys.schemaVersion, before.version + 1);
    this.kv.put(StateKeys.schemaHash, hash);
  }

  private rememberRequest(
    { id, fingerprint }: { id: string; fingerprint: string | undefined },
    index: number,
    results: readonly StatementResult[],
  ): void {
    // Without timings: each replica times what it runs (on Workers the clock stands still within the apply, elsewhere
    // it does not), and a record must weigh the same on every replica. The window forgets the oldest by bytes: a
    // request forgotten on one replica only would, sent again, apply there alone.
    const untimed = results.map(({ time: _time, ...rest }) => rest);
    let encoded: string | null = encodeStatementResults(untimed);
    if (utf8ByteLength(encoded) > this.maxDedupResultBytes) {
      // Keep what a retrying writer needs (outcome, ids, counts); rows are what make results large. The encoding
      // leaves out the fields a result does not have, so the kept ones are written as before.
      encoded = encodeStatementResults(
        results.map(({ lastInsertId, rowsAffected, error }) => ({ lastInsertId, rowsAffected, error })),
      );
      if (utf8ByteLength(encoded) > this.maxDedupResultBytes) {
        encoded = null;
      }
    }
    const record: DedupRecord = {
      index,
      results: encoded,
      count: results.length,
      ...(fingerprint === undefined ? {} : { fingerprint }),
    };
    this.dedupWindow.remember(id, record);
  }

  /**
   * The record of a remembered id. The leader looks a write's id up twice before proposing it (reusedIdRefusal, then
   * rememberedResults): the second lookup reuses the first while no entry was applied and no state replaced since.
   */
  private rememberedRecord(id: string): DedupRecord | undefined {
    const last = this.lastLookup;
    if (last !== null && last.id === id && last.stateVersion === this.stateVersion) {
      return last.record;
    }
    const record = this.dedupWindow.record(id);
    this.lastLookup = { id, record, stateVersion: this.stateVersion };
    return record;
  }

  private resultsOf(record: DedupRecord, id: string): StatementResult[] {
    if (record.results !== null) {
      return decodeStatementResults(record.results);
    }
    const message = `request ${JSON.stringify(clientPartOfRequestId(id))} was already applied at index ${record.index}; its results were too large to keep`;
    return Array.from({ length: record.count }, () => ({ error: message }));
  }

  /** The results a request id was first answered with, if it is still remembered (a retry gets these). */
  rememberedResults(id: string): StatementResult[] | null {
    const record = this.rememberedRecord(id);
    return record === undefined ? null : this.resultsOf(record, id);
  }

  /**
   * Why a request (as the client sent it, not yet prepared) is refused when its id is remembered for a different
   * request; null when it is not.
   */
  reusedIdRefusal(request: SqlRequest): string | null {
    const record = this.rememberedRecord(request.id);
    return record !== undefined && isReusedId(record, requestFingerprint(request))
      ? reusedIdMessage(request.id, record)
      : null;
  }

  /** Whether a request id is currently remembered, and at which index it was applied. */
  rememberedRequest(id: string): { readonly index: number } | null {
    const record = this.rememberedRecord(id);
    return record === undefined ? null : { index: record.index };
  }

  /**
   * Runs read statements locally, without the log. Statements that would write are refused with rqlite's message
   * and, as a second line of defence, everything runs inside a transaction that is always rolled back. Every
   * statement answers, with `transaction` too: a failed read changes nothing, and rqlited 8.26.8 goes on past it (a
   * write's transaction stops at its first failure). Throws ResultLimitError, returning nothing, when the results
   * exceed the request's row or byte budget.
   */
  query(statements: readonly Statement[], _options: { readonly transaction: boolean }): StatementResult[] {
    const results: StatementResult[] = [];
    const budget = this.newBudget();
    try {
      this.inTransaction(() => {
        for (const statement of statements) {
          const result = this.runStatement(statement, "read", budget);
          if (budget.isSpent()) {
            throw new ResultLimitError(`statement ${results.length + 1}: ${result.error ?? "the result is too large"}`);
          }
          results.push(result);
        }
        throw new Rollback();
      });
    } catch (error) {
      if (!(error instanceof Rollback)) {
        throw error;
      }
    }
    return results;
  }

  /** The schema version and hash. Reads only: a node that never changed its schema reports version 0. */
  schemaInfo(): SchemaInfo {
    if (this.cachedSchema === null) {
      const version = this.kv.get<number>(StateKeys.schemaVersion) ?? 0;
      const hash = this.kv.get<string>(StateKeys.schemaHash) ?? computeSchemaHash(this.sql);
      this.cachedSchema = { version, hash };
    }
    return this.cachedSchema;
  }

  /** A consistent image of the state at the applied index, in bounded chunks (see snapshot.ts). Synchronous. */
  createSnapshot(options: SnapshotOptions = {}): SnapshotImage {
    return writeSnapshot(this.storage, { index: this.appliedIndex(), schema: this.schemaInfo() }, options);
  }

  /** The database as SQL text in the form of SQLite's .dump (for GET /db/backup?fmt=sql). */
  dumpSql(options: DumpOptions = {}): string {
    return dumpDatabase(this.sql, options);
  }
}
