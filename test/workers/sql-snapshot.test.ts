// Snapshots (create -> stage -> install into another object), staging isolation, and SQL dumps (dump -> parse ->
// apply into another object), over real Durable Object SQLite storage.
import { describe, expect, it } from "vitest";
import type { Statement, StatementResult } from "../../src/shared/sql";
import {
  LOAD_DEFERS_FOREIGN_KEYS,
  parseDump,
  SnapshotError,
  SnapshotInstaller,
  SqlStateMachine,
  type SnapshotImage,
} from "../../src/objects/sql/index";
import { listTables, rowsOf } from "../../src/objects/sqlite/catalog";
import { inObject, newSqlObject, preparedEntry } from "./helpers/sql-objects";

function newObject(label: string): DurableObjectStub {
  return newSqlObject("sql-test-snapshot", label);
}

const NOW_MS = Date.UTC(2026, 10, 26, 8, 0, 0, 123);

/** Encoded log entries, produced the way a leader produces them. */
function entry(statements: Statement[], options: { id?: string; transaction?: boolean } = {}): string {
  return preparedEntry(statements, { ...options, nowMs: NOW_MS });
}

function applyAll(storage: DurableObjectStorage, entries: readonly string[], firstIndex = 1): StatementResult[][] {
  const machine = new SqlStateMachine(storage);
  return entries.map((data, i) => {
    const results = machine.applyEntry({ index: firstIndex + i, kind: "normal", data });
    if (results === null) {
      throw new Error("already applied");
    }
    const failed = results.find((r) => r.error !== undefined);
    if (failed !== undefined) {
      throw new Error(`entry ${firstIndex + i} failed: ${failed.error}`);
    }
    return results;
  });
}

const BIG_TEXT = "é😀a".repeat(40_000); // 280,000 UTF-8 bytes with 2- and 4-byte characters: lines span chunks

/** A database with most of what SQLite can hold. */
const RICH_ENTRIES = [
  entry([
    // The child table comes first: its rows precede the parent's in the snapshot, so foreign keys must be deferred.
    {
      sql: "CREATE TABLE child(id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent(id) ON DELETE CASCADE, note TEXT)",
    },
    { sql: "CREATE TABLE parent(id INTEGER PRIMARY KEY, name TEXT UNIQUE)" },
    { sql: "CREATE TABLE plain(a, b TEXT, c REAL, d BLOB)" },
    { sql: "CREATE TABLE kv(k TEXT PRIMARY KEY, v) WITHOUT ROWID" },
    { sql: "CREATE TABLE auto(id INTEGER PRIMARY KEY AUTOINCREMENT, v)" },
    {
      sql: "CREATE TABLE gen(a INTEGER, b INTEGER GENERATED ALWAYS AS (a * 2) STORED, c GENERATED ALWAYS AS (a + 1) VIRTUAL)",
    },
    { sql: "CREATE VIRTUAL TABLE docs USING fts5(title, body)" },
  ]),
  entry([
    { sql: "INSERT INTO parent(id, name) VALUES (1, 'p1'), (2, 'p2')" },
    { sql: "INSERT INTO child(parent_id, note) VALUES (2, 'c-of-2'), (1, 'c-of-1'), (NULL, 'orphan allowed')" },
    {
      sql: "INSERT INTO plain VALUES (9223372036854775807, 'max', 1.0, x'00ff'), (-9223372036854775807, 'min', 2.5, NULL), (1.0, 'real one', 9e999, x''), (?, ?, -9e999, ?)",
      params: [BIG_TEXT, "line\nbreak 'quoted' \"double\"", new Uint8Array([1, 2, 3])],
    },
    {
      sql: "INSERT INTO plain VALUES (NULL, NULL, NULL, NULL), (0, '1', 0.1, randomblob(3)), ('x', 'gap', 1e300, NULL)",
    },
    { sql: "DELETE FROM plain WHERE b = 'gap' OR b IS NULL" },
    { sql: "INSERT INTO plain(b) VALUES ('after the gap')" },
    { sql: "INSERT INTO kv VALUES ('b', 2), ('a', 'one'), ('c', NULL)" },
    { sql: "INSERT INTO auto(v) VALUES ('1'), ('2'), ('3')" },
    { sql: "DELETE FROM auto WHERE id = 3" },
    { sql: "INSERT INTO gen(a) VALUES (1), (20)" },
    { sql: "INSERT INTO docs(rowid, title, body) VALUES (10, 'hello', 'hello world'), (20, 'bye', 'goodbye world')" },
  ]),
  entry(
    [
      { sql: "CREATE INDEX plain_b ON plain(b)" },
      { sql: "CREATE VIEW parent_names AS SELECT name FROM parent" },
      {
        sql: "CREATE TRIGGER kv_audit AFTER INSERT ON kv BEGIN INSERT INTO plain(b) VALUES ('trigger ' || new.k); END",
      },
      { sql: "ANALYZE" },
    ],
    { id: "schema-request" },
  ),
  entry([{ sql: "INSERT INTO kv VALUES ('d', 4)" }], { id: "client-retry-id" }),
];

