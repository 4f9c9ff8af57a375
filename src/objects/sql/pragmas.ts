// Read-only PRAGMAs that SQLite answers but the platform refuses ("not authorized"), answered as SQLite would, so
// that ORMs reflecting a database connect: read_uncommitted (always 0: there is no shared cache), and every read of
// the temp schema, which a node never has (CREATE TEMP is refused) and so always reads empty. Column names and
// answers are SQLite's (pragma.h), checked against SQLite itself by the tests.
import type { SqlValue } from "../../shared/sql";
import type { PragmaShape } from "../../shared/sql-text/classify";

export type PragmaAnswer =
  { readonly columns: readonly string[]; readonly rows: readonly (readonly SqlValue[])[] } | { readonly error: string };

/** Result columns of the table-scoped PRAGMAs, which answer no rows for a table the temp schema does not hold. */
const TABLE_PRAGMA_COLUMNS: Readonly<Record<string, readonly string[]>> = {
  table_info: ["cid", "name", "type", "notnull", "dflt_value", "pk"],
  table_xinfo: ["cid", "name", "type", "notnull", "dflt_value", "pk", "hidden"],
  index_list: ["seq", "name", "unique", "origin", "partial"],
  index_info: ["seqno", "cid", "name"],
  index_xinfo: ["seqno", "cid", "name", "desc", "coll", "key"],
  foreign_key_list: ["id", "seq", "table", "from", "to", "on_update", "on_delete", "match"],
};
const TABLE_LIST_COLUMNS = ["schema", "name", "type", "ncol", "wr", "strict"];
const FOREIGN_KEY_CHECK_COLUMNS = ["table", "rowid", "parent", "fkid"];

/** The answer to a read-only PRAGMA the node gives itself, or null when the platform should run it. */
export function answerPragma(pragma: PragmaShape): PragmaAnswer | null {
  if (pragma.assigns) {
    return null;
  }
  if (pragma.name === "read_uncommitted") {
    return { columns: ["read_uncommitted"], rows: [[0]] };
  }
  if (pragma.schema !== "temp") {
    return null;
  }
  return answerForEmptyTempSchema(pragma);
}

function answerForEmptyTempSchema(pragma: PragmaShape): PragmaAnswer {
  const { name, argument } = pragma;
  const tableColumns = TABLE_PRAGMA_COLUMNS[name];
  if (tableColumns !== undefined) {
    return { columns: tableColumns, rows: [] };
  }
  switch (name) {
    case "table_list":
      // SQLite lists the temp schema's own table; with an argument, only under its legacy name.
      if (pragma.hasArgument && argument?.toLowerCase() !== "sqlite_temp_master") {
        return { columns: TABLE_LIST_COLUMNS, rows: [] };
      }
      return { columns: TABLE_LIST_COLUMNS, rows: [["temp", "sqlite_temp_schema", "table", 5, 0, 0]] };
    case "foreign_key_check":
      if (pragma.hasArgument) {
        return { error: `no such table: temp.${argument ?? ""}` };
      }
      return { columns: FOREIGN_KEY_CHECK_COLUMNS, rows: [] };
    case "quick_check":
    case "integrity_check":
      if (pragma.hasArgument && !/^[0-9]+$/.test(argument ?? "")) {
        return { error: `no such table: temp.${argument ?? ""}` };
      }
      return { columns: [name], rows: [["ok"]] };
    default:
      return {
        error: `PRAGMA temp.${name} is not available: the platform refuses the temp schema (it is always empty here)`,
      };
  }
}
