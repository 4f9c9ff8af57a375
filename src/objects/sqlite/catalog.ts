// What the user's database holds, read from SQLite's own catalog: schema objects, tables and their columns, the
// schema hash. Internal objects (the platform's _cf_*, our reserved _dha_*) are never listed.
import { sha256Hex } from "../sha256";
import { quoteSqlIdentifier } from "../../shared/sql-text/tokenizer";

/** All rows of a statement, as arrays; the cursor is drained (an unfinished statement would block the commit). */
export function rowsOf(sql: SqlStorage, query: string, ...bindings: unknown[]): SqlStorageValue[][] {
  return [...sql.exec(query, ...bindings).raw()];
}

/**
 * The platform's tables (_cf_KV ...), Miniflare's (__miniflare_do_name, local development only) and our reserved
 * prefix. GLOB, not LIKE: "_" is a LIKE wildcard.
 */
export const NOT_INTERNAL = "name NOT GLOB '_cf_*' AND name NOT GLOB '_dha_*' AND name NOT GLOB '__miniflare_*'";

export interface SchemaObject {
  readonly type: "table" | "index" | "view" | "trigger";
  readonly name: string;
  readonly tableName: string;
  /** NULL for objects SQLite creates implicitly (autoindexes). */
  readonly sql: string | null;
}

/** Every user schema object in creation order (sqlite_master's rowid order). Includes sqlite_sequence/sqlite_stat*. */
export function listSchemaObjects(sql: SqlStorage): SchemaObject[] {
  const rows = rowsOf(sql, `SELECT type, name, tbl_name, sql FROM sqlite_master WHERE ${NOT_INTERNAL} ORDER BY rowid`);
  return rows.map(([type, name, tableName, text]) => {
    if (type !== "table" && type !== "index" && type !== "view" && type !== "trigger") {
      throw new Error(`unexpected sqlite_master type ${String(type)}`);
    }
    return { type, name: String(name), tableName: String(tableName), sql: text === null ? null : String(text) };
  });
}

/**
 * SHA-256 (hex) over the user schema: (type, name, tbl_name, sql) of every object, ordered by type and name.
 * SQLite's own tables (sqlite_sequence, sqlite_stat*, sqlite_autoindex_*) are left out: whether they exist depends
 * on history (sqlite_sequence can never be dropped), not on the schema the user defined.
 */
export function computeSchemaHash(sql: SqlStorage): string {
  const rows = rowsOf(
    sql,
    `SELECT type, name, tbl_name, sql FROM sqlite_master WHERE ${NOT_INTERNAL} AND name NOT GLOB 'sqlite_*' ORDER BY type, name`,
  );
  return sha256Hex(JSON.stringify(rows));
}

export interface TableInfo {
  readonly name: string;
  /** "virtual" tables are read and written through their module; "shadow" tables belong to one and are skipped. */
  readonly kind: "table" | "virtual" | "shadow";
  readonly withoutRowid: boolean;
  /** Ordinary (insertable) columns, in order; generated and hidden columns are left out. */
  readonly columns: readonly string[];
  /** A name that reaches the rowid (rowid, _rowid_ or oid, whichever no column shadows); null when none does. */
  readonly rowidName: string | null;
  /** True when some column is hidden or generated, so INSERT needs an explicit column list. */
  readonly hasHiddenColumns: boolean;
}

/** Every user table of the main schema, in creation order, including sqlite_sequence and sqlite_stat*. */
export function listTables(sql: SqlStorage): TableInfo[] {
  const order = new Map(listSchemaObjects(sql).map((object, position) => [object.name, position]));
  const rows = rowsOf(
    sql,
    `SELECT name, type, wr FROM pragma_table_list WHERE schema = 'main' AND type IN ('table', 'virtual', 'shadow') AND ${NOT_INTERNAL} AND name NOT IN ('sqlite_schema', 'sqlite_master')`,
  );
  const tables = rows.map(([name, type, withoutRowid]): TableInfo => {
    const tableName = String(name);
    if (type !== "table" && type !== "virtual" && type !== "shadow") {
      throw new Error(`unexpected table type ${String(type)}`);
    }
    const columns = rowsOf(sql, "SELECT name, hidden FROM pragma_table_xinfo(?)", tableName);
    const allNames = new Set(columns.map(([columnName]) => String(columnName).toLowerCase()));
    const visible = columns.filter(([, hidden]) => Number(hidden) === 0).map(([columnName]) => String(columnName));
    const rowidName =
      withoutRowid === 1 ? null : (["rowid", "_rowid_", "oid"].find((candidate) => !allNames.has(candidate)) ?? null);
    return {
      name: tableName,
      kind: type,
      withoutRowid: withoutRowid === 1,
      columns: visible,
      rowidName,
      hasHiddenColumns: visible.length !== columns.length,
    };
  });
  return tables.sort((a, b) => (order.get(a.name) ?? 0) - (order.get(b.name) ?? 0));
}

export function qualifiedColumns(columns: readonly string[]): string {
  return columns.map((column) => quoteSqlIdentifier(column)).join(", ");
}