/** Every table's rows as quote() text (exact types and values), with rowids when `withRowids`. */
function fingerprint(storage: DurableObjectStorage, withRowids: boolean): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const table of listTables(storage.sql)) {
    if (table.kind === "shadow") {
      continue;
    }
    const columns = [
      ...(withRowids && table.rowidName !== null && !table.name.startsWith("sqlite_") ? [table.rowidName] : []),
      ...table.columns,
    ];
    if (columns.length === 0) {
      continue;
    }
    const select = `SELECT ${columns.map((c) => `quote("${c}")`).join(" || ',' || ")} FROM "${table.name}"`;
    out[table.name] = rowsOf(storage.sql, select)
      .map((row) => String(row[0]))
      .sort();
  }
  return out;
}

/**
 * Every user table's rows, each value as quote() text (exact types), rowid first, in rowid order: one column per
 * value, since fingerprint()'s concatenation is too deep an expression for a table of 60 columns.
 */
function quotedRows(storage: DurableObjectStorage): Record<string, unknown[][]> {
  const out: Record<string, unknown[][]> = {};
  for (const table of listTables(storage.sql)) {
    if (table.name.startsWith("sqlite_") || table.kind !== "table") {
      continue;
    }
    const columns = [...(table.rowidName === null ? [] : [table.rowidName]), ...table.columns];
    const select = `SELECT ${columns.map((c) => `quote("${c}")`).join(", ")} FROM "${table.name}" ORDER BY 1`;
    out[table.name] = rowsOf(storage.sql, select);
  }
  return out;
}

function schemaRows(storage: DurableObjectStorage): unknown[] {
  return rowsOf(
    storage.sql,
    "SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT GLOB '_cf_*' ORDER BY type, name",
  );
}

/** Every row of a table of up to 100 columns, each value quote()d, in key order (read in two halves: one query
 * reads at most 100 columns). */
function wideRows(storage: DurableObjectStorage, table: string, key: readonly string[]): string[][] {
  const columns = listTables(storage.sql).find((t) => t.name === table)?.columns ?? [];
  const half = Math.ceil(columns.length / 2);
  const read = (part: readonly string[]) =>
    rowsOf(
      storage.sql,
      `SELECT ${[...key, ...part].map((c) => `quote("${c}")`).join(", ")} FROM "${table}" ORDER BY ${key.join(", ")}`,
    );
  const [first, second] = [read(columns.slice(0, half)), read(columns.slice(half))];
  expect(first.map((row) => row.slice(0, key.length))).toEqual(second.map((row) => row.slice(0, key.length)));
  return first.map((row, i) => [...row, ...(second[i] ?? []).slice(key.length)].map(String));
}

function installAll(storage: DurableObjectStorage, image: SnapshotImage, snapshotIndex = image.appliedIndex): void {
  const installer = new SnapshotInstaller(storage);
  image.chunks.forEach((data, seq) =>
    installer.receive({ snapshotIndex, snapshotTerm: 2, seq, last: seq === image.chunks.length - 1, data }),
  );
  expect(installer.isComplete({ snapshotIndex, snapshotTerm: 2 })).toBe(true);
  expect(installer.finish({ snapshotIndex, snapshotTerm: 2 })).toEqual({
    installed: true,
    appliedIndex: image.appliedIndex,
  });
  expect(installer.status()).toBeNull();
}

