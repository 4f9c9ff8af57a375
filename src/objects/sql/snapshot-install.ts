// Receiving a snapshot (staged chunk by chunk in ctx.storage.kv, never touching live data) and installing it in one
// transactionSync. The stream format is described in snapshot.ts.
import { Sha256Stream } from "../sha256";
import type { SqlValue } from "../../shared/sql";
import { computeSchemaHash, listSchemaObjects, listTables, qualifiedColumns, rowsOf } from "../sqlite/catalog";
import type { SnapshotChunk, SnapshotId } from "../snapshot-types";
import { StateKeys, type DedupRecord } from "../storage-keys";
import { DedupWindowLoader } from "./dedup-window";
import {
  decodeImageValue,
  DEFAULT_SNAPSHOT_LIMITS,
  type ImageValue,
  limit,
  MAX_SNAPSHOT_CHUNK_BYTES,
  SNAPSHOT_FORMAT,
  SNAPSHOT_FORMAT_VERSION,
  SnapshotError,
  TextBytes,
} from "./snapshot";
import { quoteSqlIdentifier, quoteSqlString } from "../../shared/sql-text/tokenizer";
import { bytesToHex, utf8ByteLength } from "../sqlite/values";

export interface SnapshotInstallerOptions {
  /** Largest chunk accepted (UTF-8 bytes). */
  readonly maxChunkBytes?: number;
  /** Largest total staged before chunks are refused. */
  readonly maxStagingBytes?: number;
}

export interface StagingStatus extends SnapshotId {
  /** Chunks received so far; the next expected seq. */
  readonly chunks: number;
  readonly bytes: number;
  /** The last chunk has arrived. */
  readonly complete: boolean;
}

export interface InstallOutcome {
  /** False when the node had already applied beyond the image (nothing was changed but the staging cleared). */
  readonly installed: boolean;
  /** The applied index after the call. */
  readonly appliedIndex: number;
}

export interface FinishOptions {
  /**
   * A repair (src/objects/monitor): install even when this node applied as far as the image or further (its state
   * diverged; the caller replays its own log from the image's index on). The image must be at least at
   * `minImageIndex`, the oldest index the caller can replay from.
   */
  readonly replace?: { readonly minImageIndex: number };
  /**
   * Runs inside the install's transaction, last (also when the image turns out not newer than what is applied): the
   * caller's own records of the snapshot (the Raft log's) commit with the image or not at all.
   */
  readonly alongside?: () => void;
}

function sameSnapshot(a: SnapshotId, b: SnapshotId): boolean {
  return a.snapshotIndex === b.snapshotIndex && a.snapshotTerm === b.snapshotTerm;
}

function checkSnapshotId(id: SnapshotId): void {
  if (!Number.isSafeInteger(id.snapshotIndex) || id.snapshotIndex < 1) {
    throw new SnapshotError(`invalid snapshot index ${id.snapshotIndex}`);
  }
  if (!Number.isSafeInteger(id.snapshotTerm) || id.snapshotTerm < 0) {
    throw new SnapshotError(`invalid snapshot term ${id.snapshotTerm}`);
  }
}

/**
 * Receives a snapshot's chunks over several calls (staged in ctx.storage.kv, never touching live data), then swaps
 * it in atomically. The image inside may reflect a later applied index than the Raft snapshot it travels under: the
 * leader images its state as of sending; entries up to that index are then skipped as already applied.
 */
export class SnapshotInstaller {
  private readonly maxChunkBytes: number;
  private readonly maxStagingBytes: number;

  constructor(
    private readonly storage: DurableObjectStorage,
    options: SnapshotInstallerOptions = {},
  ) {
    this.maxChunkBytes = limit(
      options.maxChunkBytes,
      MAX_SNAPSHOT_CHUNK_BYTES,
      MAX_SNAPSHOT_CHUNK_BYTES,
      "maxChunkBytes",
    );
    this.maxStagingBytes = limit(
      options.maxStagingBytes,
      DEFAULT_SNAPSHOT_LIMITS.maxStagingBytes,
      Number.MAX_SAFE_INTEGER,
      "maxStagingBytes",
    );
  }

  /** What is staged, or null. */
  status(): StagingStatus | null {
    return this.storage.kv.get<StagingStatus>(StateKeys.stagingMeta) ?? null;
  }

