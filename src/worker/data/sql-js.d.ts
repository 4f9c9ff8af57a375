// Types for the part of sql.js (SQLite compiled to WebAssembly) that src/worker/data/sqlite-wasm.ts uses. The
// browser build is imported by path: it has no Node.js branch, which workerd's nodejs_compat would otherwise select.
declare module "sql.js/dist/sql-wasm-browser.js" {
  /** What a read returns: INTEGER and REAL as numbers, TEXT as strings, BLOB as bytes. */
  export type SqlJsValue = number | string | Uint8Array | null;

  export interface SqlJsStatement {
    bind(values?: readonly (number | string | Uint8Array | null)[]): boolean;
    /** True while there is a row to read; throws on an SQLite error. */
    step(): boolean;
    get(): SqlJsValue[];
    /** Finalizes the statement; it cannot be used afterwards. */
    free(): boolean;
  }

  export interface SqlJsDatabase {
    /** Runs every statement of the text (not one by one: the whole text is copied into the WebAssembly heap). */
    exec(sql: string): { columns: string[]; values: SqlJsValue[][] }[];
    prepare(sql: string): SqlJsStatement;
    /** The database file's bytes. */
    export(): Uint8Array;
    close(): void;
  }

  export interface SqlJsStatic {
    /** An in-memory database, opened from a file's bytes when given. */
    Database: new (data?: Uint8Array) => SqlJsDatabase;
  }

  export interface SqlJsConfig {
    /** Emscripten's hook: instantiate the module ourselves (workerd cannot compile WebAssembly from bytes at run time). */
    instantiateWasm(imports: WebAssembly.Imports, done: (instance: WebAssembly.Instance) => void): object;
  }

  export default function initSqlJs(config: SqlJsConfig): Promise<SqlJsStatic>;
}

declare module "sql.js/dist/sql-wasm-browser.wasm" {
  /** Wrangler (and the vitest plugin) load .wasm imports as compiled modules. */
  const module: WebAssembly.Module;
  export default module;
}
