// Finding 2 (issue 9), the router's side: a backup comes from the leader only, and answering a backup does not make
// a node the cached leader. Fake nodes play an older node that dumps whatever it has applied, whatever its role.
import { describe, expect, it } from "vitest";
import type { BackupRequest } from "../../src/objects/api";
import { utf8Stream } from "../../src/objects/runtime/backup-dump";
import { MAX_BACKUP_DUMP_BYTES } from "../../src/shared/sql-text/limits";
import { DEFAULT_BACKUP_FILE_LIMITS } from "../../src/worker/data/sqlite-file";
import type { RouterBugs } from "../../src/worker/routing/router-bugs";
import { FakeCluster, harness, nodeError } from "./http-support";

const STALE_DUMP = "-- n1's dump, 3 writes behind\n";

/** Returns what went wrong (nothing when the router behaves). */
async function backupFromLaggingFollower(bugs: RouterBugs): Promise<string[]> {
  // n2 leads; with random 0 and an empty leader cache, n1 (a lagging follower) is asked first.
  const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n2"), { routerBugs: bugs });
  cluster.on("n1", "backup", () => ({ ok: true, node: "n1", value: { sql: STALE_DUMP, raftIndex: 7 } }));
  const problems: string[] = [];
  const backup = await request("GET", "/db/backup?fmt=sql");
  const body = await backup.text();
  if (backup.status !== 200) {
    problems.push(`backup answered ${backup.status}: ${body}`);
  }
  if (backup.headers.get("X-DHA-Node") !== "n2") {
    problems.push(`backup served by ${backup.headers.get("X-DHA-Node")}, not the leader n2`);
  }
  if (body === STALE_DUMP) {
    problems.push("the dump is the follower's, missing acknowledged writes");
  }
  const write = await request("POST", "/db/execute", { json: ["INSERT INTO foo(name) VALUES('fiona')"] });
  if (write.status !== 200) {
    problems.push(`the write after the backup answered ${write.status}`);
  }
  const firstTried = cluster.callsTo("execute")[0]?.node;
  if (firstTried !== "n2") {
    problems.push(
      `the write went first to ${firstTried}: the router took the node that answered the backup for the leader`,
    );
  }
  return problems;
}

describe("finding 2: backups are served by the leader only", () => {
  it("takes no backup from a follower that would answer one, and learns no leader from a backup", async () => {
    expect(await backupFromLaggingFollower({})).toEqual([]);
  });

  it("catches the defect when backupFromAnyNode puts it back", async () => {
    const problems = await backupFromLaggingFollower({ backupFromAnyNode: true });
    expect(problems).toContain("the dump is the follower's, missing acknowledged writes");
    expect(problems.some((problem) => problem.startsWith("the write went first to n1"))).toBe(true);
  });

  it("follows a follower's NOT_LEADER refusal of a backup to the leader", async () => {
    // The nodes' own check: a follower refuses backups naming the leader (the fake's default behaviour).
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n3"));
    cluster.on("n1", "status", (_request, node) => ({
      ok: true,
      node: "n1",
      value: { ...node.report(), role: "leader" },
    }));
    const backup = await request("GET", "/db/backup?fmt=sql");
    expect(backup.status).toBe(200);
    expect(backup.headers.get("X-DHA-Node")).toBe("n3");
    expect(cluster.callsTo("backup").map((call) => call.node)).toEqual(["n1", "n3"]);
  });

  it("answers 503 NO_LEADER, not a follower's dump, when no node leads before the deadline", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], null), {
      policy: { maxElectionWaitMs: 40 },
    });
    for (const node of ["n1", "n2", "n3"]) {
      cluster.on(node, "backup", () => ({ ok: true, node, value: { sql: STALE_DUMP, raftIndex: 7 } }));
    }
    const backup = await request("GET", "/db/backup?fmt=sql&timeout=300ms");
    expect(backup.status).toBe(503);
    expect(backup.headers.get("X-DHA-Error-Code")).toBe("NO_LEADER");
    expect(cluster.callsTo("backup")).toEqual([]);
  });
});

