// TEXT values that the platform cannot hand over exactly. SQLite keeps a TEXT value's bytes as given, valid UTF-8 or
// not (char(55296) is ED A0 80, CAST(x'c3' AS TEXT) is C3); the platform decodes TEXT into a JS string and turns
// every invalid sequence into U+FFFD. Whatever copies rows through JS strings (snapshot images, dumps) would write
// EF BF BD where those bytes were. A string without U+FFFD came from valid UTF-8 and is exact; a string with one may
// have lost bytes: from the first row holding one, a second cursor over the same ordered scan reads text as BLOBs.
import { rowsOf, type TableInfo } from "../sqlite/catalog";
import { quoteSqlIdentifier } from "../../shared/sql-text/tokenizer";

const REPLACEMENT_CHARACTER = "\uFFFD";

/** What a reading query orders by, so that a second cursor over the same table meets its rows in the same order. */
export interface ScanOrder {
  /** " ORDER BY ...": an order in which rows that tie hold the same text bytes (no ties at all where there is a key). */
  readonly orderBy: string;
}

/**
 * The table's own storage order, free to scan in: its rowid, or a WITHOUT ROWID table's primary key under the
 * collations of its index (unique under them, so no ties). A table whose columns take every name of the rowid has
 * no key: all its columns under BINARY (a sort); rows that tie there hold the same text bytes, so either order serves.
 */
export function scanOrder(sql: SqlStorage, table: TableInfo): ScanOrder {
  if (table.rowidName !== null) {
    return { orderBy: ` ORDER BY ${quoteSqlIdentifier(table.rowidName)}` };
  }
  if (table.withoutRowid) {
    const key = primaryKeyIndexColumns(sql, table.name);
    if (key.length > 0) {
      const terms = key.map(
        ({ name, collation }) => `${quoteSqlIdentifier(name)} COLLATE ${quoteSqlIdentifier(collation)}`,
      );
      return { orderBy: ` ORDER BY ${terms.join(", ")}` };
    }
  }
  const all = rowsOf(sql, "SELECT name FROM pragma_table_xinfo(?) WHERE hidden = 0", table.name).map(
    ([name]) => `${quoteSqlIdentifier(String(name))} COLLATE BINARY`,
  );
  return { orderBy: all.length === 0 ? "" : ` ORDER BY ${all.join(", ")}` };
}

function primaryKeyIndexColumns(sql: SqlStorage, table: string): { name: string; collation: string }[] {
  const index = rowsOf(sql, "SELECT name FROM pragma_index_list(?) WHERE origin = 'pk'", table)[0]?.[0];
  if (typeof index !== "string") {
    return [];
  }
  return rowsOf(sql, "SELECT name, coll FROM pragma_index_xinfo(?) WHERE key = 1 ORDER BY seqno", index).map(
    ([name, collation]) => ({ name: String(name), collation: String(collation ?? "BINARY") }),
  );
}

/** True when a JS string read from TEXT (or a quote() of it) may not be the bytes SQLite holds. */
export function mayHaveLostBytes(value: unknown): boolean {
  return typeof value === "string" && value.includes(REPLACEMENT_CHARACTER);
}

const strictUtf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

function isValidUtf8(bytes: Uint8Array): boolean {
  try {
    strictUtf8.decode(bytes);
    return true;
  } catch {
    return false;
  }
}

export class ExactTextError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ExactTextError";
  }
}

/**
 * Follows one reading cursor (over `columns` of `table`, ordered by `order`) row by row. On the first row that holds
 * a suspect string it opens a second cursor at that row (OFFSET), reading every TEXT value as a BLOB, and steps it
 * with the first from then on; before that row it costs one string search per text value. Call `exactTexts` once
 * for every row the first cursor yields, in order, then `finish` (which drains the second cursor).
 */
export class LostTextRecovery {
  private rowsSeen = 0;
  private cursor: Iterator<unknown[]> | null = null;

  constructor(
    private readonly sql: SqlStorage,
    private readonly table: string,
    private readonly columns: readonly string[],
    private readonly order: ScanOrder,
  ) {}

  /**
   * The exact bytes of the row's TEXT values that are not valid UTF-8, by position in `values` (the row's values as
   * the first cursor read them, or quote()s of them); null when the row has none.
   */
  exactTexts(values: readonly unknown[]): ReadonlyMap<number, Uint8Array> | null {
    const row = this.rowsSeen;
    this.rowsSeen += 1;
    if (this.cursor === null) {
      if (!values.some(mayHaveLostBytes)) {
        return null;
      }
      this.cursor = this.open(row);
    }
    const next = this.cursor.next();
    if (next.done === true) {
      throw new ExactTextError(`table ${this.table} ended early when read again for its exact text`);
    }
    const bytesRow = next.value;
    let found: Map<number, Uint8Array> | null = null;
    values.forEach((value, i) => {
      if (!mayHaveLostBytes(value)) {
        return;
      }
      const bytes = asBytes(bytesRow[i]);
      if (bytes === null) {
        throw new ExactTextError(`table ${this.table} read a different row again for its exact text`);
      }
      if (!isValidUtf8(bytes)) {
        (found ??= new Map()).set(i, bytes);
      }
    });
    return found;
  }

  /** Checks that the second cursor, if opened, has no row left (and so is drained). */
  finish(): void {
    if (this.cursor !== null && this.cursor.next().done !== true) {
      throw new ExactTextError(`table ${this.table} has more rows when read again for its exact text`);
    }
  }

  private open(offset: number): Iterator<unknown[]> {
    const blobs = this.columns.map((column) => {
      const c = quoteSqlIdentifier(column);
      return `iif(typeof(${c}) = 'text', CAST(${c} AS BLOB), NULL)`;
    });
    const select = `SELECT ${blobs.join(", ")} FROM ${quoteSqlIdentifier(this.table)}${this.order.orderBy} LIMIT -1 OFFSET ${offset}`;
    return this.sql.exec(select).raw() as Iterator<unknown[]>;
  }
}

function asBytes(value: unknown): Uint8Array | null {
  if (value instanceof Uint8Array) {
    return value;
  }
  if (value instanceof ArrayBuffer) {
    return new Uint8Array(value);
  }
  return null;
}
