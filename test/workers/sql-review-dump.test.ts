// Review finding D: backups kept TEXT only up to its first NUL character (SQLite's quote() stops there).
import { describe, expect, it } from "vitest";
import { loadSqlJs } from "../../src/worker/data/sqlite-wasm";
import { clusterFactory } from "./helpers/cluster";
import { RealHarness } from "./http-support";

const newCluster = clusterFactory();

const WITH_NUL = ["a\u0000b", "\u0000", "x\u0000\u0000y é 😀 'q'", "plain"];
const EXACT = "SELECT hex(s), typeof(s), length(CAST(s AS BLOB)) FROM t ORDER BY rowid";

async function values(h: RealHarness, sql: string): Promise<unknown[][]> {
  const read = await h.send("POST", "/db/query?level=strong", { json: [sql] });
  expect(read.status, read.text).toBe(200);
  const body = JSON.parse(read.text) as { results: { values?: unknown[][]; error?: string }[] };
  expect(body.results[0]?.error).toBeUndefined();
  return body.results[0]?.values ?? [];
}

describe("backups of TEXT holding NUL characters", () => {
  it("keep every character through /db/backup?fmt=sql and the SQLite file, and load back exactly", async () => {
    const source = new RealHarness(newCluster({ prefix: "sql-review-dump-src", nodes: 1 }));
    const written = await source.send("POST", "/db/execute", {
      json: ["CREATE TABLE t(s TEXT)", ...WITH_NUL.map((text) => ["INSERT INTO t(s) VALUES(?)", text])],
    });
    expect(written.status, written.text).toBe(200);
    expect(written.text).not.toContain('"error"');
    const expected = await values(source, EXACT);
    expect(expected[0]).toEqual(["610062", "text", 3]);

    const dump = await source.send("GET", "/db/backup?fmt=sql");
    expect(dump.status, dump.text).toBe(200);
    expect(dump.text, dump.text).toContain(`INSERT INTO "t" VALUES(CAST(X'610062' AS TEXT));`);
    expect(dump.text).toContain(`INSERT INTO "t" VALUES('plain');`);

    const fromDump = new RealHarness(newCluster({ prefix: "sql-review-dump-sql", nodes: 1 }));
    const loaded = await fromDump.send("POST", "/db/load", {
      body: dump.text,
      headers: { "Content-Type": "text/plain" },
    });
    expect(loaded.status, loaded.text).toBe(200);
    expect(await values(fromDump, EXACT)).toEqual(expected);

    const file = await source.request("GET", "/db/backup");
    expect(file.status).toBe(200);
    const bytes = new Uint8Array(await file.arrayBuffer());
    const sqlJs = await loadSqlJs();
    const db = new sqlJs.Database(bytes);
    try {
      expect(db.exec(EXACT)[0]?.values).toEqual(expected);
    } finally {
      db.close();
    }
    const fromFile = new RealHarness(newCluster({ prefix: "sql-review-dump-file", nodes: 1 }));
    const loadedFile = await fromFile.send("POST", "/db/load", {
      body: bytes,
      headers: { "Content-Type": "application/octet-stream" },
    });
    expect(loadedFile.status, loadedFile.text).toBe(200);
    expect(await values(fromFile, EXACT)).toEqual(expected);
  });
});