// Outside check, finding 4: a dump larger than one RPC value (32 MiB) failed with 503 after about 25 full dumps,
// naming the platform's limit. The leader now refuses a dump past the format's limit at once (TOO_LARGE), the router
// does not ask again, and a large dump within the limit comes as a stream that the worker sends on.
describe("finding 4: backups of large databases", () => {
  const refuseAsTooLarge = (cluster: FakeCluster): void => {
    cluster.on("n1", "backup", (request: BackupRequest) =>
      nodeError("n1", "TOO_LARGE", `the database's SQL dump is larger than ${request.maxDumpBytes} bytes`, {
        retryable: false,
      }),
    );
  };

  it("answers a dump past the limit with 413 (fmt=sql) or 400 (file) at once, after one call to the leader", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n1"));
    refuseAsTooLarge(cluster);
    const sql = await request("GET", "/db/backup?fmt=sql");
    const sqlText = await sql.text();
    expect(sql.status, sqlText).toBe(413);
    expect(sql.headers.get("X-DHA-Error-Code")).toBe("LIMIT");
    expect(sqlText).toContain(`larger than ${MAX_BACKUP_DUMP_BYTES} bytes, the most a backup holds`);
    expect(sqlText).toContain("/db/query");
    const sqlCalls = cluster.callsTo("backup");
    expect(sqlCalls.map((call) => (call.request as BackupRequest).maxDumpBytes)).toEqual([MAX_BACKUP_DUMP_BYTES]);

    const file = await request("GET", "/db/backup");
    const fileText = await file.text();
    expect(file.status, fileText).toBe(400);
    expect(file.headers.get("X-DHA-Error-Code")).toBe("LIMIT");
    expect(fileText).toMatch(/use \?fmt=sql"}$/);
    const fileCalls = cluster.callsTo("backup").slice(sqlCalls.length);
    expect(fileCalls.map((call) => (call.request as BackupRequest).maxDumpBytes)).toEqual([
      DEFAULT_BACKUP_FILE_LIMITS.maxDumpBytes,
    ]);
  });

  it("asks for the configured limit", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n1"), {
      limits: { maxBackupDumpBytes: 1000 },
    });
    refuseAsTooLarge(cluster);
    const sql = await request("GET", "/db/backup?fmt=sql");
    expect(await sql.text()).toContain("larger than 1000 bytes");
    expect(cluster.callsTo("backup").map((call) => (call.request as BackupRequest).maxDumpBytes)).toEqual([1000]);
  });

  // Served over HTTP, the body carries the dump's length (Content-Length); app.request does not serialize it.
  it("sends a streamed dump on, gzipped with ?compress, and builds a file from a small one", async () => {
    const dump = "CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT);\nINSERT INTO foo VALUES(1,'fïöna 😀');\n";
    const bytes = new TextEncoder().encode(dump);
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n1"));
    cluster.on("n1", "backup", () => ({
      ok: true,
      node: "n1",
      value: { sqlStream: utf8Stream(dump, { chunkChars: 7 }), sqlBytes: bytes.length, raftIndex: 3 },
    }));
    const sql = await request("GET", "/db/backup?fmt=sql");
    expect(sql.status).toBe(200);
    expect(await sql.text()).toBe(dump);
    const gzipped = await request("GET", "/db/backup?fmt=sql&compress");
    const unzipped = gzipped.body!.pipeThrough(new DecompressionStream("gzip"));
    expect(await new Response(unzipped).text()).toBe(dump);
    const file = await request("GET", "/db/backup");
    expect(file.status).toBe(200);
    expect(new TextDecoder().decode(new Uint8Array(await file.arrayBuffer()).slice(0, 15))).toBe("SQLite format 3");
  });

  it("refuses a streamed dump too large for a file without reading it", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n1"));
    let cancelled = false;
    let pulled = false;
    const sqlStream = new ReadableStream<Uint8Array>(
      {
        pull: () => {
          pulled = true;
        },
        cancel: () => {
          cancelled = true;
        },
      },
      { highWaterMark: 0 },
    );
    const sqlBytes = DEFAULT_BACKUP_FILE_LIMITS.maxDumpBytes + 1;
    cluster.on("n1", "backup", () => ({ ok: true, node: "n1", value: { sqlStream, sqlBytes, raftIndex: 3 } }));
    const file = await request("GET", "/db/backup");
    expect(file.status).toBe(400);
    expect(await file.text()).toContain(`the database's SQL dump is ${sqlBytes} bytes`);
    expect({ cancelled, pulled }).toEqual({ cancelled: true, pulled: false });
  });
});
