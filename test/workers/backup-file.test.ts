// SQLite database files on the data API: GET /db/backup (a file by default, ?fmt=sql for the dump) and POST /db/load
// (a file or a dump), over real clusters of ClusterNode objects. The returned files are opened with the WebAssembly
// SQLite the worker bundles (sql.js); values are compared through quote(), which renders them exactly (int64 included).
import { describe, expect, it } from "vitest";
import { backupBody } from "../../src/worker/data/backup-formats";
import {
  DEFAULT_BACKUP_FILE_LIMITS,
  dumpFromSqliteFile,
  SqliteFileError,
  sqliteFileFromDump,
} from "../../src/worker/data/sqlite-file";
import { loadSqlJs } from "../../src/worker/data/sqlite-wasm";
import { ApiError } from "../../src/worker/http/errors";
import { clusterFactory } from "./helpers/cluster";
import { RealHarness, type RealHarnessOptions } from "./http-support";

const newCluster = clusterFactory();

function setUp(prefix: string, nodes = 1, options: RealHarnessOptions = {}): RealHarness {
  return new RealHarness(newCluster({ prefix, nodes }), options);
}

const LARGE_BLOB_HEX = Array.from({ length: 1500 }, (_, i) => (i % 256).toString(16).padStart(2, "0")).join("");

/** Every storage class, int64 at both ends, text with quotes, newlines and non-ASCII, a blob big enough to be bound. */
const SCHEMA_AND_ROWS = [
  "CREATE TABLE kinds (id INTEGER PRIMARY KEY, i INTEGER, r REAL, t TEXT, b BLOB, n)",
  "INSERT INTO kinds(i, r, t, b, n) VALUES (9223372036854775807, 0.5, 'it''s', x'00ff10', NULL)",
  "INSERT INTO kinds(i, r, t, b, n) VALUES (-9223372036854775808, -7.25, 'line1\nline2 ünïcödé 😀', x'', 3.0)",
  `INSERT INTO kinds(i, r, t, b, n) VALUES (9007199254740993, 1e300, '', x'${LARGE_BLOB_HEX}', 'text in an untyped column')`,
  "INSERT INTO kinds(i, r, t, b, n) VALUES (0, 0.1, NULL, NULL, -1)",
  "CREATE TABLE parent (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT UNIQUE)",
  "CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id), note TEXT)",
  "INSERT INTO parent(name) VALUES ('p1'), ('p2')",
  "INSERT INTO child(parent_id, note) VALUES (2, 'c1'), (1, 'c2')",
  "CREATE INDEX child_by_parent ON child(parent_id)",
  "CREATE VIEW child_names AS SELECT child.note, parent.name FROM child JOIN parent ON parent.id = child.parent_id",
  "CREATE TRIGGER parent_named AFTER INSERT ON parent BEGIN UPDATE parent SET name = upper(NEW.name) WHERE id = NEW.id; END",
];

const EXACT_KINDS =
  "SELECT quote(id), quote(i), quote(r), quote(t), quote(b), quote(n), typeof(i), typeof(r), typeof(n) FROM kinds ORDER BY id";

async function writeAll(h: RealHarness, statements: readonly string[]): Promise<void> {
  const written = await h.send("POST", "/db/execute", { json: statements });
  expect(written.status, written.text).toBe(200);
  expect(written.text).not.toContain('"error"');
}

async function queryValues(h: RealHarness, sql: string): Promise<unknown[][]> {
  const read = await h.send("POST", "/db/query?level=strong", { json: [sql] });
  expect(read.status, read.text).toBe(200);
  const body = JSON.parse(read.text) as { results: { values?: unknown[][]; error?: string }[] };
  expect(body.results[0]?.error).toBeUndefined();
  return body.results[0]?.values ?? [];
}

async function backupBytes(h: RealHarness, query = ""): Promise<{ bytes: Uint8Array; contentType: string | null }> {
  const response = await h.request("GET", `/db/backup${query}`);
  const bytes = new Uint8Array(await response.arrayBuffer());
  expect(response.status, new TextDecoder().decode(bytes.slice(0, 300))).toBe(200);
  return { bytes, contentType: response.headers.get("Content-Type") };
}

async function sqlDump(h: RealHarness): Promise<string> {
  const response = await h.send("GET", "/db/backup?fmt=sql");
  expect(response.status, response.text).toBe(200);
  return response.text;
}

/** Opens a database file with the bundled WebAssembly SQLite and returns the rows of one query. */
async function rowsOfFile(file: Uint8Array, sql: string): Promise<unknown[][]> {
  const sqlJs = await loadSqlJs();
  const db = new sqlJs.Database(file);
  try {
    return db.exec(sql)[0]?.values ?? [];
  } finally {
    db.close();
  }
}

