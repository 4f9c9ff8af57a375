// SQLite compiled to WebAssembly (sql.js), loaded once per isolate on first use: the worker builds and reads SQLite
// database files with it (GET /db/backup, POST /db/load), never the nodes' own databases.
import initSqlJs, { type SqlJsStatic } from "sql.js/dist/sql-wasm-browser.js";
import sqlJsModule from "sql.js/dist/sql-wasm-browser.wasm";

let loading: Promise<SqlJsStatic> | null = null;

/**
 * sql.js's Emscripten glue sees workerd's WorkerGlobalScope and reads `self.location.href` (synchronously, while
 * initSqlJs runs) to find its .wasm file beside the script. Workers have no location and the module is handed over
 * through instantiateWasm instead, so a placeholder is defined for exactly that synchronous call and removed after.
 */
function withPlaceholderLocation<T>(run: () => T): T {
  if ("location" in globalThis) {
    return run();
  }
  Object.defineProperty(globalThis, "location", { value: { href: "https://sql-js.invalid/" }, configurable: true });
  try {
    return run();
  } finally {
    delete (globalThis as { location?: unknown }).location;
  }
}

/** The sql.js library, instantiated from the module wrangler bundled; a failed load is retried by the next caller. */
export function loadSqlJs(): Promise<SqlJsStatic> {
  loading ??= instantiate().catch((error: unknown) => {
    loading = null;
    throw error;
  });
  return loading;
}

function instantiate(): Promise<SqlJsStatic> {
  // Emscripten's hook has no failure callback: without the race, a failed instantiation would never settle.
  let fail: (error: unknown) => void = () => undefined;
  const failed = new Promise<never>((_, reject) => {
    fail = reject;
  });
  const ready = withPlaceholderLocation(() =>
    initSqlJs({
      instantiateWasm(imports, done) {
        WebAssembly.instantiate(sqlJsModule, imports).then(done, fail);
        return {};
      },
    }),
  );
  return Promise.race([ready, failed]);
}
