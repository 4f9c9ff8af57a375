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

// Foreign keys. The platform opens SQLite with foreign_keys on, and every statement here runs inside a transaction,
// where SQLite ignores PRAGMA foreign_keys (measured in workerd: it reads 1 after setting it off inside
// transactionSync). defer_foreign_keys does work there, and it stays set after the transaction ends, so the state
// machine turns it off again itself (state-machine.ts, runAllOrNothing).

/** Why PRAGMA foreign_keys = ... is refused. */
export const FOREIGN_KEYS_ALWAYS_ON =
  "PRAGMA foreign_keys cannot be changed: foreign keys are always enforced on this platform (every statement runs " +
  "inside a transaction, where SQLite ignores the pragma); to check them only at the end of a request instead, " +
  "send PRAGMA defer_foreign_keys = ON as a statement of a request with ?transaction";

/** Why PRAGMA defer_foreign_keys = ... is refused in a request without `transaction`. */
export const DEFER_NEEDS_TRANSACTION =
  "PRAGMA defer_foreign_keys is only allowed in a request with ?transaction: it defers foreign key checks to the end " +
  "of the request's transaction, and without the flag each statement is its own";

const BOOLEAN_WORDS: Readonly<Record<string, boolean>> = {
  on: true,
  true: true,
  yes: true,
  "1": true,
  off: false,
  false: false,
  no: false,
  "0": false,
};

/**
 * What a PRAGMA statement does to defer_foreign_keys: sets it on or off, or null when it does not set it (a read, or
 * another PRAGMA). Throws nothing; a setting whose value is not a boolean is `invalid`.
 */
export function deferForeignKeysSetting(pragma: PragmaShape | undefined): boolean | "invalid" | null {
  if (pragma === undefined || pragma.name !== "defer_foreign_keys" || (pragma.schema ?? "main") !== "main") {
    return null;
  }
  if (!pragma.assigns && !pragma.hasArgument) {
    return null;
  }
  return BOOLEAN_WORDS[pragma.value?.toLowerCase() ?? ""] ?? "invalid";
}