describe("snapshots", () => {
  it("install into another object reproduces the schema, every row (with rowids and exact types) and the dedup table", async () => {
    const leader = newObject("leader");
    const snapshot = await inObject(leader, (storage) => {
      applyAll(storage, RICH_ENTRIES);
      const machine = new SqlStateMachine(storage);
      const image = machine.createSnapshot({ maxChunkBytes: 64 * 1024 });
      return {
        image,
        schema: machine.schemaInfo(),
        rows: fingerprint(storage, true),
        schemaRows: schemaRows(storage),
        remembered: machine.rememberedResults("client-retry-id"),
      };
    });
    expect(snapshot.image.appliedIndex).toBe(RICH_ENTRIES.length);
    expect(snapshot.image.chunks.length).toBeGreaterThan(4);
    for (const chunk of snapshot.image.chunks) {
      expect(new TextEncoder().encode(chunk).length).toBeLessThanOrEqual(64 * 1024);
    }
    expect(snapshot.rows.plain).toContain("1,9223372036854775807,'max',1.0,X'00FF'");
    expect(snapshot.rows.plain).toContain("3,1.0,'real one',9.0e+999,X''");
    expect(snapshot.rows.plain).toContain("7,NULL,'after the gap',NULL,NULL");
    expect(snapshot.rows.sqlite_sequence).toEqual(["'auto',3"]);
    expect(snapshot.rows.sqlite_stat1?.length).toBeGreaterThan(0);

    // The follower had other data, its own AUTOINCREMENT table and a remembered id of its own: all replaced.
    const follower = newObject("follower");
    const installed = await inObject(follower, (storage) => {
      applyAll(storage, [
        entry(
          [
            { sql: "CREATE TABLE old(id INTEGER PRIMARY KEY AUTOINCREMENT, x)" },
            { sql: "INSERT INTO old(x) VALUES (1)" },
          ],
          { id: "follower-only" },
        ),
        entry([{ sql: "CREATE VIEW old_view AS SELECT x FROM old" }]),
      ]);
      installAll(storage, snapshot.image);
      const machine = new SqlStateMachine(storage);
      return {
        applied: machine.appliedIndex(),
        schema: machine.schemaInfo(),
        rows: fingerprint(storage, true),
        schemaRows: schemaRows(storage),
        remembered: machine.rememberedResults("client-retry-id"),
        forgotten: machine.rememberedResults("follower-only"),
        search: rowsOf(storage.sql, "SELECT rowid, title FROM docs WHERE docs MATCH 'world' ORDER BY rowid"),
        view: rowsOf(storage.sql, "SELECT name FROM parent_names ORDER BY name"),
      };
    });
    expect(installed.applied).toBe(snapshot.image.appliedIndex);
    expect(installed.schema).toEqual(snapshot.schema);
    expect(installed.schemaRows).toEqual(snapshot.schemaRows);
    expect(installed.rows).toEqual(snapshot.rows);
    expect(installed.remembered).toEqual(snapshot.remembered);
    expect(installed.forgotten).toBeNull();
    expect(installed.search).toEqual([
      [10, "hello"],
      [20, "bye"],
    ]);
    expect(installed.view).toEqual([["p1"], ["p2"]]);

    // From here on both behave identically: AUTOINCREMENT continues after 3, the trigger fires, retries dedup.
    const next = [
      entry([
        { sql: "INSERT INTO auto(v) VALUES ('next')" },
        { sql: "INSERT INTO kv VALUES ('e', 5)" },
        { sql: "DELETE FROM parent WHERE id = 2" },
      ]),
      entry([{ sql: "INSERT INTO kv VALUES ('d', 4)" }], { id: "client-retry-id" }),
    ];
    const continueOn = (storage: DurableObjectStorage): unknown => {
      const results = applyAll(storage, next, snapshot.image.appliedIndex + 1);
      return {
        results: results.map((r) => r.map(({ time: _time, ...rest }) => rest)),
        rows: fingerprint(storage, true),
      };
    };
    const leaderAfter = await inObject(leader, continueOn);
    const followerAfter = await inObject(follower, continueOn);
    expect(followerAfter).toEqual(leaderAfter);
    expect((leaderAfter as { results: { lastInsertId?: number }[][] }).results[0]?.[0]?.lastInsertId).toBe(4);
  });

  it("stages chunks without touching live data, and refuses incomplete, out-of-order, oversized and corrupt input", async () => {
    const leader = newObject("small-leader");
    const image = await inObject(leader, (storage) => {
      applyAll(storage, [
        entry([{ sql: "CREATE TABLE t(v TEXT)" }]),
        entry([{ sql: "INSERT INTO t VALUES (?)", params: ["z".repeat(5000)] }]),
        entry([{ sql: "INSERT INTO t VALUES ('small')" }]),
      ]);
      return new SqlStateMachine(storage).createSnapshot({ maxChunkBytes: 1024 });
    });
    expect(image.chunks.length).toBeGreaterThanOrEqual(5);
    const follower = newObject("staging");
    await inObject(follower, (storage) => {
      applyAll(storage, [entry([{ sql: "CREATE TABLE live(v)" }, { sql: "INSERT INTO live VALUES ('still here')" }])]);
      const before = { rows: fingerprint(storage, true), schema: new SqlStateMachine(storage).schemaInfo() };
      const installer = new SnapshotInstaller(storage);
      const id = { snapshotIndex: 1, snapshotTerm: 3 };
      const chunk = (seq: number, data = image.chunks[seq] ?? "") => ({
        ...id,
        seq,
        last: seq === image.chunks.length - 1,
        data,
      });

      installer.receive(chunk(0));
      installer.receive(chunk(1));
      expect(installer.status()).toMatchObject({ ...id, chunks: 2, complete: false });
      expect(fingerprint(storage, true)).toEqual(before.rows);
      expect(() => installer.finish(id)).toThrow(/incomplete: 2 chunks staged/);
      expect(() => installer.receive(chunk(3))).toThrow(/expected chunk 2 .* got 3/);
      expect(installer.receive(chunk(1)).chunks).toBe(2); // an identical repeat is fine
      expect(() => installer.receive(chunk(1, `${image.chunks[1]}x`))).toThrow(/differs from the one already staged/);
      expect(() => installer.receive({ ...chunk(2), snapshotTerm: 4 })).toThrow(
        /arrived while snapshot 1 \(term 3\) is staged/,
      );
      expect(() => installer.finish({ snapshotIndex: 1, snapshotTerm: 4 })).toThrow(/is not staged/);

      // Chunk 0 of another snapshot starts over.
      installer.receive({ ...chunk(0), snapshotTerm: 4 });
      expect(installer.status()).toMatchObject({ snapshotIndex: 1, snapshotTerm: 4, chunks: 1 });
      installer.abort();
      expect(installer.status()).toBeNull();

      // Bounded staging.
      const tight = new SnapshotInstaller(storage, { maxStagingBytes: 2048 });
      tight.receive(chunk(0));
      tight.receive(chunk(1));
      expect(() => tight.receive(chunk(2))).toThrow(/would exceed 2048 staged bytes/);
      expect(() => new SnapshotInstaller(storage, { maxChunkBytes: 1024 }).receive(chunk(0, "y".repeat(1025)))).toThrow(
        /1025 bytes; at most 1024/,
      );
      tight.abort();

      // A corrupted chunk (same length) is caught by the checksum: nothing changes and the bad staging is dropped.
      const middle = image.chunks[2] ?? "";
      const corrupt = middle.replace("z", "y");
      expect(corrupt).not.toBe(middle);
      image.chunks.forEach((data, seq) => installer.receive(chunk(seq, seq === 2 ? corrupt : data)));
      expect(installer.isComplete(id)).toBe(true);
      expect(() => installer.finish(id)).toThrow(/checksum does not match/);
      expect(fingerprint(storage, true)).toEqual(before.rows);
      expect(new SqlStateMachine(storage).schemaInfo()).toEqual(before.schema);
      expect(new SqlStateMachine(storage).appliedIndex()).toBe(1);
      expect(installer.status()).toBeNull();
      expect(() => installer.finish(id)).toThrow(SnapshotError);
      // Sent again intact, the image installs.
      image.chunks.forEach((data, seq) => installer.receive(chunk(seq, data)));
      expect(installer.finish(id)).toEqual({ installed: true, appliedIndex: 3 });
      expect(rowsOf(storage.sql, "SELECT length(v) FROM t ORDER BY rowid")).toEqual([[5000], [5]]);
      expect(rowsOf(storage.sql, "SELECT name FROM sqlite_master WHERE name = 'live'")).toEqual([]);
    });
  });

  it("refuses an image whose dedup window holds one id twice, and changes nothing", async () => {
    const leader = newObject("dup-leader");
    const image = await inObject(leader, (storage) => {
      applyAll(storage, [
        entry([{ sql: "CREATE TABLE t(v)" }], { id: "first" }),
        entry([{ sql: "INSERT INTO t VALUES (1)" }], { id: "second" }),
      ]);
      return new SqlStateMachine(storage).createSnapshot({ maxChunkBytes: 1024 * 1024 });
    });
    expect(image.chunks).toHaveLength(1);
    // The same image with the second record's id made the first's, and its checksum made to match.
    const lines = (image.chunks[0] ?? "").trimEnd().split("\n");
    const second = lines.findIndex((line) => line.startsWith('{"t":"dedup","id":"second"'));
    expect(second).toBeGreaterThan(0);
    lines[second] = (lines[second] ?? "").replace('"id":"second"', '"id":"first"');
    const body = lines
      .slice(0, -1)
      .map((line) => `${line}\n`)
      .join("");
    const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(body)));
    const sha256 = [...digest].map((byte) => byte.toString(16).padStart(2, "0")).join("");
    const forged = `${body}${JSON.stringify({ t: "end", lines: lines.length - 1, sha256 })}\n`;

    await inObject(newObject("dup-follower"), (storage) => {
      applyAll(storage, [entry([{ sql: "CREATE TABLE live(v)" }])]);
      const installer = new SnapshotInstaller(storage);
      const id = { snapshotIndex: 2, snapshotTerm: 2 };
      installer.receive({ ...id, seq: 0, last: true, data: forged });
      expect(() => installer.finish(id)).toThrow(/dedup id "first" appears twice/);
      expect(new SqlStateMachine(storage).appliedIndex()).toBe(1);
      expect(rowsOf(storage.sql, "SELECT name FROM sqlite_master WHERE name IN ('t', 'live')")).toEqual([["live"]]);
    });
  });

  it("restores many rows several to a statement, within the bound values one statement may carry", async () => {
    // 98 columns: with the rowid and the value kinds, the most result columns (100) the platform reads at once.
    const wideColumns = Array.from({ length: 98 }, (_, i) => `c${i}`);
    const leader = newObject("many-rows");
    const snapshot = await inObject(leader, (storage) => {
      applyAll(storage, [
        entry([
          { sql: "CREATE TABLE many(id INTEGER PRIMARY KEY, n INTEGER, t TEXT, r REAL, b BLOB)" },
          { sql: `CREATE TABLE wide(${wideColumns.join(", ")})` },
          { sql: "CREATE TABLE keyed(k TEXT PRIMARY KEY, v) WITHOUT ROWID" },
        ]),
      ]);
      // Written directly: rows need no log entry to be imaged, and 1,000 INSERT entries would only slow the test.
      for (let i = 1; i <= 1_000; i++) {
        storage.sql.exec(
          "INSERT INTO many(id, n, t, r, b) VALUES (?, CAST(? AS INTEGER), ?, ?, ?)",
          i * 3,
          i % 7 === 0 ? null : i - 500,
          i % 5 === 0 ? null : `row ${i} 'quoted'`,
          i % 3 === 0 ? null : i / 8,
          i % 11 === 0 ? new Uint8Array([i % 256, 0, 255]) : null,
        );
        storage.sql.exec("INSERT INTO keyed VALUES (?, ?)", `k${1_000 - i}`, i % 2 === 0 ? i : `v${i}`);
      }
      for (let row = 0; row < 5; row++) {
        const values = wideColumns.map((_, i) => (i % 4 === 0 ? null : i % 4 === 1 ? row * 1000 + i : `w${row}-${i}`));
        storage.sql.exec(`INSERT INTO wide VALUES (${wideColumns.map(() => "?").join(", ")})`, ...values);
      }
      const machine = new SqlStateMachine(storage);
      return {
        image: machine.createSnapshot({ maxChunkBytes: 16 * 1024 }),
        rows: quotedRows(storage),
        schema: machine.schemaInfo(),
      };
    });
    expect(snapshot.rows.many).toHaveLength(1_000);
    expect(snapshot.rows.wide).toHaveLength(5);
    const installed = await inObject(newObject("many-rows-follower"), (storage) => {
      installAll(storage, snapshot.image);
      return { rows: quotedRows(storage), schema: new SqlStateMachine(storage).schemaInfo() };
    });
    expect(installed.rows).toEqual(snapshot.rows);
    expect(installed.schema).toEqual(snapshot.schema);
  });

  it("images tables of 100 columns (more than one query reads) in parts, rowids, big integers and whole reals kept", async () => {
    const columns = Array.from({ length: 100 }, (_, i) => `c${i}`);
    const big = (i: number) => `CAST('${9007199254740993n + BigInt(i)}' AS INTEGER)`;
    // Each row: a text key, integers, a whole REAL, integers beyond 2^53 and a blob, in both parts of a query
    // (the first part reads the key and 98 columns: c0 to c97 without a rowid, c0 to c96 after one).
    const rowValues = (row: number) =>
      columns.map((_, i) => {
        if (i === 0) {
          return `'k${row % 3}'`;
        }
        if (i === 1) {
          return String(row);
        }
        if (i === 5 || i === 98) {
          return big(row * 100 + i);
        }
        if (i === 97) {
          return "2.0";
        }
        if (i === 99) {
          // The 101st value of a rowid row, past the 100 one statement binds: a large text and a text with NUL
          // there must still be bound (the rowid, an integer, is the one written as a literal).
          if (row === 7) {
            return "replace(hex(zeroblob(60000)), '0', 'y')";
          }
          if (row === 8) {
            return "'before' || char(0) || 'after'";
          }
          return `x'${(row % 256).toString(16).padStart(2, "0")}ff'`;
        }
        return i % 3 === 0 ? "NULL" : i % 3 === 1 ? String(row * 1000 + i) : `'r${row}c${i}'`;
      });
    const leader = newObject("wide-100");
    const snapshot = await inObject(leader, (storage) => {
      applyAll(storage, [
        entry([
          { sql: `CREATE TABLE wide(${columns.join(", ")})` },
          { sql: `CREATE TABLE keyed(${columns.join(", ")}, PRIMARY KEY (c0, c1)) WITHOUT ROWID` },
        ]),
      ]);
      for (let row = 0; row < 40; row++) {
        const values = rowValues(row).join(", ");
        // Rowids out of order and far apart: the parts are read in rowid order, not in insertion order.
        storage.sql.exec(
          `INSERT INTO wide(rowid, ${columns.join(", ")}) VALUES (${(40 - row) * 1_000_003}, ${values})`,
        );
        storage.sql.exec(`INSERT INTO keyed VALUES (${values})`);
      }
      const machine = new SqlStateMachine(storage);
      return {
        image: machine.createSnapshot({ maxChunkBytes: 4 * 1024 }),
        rows: { wide: wideRows(storage, "wide", ["rowid"]), keyed: wideRows(storage, "keyed", ["c0", "c1"]) },
        schema: machine.schemaInfo(),
      };
    });
    expect(snapshot.rows.wide).toHaveLength(40);
    expect(snapshot.rows.keyed).toHaveLength(40);
    // The first row by rowid is the last inserted (row 39): its c5 and c98 are past 2^53, one in each part.
    expect(snapshot.rows.wide[0]).toEqual(
      expect.arrayContaining([String(9007199254740993n + 3905n), String(9007199254740993n + 3998n), "2.0"]),
    );
    const installed = await inObject(newObject("wide-100-follower"), (storage) => {
      installAll(storage, snapshot.image);
      return {
        rows: { wide: wideRows(storage, "wide", ["rowid"]), keyed: wideRows(storage, "keyed", ["c0", "c1"]) },
        schema: new SqlStateMachine(storage).schemaInfo(),
      };
    });
    expect(installed.rows).toEqual(snapshot.rows);
    expect(installed.schema).toEqual(snapshot.schema);
  });

  it("skips an image the node has already applied past, and installs a complete one over existing data", async () => {
    const leader = newObject("older-leader");
    const image = await inObject(leader, (storage) => {
      applyAll(storage, [entry([{ sql: "CREATE TABLE t(v)" }]), entry([{ sql: "INSERT INTO t VALUES (1)" }])]);
      return new SqlStateMachine(storage).createSnapshot();
    });
    await inObject(newObject("ahead"), (storage) => {
      applyAll(storage, [
        entry([{ sql: "CREATE TABLE mine(v)" }]),
        entry([{ sql: "INSERT INTO mine VALUES (1)" }]),
        entry([{ sql: "INSERT INTO mine VALUES (2)" }]),
      ]);
      const installer = new SnapshotInstaller(storage);
      image.chunks.forEach((data, seq) =>
        installer.receive({ snapshotIndex: 2, snapshotTerm: 1, seq, last: seq === image.chunks.length - 1, data }),
      );
      expect(installer.finish({ snapshotIndex: 2, snapshotTerm: 1 })).toEqual({ installed: false, appliedIndex: 3 });
      expect(installer.status()).toBeNull();
      expect(rowsOf(storage.sql, "SELECT count(*) FROM mine")).toEqual([[2]]);
    });
    await inObject(newObject("behind"), (storage) => {
      // The image may be newer than the Raft snapshot it travels under (the leader images its current state).
      installAll(storage, image, 1);
      expect(rowsOf(storage.sql, "SELECT v FROM t")).toEqual([[1]]);
      expect(new SqlStateMachine(storage).appliedIndex()).toBe(2);
    });
  });
});