  /** True when every chunk of that snapshot is staged. */
  isComplete(id: SnapshotId): boolean {
    const staged = this.status();
    return staged !== null && sameSnapshot(staged, id) && staged.complete;
  }

  /**
   * Stages one chunk. Chunks arrive in order; a repeat of a chunk already staged is accepted when identical.
   * A chunk 0 of another snapshot, or of the same snapshot with other content (the sender imaged its state again),
   * discards what was staged and starts over. Anything else out of order, or beyond the bounds, throws.
   */
  receive(chunk: SnapshotChunk): StagingStatus {
    checkSnapshotId(chunk);
    if (!Number.isSafeInteger(chunk.seq) || chunk.seq < 0) {
      throw new SnapshotError(`invalid chunk seq ${chunk.seq}`);
    }
    if (typeof chunk.data !== "string") {
      throw new SnapshotError("chunk data must be a string");
    }
    const bytes = utf8ByteLength(chunk.data);
    if (bytes > this.maxChunkBytes) {
      throw new SnapshotError(`chunk ${chunk.seq} is ${bytes} bytes; at most ${this.maxChunkBytes} are accepted`);
    }
    const id: SnapshotId = { snapshotIndex: chunk.snapshotIndex, snapshotTerm: chunk.snapshotTerm };
    const name = `snapshot ${chunk.snapshotIndex} (term ${chunk.snapshotTerm})`;
    return this.storage.transactionSync(() => {
      let staged = this.status();
      if (
        staged !== null &&
        chunk.seq === 0 &&
        (!sameSnapshot(staged, id) || this.storage.kv.get(StateKeys.stagingChunk(0)) !== chunk.data)
      ) {
        this.discardStaging();
        staged = null;
      }
      if (staged !== null && !sameSnapshot(staged, id)) {
        throw new SnapshotError(
          `chunk ${chunk.seq} of ${name} arrived while snapshot ${staged.snapshotIndex} (term ${staged.snapshotTerm}) is staged; send chunk 0 first`,
        );
      }
      if (staged === null) {
        if (chunk.seq !== 0) {
          throw new SnapshotError(`chunk ${chunk.seq} of ${name} arrived before chunk 0`);
        }
        staged = { ...id, chunks: 0, bytes: 0, complete: false };
      }
      if (chunk.seq < staged.chunks) {
        if (this.storage.kv.get(StateKeys.stagingChunk(chunk.seq)) !== chunk.data) {
          throw new SnapshotError(`chunk ${chunk.seq} of ${name} differs from the one already staged`);
        }
        return staged;
      }
      if (staged.complete) {
        throw new SnapshotError(`${name} is complete with ${staged.chunks} chunks; chunk ${chunk.seq} is one too many`);
      }
      if (chunk.seq > staged.chunks) {
        throw new SnapshotError(`expected chunk ${staged.chunks} of ${name}, got ${chunk.seq}`);
      }
      if (staged.bytes + bytes > this.maxStagingBytes) {
        throw new SnapshotError(`${name} would exceed ${this.maxStagingBytes} staged bytes (maxStagingBytes)`);
      }
      this.storage.kv.put(StateKeys.stagingChunk(chunk.seq), chunk.data);
      const next: StagingStatus = {
        ...id,
        chunks: staged.chunks + 1,
        bytes: staged.bytes + bytes,
        complete: chunk.last,
      };
      this.storage.kv.put(StateKeys.stagingMeta, next);
      return next;
    });
  }

  /** Drops whatever is staged. */
  abort(): void {
    this.storage.transactionSync(() => this.discardStaging());
  }

  /**
   * Replaces the whole user database, the remembered request ids, the schema version and the applied index with
   * the staged image, in one transaction, and clears the staging. Anything wrong (incomplete or corrupt stream,
   * another snapshot staged, a schema hash that does not match the header) throws and changes nothing but the
   * staging, which is discarded when the staged image itself is at fault.
   * When the node has already applied as far as the image, nothing changes but the staging is cleared.
   */
  finish(id: SnapshotId, options: FinishOptions = {}): InstallOutcome {
    checkSnapshotId(id);
    const staged = this.status();
    const name = `snapshot ${id.snapshotIndex} (term ${id.snapshotTerm})`;
    if (staged === null || !sameSnapshot(staged, id)) {
      throw new SnapshotError(`${name} is not staged`);
    }
    if (!staged.complete) {
      throw new SnapshotError(`${name} is incomplete: ${staged.chunks} chunks staged, the last one has not arrived`);
    }
    try {
      return this.install(id, staged.chunks, options);
    } catch (error) {
      // The same bytes would fail the same way again: drop them so that the sender's next attempt starts afresh.
      try {
        this.abort();
      } catch (abortError) {
        throw new SnapshotError(
          `installing failed (${String(error)}) and so did discarding the staging (${String(abortError)})`,
        );
      }
      throw error;
    }
  }

