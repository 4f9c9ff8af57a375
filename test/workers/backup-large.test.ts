// Outside check, finding 4, over real clusters of ClusterNode objects (real Durable Object RPC, whose values hold at
// most 32 MiB): a dump past the backup's limit is refused at once by the leader, after one call; a dump larger than
// one RPC value comes as a stream; smaller dumps are unchanged.
import { describe, expect, it } from "vitest";
import { clusterFactory } from "./helpers/cluster";
import { RealHarness } from "./http-support";

const newCluster = clusterFactory();

async function writeAll(h: RealHarness, statements: readonly string[]): Promise<void> {
  const written = await h.send("POST", "/db/execute", { json: statements });
  expect(written.status, written.text).toBe(200);
  expect(written.text).not.toContain('"error"');
}

/** `count` rows of `blobBytes`-byte blobs, ids from `first` (each blob is twice its size in the dump, as hex). */
function blobRows(options: { first: number; count: number; blobBytes: number }): string {
  const last = options.first + options.count - 1;
  return (
    `WITH RECURSIVE s(i) AS (SELECT ${options.first} UNION ALL SELECT i+1 FROM s WHERE i < ${last}) ` +
    `INSERT INTO b SELECT i, zeroblob(${options.blobBytes}) FROM s`
  );
}

describe("finding 4: backups of large databases, real nodes", () => {
  it("refuses a dump past the limit at once (413, or 400 for a file) after one call; a smaller one is unchanged", async () => {
    const h = new RealHarness(newCluster({ prefix: "big-limit", nodes: 3 }), {
      app: { limits: { maxBackupDumpBytes: 20_000 } },
    });
    await writeAll(h, [
      "CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB)",
      blobRows({ first: 0, count: 4, blobBytes: 1000 }),
    ]);
    const small = await h.send("GET", "/db/backup?fmt=sql");
    expect(small.status, small.text).toBe(200);
    expect(small.text.startsWith("PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\n")).toBe(true);
    expect(small.text.match(/^INSERT INTO/gm)).toHaveLength(4);
    const file = await h.request("GET", "/db/backup");
    expect(file.status).toBe(200);

    await writeAll(h, [blobRows({ first: 4, count: 8, blobBytes: 1000 })]);
    const callsBefore = h.callsTo("backup").length;
    const sql = await h.send("GET", "/db/backup?fmt=sql");
    expect(sql.status, sql.text).toBe(413);
    expect(sql.headers.get("X-DHA-Error-Code")).toBe("LIMIT");
    expect(sql.text).toContain("the database's SQL dump is larger than 20000 bytes, the most a backup holds");
    expect(h.callsTo("backup").length - callsBefore).toBe(1);
    const fileRefused = await h.send("GET", "/db/backup");
    expect(fileRefused.status, fileRefused.text).toBe(400);
    expect(fileRefused.text).toContain("use ?fmt=sql");
    expect(h.callsTo("backup").length - callsBefore).toBe(2);
  });

  it("refuses a file from a dump past the file's limit at once, and streams a dump larger than one RPC value", async () => {
    // One node: the 20 MB write can cost a loaded machine an election, and a refusal for leadership is a second call.
    const cluster = newCluster({ prefix: "big-stream", nodes: 1 });
    const h = new RealHarness(cluster);
    // 200 rows of 100 KB: a dump of about 40 MB, more than the 32 MiB one RPC value holds.
    await writeAll(h, [
      "CREATE TABLE b(id INTEGER PRIMARY KEY, v BLOB)",
      blobRows({ first: 0, count: 200, blobBytes: 100_000 }),
    ]);
    const file = await h.send("GET", "/db/backup");
    expect(file.status, file.text).toBe(400);
    expect(file.text).toMatch(/larger than 8388608 bytes.*use \?fmt=sql/);
    expect(h.callsTo("backup")).toHaveLength(1);

    // A worker of an earlier version names no limit and reads only an inline dump, never a stream: this one is too
    // large for one RPC value, so it is refused (before: the RPC failed on the platform's limit).
    const inline = await cluster.stub("n1").backup(cluster.address("n1"));
    expect(inline.ok ? "streamed or inline" : inline.error.code).toBe("TOO_LARGE");

    const sql = await h.request("GET", "/db/backup?fmt=sql");
    expect(sql.status).toBe(200);
    const text = await sql.text();
    const expectedRow = `INSERT INTO "b" VALUES(199,X'${"00".repeat(100_000)}');`;
    expect(text.length).toBeGreaterThan(32 * 1024 * 1024);
    expect(text.match(/^INSERT INTO/gm)).toHaveLength(200);
    expect(text.endsWith(`${expectedRow}\nCOMMIT;\n`)).toBe(true);
    expect(h.callsTo("backup")).toHaveLength(2);
  });
});
