// What one checkpoint digests, at exactly the index it is applied at: the schema (always) and one bounded slice of
// rows, the next part of a sweep over every user table. Deterministic: correct replicas hold the same database at
// that index, read it in the same order (tables by name, rows by rowid or, WITHOUT ROWID, by primary key) and
// encode every value exactly (integers as text, so none beyond 2^53 rounds), so they compute the same digests.
// Internal tables are left out as everywhere in src/objects/sql (NOT_INTERNAL), and so are SQLite's own
// (sqlite_sequence, sqlite_stat*) and virtual tables (their schema is digested; their rows live in their module).
// One exception to "exactly": TEXT is digested as the platform reads it, so bytes that are not valid UTF-8 read as
// U+FFFD (src/objects/sql/exact-text.ts) and replicas that differ only in such bytes digest alike. Digesting the
// bytes is left out on purpose: during a rolling restart nodes of two versions would then digest such rows
// differently (DIVERGED verdicts, image checkpoints without a majority, repairs from a leader of the previous
// version, whose images lose those bytes). Images and dumps copy them exactly instead.
import { Sha256Stream } from "../sha256";
import { computeSchemaHash, NOT_INTERNAL, rowsOf } from "../sqlite/catalog";
import { quoteSqlIdentifier } from "../../shared/sql-text/tokenizer";
import { statementResultError } from "../sqlite/storage-failure";
import { bytesToHex } from "../sqlite/values";
import type { CheckpointDigest, KeyPart, SliceKey } from "./types";

export type { CheckpointDigest, KeyPart, SliceKey } from "./types";

export interface SliceRequest {
  readonly table: string | null;
  readonly after: SliceKey | null;
  readonly maxRows: number;
  readonly maxBytes: number;
}

const SKIPPED = "name NOT GLOB 'sqlite_*'";

/** The tables a sweep covers, in sweep order (names by UTF-16 code units: the same on every node). */
export function sweepTables(sql: SqlStorage): string[] {
  const rows = rowsOf(
    sql,
    `SELECT name FROM pragma_table_list WHERE schema = 'main' AND type = 'table' AND ${NOT_INTERNAL} AND ${SKIPPED}`,
  );
  return rows.map(([name]) => String(name)).sort(compareNames);
}