  private install(id: SnapshotId, chunkCount: number, options: FinishOptions): InstallOutcome {
    return this.storage.transactionSync(() => {
      const applied = this.storage.kv.get<number>(StateKeys.applied) ?? 0;
      const imageIndex = readImageIndex(this.storage.kv.get<string>(StateKeys.stagingChunk(0)) ?? "");
      if (imageIndex < id.snapshotIndex) {
        throw new SnapshotError(
          `the staged image is at index ${imageIndex}, before the snapshot's ${id.snapshotIndex}`,
        );
      }
      if (options.replace !== undefined && imageIndex < options.replace.minImageIndex) {
        throw new SnapshotError(
          `the staged image is at index ${imageIndex}, before ${options.replace.minImageIndex}, the oldest this node can replay from`,
        );
      }
      if (options.replace === undefined && imageIndex <= applied) {
        this.discardStaging();
        options.alongside?.();
        return { installed: false, appliedIndex: applied };
      }
      new SnapshotLoader(this.storage, imageIndex).load(this.stagedChunks(chunkCount));
      this.discardStaging();
      options.alongside?.();
      return { installed: true, appliedIndex: imageIndex };
    });
  }

  private *stagedChunks(count: number): Generator<string> {
    for (let seq = 0; seq < count; seq += 1) {
      const data = this.storage.kv.get<string>(StateKeys.stagingChunk(seq));
      if (typeof data !== "string") {
        throw new SnapshotError(`staged chunk ${seq} is missing`);
      }
      yield data;
    }
  }

  private discardStaging(): void {
    const keys = [...this.storage.kv.list({ prefix: StateKeys.stagingChunkPrefix })].map(([key]) => key);
    for (const key of keys) {
      this.storage.kv.delete(key);
    }
    this.storage.kv.delete(StateKeys.stagingMeta);
  }
}

/** The image's applied index, from its header (the first line, always inside chunk 0: chunks are >= 1 KiB). */
function readImageIndex(firstChunk: string): number {
  const newline = firstChunk.indexOf("\n");
  let header: unknown;
  try {
    header = JSON.parse(newline === -1 ? firstChunk : firstChunk.slice(0, newline));
  } catch {
    throw new SnapshotError("the staged snapshot does not start with a readable header");
  }
  const index = (header as { index?: unknown } | null)?.index;
  if (typeof index !== "number" || !Number.isSafeInteger(index) || index < 1) {
    throw new SnapshotError("the staged snapshot's header has no valid index");
  }
  return index;
}

interface HeaderRecord {
  readonly t: "header";
  readonly format: string;
  readonly version: number;
  readonly index: number;
  readonly schemaVersion: number;
  readonly schemaHash: string;
}

interface DedupLine {
  readonly id?: unknown;
  readonly index?: unknown;
  readonly results?: unknown;
  readonly count?: unknown;
  readonly fingerprint?: unknown;
}

interface ObjectRecord {
  readonly t: "object";
  readonly type: "table" | "index" | "view" | "trigger";
  readonly name: string;
  readonly tableName: string;
  readonly sql: string;
  readonly kind: "table" | "virtual" | "shadow" | null;
}

/** Parses the line stream and rebuilds the database; runs inside the installer's transaction. */
class SnapshotLoader {
  private readonly sql: SqlStorage;
  private readonly kv: SyncKvStorage;
  private header: HeaderRecord | null = null;
  private readonly objects: ObjectRecord[] = [];
  private phase: "header" | "objects" | "rows" | "dedup" | "done" = "header";
  private rowsTarget: {
    readonly table: string;
    readonly columns: readonly string[];
    readonly insertPrefix: string;
    readonly insertPrefixBytes: number;
  } | null = null;
  private lineCount = 0;
  private readonly dedupWindow: DedupWindowLoader;
  /** The index of the last dedup record loaded: they come oldest first, which the window's byte total relies on. */
  private lastDedupIndex = 0;
  /**
   * The ids loaded so far: a window holds each id once, and a second record for one would be counted twice and leave
   * an index entry behind. Bounded as the image is: a leader's window keeps at most maxDedupEntries (state-machine.ts).
   */
  private readonly dedupIds = new Set<string>();
  private readonly hash = new Sha256Stream();
  private readonly shadowTables = new Set<string>();
  /** Rows of the current rows section not yet inserted: they go in one multi-row INSERT (see flushRows). */
  private pendingRows: PendingRows = emptyPendingRows();

