// Snapshots of the SQL state machine: schema, every row of every user table (with rowids), the remembered request
// ids, the schema version, all at one applied index.
//
// Format: newline-delimited JSON, one record per line, cut into chunks of at most maxChunkBytes UTF-8 bytes at any
// character boundary (a line may span chunks, so a 2 MB value never breaks the bound). Lines:
//   {"t":"header","format":"durable-ha/sql-snapshot","version":1,"index":..,"schemaVersion":..,"schemaHash":..}
//   {"t":"object","type":"table","name":..,"tableName":..,"sql":..,"kind":"table"|"virtual"|"shadow"}   creation order
//   {"t":"rows","table":..,"columns":[..]}  then one JSON array per row (first value is the rowid when columns
//                                            start with a rowid name)          values tagged as in values.ts, plus
//                                            {"$text": base64} for TEXT whose bytes are not valid UTF-8 (TextBytes)
//   {"t":"dedup","id":..,"index":..,"results":..,"count":..,"fingerprint":..}   fingerprint optional
//   {"t":"end","lines":N,"sha256":hex of every byte before this line}
// The receiver (snapshot-install.ts) stages chunks in ctx.storage.kv and swaps the image in with one transactionSync.
import { Sha256Stream } from "../sha256";
import { listSchemaObjects, listTables, qualifiedColumns, type TableInfo } from "../sqlite/catalog";
import type { SnapshotImage } from "../snapshot-types";
import { StateKeys, type DedupRecord } from "../storage-keys";
import { quoteSqlIdentifier } from "../../shared/sql-text/tokenizer";
import {
  base64ToBytes,
  bytesToBase64,
  decodeValue,
  encodeValue,
  utf8ByteLength,
  utf8PrefixEnd,
  type EncodedValue,
  type StoredValue,
} from "../sqlite/values";
import { LostTextRecovery, scanOrder, type ScanOrder } from "./exact-text";

export const SNAPSHOT_FORMAT = "durable-ha/sql-snapshot";
/**
 * Still 1 with {"$text"} values: images without them are what they were, so nodes of the previous version install
 * them during a rolling restart. An installer from before {"$text"} refuses an image holding one ("unknown value tag
 * \"$text\"", values.ts decodeValue) and installs nothing, rather than install U+FFFD where the bytes were.
 */
export const SNAPSHOT_FORMAT_VERSION = 1;

/** A TEXT value whose bytes are not valid UTF-8 (exact-text.ts): restored as CAST(bytes AS TEXT). */
export class TextBytes {
  constructor(readonly bytes: Uint8Array) {}
}

/** A value of an image's row. */
export type ImageValue = StoredValue | TextBytes;

export function encodeImageValue(value: ImageValue): EncodedValue | { readonly $text: string } {
  return value instanceof TextBytes ? { $text: bytesToBase64(value.bytes) } : encodeValue(value);
}

/** Decodes what encodeImageValue produced; throws a SnapshotError on anything else. */
export function decodeImageValue(encoded: unknown, where: string): ImageValue {
  const text = (encoded as { $text?: unknown } | null)?.$text;
  try {
    if (text !== undefined && Object.keys(encoded as object).length === 1) {
      if (typeof text !== "string") {
        throw new Error(`${where}: $text must be a base64 string`);
      }
      return new TextBytes(base64ToBytes(text));
    }
    return decodeValue(encoded, where);
  } catch (error) {
    throw new SnapshotError((error as Error).message);
  }
}

export const DEFAULT_SNAPSHOT_LIMITS = {
  /** Per chunk: well under the RPC payload limit and the KV value limit. */
  maxChunkBytes: 512 * 1024,
  /** A whole snapshot is produced in memory, synchronously (so it is consistent): bound it. */
  maxTotalBytes: 64 * 1024 * 1024,
  /** What a receiver stages before refusing more. */
  maxStagingBytes: 256 * 1024 * 1024,
} as const;

/** Chunks are at least this large, so that the header line always sits whole in chunk 0. */
export const MIN_CHUNK_BYTES = 1024;

/** The largest chunk a receiver accepts, whatever the sender was configured with. */
export const MAX_SNAPSHOT_CHUNK_BYTES = 1024 * 1024;

export interface SnapshotOptions {
  readonly maxChunkBytes?: number;
  readonly maxTotalBytes?: number;
}

export class SnapshotError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "SnapshotError";
  }
}

export function limit(value: number | undefined, fallback: number, max: number, name: string): number {
  const chosen = value ?? fallback;
  if (!Number.isSafeInteger(chosen) || chosen < MIN_CHUNK_BYTES || chosen > max) {
    throw new SnapshotError(`${name} must be an integer from ${MIN_CHUNK_BYTES} to ${max}`);
  }
  return chosen;
}

