// The type of each result column, as rqlite reports it: the column's declared type, lowercased ("integer",
// "varchar(10)", "datetime"), where the column has one; otherwise inferred from the values.
//
// The platform's cursor exposes column names only (no sqlite3_column_decltype). SQLite itself still knows the
// declared types: a view over the query gets, for every column that names a table column, that column's declared
// type (pragma_table_xinfo reads it back). The view is created inside a nested transactionSync that is always
// thrown away, so nothing of it remains; answers are cached (bounded, least recently used out) per schema hash and
// statement.
//
// For columns without a declared type SQLite gives a view column the name of its affinity ("BLOB" for an untyped
// table column, "INT"/"REAL"/"TEXT"/"NUM" for a CAST); only "BLOB" can mislead (an untyped column holding integers),
// so a "BLOB" that the values contradict is replaced by what the values say.
import type { SqlValue } from "../../shared/sql";
import { statementResultError } from "../sqlite/storage-failure";
import { typeProbe } from "./validate";

/** Reserved prefix (_dha_): user statements can never name it. */
const PROBE_VIEW = "_dha_result_types";
/** Bounds the cache: at most this many answers, of statements at most MAX_CACHED_KEY_LENGTH long (about 4 MB). */
const MAX_CACHED_PROBES = 512;
const MAX_CACHED_KEY_LENGTH = 8_192;

const NAMES_NO_COLUMN = /^(?:SELECT|VALUES)\b/i;
/** Conservative: the word anywhere, strings and comments included, counts. */
const MAY_NAME_A_COLUMN = /\b(?:FROM|CAST)\b/i;

class DiscardProbe extends Error {
  constructor(readonly types: readonly string[]) {
    super("probe discarded");
  }
}

/** Declared types of a query's result columns ("" where a column has none), or null when SQLite cannot say. */
export class DeclaredTypes {
  private readonly cache = new Map<string, readonly string[] | null>();

  constructor(private readonly storage: DurableObjectStorage) {}

  of(sql: string, columnCount: number, schemaHash: string): readonly string[] | null {
    // A SELECT or VALUES that names no table and casts nothing has no declared type to find: every column is a
    // literal, a parameter or an expression over them. Asking SQLite (a view, thrown away) would cost more than the
    // statement, and such statements rarely repeat (values written inline make every text new).
    if (NAMES_NO_COLUMN.test(sql) && !MAY_NAME_A_COLUMN.test(sql)) {
      return null;
    }
    // The answer depends on the schema and the statement only: looked up by the text as sent, then by its shape
    // (literals left out), so that statements differing only in inline values ask SQLite once.
    const byText = `${schemaHash}\n${sql}`;
    let types = this.recall(byText);
    if (types === undefined) {
      const probe = typeProbe(sql);
      const byShape = probe === null ? null : `${schemaHash}\n?\n${probe.key}`;
      types = byShape === null ? undefined : this.recall(byShape);
      if (types === undefined) {
        types = probe === null ? null : this.ask(probe.text);
        if (byShape !== null) {
          this.remember(byShape, types);
        }
      }
      this.remember(byText, types);
    }
    return types !== null && types.length === columnCount ? types : null;
  }

  /** A cached answer, made the most recently used (a Map iterates in insertion order: the first is the oldest). */
  private recall(key: string): readonly string[] | null | undefined {
    const types = this.cache.get(key);
    if (types !== undefined) {
      this.cache.delete(key);
      this.cache.set(key, types);
    }
    return types;
  }

  private remember(key: string, types: readonly string[] | null): void {
    if (key.length > MAX_CACHED_KEY_LENGTH) {
      return;
    }
    if (this.cache.size >= MAX_CACHED_PROBES) {
      const oldest = this.cache.keys().next().value;
      if (oldest !== undefined) {
        this.cache.delete(oldest);
      }
    }
    this.cache.set(key, types);
  }

  private ask(probe: string): readonly string[] | null {
    try {
      this.storage.transactionSync(() => {
        this.storage.sql.exec(`CREATE VIEW ${PROBE_VIEW} AS ${probe}`);
        const rows = [...this.storage.sql.exec(`SELECT type FROM pragma_table_xinfo('${PROBE_VIEW}')`).raw()];
        throw new DiscardProbe(rows.map(([type]) => (typeof type === "string" ? type : "")));
      });
    } catch (error) {
      if (error instanceof DiscardProbe) {
        return error.types;
      }
      // A failing storage must not change the answer (the types are part of a replicated result): it throws on.
      statementResultError(error, "while reading result column types");
      // SQLite could not make a view of it (the statement's own error is reported when it runs): infer instead.
      return null;
    }
    return null;
  }
}

type ValueClass = "" | "integer" | "real" | "text" | "blob";

interface ColumnValues {
  /** The class of the first non-NULL value ("" when there is none). */
  readonly first: ValueClass;
  readonly hasNonIntegralNumber: boolean;
}

function classOf(value: SqlValue): ValueClass {
  if (value === null) {
    return "";
  }
  if (typeof value === "bigint") {
    return "integer";
  }
  // Results carry every INTEGER beyond the safe range as a bigint, so a whole number beyond it is a REAL (1e300).
  if (typeof value === "number") {
    return Number.isSafeInteger(value) ? "integer" : "real";
  }
  if (typeof value === "string") {
    return "text";
  }
  return "blob";
}

function surveyColumn(rows: readonly (readonly SqlValue[])[], column: number): ColumnValues {
  let first: ValueClass = "";
  let hasNonIntegralNumber = false;
  for (const row of rows) {
    const value = row[column] ?? null;
    const kind = classOf(value);
    if (first === "" && kind !== "") {
      first = kind;
    }
    if (kind === "real") {
      hasNonIntegralNumber = true;
    }
  }
  return { first, hasNonIntegralNumber };
}

/** What the values alone say: the first value's class, except that any non-integral number makes numbers real. */
function inferredType(values: ColumnValues): string {
  if (values.first === "integer" && values.hasNonIntegralNumber) {
    return "real";
  }
  return values.first;
}

/**
 * The reported type of every column: declared (lowercased) where there is one, inferred otherwise; and never an
 * integer type (SQLite: any type containing "INT") for a column holding a non-integral number, which a client
 * converting by type would truncate.
 */
export function resultColumnTypes(
  declared: readonly string[] | null,
  columnCount: number,
  rows: readonly (readonly SqlValue[])[],
): string[] {
  const types: string[] = [];
  for (let column = 0; column < columnCount; column += 1) {
    const values = surveyColumn(rows, column);
    const inferred = inferredType(values);
    const declaredType = declared?.[column] ?? "";
    let type =
      declaredType === "" || (declaredType === "BLOB" && inferred !== "" && inferred !== "blob")
        ? inferred
        : declaredType.toLowerCase();
    if (values.hasNonIntegralNumber && type.includes("int")) {
      type = "real";
    }
    types.push(type);
  }
  return types;
}