  constructor(
    storage: DurableObjectStorage,
    private readonly index: number,
  ) {
    this.sql = storage.sql;
    this.kv = storage.kv;
    this.dedupWindow = new DedupWindowLoader(this.kv);
  }

  load(chunks: Iterable<string>): void {
    let carry = "";
    for (const chunk of chunks) {
      const text = carry + chunk;
      let start = 0;
      for (let newline = text.indexOf("\n"); newline !== -1; newline = text.indexOf("\n", start)) {
        this.onLine(text.slice(start, newline));
        start = newline + 1;
      }
      carry = text.slice(start);
    }
    if (carry !== "") {
      throw new SnapshotError("the snapshot ends in the middle of a line");
    }
    if (this.phase !== "done") {
      throw new SnapshotError("the snapshot is incomplete (no end record)");
    }
  }

  private onLine(line: string): void {
    if (this.phase === "done") {
      throw new SnapshotError("data after the end record");
    }
    let record: unknown;
    try {
      record = JSON.parse(line);
    } catch {
      throw new SnapshotError(`line ${this.lineCount + 1} is not JSON`);
    }
    if (Array.isArray(record)) {
      this.count(line);
      this.insertRow(record);
      return;
    }
    if (typeof record !== "object" || record === null) {
      throw new SnapshotError(`line ${this.lineCount + 1} is not a record`);
    }
    const tagged = record as { readonly t?: unknown };
    if (tagged.t === "end") {
      this.onEnd(record as { lines?: unknown; sha256?: unknown });
      return;
    }
    this.count(line);
    switch (tagged.t) {
      case "header":
        return this.onHeader(record as HeaderRecord);
      case "object":
        if (this.phase !== "objects") {
          throw new SnapshotError("schema object out of place");
        }
        this.objects.push(record as ObjectRecord);
        return;
      case "rows":
        return this.onRows(record as { table?: unknown; columns?: unknown });
      case "dedup":
        return this.onDedup(record as DedupLine);
      default:
        throw new SnapshotError(`unknown record type ${JSON.stringify(tagged.t)}`);
    }
  }

  private count(line: string): void {
    this.lineCount += 1;
    this.hash.update(`${line}\n`);
  }

  private onHeader(header: HeaderRecord): void {
    if (this.phase !== "header") {
      throw new SnapshotError("a second header");
    }
    if (header.format !== SNAPSHOT_FORMAT || header.version !== SNAPSHOT_FORMAT_VERSION) {
      throw new SnapshotError(`unsupported snapshot format ${String(header.format)} v${String(header.version)}`);
    }
    if (header.index !== this.index) {
      throw new SnapshotError(`the snapshot's header says index ${header.index}, expected ${this.index}`);
    }
    if (!Number.isSafeInteger(header.schemaVersion) || typeof header.schemaHash !== "string") {
      throw new SnapshotError("malformed header");
    }
    this.header = header;
    this.phase = "objects";
    this.clearDatabase();
  }