// ---------------------------------------------------------------------------------------------------------------
// Writing

class ChunkWriter {
  readonly chunks: string[] = [];
  /** The current chunk's pieces, joined when it is full (see flush). */
  private pieces: string[] = [];
  private currentBytes = 0;
  private totalBytes = 0;
  private lineCount = 0;
  private readonly hash = new Sha256Stream();

  constructor(
    private readonly maxChunkBytes: number,
    private readonly maxTotalBytes: number,
  ) {}

  line(record: unknown): void {
    const text = `${JSON.stringify(record)}\n`;
    this.hash.update(text);
    this.lineCount += 1;
    this.append(text);
  }

  finish(): { readonly chunks: string[]; readonly bytes: number } {
    this.append(`${JSON.stringify({ t: "end", lines: this.lineCount, sha256: this.hash.digestHex() })}\n`);
    if (this.pieces.length > 0) {
      this.flush();
    }
    return { chunks: this.chunks, bytes: this.totalBytes };
  }

  private append(text: string): void {
    let offset = 0;
    while (offset < text.length) {
      const room = this.maxChunkBytes - this.currentBytes;
      const end = utf8PrefixEnd(text, offset, room);
      if (end === offset) {
        this.flush();
        continue;
      }
      const piece = text.slice(offset, end);
      const bytes = utf8ByteLength(piece);
      this.totalBytes += bytes;
      if (this.totalBytes > this.maxTotalBytes) {
        throw new SnapshotError(`the snapshot is larger than ${this.maxTotalBytes} bytes (maxTotalBytes)`);
      }
      this.pieces.push(piece);
      this.currentBytes += bytes;
      offset = end;
    }
  }

  /**
   * One flat string per chunk. A chunk grown with += is a rope of one node per line: every RPC that sends it must
   * flatten it first, a 512 KiB allocation that set off a full garbage collection in the middle of a catch-up (a
   * quarter of the CPU of a catch-up by snapshot, in a native profile), and the cached image is thousands of rope
   * nodes for the collector to trace meanwhile. join() builds the flat string once.
   */
  private flush(): void {
    this.chunks.push(this.pieces.join(""));
    this.pieces = [];
    this.currentBytes = 0;
  }
}

/**
 * Per row, one extra text column lists the values a JS number cannot describe by itself:
 * "<i>I<digits>;" an integer beyond 2^53, "<i>R;" a REAL with a whole value, "<i>P;"/"<i>N;" +/- infinity
 * (which the platform reads back as null). Every other number is an INTEGER if whole, else a REAL.
 */
function kindsExpression(columns: readonly string[]): string {
  if (columns.length === 0) {
    return "''";
  }
  return balancedConcat(
    columns.map((column, i) => {
      const c = quoteSqlIdentifier(column);
      return (
        `iif(typeof(${c})='integer',iif(${c} BETWEEN -9007199254740991 AND 9007199254740991,'','${i}I'||${c}||';'),` +
        `iif(typeof(${c})='real' AND ${c}=round(${c}),iif(abs(${c})=9e999,iif(${c}>0,'${i}P;','${i}N;'),'${i}R;'),''))`
      );
    }),
  );
}

/**
 * `a||b||c||...` as a balanced tree of parenthesized halves: a chain of N terms is an expression about N deep, and
 * the platform refuses expressions deeper than 100 (a chain failed from 95 columns on). The query's result columns
 * (rowid, the columns, the kinds) are bounded at 100 too: wider tables are read in parts (rowsInParts).
 */
function balancedConcat(terms: readonly string[]): string {
  if (terms.length === 1) {
    return terms[0] as string;
  }
  const half = Math.ceil(terms.length / 2);
  return `(${balancedConcat(terms.slice(0, half))})||(${balancedConcat(terms.slice(half))})`;
}

/** The most result columns one query may have on the platform ("too many columns in result set" beyond it). */
const MAX_RESULT_COLUMNS = 100;

function execForSnapshot(sql: SqlStorage, table: TableInfo, select: string): Iterator<SqlStorageValue[]> {
  try {
    return sql.exec(select).raw();
  } catch (error) {
    throw new SnapshotError(`cannot read table ${table.name} for a snapshot: ${(error as Error).message}`);
  }
}

/** The row with each TEXT value the platform could not decode exactly replaced by its bytes (exact-text.ts). */
function withExactTexts(table: TableInfo, values: ImageValue[], recovery: LostTextRecovery): ImageValue[] {
  let exact: ReadonlyMap<number, Uint8Array> | null;
  try {
    exact = recovery.exactTexts(values);
  } catch (error) {
    throw new SnapshotError(`cannot read table ${table.name} for a snapshot: ${(error as Error).message}`);
  }
  exact?.forEach((bytes, i) => {
    values[i] = new TextBytes(bytes);
  });
  return values;
}