function compareNames(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

interface ColumnInfo {
  readonly name: string;
  /** Position in the primary key (1-based), 0 when not part of it. */
  readonly pk: number;
}

/** Columns a SELECT * shows (hidden columns of virtual tables excepted), and whether the table has a rowid. */
function tableShape(sql: SqlStorage, table: string): { columns: ColumnInfo[]; withoutRowid: boolean } {
  const columns = rowsOf(sql, "SELECT name, pk FROM pragma_table_xinfo(?) WHERE hidden <> 1 ORDER BY cid", table).map(
    ([name, pk]) => ({ name: String(name), pk: Number(pk) }),
  );
  const listed = rowsOf(sql, "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?", table)[0];
  return { columns, withoutRowid: Number(listed?.[0] ?? 0) === 1 };
}

/** typeof(x) and x itself, with integers as text so that none is rounded on the way to JavaScript. */
function typedPair(expression: string): string {
  return `typeof(${expression}), CASE typeof(${expression}) WHEN 'integer' THEN CAST(${expression} AS TEXT) ELSE ${expression} END`;
}

function toKeyPart(type: SqlStorageValue, value: SqlStorageValue): KeyPart {
  switch (type) {
    case "integer":
      return ["i", String(value)];
    case "real":
      return ["r", Number(value)];
    case "text":
      return ["t", String(value)];
    case "blob":
      return ["b", bytesToHex(asBytes(value))];
    default:
      return ["n"];
  }
}

function asBytes(value: SqlStorageValue): Uint8Array {
  if (value instanceof Uint8Array) {
    return value;
  }
  if (value instanceof ArrayBuffer) {
    return new Uint8Array(value);
  }
  return new TextEncoder().encode(String(value));
}

/** The exact text of one typed value: length-prefixed where it could otherwise run into the next. */
function encodePart(part: KeyPart): string {
  switch (part[0]) {
    case "i":
      return `i${part[1]};`;
    case "r":
      return `r${Object.is(part[1], -0) ? "-0" : String(part[1])};`;
    case "t":
      return `t${part[1].length}:${part[1]}`;
    case "b":
      return `b${part[1]};`;
    case "n":
      return "n";
  }
}

/** SQL for a key value as a comparison operand, and what to bind for it. */
function keyOperand(part: KeyPart): { readonly sql: string; readonly bind: readonly unknown[] } {
  switch (part[0]) {
    case "i":
      return { sql: "CAST(? AS INTEGER)", bind: [part[1]] };
    case "r":
    case "t":
      return { sql: "?", bind: [part[1]] };
    case "b":
      // Hex digits only (checked), so the literal cannot carry anything else.
      if (!/^[0-9a-f]*$/.test(part[1])) {
        throw new Error("a blob key part must be lower-case hex");
      }
      return { sql: `X'${part[1]}'`, bind: [] };
    case "n":
      return { sql: "NULL", bind: [] };
  }
}

interface SliceQuery {
  readonly sql: string;
  readonly bind: unknown[];
  /** Columns of the result that hold the key (as typed pairs). */
  readonly keyWidth: number;
}

function sliceQuery(sql: SqlStorage, table: string, request: SliceRequest): SliceQuery | { readonly note: string } {
  const { columns, withoutRowid } = tableShape(sql, table);
  const quoted = quoteSqlIdentifier(table);
  const values = columns.map((column) => typedPair(quoteSqlIdentifier(column.name)));
  let keyColumns: string[];
  if (withoutRowid) {
    keyColumns = columns
      .filter((column) => column.pk > 0)
      .sort((a, b) => a.pk - b.pk)
      .map((column) => quoteSqlIdentifier(column.name));
  } else {
    const names = new Set(columns.map((column) => column.name.toLowerCase()));
    const rowid = ["rowid", "_rowid_", "oid"].find((candidate) => !names.has(candidate));
    if (rowid === undefined) {
      return { note: "every name of the rowid is taken by a column: rows are not digested" };
    }
    keyColumns = [rowid];
  }
  if (keyColumns.length === 0) {
    return { note: "the table has no key to order by: rows are not digested" };
  }
  const bind: unknown[] = [];
  let where = "";
  if (request.after !== null) {
    if (request.after.length !== keyColumns.length) {
      return { note: `the start key has ${request.after.length} parts, the table's key ${keyColumns.length}` };
    }
    const operands = request.after.map(keyOperand);
    where = `WHERE (${keyColumns.join(", ")}) > (${operands.map((operand) => operand.sql).join(", ")})`;
    for (const operand of operands) {
      bind.push(...operand.bind);
    }
  }
  const select = [...keyColumns.map(typedPair), ...values].join(", ");
  bind.push(request.maxRows);
  return {
    sql: `SELECT ${select} FROM ${quoted} ${where} ORDER BY ${keyColumns.join(", ")} LIMIT ?`,
    bind,
    keyWidth: keyColumns.length,
  };
}

/** Computes a checkpoint's digests over `sql` as it is now (inside the transaction that applies the entry). */
export function computeCheckpoint(sql: SqlStorage, request: SliceRequest): CheckpointDigest {
  const schemaDigest = computeSchemaHash(sql);
  const tables = sweepTables(sql);
  const table = request.table ?? tables[0] ?? null;
  const hash = new Sha256Stream();
  hash.update(JSON.stringify([table, request.after, request.maxRows, request.maxBytes]));
  let rows = 0;
  let bytes = 0;
  let end: SliceKey | null = null;
  let complete = true;
  let note: string | undefined;
  if (table !== null && !tables.includes(table)) {
    note = "the table does not exist";
  } else if (table !== null) {
    const query = sliceQuery(sql, table, request);
    if ("note" in query) {
      note = query.note;
    } else {
      try {
        for (const raw of sql.exec(query.sql, ...query.bind).raw()) {
          const parts: KeyPart[] = [];
          for (let i = 0; i + 1 < raw.length; i += 2) {
            parts.push(toKeyPart(raw[i] ?? null, raw[i + 1] ?? null));
          }
          const line = parts.map(encodePart).join("") + "\n";
          hash.update(line);
          rows += 1;
          bytes += line.length;
          end = parts.slice(0, query.keyWidth);
          if (bytes >= request.maxBytes) {
            break;
          }
        }
        complete = rows < request.maxRows && bytes < request.maxBytes;
      } catch (error) {
        // A statement error (SQLite's verdict on the statement) is the same on every correct replica: its message is
        // part of the digest. A failing storage is not: it throws on, and the apply stops (seed 500028).
        statementResultError(error, "while digesting a checkpoint's rows");
        note = `the rows cannot be read: ${error instanceof Error ? error.message : String(error)}`;
        rows = 0;
        end = null;
        complete = true;
      }
    }
  }
  if (note !== undefined) {
    hash.update(`note:${note}`);
  }
  return {
    schemaDigest,
    rowsDigest: hash.digestHex(),
    table,
    after: request.after,
    end,
    rows,
    complete,
    next: complete ? { table: nextTable(tables, table), after: null } : { table, after: end },
    ...(note === undefined ? {} : { note }),
  };
}

/**
 * An image checkpoint's digests: the schema, and every row of every table in sweep order (each table's rows digested
 * as one unbounded slice, then the per-table digests digested in order). Costs about what building a snapshot image
 * costs (it reads the same rows); it runs only when the leader needs an image. `next` is passed through: an image
 * checkpoint does not move the sweep.
 */
export function computeWholeCheckpoint(sql: SqlStorage, next: CheckpointDigest["next"]): CheckpointDigest {
  const hash = new Sha256Stream();
  let schemaDigest: string | null = null;
  let rows = 0;
  for (const table of sweepTables(sql)) {
    const part = computeCheckpoint(sql, {
      table,
      after: null,
      maxRows: Number.MAX_SAFE_INTEGER,
      maxBytes: Number.POSITIVE_INFINITY,
    });
    schemaDigest ??= part.schemaDigest;
    rows += part.rows;
    hash.update(`${JSON.stringify(table)}:${part.rowsDigest}\n`);
  }
  return {
    schemaDigest: schemaDigest ?? computeSchemaHash(sql),
    rowsDigest: hash.digestHex(),
    table: null,
    after: null,
    end: null,
    rows,
    complete: true,
    next,
    whole: true,
  };
}

/** The table after `table` in sweep order; null when the sweep is done (the next one starts over). */
function nextTable(tables: readonly string[], table: string | null): string | null {
  if (table === null) {
    return null;
  }
  return tables.find((name) => compareNames(name, table) > 0) ?? null;
}

/** A key as a user reads it: "rowid 42", "(1, 'a')". */
export function describeKey(key: SliceKey): string {
  const shown = key.map((part) =>
    part[0] === "n" ? "NULL" : part[0] === "t" ? JSON.stringify(part[1].slice(0, 40)) : String(part[1]),
  );
  return shown.length === 1 ? (shown[0] ?? "") : `(${shown.join(", ")})`;
}

/** The rows a digest covered, for alerts: table "t", keys after 100 through 600 (500 rows). */
export function describeSlice(
  digest: Pick<CheckpointDigest, "table" | "after" | "end" | "rows" | "complete" | "whole">,
): string {
  if (digest.whole === true) {
    return `the whole database (${digest.rows} rows, image checkpoint)`;
  }
  if (digest.table === null) {
    return "no table (the database has none)";
  }
  const from = digest.after === null ? "from the first row" : `after key ${describeKey(digest.after)}`;
  const to = digest.end === null ? "" : ` through key ${describeKey(digest.end)}`;
  const end = digest.complete ? ", to the end of the table" : "";
  return `table ${JSON.stringify(digest.table)}, ${from}${to} (${digest.rows} rows${end})`;
}