describe("SQL dumps", () => {
  it("dump -> parse -> apply into another object gives the same schema and rows", async () => {
    const source = newObject("dump-source");
    const dumped = await inObject(source, (storage) => {
      applyAll(storage, RICH_ENTRIES);
      const machine = new SqlStateMachine(storage);
      return {
        text: machine.dumpSql(),
        schema: machine.schemaInfo(),
        rows: fingerprint(storage, false),
        schemaRows: schemaRows(storage),
      };
    });
    expect(dumped.text.startsWith("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE child(")).toBe(true);
    expect(dumped.text.endsWith("COMMIT;\n")).toBe(true);
    expect(dumped.text).toContain(`INSERT INTO "plain" VALUES(9223372036854775807,'max',1.0,X'00FF');`);
    expect(dumped.text).toContain(`INSERT INTO "gen"("a") VALUES(1);`);
    expect(dumped.text).toContain("DELETE FROM sqlite_sequence;\nINSERT INTO \"sqlite_sequence\" VALUES('auto',3);");
    expect(dumped.text.indexOf(`INSERT INTO "parent"`)).toBeLessThan(dumped.text.indexOf(`INSERT INTO "child"`));

    const statements = parseDump(dumped.text);
    expect(statements[0]).toEqual(LOAD_DEFERS_FOREIGN_KEYS);
    expect(statements.slice(1).some((s) => /^(BEGIN|COMMIT|PRAGMA)/i.test(s.sql))).toBe(false);
    const bigRow = statements.find((s) => s.params !== undefined);
    expect(bigRow?.params).toEqual([BIG_TEXT]);
    const load = entry(statements, { transaction: true });

    const target = newObject("dump-target");
    const loaded = await inObject(target, (storage) => {
      const [results] = applyAll(storage, [load]);
      const machine = new SqlStateMachine(storage);
      return {
        count: results?.length,
        schemaHash: machine.schemaInfo().hash,
        rows: fingerprint(storage, false),
        schemaRows: schemaRows(storage),
      };
    });
    expect(loaded.count).toBe(statements.length);
    expect(loaded.schemaHash).toBe(dumped.schema.hash);
    expect(loaded.schemaRows).toEqual(dumped.schemaRows);
    expect(loaded.rows).toEqual(dumped.rows);
  });

  it("parses SQLite's own dump format, keeping strings, comments and trigger bodies intact", () => {
    const text = [
      "PRAGMA foreign_keys=OFF;",
      "BEGIN TRANSACTION;",
      "CREATE TABLE t(a TEXT, b);",
      "INSERT INTO t VALUES('semi;colon -- not a comment','it''s');",
      "/* a comment; */ INSERT INTO t VALUES(X'0102',NULL);",
      "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO t VALUES('x;', 1); END;",
      "COMMIT;",
    ].join("\n");
    expect(parseDump(text)).toEqual([
      LOAD_DEFERS_FOREIGN_KEYS,
      { sql: "CREATE TABLE t(a TEXT, b)" },
      { sql: "INSERT INTO t VALUES('semi;colon -- not a comment','it''s')" },
      { sql: "/* a comment; */ INSERT INTO t VALUES(X'0102',NULL)" },
      { sql: "CREATE TRIGGER tr AFTER INSERT ON t BEGIN INSERT INTO t VALUES('x;', 1); END" },
    ]);
    expect(() => parseDump("INSERT INTO t VALUES('open")).toThrow(
      /the dump cannot be read: unterminated string literal/,
    );
  });
});