function finishRecovery(table: TableInfo, recovery: LostTextRecovery): void {
  try {
    recovery.finish();
  } catch (error) {
    throw new SnapshotError(`cannot read table ${table.name} for a snapshot: ${(error as Error).message}`);
  }
}

/**
 * A table's rows, the values of `columns` each, in one query (with their kinds: the last result column), in the
 * order of `scanOrder` (its storage order: no sort), which a second cursor for exact text relies on.
 */
function* rowsInOneQuery(sql: SqlStorage, table: TableInfo, columns: readonly string[]): Generator<ImageValue[]> {
  const order = scanOrder(sql, table);
  const from = `${quoteSqlIdentifier(table.name)}${order.orderBy}`;
  const cursor = execForSnapshot(
    sql,
    table,
    `SELECT ${qualifiedColumns(columns)}, ${kindsExpression(columns)} FROM ${from}`,
  );
  const recovery = new LostTextRecovery(sql, table.name, columns, order);
  for (let next = cursor.next(); next.done !== true; next = cursor.next()) {
    yield withExactTexts(table, readRowValues(next.value, columns.length), recovery);
  }
  finishRecovery(table, recovery);
}

/**
 * A table too wide for one query (a table may have 100 columns, a query 100 result columns, and the rowid and the
 * kinds take two): several queries, each reading the row's key and a slice of its columns, all in the key's order,
 * stepped together. The key (the rowid, or a WITHOUT ROWID table's primary key) is checked equal across them, row
 * by row. All of them run within the same synchronous call, so they read the same state.
 */
function* rowsInParts(sql: SqlStorage, table: TableInfo, columns: readonly string[]): Generator<ImageValue[]> {
  const key = rowKeyColumns(sql, table);
  const sliceLength = MAX_RESULT_COLUMNS - key.length - 1;
  if (sliceLength < 1) {
    throw new SnapshotError(`cannot read table ${table.name} for a snapshot: its key has ${key.length} columns`);
  }
  // The key under its own collations (scanOrder): unique there, so no two parts can break a tie differently.
  const order: ScanOrder = scanOrder(sql, table);
  const keyColumns = qualifiedColumns(key);
  const from = `${quoteSqlIdentifier(table.name)}${order.orderBy}`;
  const parts: {
    readonly width: number;
    readonly cursor: Iterator<SqlStorageValue[]>;
    readonly recovery: LostTextRecovery;
  }[] = [];
  for (let start = 0; start < columns.length; start += sliceLength) {
    const slice = columns.slice(start, start + sliceLength);
    const select = `SELECT ${keyColumns}, ${qualifiedColumns(slice)}, ${kindsExpression(slice)} FROM ${from}`;
    const recovery = new LostTextRecovery(sql, table.name, slice, order);
    parts.push({ width: slice.length, cursor: execForSnapshot(sql, table, select), recovery });
  }
  for (;;) {
    const nexts = parts.map((part) => part.cursor.next());
    const ended = nexts.filter((next) => next.done === true).length;
    if (ended === nexts.length) {
      parts.forEach((part) => finishRecovery(table, part.recovery));
      return;
    }
    if (ended > 0) {
      throw new SnapshotError(`table ${table.name} read a different number of rows in the parts of its image`);
    }
    const row: ImageValue[] = [];
    let firstKey: string | null = null;
    nexts.forEach((next, i) => {
      const raw = next.value as SqlStorageValue[];
      const keyText = JSON.stringify(readRowValues(raw.slice(0, key.length), key.length).map(encodeImageValue));
      if (firstKey !== null && keyText !== firstKey) {
        throw new SnapshotError(`table ${table.name} read its rows in different orders in the parts of its image`);
      }
      firstKey = keyText;
      const part = parts[i]!;
      row.push(...withExactTexts(table, readRowValues(raw.slice(key.length), part.width), part.recovery));
    });
    yield row;
  }
}

/** What orders a wide table's rows the same in every query: its rowid, or its primary key (WITHOUT ROWID). */
function rowKeyColumns(sql: SqlStorage, table: TableInfo): string[] {
  if (table.rowidName !== null) {
    return [table.rowidName];
  }
  const primaryKey = sql
    .exec("SELECT name FROM pragma_table_xinfo(?) WHERE pk > 0 ORDER BY pk", table.name)
    .toArray()
    .map((row) => String(row.name));
  if (!table.withoutRowid || primaryKey.length === 0) {
    throw new SnapshotError(
      `cannot read table ${table.name} for a snapshot: it has more than ${MAX_RESULT_COLUMNS - 2} columns and no name reaches its rowid`,
    );
  }
  return primaryKey;
}