  /** Drops every user object; foreign keys are checked only at the end (defer_foreign_keys), once all is back. */
  private clearDatabase(): void {
    this.sql.exec("PRAGMA defer_foreign_keys = ON");
    const tables = listTables(this.sql);
    for (const object of listSchemaObjects(this.sql)) {
      if (object.type === "view") {
        this.sql.exec(`DROP VIEW ${quoteSqlIdentifier(object.name)}`);
      }
    }
    for (const table of tables) {
      if (table.kind === "shadow") {
        continue;
      } // goes with its virtual table
      if (table.name.toLowerCase() === "sqlite_sequence") {
        this.sql.exec("DELETE FROM sqlite_sequence");
      } else {
        this.sql.exec(`DROP TABLE IF EXISTS ${quoteSqlIdentifier(table.name)}`);
      }
    }
    // The consistency monitor's records and DIVERGED flag describe the state being replaced: they go with it. So do
    // the remembered requests, but the loader keeps those the image holds unchanged (DedupWindowLoader).
    const windowEntries: (readonly [string, unknown])[] = [];
    const otherKeys: string[] = [];
    for (const entry of [
      ...this.kv.list({ prefix: StateKeys.dedupPrefix }),
      ...this.kv.list({ prefix: StateKeys.checkpointPrefix }),
    ]) {
      const key = entry[0];
      const inWindow = key.startsWith(StateKeys.dedupIdPrefix) || key.startsWith(StateKeys.dedupIndexPrefix);
      if (inWindow) {
        windowEntries.push(entry);
      } else {
        otherKeys.push(key);
      }
    }
    for (const key of otherKeys) {
      this.kv.delete(key);
    }
    this.dedupWindow.replacing(windowEntries);
  }

  private createTables(): void {
    let needsStats = false;
    for (const object of this.objects) {
      if (object.type !== "table") {
        continue;
      }
      const lower = object.name.toLowerCase();
      if (object.kind === "shadow") {
        this.shadowTables.add(object.name);
        continue;
      }
      if (lower.startsWith("sqlite_stat")) {
        needsStats = true;
      }
      if (lower.startsWith("sqlite_")) {
        continue;
      } // SQLite makes these itself
      this.sql.exec(object.sql);
    }
    if (needsStats && !this.tableExists("sqlite_stat1")) {
      this.sql.exec("ANALYZE sqlite_schema");
    }
  }

  private tableExists(name: string): boolean {
    return rowsOf(this.sql, "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?", name).length > 0;
  }

  private onRows(record: { table?: unknown; columns?: unknown }): void {
    this.flushRows();
    if (this.phase === "objects") {
      this.createTables();
      this.phase = "rows";
    }
    if (this.phase !== "rows") {
      throw new SnapshotError("rows out of place");
    }
    if (
      typeof record.table !== "string" ||
      !Array.isArray(record.columns) ||
      !record.columns.every((c) => typeof c === "string")
    ) {
      throw new SnapshotError("malformed rows record");
    }
    const table = record.table;
    const lower = table.toLowerCase();
    if (lower === "sqlite_sequence") {
      if (!this.tableExists("sqlite_sequence")) {
        // Only an AUTOINCREMENT table creates sqlite_sequence, and it cannot be created directly.
        this.sql.exec("CREATE TABLE _dha_sequence_maker(id INTEGER PRIMARY KEY AUTOINCREMENT)");
        this.sql.exec("DROP TABLE _dha_sequence_maker");
      }
      this.sql.exec("DELETE FROM sqlite_sequence");
    } else if (lower.startsWith("sqlite_stat")) {
      this.sql.exec(`DELETE FROM ${quoteSqlIdentifier(table)}`);
    }
    const columns = record.columns as string[];
    const insertPrefix = `INSERT INTO ${quoteSqlIdentifier(table)}(${qualifiedColumns(columns)}) VALUES `;
    this.rowsTarget = { table, columns, insertPrefix, insertPrefixBytes: utf8ByteLength(insertPrefix) };
  }

  private insertRow(encoded: readonly unknown[]): void {
    const target = this.rowsTarget;
    if (this.phase !== "rows" || target === null) {
      throw new SnapshotError("a row outside a rows section");
    }
    if (encoded.length !== target.columns.length) {
      throw new SnapshotError(
        `a row of ${target.table} has ${encoded.length} values for ${target.columns.length} columns`,
      );
    }
    const values = encoded.map((value, i) => decodeImageValue(value, `${target.table}.${target.columns[i] ?? i}`));
    const row = rowTuple(values);
    const pending = this.pendingRows;
    if (
      pending.count > 0 &&
      (pending.count >= MAX_ROWS_PER_INSERT ||
        pending.bindings.length + row.bindings.length > MAX_BINDINGS ||
        target.insertPrefixBytes + pending.bytes + row.bytes > MAX_STATEMENT_BYTES)
    ) {
      this.flushRows();
    }
    this.pendingRows.tuples.push(row.sql);
    this.pendingRows.bindings.push(...row.bindings);
    this.pendingRows.bytes += row.bytes;
    this.pendingRows.count += 1;
  }