/** A database file built by SQLite itself (not by a backup), after `prepare` changed it. */
async function fileOf(statements: string, prepare: (bytes: Uint8Array) => void = () => undefined): Promise<Uint8Array> {
  const sqlJs = await loadSqlJs();
  const db = new sqlJs.Database();
  try {
    db.exec(statements);
    const bytes = db.export();
    prepare(bytes);
    return bytes;
  } finally {
    db.close();
  }
}

async function load(h: RealHarness, file: Uint8Array): Promise<{ status: number; text: string }> {
  return h.send("POST", "/db/load", { body: file, headers: { "Content-Type": "application/octet-stream" } });
}

describe("GET /db/backup as a SQLite file", () => {
  it("returns a file whose rows equal the table, exactly, and that loads back into another cluster", async () => {
    const source = setUp("file-source");
    await writeAll(source, SCHEMA_AND_ROWS);
    const expected = await queryValues(source, EXACT_KINDS);
    expect(expected).toHaveLength(4);
    expect(expected[0]?.slice(1, 3)).toEqual(["9223372036854775807", "0.5"]);
    expect(expected[1]?.slice(1, 3)).toEqual(["-9223372036854775808", "-7.25"]);

    const { bytes: file, contentType } = await backupBytes(source);
    expect(contentType).toBe("application/octet-stream");
    expect(new TextDecoder().decode(file.slice(0, 15))).toBe("SQLite format 3");
    expect(await rowsOfFile(file, "PRAGMA integrity_check")).toEqual([["ok"]]);
    // Rollback-journal mode (header bytes 18 and 19 are 1): the file opens on its own, with no -wal beside it.
    expect([file[18], file[19]]).toEqual([1, 1]);
    expect(await rowsOfFile(file, EXACT_KINDS)).toEqual(expected);
    expect(
      await rowsOfFile(file, "SELECT name FROM sqlite_master WHERE type IN ('index', 'view', 'trigger') ORDER BY name"),
    ).toEqual([["child_by_parent"], ["child_names"], ["parent_named"], ["sqlite_autoindex_parent_1"]]);
    expect(await rowsOfFile(file, "SELECT note, name FROM child_names ORDER BY note")).toEqual([
      ["c1", "p2"],
      ["c2", "p1"],
    ]);
    expect(await rowsOfFile(file, "SELECT seq FROM sqlite_sequence WHERE name = 'parent'")).toEqual([[2]]);

    // The file loads into an empty cluster as one transaction, and that cluster then holds exactly the same.
    const target = setUp("file-target", 3);
    const loaded = await load(target, file);
    expect(loaded.status, loaded.text).toBe(200);
    expect(loaded.text).not.toContain('"error"');
    expect(await queryValues(target, EXACT_KINDS)).toEqual(expected);
    expect(await sqlDump(target)).toBe(await sqlDump(source));
    // The trigger came along and works.
    await writeAll(target, ["INSERT INTO parent(name) VALUES ('p3')"]);
    expect(await queryValues(target, "SELECT name FROM parent WHERE id = 3")).toEqual([["P3"]]);
  });

  it("keeps ?fmt=sql as it was, gzips with ?compress, and refuses formats it does not know", async () => {
    const h = setUp("file-formats");
    await writeAll(h, [
      "CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)",
      "INSERT INTO foo(name) VALUES ('fiona')",
    ]);
    const sql = await h.send("GET", "/db/backup?fmt=sql");
    expect(sql.status).toBe(200);
    expect(sql.headers.get("Content-Type")).toBe("application/sql");
    expect(sql.text).toBe(await h.cluster.dump(sql.headers.get("X-DHA-Node") as string));
    expect(sql.text).toContain("INSERT INTO \"foo\" VALUES(1,'fiona');");

    const plain = await backupBytes(h, "?fmt=binary");
    const compressed = await backupBytes(h, "?compress&vacuum");
    expect(compressed.contentType).toBe("application/octet-stream");
    expect([compressed.bytes[0], compressed.bytes[1]]).toEqual([0x1f, 0x8b]);
    const unzipped = new Uint8Array(
      await new Response(
        new Blob([compressed.bytes]).stream().pipeThrough(new DecompressionStream("gzip")),
      ).arrayBuffer(),
    );
    expect(unzipped).toEqual(plain.bytes);
    const sqlCompressed = await backupBytes(h, "?fmt=sql&compress");
    const sqlUnzipped = await new Response(
      new Blob([sqlCompressed.bytes]).stream().pipeThrough(new DecompressionStream("gzip")),
    ).text();
    expect(sqlUnzipped).toBe(sql.text);

    const unknown = await h.send("GET", "/db/backup?fmt=csv");
    expect(unknown.status).toBe(400);
    expect(JSON.parse(unknown.text)).toEqual({
      error: 'backup format "csv" is unknown: leave fmt out for a SQLite database file, or use fmt=sql',
    });
    const vacuumSql = await h.send("GET", "/db/backup?fmt=sql&vacuum");
    expect(vacuumSql.status).toBe(400);
  });

  it("refuses to build a file beyond its limit with a 400 that points at ?fmt=sql", async () => {
    const dump = `CREATE TABLE big (x TEXT);\nINSERT INTO big VALUES('${"y".repeat(5000)}');\n`;
    const limits = { ...DEFAULT_BACKUP_FILE_LIMITS, maxDumpBytes: 4096 };
    await expect(sqliteFileFromDump(dump, limits)).rejects.toThrow(SqliteFileError);
    const refused = await backupBody({ sql: dump, raftIndex: 1 }, { format: "sqlite", compress: false, limits }).catch(
      (error: unknown) => error,
    );
    expect(refused).toBeInstanceOf(ApiError);
    expect((refused as ApiError).status).toBe(400);
    expect((refused as ApiError).message).toMatch(/use \?fmt=sql$/);
    // Within the limit the same dump becomes a file.
    const file = await sqliteFileFromDump(dump, { ...limits, maxDumpBytes: 8192 });
    expect(await rowsOfFile(file, "SELECT length(x) FROM big")).toEqual([[5000]]);
  });
});