function readRowValues(raw: readonly SqlStorageValue[], columnCount: number): ImageValue[] {
  const values: ImageValue[] = raw
    .slice(0, columnCount)
    .map((value) => (value instanceof ArrayBuffer ? new Uint8Array(value) : value));
  const kinds = String(raw[columnCount] ?? "");
  for (const entry of kinds.split(";")) {
    if (entry === "") {
      continue;
    }
    const match = /^(\d+)([IRPN])(.*)$/.exec(entry);
    if (match === null) {
      throw new SnapshotError(`unexpected value kind ${JSON.stringify(entry)}`);
    }
    const [, position, code, digits] = match as unknown as [string, string, string, string];
    const i = Number(position);
    const current = values[i];
    if (code === "I") {
      values[i] = { bigint: digits };
    } else if (code === "R") {
      values[i] = { real: typeof current === "number" ? current : 0 };
    } else {
      values[i] = { real: code === "P" ? Infinity : -Infinity };
    }
  }
  return values;
}

/** Tables whose rows travel: user tables and virtual tables first, then SQLite's stat and sequence tables. */
function tablesInSnapshotOrder(tables: readonly TableInfo[]): TableInfo[] {
  const isSqliteTable = (table: TableInfo): boolean => table.name.toLowerCase().startsWith("sqlite_");
  const user = tables.filter((table) => table.kind !== "shadow" && !isSqliteTable(table));
  const stats = tables.filter((table) => isSqliteTable(table) && table.name.toLowerCase().startsWith("sqlite_stat"));
  const sequence = tables.filter((table) => table.name.toLowerCase() === "sqlite_sequence");
  return [...user, ...stats, ...sequence];
}

export function writeSnapshot(
  storage: DurableObjectStorage,
  state: { readonly index: number; readonly schema: { readonly version: number; readonly hash: string } },
  options: SnapshotOptions,
): SnapshotImage {
  const maxChunkBytes = limit(
    options.maxChunkBytes,
    DEFAULT_SNAPSHOT_LIMITS.maxChunkBytes,
    MAX_SNAPSHOT_CHUNK_BYTES,
    "maxChunkBytes",
  );
  const maxTotalBytes = limit(
    options.maxTotalBytes,
    DEFAULT_SNAPSHOT_LIMITS.maxTotalBytes,
    Number.MAX_SAFE_INTEGER,
    "maxTotalBytes",
  );
  const sql = storage.sql;
  const writer = new ChunkWriter(maxChunkBytes, maxTotalBytes);
  writer.line({
    t: "header",
    format: SNAPSHOT_FORMAT,
    version: SNAPSHOT_FORMAT_VERSION,
    index: state.index,
    schemaVersion: state.schema.version,
    schemaHash: state.schema.hash,
  });
  const tables = listTables(sql);
  const kindOf = new Map(tables.map((table) => [table.name, table.kind]));
  for (const object of listSchemaObjects(sql)) {
    if (object.sql === null) {
      continue;
    } // autoindexes come back with their tables
    writer.line({
      t: "object",
      type: object.type,
      name: object.name,
      tableName: object.tableName,
      sql: object.sql,
      kind: kindOf.get(object.name) ?? null,
    });
  }
  for (const table of tablesInSnapshotOrder(tables)) {
    const isSqliteTable = table.name.toLowerCase().startsWith("sqlite_");
    const columns =
      table.rowidName !== null && !isSqliteTable ? [table.rowidName, ...table.columns] : [...table.columns];
    writer.line({ t: "rows", table: table.name, columns });
    const rows =
      columns.length + 1 <= MAX_RESULT_COLUMNS ? rowsInOneQuery(sql, table, columns) : rowsInParts(sql, table, columns);
    for (const row of rows) {
      writer.line(row.map((value) => encodeImageValue(value)));
    }
  }
  for (const [, id] of storage.kv.list<string>({ prefix: StateKeys.dedupIndexPrefix })) {
    const record = storage.kv.get<DedupRecord>(StateKeys.dedupById(id));
    if (record === undefined) {
      throw new SnapshotError(`request id ${JSON.stringify(id)} is indexed but not remembered`);
    }
    writer.line({
      t: "dedup",
      id,
      index: record.index,
      results: record.results,
      count: record.count,
      ...(record.fingerprint === undefined ? {} : { fingerprint: record.fingerprint }),
    });
  }
  const { chunks, bytes } = writer.finish();
  return {
    appliedIndex: state.index,
    chunks,
    bytes,
    schemaVersion: state.schema.version,
    schemaHash: state.schema.hash,
  };
}