  /**
   * Inserts the rows held so far in one statement: a call into SQLite per row cost more than the row itself (most of
   * an install's time). Bounded like any statement here: at most MAX_BINDINGS bound values and MAX_STATEMENT_BYTES.
   */
  private flushRows(): void {
    const pending = this.pendingRows;
    const target = this.rowsTarget;
    if (pending.count === 0 || target === null) {
      return;
    }
    this.pendingRows = emptyPendingRows();
    const sql = `${target.insertPrefix}${pending.tuples.join(", ")}`;
    if (utf8ByteLength(sql) > MAX_STATEMENT_BYTES) {
      throw new SnapshotError("a row is too wide to restore within the statement size limit");
    }
    this.sql.exec(sql, ...pending.bindings);
  }

  private finishRows(): void {
    this.flushRows();
    if (this.phase === "objects") {
      this.createTables();
    }
    // Indexes, views and triggers after the rows: triggers must not fire while rows are restored.
    for (const object of this.objects) {
      if (
        object.type === "table" ||
        this.shadowTables.has(object.tableName) ||
        object.name.toLowerCase().startsWith("sqlite_")
      ) {
        continue;
      }
      this.sql.exec(object.sql);
    }
    if (this.tableExists("sqlite_stat1")) {
      this.sql.exec("ANALYZE sqlite_schema");
    } // reloads the planner statistics
    this.phase = "dedup";
  }

  private onDedup(record: DedupLine): void {
    if (this.phase === "objects" || this.phase === "rows") {
      this.finishRows();
    }
    if (this.phase !== "dedup") {
      throw new SnapshotError("dedup record out of place");
    }
    const { id, index, results, count, fingerprint } = record;
    if (
      typeof id !== "string" ||
      !Number.isSafeInteger(index) ||
      !(typeof results === "string" || results === null) ||
      !Number.isSafeInteger(count) ||
      !(fingerprint === undefined || typeof fingerprint === "string")
    ) {
      throw new SnapshotError("malformed dedup record");
    }
    const dedup: DedupRecord = {
      index: index as number,
      results,
      count: count as number,
      ...(fingerprint === undefined ? {} : { fingerprint }),
    };
    if (dedup.index <= this.lastDedupIndex) {
      throw new SnapshotError("dedup records out of order");
    }
    if (this.dedupIds.has(id)) {
      throw new SnapshotError(`dedup id ${JSON.stringify(id.slice(0, 64))} appears twice`);
    }
    this.dedupIds.add(id);
    this.lastDedupIndex = dedup.index;
    this.dedupWindow.add(id, dedup);
  }

  private onEnd(record: { lines?: unknown; sha256?: unknown }): void {
    if (this.phase === "header") {
      throw new SnapshotError("the snapshot has no header");
    }
    if (this.phase === "objects" || this.phase === "rows") {
      this.finishRows();
    }
    if (record.lines !== this.lineCount) {
      throw new SnapshotError(`the snapshot has ${this.lineCount} lines, its end record says ${String(record.lines)}`);
    }
    const digest = this.hash.digestHex();
    if (record.sha256 !== digest) {
      throw new SnapshotError("the snapshot's checksum does not match its content");
    }
    const header = this.header as HeaderRecord;
    const hash = computeSchemaHash(this.sql);
    if (hash !== header.schemaHash) {
      throw new SnapshotError(`the restored schema hash ${hash} differs from the snapshot's ${header.schemaHash}`);
    }
    const violations = rowsOf(this.sql, "PRAGMA foreign_key_check");
    if (violations.length > 0) {
      throw new SnapshotError(`the restored data violates ${violations.length} foreign key constraint(s)`);
    }
    this.sql.exec("PRAGMA defer_foreign_keys = OFF");
    this.dedupWindow.finish();
    this.kv.put(StateKeys.schemaVersion, header.schemaVersion);
    this.kv.put(StateKeys.schemaHash, header.schemaHash);
    this.kv.put(StateKeys.applied, header.index);
    this.phase = "done";
  }
}

const MAX_BINDINGS = 100;
const MAX_STATEMENT_BYTES = 100_000;
/** Rows one INSERT restores at most (fewer when their bound values or text reach the bounds above). */
const MAX_ROWS_PER_INSERT = 64;

