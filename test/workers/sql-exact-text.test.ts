// TEXT values whose bytes are not valid UTF-8 (char(55296) is ED A0 80, CAST(x'c3' AS TEXT) is C3): the platform
// reads them into JS strings with U+FFFD in place of those bytes, so images and dumps must carry the bytes another
// way (src/objects/sql/exact-text.ts). Compared through hex(), which shows the bytes SQLite holds.
import { describe, expect, it } from "vitest";
import type { Statement } from "../../src/shared/sql";
import { parseDump, SnapshotInstaller, SqlStateMachine, type SnapshotImage } from "../../src/objects/sql/index";
import { rowsOf } from "../../src/objects/sqlite/catalog";
import { decodeValue } from "../../src/objects/sqlite/values";
import { dumpFromSqliteFile, sqliteFileFromDump } from "../../src/worker/data/sqlite-file";
import { inObject, newSqlObject, preparedEntry } from "./helpers/sql-objects";

function newObject(label: string): DurableObjectStub {
  return newSqlObject("sql-exact-text", label);
}

function entry(statements: Statement[], options: { transaction?: boolean } = {}): string {
  return preparedEntry(statements, { ...options, nowMs: 0 });
}

function apply(storage: DurableObjectStorage, data: string, index: number): void {
  const results = new SqlStateMachine(storage).applyEntry({ index, kind: "normal", data });
  const failed = results?.find((r) => r.error !== undefined);
  if (results === null || failed !== undefined) {
    throw new Error(`entry ${index} failed: ${failed?.error ?? "already applied"}`);
  }
}

/** The text values that lose bytes in a JS string, one that only looks like it (a genuine U+FFFD), and NULs. */
const AWKWARD_TEXTS = [
  "char(55296)", // ED A0 80: a surrogate code point
  "CAST(x'c3' AS TEXT)", // a lead byte alone
  "CAST(x'61c362' AS TEXT)", // one inside valid text
  "CAST(x'c4' AS TEXT)", // reads as the same JS string as C3
  "char(65533)", // EF BF BD, valid: a genuine U+FFFD
  "'a' || char(0) || 'b'", // NUL inside
  "CAST(x'00ff41' AS TEXT)", // NUL and an invalid byte
  "CAST(x'efbbbf41' AS TEXT)", // a byte-order mark, valid
  "CAST(x'f4908080' AS TEXT)", // beyond U+10FFFF
  "CAST(x'c080' AS TEXT)", // an overlong NUL
];

const WIDE_COLUMNS = Array.from({ length: 100 }, (_, i) => `c${i}`);

const SCHEMA = [
  "CREATE TABLE t(id INTEGER PRIMARY KEY, x TEXT, y)",
  "CREATE TABLE k(key TEXT PRIMARY KEY, v) WITHOUT ROWID",
  "CREATE TABLE nc(key TEXT COLLATE NOCASE PRIMARY KEY, v) WITHOUT ROWID",
  // Every name of the rowid taken: no key at all.
  "CREATE TABLE keyless(rowid, _rowid_, oid)",
  `CREATE TABLE wide(${WIDE_COLUMNS.join(", ")})`,
];

/** A SQLite file cannot hold these (the worker's WebAssembly SQLite lacks their modules). */
const VIRTUAL_TABLES = [
  "CREATE VIRTUAL TABLE docs USING fts5(body)",
  "CREATE VIRTUAL TABLE boxes USING rtree(id, x0, x1, +label)",
];

