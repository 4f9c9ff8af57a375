// The data API served by the production app over real clusters of ClusterNode objects in workerd: real
// elections, replication, SQLite and RPC. Each test has its own cluster (unique name, 20 ms heartbeat, 200 ms
// election timeout), passed in through the env vars as wrangler would, and halted after the test.
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../src/objects/api";
import { parseClusterConfig } from "../../src/worker/config";
import { clusterFactory, waitFor, type TestCluster } from "./helpers/cluster";
import { RealHarness, TOKENS } from "./http-support";

const newCluster = clusterFactory();

const CREATE_AND_INSERT = [
  "CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)",
  ["INSERT INTO foo(name) VALUES(?)", "fiona"],
];
const FIONA = '{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}';
const SELECT_FOO = `/db/query?q=${encodeURIComponent("SELECT * FROM foo")}`;

function setUp(prefix: string): { cluster: TestCluster; h: RealHarness } {
  const cluster = newCluster({ prefix, nodes: 3 });
  return { cluster, h: new RealHarness(cluster) };
}

/** Creates foo with one row through the worker; returns the write's raft index. */
async function createFoo(h: RealHarness): Promise<number> {
  const written = await h.send("POST", "/db/execute", { json: CREATE_AND_INSERT });
  expect(written.status, written.text).toBe(200);
  expect(written.text).toBe('{"results":[{},{"last_insert_id":1,"rows_affected":1}]}');
  return Number(written.headers.get("X-DHA-Raft-Index"));
}

async function countRows(h: RealHarness, where: string): Promise<number> {
  const sql = `SELECT count(*) FROM foo WHERE ${where}`;
  const read = await h.send("GET", `/db/query?level=strong&q=${encodeURIComponent(sql)}`);
  expect(read.status, read.text).toBe(200);
  const body = JSON.parse(read.text) as { results: { values: number[][] }[] };
  return body.results[0]?.values[0]?.[0] ?? Number.NaN;
}

/** Cuts every link between the nodes, both ways: no leader can be elected or keep its lease. */
async function partitionEveryone(cluster: TestCluster): Promise<void> {
  const partitions = cluster.names.flatMap((from, i) =>
    cluster.names.slice(i + 1).map((to) => ({ from, to, bothWays: true })),
  );
  await cluster.setFaultsEverywhere({ partitions });
}