interface PendingRows {
  readonly tuples: string[];
  readonly bindings: (SqlValue | string)[];
  /** UTF-8 bytes of the tuples' text, separators included. */
  bytes: number;
  count: number;
}

function emptyPendingRows(): PendingRows {
  return { tuples: [], bindings: [], bytes: 0, count: 0 };
}

/**
 * Whether a value is written as a short literal at no cost when it cannot be bound: NULL and integers are; text,
 * blobs and reals are bound first (a literal of one may not fit the statement, or, for text with NUL, be written).
 */
function literalIsCheap(value: ImageValue): boolean {
  if (value instanceof TextBytes) {
    return false;
  }
  return (
    value === null ||
    typeof value === "bigint" ||
    (typeof value === "number" && Number.isInteger(value)) ||
    (typeof value === "object" && !(value instanceof Uint8Array) && "bigint" in value)
  );
}

/**
 * Which values of a row are bound: all but NULLs when they fit within 100 bound values; else every text, blob and
 * real first, and integers with what is left (a 100-column table's row has 101 values with its rowid, and its
 * 101st written as a literal must not be a large text).
 */
function boundPositions(values: readonly ImageValue[]): ReadonlySet<number> | null {
  if (values.length <= MAX_BINDINGS) {
    return null;
  }
  const positions = values.map((_, i) => i);
  const costly = positions.filter((i) => !literalIsCheap(values[i] as ImageValue));
  const cheap = positions.filter((i) => literalIsCheap(values[i] as ImageValue) && values[i] !== null);
  return new Set([...costly, ...cheap].slice(0, MAX_BINDINGS));
}

/**
 * One row's `(...)` of an INSERT's VALUES. Values are bound (text, blobs, reals exactly) except NULL; whole numbers
 * go through CAST(? AS INTEGER) because the platform binds every JS number as a REAL. Beyond 100 values, those
 * boundPositions leaves out are written as literals.
 */
function rowTuple(values: readonly ImageValue[]): { sql: string; bindings: (SqlValue | string)[]; bytes: number } {
  const bindings: (SqlValue | string)[] = [];
  const bound = boundPositions(values);
  const parts = values.map((value, i) => {
    const canBind = bound === null || bound.has(i);
    if (value === null) {
      return "NULL";
    }
    if (typeof value === "number") {
      if (!Number.isInteger(value)) {
        return bindOrLiteral(canBind, bindings, value, realLiteral(value));
      }
      return canBind ? (bindings.push(value), "CAST(? AS INTEGER)") : value.toString();
    }
    if (typeof value === "string") {
      if (!canBind && value.includes("\u0000")) {
        throw new SnapshotError("a text value with NUL characters beyond the 100 values one statement binds");
      }
      return bindOrLiteral(canBind, bindings, value, quoteSqlString(value));
    }
    if (value instanceof Uint8Array) {
      return bindOrLiteral(canBind, bindings, value, `x'${bytesToHex(value)}'`);
    }
    if (value instanceof TextBytes) {
      // The bytes as given: a cast from BLOB to TEXT neither checks nor converts them.
      return `CAST(${bindOrLiteral(canBind, bindings, value.bytes, `x'${bytesToHex(value.bytes)}'`)} AS TEXT)`;
    }
    if (typeof value === "bigint") {
      return canBind ? (bindings.push(value.toString()), "CAST(? AS INTEGER)") : value.toString();
    }
    if ("bigint" in value) {
      return canBind ? (bindings.push(value.bigint), "CAST(? AS INTEGER)") : value.bigint;
    }
    return bindOrLiteral(canBind, bindings, value.real, realLiteral(value.real));
  });
  const sql = `(${parts.join(", ")})`;
  const bytes = utf8ByteLength(sql) + 2;
  if (bytes > MAX_STATEMENT_BYTES) {
    throw new SnapshotError("a row is too wide to restore within the statement size limit");
  }
  return { sql, bindings, bytes };
}

function bindOrLiteral(canBind: boolean, bindings: (SqlValue | string)[], value: SqlValue, literal: string): string {
  if (!canBind) {
    return literal;
  }
  bindings.push(value);
  return "?";
}

function realLiteral(value: number): string {
  if (value === Infinity) {
    return "9e999";
  }
  if (value === -Infinity) {
    return "-9e999";
  }
  const text = value.toString();
  return /[.eE]/.test(text) ? text : `${text}.0`;
}