/** Ordinary rows around the awkward ones, so that the awkward ones sit past the start of each table. */
function dataStatements(virtualTables: boolean): string[] {
  const statements: string[] = [];
  for (let i = 0; i < 60; i++) {
    statements.push(`INSERT INTO t(x, y) VALUES ('plain ${i} é😀', ${i})`);
    statements.push(`INSERT INTO k VALUES ('key ${i}', ${i})`);
    statements.push(`INSERT INTO nc VALUES ('Key ${i}', ${i})`);
    statements.push(`INSERT INTO keyless VALUES (${i}, 'plain ${i}', NULL)`);
  }
  AWKWARD_TEXTS.forEach((text, i) => {
    statements.push(`INSERT INTO t(x, y) VALUES (${text}, ${text})`);
    statements.push(`INSERT INTO t(x, y) VALUES ('between ${i}', x'${i.toString(16).padStart(2, "0")}')`);
    statements.push(`INSERT INTO k VALUES (${text}, ${text})`);
    statements.push(`INSERT INTO nc VALUES (${text}, ${i})`);
    statements.push(`INSERT INTO keyless VALUES (${text}, ${i}, ${text})`);
    if (virtualTables) {
      statements.push(`INSERT INTO docs(rowid, body) VALUES (${100 - i}, 'word ' || ${text})`);
      statements.push(`INSERT INTO boxes VALUES (${100 - i}, ${i}, ${i + 1}, ${text})`);
    }
  });
  for (let row = 0; row < 12; row++) {
    // Awkward text in both parts of a wide table's image (the first part reads c0 to c96 after the rowid).
    const values = WIDE_COLUMNS.map((_, i) =>
      (i === 3 || i === 99) && row % 3 === 1 ? AWKWARD_TEXTS[(row + i) % AWKWARD_TEXTS.length] : `'r${row}c${i}'`,
    );
    statements.push(`INSERT INTO wide VALUES (${values.join(", ")})`);
  }
  for (let i = 0; i < 60; i++) {
    statements.push(`INSERT INTO t(x, y) VALUES ('after ${i}', ${i * 0.5})`);
  }
  return statements;
}

/** Per table, each row's values as typeof:hex (the bytes SQLite holds), rows sorted. */
function exactRows(storage: DurableObjectStorage, virtualTables = true): Record<string, string[]> {
  const read = (table: string, columns: readonly string[], key: string): string[] => {
    const perColumn = columns.map((c) =>
      rowsOf(storage.sql, `SELECT typeof("${c}") || ':' || hex("${c}") FROM "${table}" ORDER BY ${key}`).map(String),
    );
    return (perColumn[0] ?? []).map((_, row) => perColumn.map((values) => values[row]).join("|")).sort();
  };
  return {
    t: read("t", ["id", "x", "y"], "id"),
    k: read("k", ["key", "v"], "CAST(key AS BLOB)"),
    nc: read("nc", ["key", "v"], "CAST(key AS BLOB)"),
    keyless: read("keyless", ["rowid", "_rowid_", "oid"], "hex(rowid), hex(_rowid_), hex(oid)"),
    wide: read("wide", ["rowid", ...WIDE_COLUMNS], "rowid"),
    ...(virtualTables
      ? { docs: read("docs", ["rowid", "body"], "rowid"), boxes: read("boxes", ["id", "x0", "label"], "id") }
      : {}),
  };
}

async function awkwardDatabase(
  virtualTables = true,
): Promise<{ image: SnapshotImage; dump: string; rows: Record<string, string[]> }> {
  return inObject(newObject("leader"), (storage) => {
    const schema = [...SCHEMA, ...(virtualTables ? VIRTUAL_TABLES : [])];
    apply(storage, entry(schema.map((sql) => ({ sql }))), 1);
    apply(storage, entry(dataStatements(virtualTables).map((sql) => ({ sql }))), 2);
    const machine = new SqlStateMachine(storage);
    const image = machine.createSnapshot({ maxChunkBytes: 4 * 1024 });
    return { image, dump: machine.dumpSql(), rows: exactRows(storage, virtualTables) };
  });
}

function installAll(storage: DurableObjectStorage, image: SnapshotImage): void {
  const installer = new SnapshotInstaller(storage);
  const id = { snapshotIndex: image.appliedIndex, snapshotTerm: 1 };
  image.chunks.forEach((data, seq) => installer.receive({ ...id, seq, last: seq === image.chunks.length - 1, data }));
  expect(installer.finish(id)).toEqual({ installed: true, appliedIndex: image.appliedIndex });
}