describe("POST /db/load with a SQLite file", () => {
  it("loads a file written by SQLite itself (WAL mode, its own page size), values exact", async () => {
    const h = setUp("file-foreign");
    const file = await fileOf(
      [
        "PRAGMA page_size=1024;",
        "CREATE TABLE t (i INTEGER, r REAL, s TEXT, b BLOB);",
        "INSERT INTO t VALUES (9223372036854775807, 2.5, 'a''b', x'cafe'), (-3, -0.125, NULL, x'00');",
      ].join("\n"),
      (bytes) => {
        // What rqlite's backups are: WAL mode, checkpointed (the -wal file is not part of the upload).
        bytes[18] = 2;
        bytes[19] = 2;
      },
    );
    expect(file.length % 1024).toBe(0);
    const loaded = await load(h, file);
    expect(loaded.status, loaded.text).toBe(200);
    expect(JSON.parse(loaded.text)).toEqual({
      // PRAGMA defer_foreign_keys = ON (every load begins with it), the CREATE TABLE, the rows.
      results: [{}, {}, { last_insert_id: 1, rows_affected: 1 }, { last_insert_id: 2, rows_affected: 1 }],
    });
    expect(await queryValues(h, "SELECT quote(i), quote(r), quote(s), quote(b) FROM t ORDER BY rowid")).toEqual([
      ["9223372036854775807", "2.5", "'a''b'", "X'CAFE'"],
      ["-3", "-0.125", "NULL", "X'00'"],
    ]);
  });

  it("answers garbage, cut, damaged and crafted files with 400 and applies nothing", async () => {
    const h = setUp("file-bad");
    await writeAll(h, ["CREATE TABLE keep (x INTEGER)", "INSERT INTO keep VALUES (1)"]);
    const before = await sqlDump(h);
    const executesBefore = h.callsTo("execute").length;

    const good = await fileOf("CREATE TABLE t (x TEXT); INSERT INTO t VALUES ('one'), ('two');");
    const cut = good.slice(0, good.length - 100);
    const damaged = good.slice();
    // Page 2 holds the table's rows: overwrite its b-tree page header and cells.
    damaged.fill(0x55, 4096, 4096 + 64);
    const twoStatements = await fileOf(
      [
        "CREATE TABLE t (x TEXT);",
        "CREATE TABLE victim (y TEXT);",
        "PRAGMA writable_schema=ON;",
        "UPDATE sqlite_master SET sql = 'CREATE TABLE t (x TEXT); DROP TABLE keep' WHERE name = 't';",
      ].join("\n"),
    );
    const reserved = await fileOf("CREATE TABLE _dha_state (x TEXT);");
    const cases: [string, Uint8Array, RegExp][] = [
      ["garbage", new TextEncoder().encode("SQLite format 3\0garbage"), /^the body is not a SQLite database file/],
      ["cut", cut, /not a whole number of 4096-byte pages: it is truncated$/],
      ["damaged", damaged, /^the (SQLite file is damaged|file is not a readable SQLite database)/],
      // SQLite 3.54 refuses such a schema itself; the worker's own check stands behind it for any that would not.
      [
        "two statements",
        twoStatements,
        /malformed database schema \(t\)|^the SQLite file's table "t" is not defined by exactly one statement$/,
      ],
      ["reserved", reserved, /^the SQLite file holds objects with reserved names \(_dha_state\)/],
    ];
    for (const [name, file, message] of cases) {
      const refused = await load(h, file);
      expect(refused.status, `${name}: ${refused.text}`).toBe(400);
      const body = JSON.parse(refused.text) as { results: unknown[]; error: string };
      expect(body.results, name).toEqual([]);
      expect(body.error, name).toMatch(message);
    }
    expect(h.callsTo("execute")).toHaveLength(executesBefore);
    expect(await sqlDump(h)).toBe(before);
  });

  it("answers a file beyond the load limits with 413, and a file whose rows fail with rqlite's per-statement errors", async () => {
    const h = setUp("file-limits", 1, { app: { limits: { maxLoadBodyBytes: 8192, maxLoadStatements: 10 } } });
    await writeAll(h, ["CREATE TABLE t (x BLOB)"]);
    const executesBefore = h.callsTo("execute").length;
    // Within the 8 KiB body limit as a file (512-byte pages), beyond it as SQL (blobs are hex in a dump).
    const blobs = await fileOf(
      "PRAGMA page_size=512; CREATE TABLE blobs (x BLOB); INSERT INTO blobs VALUES (zeroblob(2500)), (zeroblob(2500));",
    );
    expect(blobs.length).toBeLessThanOrEqual(8192);
    const tooLarge = await load(h, blobs);
    expect(tooLarge.status, tooLarge.text).toBe(413);
    expect(JSON.parse(tooLarge.text)).toEqual({
      results: [],
      error: "the file's contents as SQL are larger than the 8192 bytes a load may carry",
    });
    // More rows than a load may carry: refused from the file's counts, before any SQL is written.
    const manyRows = await fileOf(
      "CREATE TABLE rows (x INTEGER); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 20) INSERT INTO rows SELECT x FROM c;",
    );
    const tooMany = await load(h, manyRows);
    expect(tooMany.status, tooMany.text).toBe(413);
    expect(JSON.parse(tooMany.text)).toEqual({
      results: [],
      error: "the SQLite file holds more than 10 rows and schema entries; at most 10 statements may be loaded at once",
    });
    expect(h.callsTo("execute")).toHaveLength(executesBefore);

    // A file that creates a table the cluster already has: the transaction fails whole, reported per statement.
    const clash = await fileOf("CREATE TABLE t (x BLOB); INSERT INTO t VALUES (x'01');");
    const failed = await load(h, clash);
    expect(failed.status, failed.text).toBe(200);
    expect(failed.text).toContain("table t already exists");
    expect(await queryValues(h, "SELECT count(*) FROM t")).toEqual([[0]]);
  });

  it("reads files directly: the dump of a sound file, and refusals for size, row count, heap and header", async () => {
    const limits = { maxFileBytes: 1 << 20, maxDumpBytes: 1 << 20, maxStatements: 100, maxHeapBytes: 8 << 20 };
    const good = await fileOf("CREATE TABLE t (x INTEGER); INSERT INTO t VALUES (1);");
    expect(await dumpFromSqliteFile(good, limits)).toBe(
      'PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE t (x INTEGER);\nINSERT INTO "t" VALUES(1);\nCOMMIT;\n',
    );
    await expect(dumpFromSqliteFile(good, { ...limits, maxFileBytes: good.length - 1 })).rejects.toMatchObject({
      kind: "too-large",
    });
    // One schema entry and one row: two statements.
    await expect(dumpFromSqliteFile(good, { ...limits, maxStatements: 2 })).resolves.toContain("INSERT");
    await expect(dumpFromSqliteFile(good, { ...limits, maxStatements: 1 })).rejects.toMatchObject({
      kind: "too-large",
      message: "the SQLite file holds more than 1 rows and schema entries; at most 1 statements may be loaded at once",
    });
    // SQLite's heap is bounded: a file that needs more than the limit to check is "too large", not "damaged".
    const wide = await fileOf(
      "CREATE TABLE w (x BLOB); WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 5000) INSERT INTO w SELECT zeroblob(100) FROM c;",
    );
    await expect(
      dumpFromSqliteFile(wide, { ...limits, maxStatements: 10_000, maxHeapBytes: 64 * 1024 }),
    ).rejects.toMatchObject({
      kind: "too-large",
      message: expect.stringMatching(/out of memory \(SQLite is limited to the memory a Worker can spare\)$/),
    });
    const badPageSize = good.slice();
    badPageSize[16] = 0x03;
    await expect(dumpFromSqliteFile(badPageSize, limits)).rejects.toMatchObject({
      kind: "invalid",
      message: "the SQLite file's page size (768) is invalid",
    });
  });
});