describe("the data API over a real cluster", () => {
  it("bootstraps the cluster from the first request, writes, and reads at every level in rqlite's shapes", async () => {
    const { cluster, h } = setUp("real-levels");
    // No startAll: the worker's own calls start the nodes with the configuration it parsed from env.
    const index = await createFoo(h);
    expect(index).toBeGreaterThan(0);
    const leader = await cluster.waitForLeader();

    for (const level of ["weak", "strong", "auto", "linearizable"] as const) {
      const read = await h.send("GET", `${SELECT_FOO}&level=${level}`);
      expect(read.status, `${level}: ${read.text}`).toBe(200);
      expect(read.text, level).toBe(FIONA);
      expect(Number(read.headers.get("X-DHA-Raft-Index")), level).toBeGreaterThanOrEqual(index);
      if (level !== "linearizable") {
        expect(read.headers.get("X-DHA-Node"), level).toBe(leader);
      }
    }
    // Level none reads whichever node it reaches: once every node has applied the write, all of them serve it.
    await cluster.waitForConvergence({ index });
    for (const node of cluster.names) {
      h.preferNode(node);
      const none = await h.send("GET", `${SELECT_FOO}&level=none&freshness=5s`);
      expect(none.status, none.text).toBe(200);
      expect(none.headers.get("X-DHA-Node")).toBe(node);
      expect(none.text).toBe(FIONA);
    }
    // A follower serves a linearizable read too (it asks the leader for a read index).
    const follower = cluster.names.find((name) => name !== leader) as string;
    h.preferNode(follower);
    const linearizable = await h.send("GET", `${SELECT_FOO}&level=linearizable`);
    expect(linearizable.status, linearizable.text).toBe(200);
    expect(linearizable.headers.get("X-DHA-Node")).toBe(follower);
    expect(linearizable.text).toBe(FIONA);

    // rqlite's other shapes: associative, the unified endpoint, raft_index, per-statement errors with 200.
    // (Types are the declared ones, as rqlite reports them: an empty set has them too.)
    const associative = await h.send("POST", "/db/query?associative&level=strong", {
      json: ["SELECT * FROM foo", "SELECT * FROM foo WHERE 0"],
    });
    expect(associative.text).toBe(
      '{"results":[{"types":{"id":"integer","name":"text"},"rows":[{"id":1,"name":"fiona"}]},{"types":{"id":"integer","name":"text"},"rows":[]}]}',
    );
    const unified = await h.send("POST", "/db/request?raft_index", {
      json: [["INSERT INTO foo(name) VALUES(?)", "declan"], "SELECT name FROM foo ORDER BY id"],
    });
    expect(unified.status, unified.text).toBe(200);
    const unifiedIndex = Number(unified.headers.get("X-DHA-Raft-Index"));
    expect(unified.text).toBe(
      `{"results":[{"last_insert_id":2,"rows_affected":1},{"columns":["name"],"types":["text"],"values":[["fiona"],["declan"]]}],"raft_index":${unifiedIndex}}`,
    );
    const failing = await h.send("POST", "/db/execute", {
      json: ["INSERT INTO nope VALUES(1)", ["INSERT INTO foo(name) VALUES(?)", "erin"]],
    });
    expect(failing.status).toBe(200);
    expect(failing.text).toBe('{"results":[{"error":"no such table: nope"},{"last_insert_id":3,"rows_affected":1}]}');

    // A write sent to /db/query answers rqlite's error in its place, the reads around it still answer, at every
    // level, and nothing is written.
    for (const level of ["none", "weak", "linearizable", "strong"]) {
      const mixed = await h.send("POST", `/db/query?level=${level}`, {
        json: ["SELECT count(*) FROM foo", ["INSERT INTO foo(name) VALUES(?)", "query"], "SELECT count(*) FROM foo"],
      });
      expect(mixed.status, `${level}: ${mixed.text}`).toBe(200);
      const count = '{"columns":["count(*)"],"types":["integer"],"values":[[3]]}';
      expect(mixed.text, level).toBe(
        `{"results":[${count},{"error":"attempt to change database via query operation"},${count}]}`,
      );
    }
    expect(await countRows(h, "name = 'query'")).toBe(0);

    // Every call the worker made carried the address built from its env: protocol, the whole cluster, the node.
    const config = parseClusterConfig(h.env);
    expect(h.calls.length).toBeGreaterThan(0);
    for (const call of h.calls) {
      expect(call.address.protocolVersion).toBe(PROTOCOL_VERSION);
      expect(call.address.cluster).toEqual(config);
      expect(call.address.node).toBe(call.node);
    }
  });

  it("read-your-writes: a follower serves a read carrying the write's raft index; a lagging one hands it to the leader", async () => {
    const { cluster, h } = setUp("real-ryw");
    await cluster.startAll();
    await createFoo(h);
    const leader = await cluster.waitForLeader();
    const [follower, other] = cluster.names.filter((name) => name !== leader) as [string, string];

    h.preferNode(follower);
    for (let i = 0; i < 3; i++) {
      const written = await h.send("POST", "/db/execute", { json: [["INSERT INTO foo(name) VALUES(?)", `ryw-${i}`]] });
      expect(written.status, written.text).toBe(200);
      const bookmark = written.headers.get("X-DHA-Raft-Index") as string;
      // Without a level, a bookmarked read may be served by any node that has applied the bookmark.
      const read = await h.send(
        "GET",
        `/db/query?q=${encodeURIComponent(`SELECT name FROM foo WHERE name = 'ryw-${i}'`)}`,
        {
          headers: { "X-DHA-Raft-Index": bookmark },
        },
      );
      expect(read.status, read.text).toBe(200);
      expect(read.headers.get("X-DHA-Node")).toBe(follower);
      expect(Number(read.headers.get("X-DHA-Raft-Index"))).toBeGreaterThanOrEqual(Number(bookmark));
      expect(read.text).toBe(`{"results":[{"columns":["name"],"types":["text"],"values":[["ryw-${i}"]]}]}`);
    }

    // The leader's messages no longer reach the follower: it cannot apply the next write, so the read moves on.
    await cluster.setFaults(leader, { partitions: [{ from: leader, to: follower }] });
    const written = await h.send("POST", "/db/execute", { json: [["INSERT INTO foo(name) VALUES(?)", "lagging"]] });
    expect(written.status, written.text).toBe(200);
    const bookmark = Number(written.headers.get("X-DHA-Raft-Index"));
    const followerStatus = await cluster.status(follower);
    expect(followerStatus.appliedIndex).toBeLessThan(bookmark);
    const started = Date.now();
    const read = await h.send(
      "GET",
      `/db/query?timeout=4s&min_raft_index=${bookmark}&q=${encodeURIComponent("SELECT name FROM foo WHERE name = 'lagging'")}`,
    );
    expect(read.status, read.text).toBe(200);
    expect(Date.now() - started).toBeLessThan(4_000);
    expect([leader, other]).toContain(read.headers.get("X-DHA-Node"));
    expect(read.text).toBe('{"results":[{"columns":["name"],"types":["text"],"values":[["lagging"]]}]}');
    const tried = h
      .callsTo("query")
      .slice(-2)
      .map((call) => call.node);
    expect(tried[0]).toBe(follower);

    await cluster.heal();
    await cluster.waitForConvergence({ index: bookmark });
  });

  it("without a leader answers 503 with Retry-After and a JSON reason, applies nothing, and recovers", async () => {
    const { cluster, h } = setUp("real-noleader");
    const written = await createFoo(h);
    // An acknowledged write is on a majority; a follower learns its commit a little later (a commit notice waits up to
    // a quarter heartbeat for the next message). The level-none read below needs it applied wherever it lands.
    await waitFor("every node to apply the row", async () =>
      (await cluster.statuses()).every((status) => status.appliedIndex >= written) ? true : undefined,
    );
    await partitionEveryone(cluster);
    await waitFor("every node to lose its leader", async () => {
      const statuses = await cluster.statuses();
      return statuses.every((status) => status.leader === null && status.role !== "leader") ? true : undefined;
    });

    const started = Date.now();
    const refused = await h.send("POST", "/db/execute?timeout=1500ms", {
      json: [["INSERT INTO foo(name) VALUES(?)", "refused"]],
      headers: { "Idempotency-Key": "no-leader-1" },
    });
    expect(Date.now() - started).toBeLessThan(3_000);
    expect(refused.status, refused.text).toBe(503);
    expect(refused.headers.get("Retry-After")).toBe("1");
    expect(refused.headers.get("X-DHA-Error-Code")).toBe("NO_LEADER");
    expect(refused.headers.get("X-DHA-Request-Id")).toBe("no-leader-1");
    const body = JSON.parse(refused.text) as { results: unknown[]; error: string };
    expect(body.results).toEqual([]);
    expect(body.error).toMatch(/^no leader: /);

    const weak = await h.send("GET", `${SELECT_FOO}&timeout=1s`);
    expect(weak.status, weak.text).toBe(503);
    expect(weak.headers.get("Retry-After")).toBe("1");
    expect(JSON.parse(weak.text)).toMatchObject({ results: [], error: expect.stringMatching(/no leader/) as unknown });
    // A node's local state can still be read at level none (no freshness bound).
    const none = await h.send("GET", `${SELECT_FOO}&level=none`);
    expect(none.status, none.text).toBe(200);
    expect(none.text).toBe(FIONA);
    // Bounded by freshness, no node can serve it: rqlite's "stale read" at once, not after the deadline.
    const queriesBefore = h.callsTo("query").length;
    const stale = await h.send("GET", `${SELECT_FOO}&level=none&freshness=300ms&timeout=10s`);
    // Each node asked once: not asked again until the deadline.
    expect(
      h
        .callsTo("query")
        .slice(queriesBefore)
        .map((call) => call.node)
        .sort(),
    ).toEqual([...cluster.names].sort());
    expect(stale.status, stale.text).toBe(200);
    expect(stale.text).toBe('{"results":[],"error":"stale read"}');
    expect(stale.headers.get("X-DHA-Error-Code")).toBe("STALE");

    const health = await h.send("GET", "/api/v1/cluster/health?timeout=1s");
    expect(health.status, health.text).toBe(503);
    expect(health.headers.get("Retry-After")).toBe("1");
    expect(JSON.parse(health.text)).toMatchObject({ status: "UNHEALTHY", leader: null, quorumAvailable: false });
    const ready = await h.send("GET", "/readyz");
    expect(ready.status).toBe(503);
    expect(ready.text).toBe("[+]node ok\n[+]leader does not exist");
    const leaderNow = await h.send("GET", "/leader");
    expect(leaderNow.status).toBe(503);
    expect(JSON.parse(leaderNow.text)).toEqual({
      error: "no leader: an election is under way, or no quorum is reachable",
    });

    await cluster.heal();
    await cluster.waitForLeader();
    const retried = await h.send("POST", "/db/execute", {
      json: [["INSERT INTO foo(name) VALUES(?)", "after"]],
      headers: { "Idempotency-Key": "after-heal" },
    });
    expect(retried.status, retried.text).toBe(200);
    expect(await countRows(h, "name = 'refused'")).toBe(0);
    expect(await countRows(h, "name = 'after'")).toBe(1);
  });

  it("a write sent first to a follower (stale leader hint) follows NOT_LEADER and is applied once", async () => {
    const { cluster, h } = setUp("real-stale-hint");
    await cluster.startAll();
    await createFoo(h);
    const leader = await cluster.waitForLeader();
    const follower = cluster.names.find((name) => name !== leader) as string;

    h.leaders.set(cluster.config.name, follower);
    const before = h.callsTo("execute").length;
    const written = await h.send("POST", "/db/execute", {
      json: [["INSERT INTO foo(name) VALUES(?)", "once"]],
      headers: { "Idempotency-Key": "stale-hint-1" },
    });
    expect(written.status, written.text).toBe(200);
    expect(written.text).toBe('{"results":[{"last_insert_id":2,"rows_affected":1}]}');
    expect(written.headers.get("X-DHA-Node")).toBe(leader);
    expect(written.headers.get("X-DHA-Request-Id")).toBe("stale-hint-1");
    expect(
      h
        .callsTo("execute")
        .slice(before)
        .map((call) => call.node),
    ).toEqual([follower, leader]);
    expect(h.leaders.get(cluster.config.name)).toBe(leader);

    // The client retries the same request (say its connection dropped), again via the stale hint: the leader
    // answers with the first result and appends nothing to the log.
    const logBefore = (await cluster.status(leader)).lastLogIndex;
    h.leaders.set(cluster.config.name, follower);
    const again = await h.send("POST", "/db/execute", {
      json: [["INSERT INTO foo(name) VALUES(?)", "once"]],
      headers: { "Idempotency-Key": "stale-hint-1" },
    });
    expect(again.status, again.text).toBe(200);
    expect(again.text).toBe(written.text);
    expect((await cluster.status(leader)).lastLogIndex).toBe(logBefore);
    expect(await countRows(h, "name = 'once'")).toBe(1);

    // Leadership moves; the hint still names the old leader, which now answers NOT_LEADER.
    const moved = await h.send("POST", "/api/v1/cluster/leader/transfer", { json: { to: follower } });
    expect(moved.status, moved.text).toBe(200);
    h.leaders.set(cluster.config.name, leader);
    const afterMove = await h.send("POST", "/db/execute", { json: [["INSERT INTO foo(name) VALUES(?)", "moved"]] });
    expect(afterMove.status, afterMove.text).toBe(200);
    expect(afterMove.headers.get("X-DHA-Node")).toBe(follower);
    expect(await countRows(h, "name = 'moved'")).toBe(1);
  });

  it("refuses an Idempotency-Key reused for a different request with 422, applying nothing", async () => {
    const { cluster, h } = setUp("real-key-reused");
    await cluster.startAll();
    await createFoo(h);
    const leader = await cluster.waitForLeader();
    const first = await h.send("POST", "/db/execute", {
      json: [["INSERT INTO foo(name) VALUES(?)", "first"]],
      headers: { "Idempotency-Key": "reused-1" },
    });
    expect(first.status, first.text).toBe(200);
    const logBefore = (await cluster.status(leader)).lastLogIndex;

    const other = await h.send("POST", "/db/execute", {
      json: [["INSERT INTO foo(name) VALUES(?)", "second"]],
      headers: { "Idempotency-Key": "reused-1" },
    });
    expect(other.status, other.text).toBe(422);
    expect(other.headers.get("X-DHA-Error-Code")).toBe("IDEMPOTENCY_KEY_REUSED");
    expect(JSON.parse(other.text)).toEqual({
      results: [],
      // Only the key the client sent: not the token's namespace the node keys it under.
      error: expect.stringMatching(
        /^request id "reused-1" was already used for a different request .*nothing of this one was applied/,
      ),
    });
    expect((await cluster.status(leader)).lastLogIndex).toBe(logBefore);
    expect(await countRows(h, "name = 'second'")).toBe(0);

    // The same request under the same key is still a retry: the first answer, nothing appended.
    const again = await h.send("POST", "/db/execute", {
      json: [["INSERT INTO foo(name) VALUES(?)", "first"]],
      headers: { "Idempotency-Key": "reused-1" },
    });
    expect(again.status, again.text).toBe(200);
    expect(again.text).toBe(first.text);
    expect(await countRows(h, "name = 'first'")).toBe(1);
  });

  it("backs up as a SQL dump and loads a dump atomically", async () => {
    const { cluster, h } = setUp("real-dump");
    await cluster.startAll();
    const dump = [
      "PRAGMA foreign_keys=OFF;",
      "BEGIN TRANSACTION;",
      "CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT);",
      "INSERT INTO foo VALUES(1,'it''s; fine');",
      "INSERT INTO foo VALUES(2,'declan');",
      "COMMIT;",
      "",
    ].join("\n");
    const loaded = await h.send("POST", "/db/load", { body: dump, headers: { "Content-Type": "text/plain" } });
    expect(loaded.status, loaded.text).toBe(200);
    const loadedIndex = Number(loaded.headers.get("X-DHA-Raft-Index"));
    // The framing (PRAGMA foreign_keys, BEGIN, COMMIT) is dropped: the load is one transaction of three statements.
    expect(loaded.text).toBe(
      // PRAGMA defer_foreign_keys = ON (every load begins with it), the CREATE TABLE, the rows.
      '{"results":[{},{},{"last_insert_id":1,"rows_affected":1},{"last_insert_id":2,"rows_affected":1}]}',
    );

    const backup = await h.send("GET", "/db/backup?fmt=sql");
    expect(backup.status, backup.text).toBe(200);
    expect(backup.headers.get("Content-Type")).toBe("application/sql");
    expect(backup.text).toContain("CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)");
    expect(backup.text).toContain("'it''s; fine'");
    // The worker's backup is the leader's dump, and once converged every node holds the same.
    await cluster.waitForConvergence({ index: loadedIndex });
    for (const node of cluster.names) {
      expect(await cluster.dump(node)).toBe(backup.text);
    }

    // A dump whose last statement fails is applied not at all.
    const broken = await h.send("POST", "/db/load", {
      body: "CREATE TABLE bar (x INTEGER);\nINSERT INTO bar VALUES(1);\nINSERT INTO missing VALUES(1);\n",
    });
    expect(broken.status, broken.text).toBe(200);
    const brokenBody = JSON.parse(broken.text) as { results: { error?: string }[] };
    expect(brokenBody.results.some((result) => result.error?.includes("no such table: missing"))).toBe(true);
    const after = await h.send("GET", "/db/backup?fmt=sql");
    expect(after.text).toBe(backup.text);

    // A body that only starts like a SQLite file is refused before anything reaches the cluster.
    const binary = await h.send("POST", "/db/load", { body: new TextEncoder().encode("SQLite format 3\0rest") });
    expect(binary.status).toBe(400);
    expect(JSON.parse(binary.text)).toEqual({
      results: [],
      error: "the body is not a SQLite database file (its header is missing or cut short)",
    });
    // Without fmt the backup is a SQLite database file (test/workers/backup-file.test.ts covers it in full).
    const noFormat = await h.request("GET", "/db/backup");
    expect(noFormat.status).toBe(200);
    expect(noFormat.headers.get("Content-Type")).toBe("application/octet-stream");
    expect(new TextDecoder().decode(new Uint8Array(await noFormat.arrayBuffer()).slice(0, 16))).toBe(
      "SQLite format 3\0",
    );
  });

  it("checks credentials and roles before touching the cluster", async () => {
    const { h } = setUp("real-auth");
    const anonymous = await h.send("POST", "/db/execute", { json: CREATE_AND_INSERT, token: null });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("WWW-Authenticate")).toContain("Bearer");
    const reader = await h.send("POST", "/db/execute", { json: CREATE_AND_INSERT, token: TOKENS.reader });
    expect(reader.status).toBe(403);
    expect(h.calls).toEqual([]);

    // rqlite clients that only speak HTTP Basic: any user name, the token as password.
    const basic = `Basic ${btoa(`rqlite:${TOKENS.writer}`)}`;
    const written = await h.send("POST", "/db/execute", {
      json: CREATE_AND_INSERT,
      token: null,
      headers: { Authorization: basic },
    });
    expect(written.status, written.text).toBe(200);
    const read = await h.send("GET", `${SELECT_FOO}&level=strong`, { token: TOKENS.reader });
    expect(read.status).toBe(200);
    expect(read.text).toBe(FIONA);
    const readerWrites = await h.send("POST", "/db/request", {
      json: ["SELECT 1", "DELETE FROM foo"],
      token: TOKENS.reader,
    });
    expect(readerWrites.status).toBe(403);
    const stepdown = await h.send("POST", "/api/v1/cluster/leader/stepdown", { token: TOKENS.writer });
    expect(stepdown.status).toBe(403);
  });
});