describe("TEXT that is not valid UTF-8", () => {
  it("is held as given by the leader's database (what the copies must keep)", async () => {
    const { rows } = await awkwardDatabase();
    expect(rows.t).toEqual(
      expect.arrayContaining([
        expect.stringMatching(/^integer:[0-9A-F]+\|text:EDA080\|text:EDA080$/),
        expect.stringMatching(/^integer:[0-9A-F]+\|text:C3\|text:C3$/),
      ]),
    );
    expect(rows.k).toEqual(expect.arrayContaining(["text:C3|text:C3", "text:C4|text:C4", "text:EFBFBD|text:EFBFBD"]));
  });

  it("an image installed on another object holds the same bytes, and later writes act the same on both", async () => {
    const leader = await awkwardDatabase();
    const follower = newObject("follower");
    const installed = await inObject(follower, (storage) => {
      installAll(storage, leader.image);
      return exactRows(storage);
    });
    expect(installed).toEqual(leader.rows);

    // The report's symptom: a delete by the exact bytes finds the row on the follower too.
    const after = await inObject(follower, (storage) => {
      apply(storage, entry([{ sql: "DELETE FROM t WHERE x = CAST(x'c3' AS TEXT)" }]), leader.image.appliedIndex + 1);
      return rowsOf(storage.sql, "SELECT count(*) FROM t WHERE hex(x) = 'C3'");
    });
    expect(after).toEqual([[0]]);
  });

  it("carries the lost bytes as {$text}, which an installer from before it refuses by its value tag", async () => {
    const { image } = await awkwardDatabase();
    const text = image.chunks.join("");
    expect(text).toContain(`{"$text":"7aCA"}`); // ED A0 80
    expect(text).toContain(`{"$text":"ww=="}`); // C3
    expect(text).toContain(`"\uFFFD"`); // the genuine U+FFFD stays a string
    expect(() => decodeValue({ $text: "ww==" }, "t.x")).toThrow('t.x: unknown value tag "$text"');
  });

  it("a dump loaded into another object holds the same bytes, through SQL text and through a SQLite file", async () => {
    const leader = await awkwardDatabase();
    expect(leader.dump).toContain("INSERT INTO \"t\" VALUES(61,CAST(X'EDA080' AS TEXT),CAST(X'EDA080' AS TEXT));");
    expect(leader.dump).toContain("INSERT INTO \"k\" VALUES('\uFFFD','\uFFFD');");
    expect(leader.dump).toContain("CAST(X'00FF41' AS TEXT)");

    const loadInto = async (dump: string, virtualTables: boolean): Promise<Record<string, string[]>> =>
      inObject(newObject("loaded"), (storage) => {
        apply(storage, entry(parseDump(dump), { transaction: true }), 1);
        return exactRows(storage, virtualTables);
      });
    // Dumps do not keep rowids (t's id is its INTEGER PRIMARY KEY, boxes' id its key): compare what they keep.
    const withoutRowids = (rows: Record<string, string[]>) => {
      const dropFirst = (table: string[] | undefined) => table?.map((row) => row.split("|").slice(1).join("|")).sort();
      return { ...rows, wide: dropFirst(rows.wide), docs: dropFirst(rows.docs) };
    };
    expect(withoutRowids(await loadInto(leader.dump, true))).toEqual(withoutRowids(leader.rows));

    const plain = await awkwardDatabase(false);
    const limits = { maxFileBytes: 1 << 22, maxDumpBytes: 1 << 22, maxStatements: 10_000, maxHeapBytes: 32 << 20 };
    const viaFile = await dumpFromSqliteFile(await sqliteFileFromDump(plain.dump, limits), limits);
    expect(viaFile).toBe(plain.dump);
    expect(withoutRowids(await loadInto(viaFile, false))).toEqual(withoutRowids(plain.rows));
  });
});
