// The rqlite data API against fake nodes: byte-exact bodies, parameters, limits and refusals.
import { describe, expect, it } from "vitest";
import type { ExecuteRequest, QueryRequest } from "../../src/objects/api";
import { FakeCluster, harness, nodeError, TOKENS } from "./http-support";

function lastExecute(cluster: FakeCluster): ExecuteRequest {
  const call = cluster.callsTo("execute").at(-1);
  expect(call).toBeDefined();
  return call?.request as ExecuteRequest;
}

function lastQuery(cluster: FakeCluster): QueryRequest & { node: string } {
  const call = cluster.callsTo("query").at(-1);
  expect(call).toBeDefined();
  return { ...(call?.request as QueryRequest), node: call?.node ?? "" };
}

describe("POST /db/execute", () => {
  it("answers in rqlite's exact shape, with the serving node and raft index in headers", async () => {
    const { cluster, request } = harness();
    const response = await request("POST", "/db/execute", {
      json: [
        "CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)",
        ["INSERT INTO foo(name) VALUES(?)", "fiona"],
      ],
    });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(await response.text()).toBe(
      '{"results":[{"last_insert_id":1,"rows_affected":1},{"last_insert_id":1,"rows_affected":1}]}',
    );
    expect(response.headers.get("X-DHA-Node")).toBe("n1");
    expect(response.headers.get("X-DHA-Raft-Index")).toBe("11");
    const sent = lastExecute(cluster);
    expect(sent.request.statements).toEqual([
      { sql: "CREATE TABLE foo (id INTEGER NOT NULL PRIMARY KEY, name TEXT)" },
      { sql: "INSERT INTO foo(name) VALUES(?)", params: ["fiona"] },
    ]);
    expect(sent.request.transaction).toBe(false);
    expect(sent.cluster.name).toBe(cluster.name);
    expect(sent.node).toBe("n1");
    expect(sent.protocolVersion).toBe(1);
    expect(sent.timeoutMs).toBeGreaterThan(0);
  });

  it("honours transaction, raft_index, timings and pretty", async () => {
    const { cluster, request } = harness();
    cluster.executeResult = () => ({ lastInsertId: 5, rowsAffected: 2, time: 0.25 });
    const response = await request("POST", "/db/execute?transaction&raft_index&timings&pretty", {
      json: ["UPDATE foo SET a = 1"],
    });
    const text = await response.text();
    expect(lastExecute(cluster).request.transaction).toBe(true);
    const parsed = JSON.parse(text) as { results: unknown[]; time?: number; raft_index: number };
    expect(parsed.results).toEqual([{ last_insert_id: 5, rows_affected: 2, time: 0.25 }]);
    expect(parsed.raft_index).toBe(11);
    // The request-level time is measured; workerd's clock stands still between I/O, and rqlite omits a zero time.
    expect(parsed.time === undefined || parsed.time > 0).toBe(true);
    expect(text.startsWith('{\n    "results": [\n        {\n            "last_insert_id": 5,')).toBe(true);
  });

  it("returns per-statement errors with HTTP 200", async () => {
    const { cluster, request } = harness();
    cluster.executeResult = (statement) =>
      statement.sql.includes("nonsense") ? { error: 'near "nonsense": syntax error' } : { rowsAffected: 1 };
    const response = await request("POST", "/db/execute", { json: ["INSERT INTO nonsense", "DELETE FROM foo"] });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(
      '{"results":[{"error":"near \\"nonsense\\": syntax error"},{"rows_affected":1}]}',
    );
  });

  it("takes one statement as text/plain", async () => {
    const { cluster, request } = harness();
    const response = await request("POST", "/db/execute", {
      body: "DELETE FROM foo",
      headers: { "Content-Type": "text/plain" },
    });
    expect(response.status).toBe(200);
    expect(lastExecute(cluster).request.statements).toEqual([{ sql: "DELETE FROM foo" }]);
  });

  it("refuses unparseable bodies with 400 and sends nothing to a node", async () => {
    const { cluster, request } = harness();
    for (const body of ["not json", "{}", "[]", "[5]", '[["SELECT ?", {"a": {"b": 1}}]]']) {
      const response = await request("POST", "/db/execute", { body, headers: { "Content-Type": "application/json" } });
      expect(response.status, body).toBe(400);
      const parsed = (await response.json()) as { results: unknown[]; error: string };
      expect(parsed.results).toEqual([]);
      expect(parsed.error.length).toBeGreaterThan(0);
    }
    expect(cluster.callsTo("execute")).toEqual([]);
  });

  it("refuses a body over the limit with 413", async () => {
    const { cluster, request } = harness(new FakeCluster(), { limits: { maxBodyBytes: 64 } });
    const response = await request("POST", "/db/execute", { json: [`INSERT INTO t VALUES('${"x".repeat(100)}')`] });
    expect(response.status).toBe(413);
    expect(await response.text()).toBe('{"results":[],"error":"the request body is larger than 64 bytes"}');
    expect(cluster.callsTo("execute")).toEqual([]);
  });

  it("refuses unsupported and malformed parameters", async () => {
    const { request } = harness();
    const cases: [string, RegExp][] = [
      ["/db/execute?queue", /queued writes/],
      ["/db/execute?timeout=soon", /timeout "soon" is not a valid duration/],
      ["/db/execute?timeout=10m", /timeout may be at most 60s/],
    ];
    for (const [path, message] of cases) {
      const response = await request("POST", path, { json: ["DELETE FROM foo"] });
      expect(response.status, path).toBe(400);
      expect(((await response.json()) as { error: string }).error).toMatch(message);
    }
  });

  it("uses a client's Idempotency-Key as the request id, namespaced per token", async () => {
    const { cluster, request } = harness();
    const first = await request("POST", "/db/execute", {
      json: ["INSERT INTO t VALUES(1)"],
      headers: { "Idempotency-Key": "order-42" },
    });
    const again = await request("POST", "/db/execute", {
      json: ["INSERT INTO t VALUES(1)"],
      headers: { "Idempotency-Key": "order-42" },
    });
    expect(first.headers.get("X-DHA-Request-Id")).toBe("order-42");
    expect(await again.text()).toBe(await first.text());
    const ids = cluster.callsTo("execute").map((call) => (call.request as ExecuteRequest).request.id);
    expect(ids[0]).toBe(ids[1]);
    expect(ids[0]).toMatch(/^[0-9a-f]{16}:order-42$/);
    expect(cluster.applied_requests.size).toBe(1);
    const other = await request("POST", "/db/execute", {
      json: ["INSERT INTO t VALUES(1)"],
      headers: { "Idempotency-Key": "order-42" },
      token: TOKENS.writer,
    });
    expect(other.status).toBe(200);
    expect(cluster.applied_requests.size).toBe(2);
    const bad = await request("POST", "/db/execute", {
      json: ["SELECT 1"],
      headers: { "Idempotency-Key": "no spaces" },
    });
    expect(bad.status).toBe(400);
  });
});

describe("GET|POST /db/query", () => {
  it("answers GET ?q= in rqlite's exact shape", async () => {
    const { cluster, request } = harness();
    const response = await request("GET", `/db/query?q=${encodeURIComponent("SELECT * FROM foo")}`);
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(
      '{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}',
    );
    const sent = lastQuery(cluster);
    expect(sent.statements).toEqual([{ sql: "SELECT * FROM foo" }]);
    expect(sent.level).toBe("weak");
    expect(sent.node).toBe("n1");
  });

  it("answers HEAD ?q= as GET does (status and headers, no body), not as a POST without a body", async () => {
    const { cluster, request } = harness();
    const response = await request("HEAD", `/db/query?q=${encodeURIComponent("SELECT * FROM foo")}`);
    expect(response.headers.get("X-DHA-Error-Code")).toBeNull();
    expect(response.status).toBe(200);
    expect(response.headers.get("X-DHA-Node")).toBe("n1");
    expect(lastQuery(cluster).statements).toEqual([{ sql: "SELECT * FROM foo" }]);
  });

  it("answers POST with parameters, associatively and with byte-array BLOBs", async () => {
    const { cluster, request } = harness();
    cluster.queryResult = () => ({
      columns: ["id", "data"],
      types: ["integer", "blob"],
      rows: [[1, new Uint8Array([104, 105])]],
    });
    const response = await request("POST", "/db/query?associative&blob_array", {
      json: [["SELECT * FROM foo WHERE name=:name", { name: "fiona" }]],
    });
    expect(await response.text()).toBe(
      '{"results":[{"types":{"data":"blob","id":"integer"},"rows":[{"data":[104,105],"id":1}]}]}',
    );
    expect(lastQuery(cluster).statements).toEqual([
      { sql: "SELECT * FROM foo WHERE name=:name", params: { name: "fiona" } },
    ]);
    const base64 = await request("POST", "/db/query", { json: ["SELECT data FROM foo"] });
    expect(await base64.text()).toBe(
      '{"results":[{"columns":["id","data"],"types":["integer","blob"],"values":[[1,"aGk="]]}]}',
    );
  });

  it("omits values on an empty result set", async () => {
    const { cluster, request } = harness();
    cluster.queryResult = () => ({ columns: ["id"], types: ["integer"], rows: [] });
    const response = await request("GET", "/db/query?q=SELECT%20id%20FROM%20foo");
    expect(await response.text()).toBe('{"results":[{"columns":["id"],"types":["integer"]}]}');
  });

  it("answers a GET without q as rqlite 8.26.8 does, 200 with no results, and asks no node", async () => {
    const { cluster, request } = harness();
    const missing = await request("GET", "/db/query");
    expect(missing.status).toBe(200);
    expect(await missing.text()).toBe('{"results":[]}');
    expect(missing.headers.get("X-DHA-Node")).toBeNull();
    const pretty = await request("GET", "/db/query?pretty&associative&level=strong");
    expect(await pretty.text()).toBe('{\n    "results": []\n}');
    const timed = JSON.parse(await (await request("GET", "/db/query?timings")).text()) as Record<string, unknown>;
    expect(Object.keys(timed).filter((key) => key !== "time")).toEqual(["results"]);
    expect(timed["results"]).toEqual([]);
    // Parameters are still checked, as rqlite checks them (a bad timeout is 400 there too).
    expect((await request("GET", "/db/query?timeout=xyz")).status).toBe(400);
    expect(cluster.callsTo("query")).toEqual([]);
  });

  it("refuses an empty q, an empty statement list and an unknown level", async () => {
    const { cluster, request } = harness();
    for (const empty of ["/db/query?q=", "/db/query?q=%20%20", "/db/query?q"]) {
      const refused = await request("GET", empty);
      expect(refused.status, empty).toBe(400);
      expect(await refused.text()).toBe(
        '{"results":[],"error":"the query parameter q is empty: GET /db/query?q=SELECT..."}',
      );
    }
    const none = await request("POST", "/db/query", { json: [] });
    expect(none.status).toBe(400);
    expect(await none.text()).toBe('{"results":[],"error":"no statements"}');
    const level = await request("GET", "/db/query?q=SELECT%201&level=eventual");
    expect(level.status).toBe(400);
    expect(((await level.json()) as { error: string }).error).toBe(
      'level "eventual" is unknown: use none, weak, linearizable, strong or auto',
    );
    const strict = await request("GET", "/db/query?q=SELECT%201&level=none&freshness=1s&freshness_strict");
    expect(strict.status).toBe(400);
    expect(cluster.callsTo("query")).toEqual([]);
  });

  it("answers each write among reads with rqlite's error in its place, at every level, and sends only the reads", async () => {
    const { cluster, request } = harness();
    cluster.queryResult = (statement) => ({ columns: ["q"], types: ["text"], rows: [[statement.sql]] });
    const violation = { error: "attempt to change database via query operation" };
    for (const level of ["none", "weak", "linearizable", "strong"]) {
      const mixed = await request("POST", `/db/query?level=${level}`, {
        json: ["SELECT 1", ["INSERT INTO foo(name) VALUES(?)", "x"], "SELECT 2"],
      });
      expect(mixed.status, level).toBe(200);
      expect(await mixed.json(), level).toEqual({
        results: [
          { columns: ["q"], types: ["text"], values: [["SELECT 1"]] },
          violation,
          { columns: ["q"], types: ["text"], values: [["SELECT 2"]] },
        ],
      });
      expect(lastQuery(cluster).statements, level).toEqual([{ sql: "SELECT 1" }, { sql: "SELECT 2" }]);
    }
    // WITH ... DELETE, a PRAGMA that sets something and transaction control are writes too; associative as rqlite.
    const hidden = await request("POST", "/db/query?associative", {
      json: ["WITH x AS (SELECT 1) DELETE FROM foo", "PRAGMA foreign_keys = OFF", "BEGIN", "PRAGMA foreign_keys"],
    });
    expect(await hidden.text()).toBe(
      '{"results":[{"rows":[],"error":"attempt to change database via query operation"},' +
        '{"rows":[],"error":"attempt to change database via query operation"},' +
        '{"rows":[],"error":"attempt to change database via query operation"},' +
        '{"types":{"q":"text"},"rows":[{"q":"PRAGMA foreign_keys"}]}]}',
    );
    // Only writes: answered without a node, so neither a node nor a raft index is named.
    const queriesBefore = cluster.callsTo("query").length;
    const onlyWrites = await request("GET", "/db/query?raft_index&q=" + encodeURIComponent("DELETE FROM foo"));
    expect(onlyWrites.status).toBe(200);
    expect(await onlyWrites.text()).toBe('{"results":[{"error":"attempt to change database via query operation"}]}');
    expect(onlyWrites.headers.get("X-DHA-Node")).toBeNull();
    expect(onlyWrites.headers.get("X-DHA-Raft-Index")).toBeNull();
    expect(cluster.callsTo("query")).toHaveLength(queriesBefore);
    expect(cluster.callsTo("execute")).toEqual([]);
    // A malformed request is still refused as a whole.
    const malformed = await request("POST", "/db/query", {
      body: '["SELECT 1", "INSERT INTO foo VALUES (1)"',
      headers: { "Content-Type": "application/json" },
    });
    expect(malformed.status).toBe(400);
  });

  it("answers a freshness-bounded read no node can serve as rqlite does, once every node was asked", async () => {
    const cluster = new FakeCluster();
    for (const name of ["n1", "n2", "n3"]) {
      cluster.on(name, "query", () =>
        nodeError(name, "STALE", "this node last heard from a leader never, beyond the requested freshness of 300 ms"),
      );
    }
    const { request } = harness(cluster);
    const stale = await request("GET", "/db/query?level=none&freshness=300ms&timeout=30s&q=SELECT%201");
    expect(stale.status).toBe(200);
    expect(await stale.text()).toBe('{"results":[],"error":"stale read"}');
    expect(stale.headers.get("X-DHA-Error-Code")).toBe("STALE");
    expect(new Set(cluster.callsTo("query").map((call) => call.node))).toEqual(new Set(["n1", "n2", "n3"]));
    expect(cluster.callsTo("query")).toHaveLength(3);
    // A node that cannot be reached counts as not serving it either.
    const cut = new FakeCluster();
    cut.unreachable("n2");
    for (const name of ["n1", "n3"]) {
      cut.on(name, "query", () => nodeError(name, "STALE", `${name} last heard from a leader 900 ms ago`));
    }
    const partly = await harness(cut).request("GET", "/db/query?level=none&freshness=300ms&timeout=30s&q=SELECT%201");
    expect(await partly.text()).toBe('{"results":[],"error":"stale read"}');
    expect(cut.callsTo("query")).toHaveLength(3);
    // One stale node only: the read moves on and another serves it.
    const oneStale = new FakeCluster();
    oneStale.on("n1", "query", () => nodeError("n1", "STALE", "n1 last heard from a leader 900 ms ago"));
    const served = await harness(oneStale).request("GET", "/db/query?level=none&freshness=300ms&q=SELECT%201");
    expect(served.status).toBe(200);
    expect(served.headers.get("X-DHA-Node")).toBe("n2");
    // A raft index of the client's own is a different promise: STALE there stays a 503 after the deadline.
    const floored = await request("GET", "/db/query?level=none&freshness=300ms&timeout=200ms&q=SELECT%201", {
      headers: { "X-DHA-Raft-Index": "5" },
    });
    expect(floored.status).toBe(503);
    expect(floored.headers.get("X-DHA-Error-Code")).toBe("STALE");
  });

  it("passes transaction and freshness for level none", async () => {
    const { cluster, request } = harness();
    await request("GET", "/db/query?q=SELECT%201&level=none&freshness=1500ms&transaction");
    const sent = lastQuery(cluster);
    expect(sent.level).toBe("none");
    expect(sent.freshnessMs).toBe(1500);
    expect(sent.transaction).toBe(true);
    await request("GET", "/db/query?q=SELECT%201&level=weak&freshness=1s");
    expect(lastQuery(cluster).freshnessMs).toBeUndefined();
  });
});

describe("POST /db/request", () => {
  it("sends reads to the query path and mixed requests through the log", async () => {
    const { cluster, request } = harness();
    const reads = await request("POST", "/db/request", { json: ["SELECT * FROM foo"] });
    expect(await reads.text()).toBe(
      '{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}',
    );
    expect(cluster.callsTo("query")).toHaveLength(1);
    cluster.executeResult = (statement) =>
      statement.sql.startsWith("SELECT")
        ? { columns: ["id"], types: ["integer"], rows: [[1]] }
        : statement.sql.includes("bar")
          ? { error: "no such table: bar" }
          : { lastInsertId: 1, rowsAffected: 1 };
    const mixed = await request("POST", "/db/request?associative", {
      json: [["INSERT INTO foo(name) VALUES(?)", "fiona"], "SELECT id FROM foo", "INSERT INTO bar VALUES(1)"],
    });
    expect(await mixed.text()).toBe(
      '{"results":[{"last_insert_id":1,"rows_affected":1,"rows":null},{"types":{"id":"integer"},"rows":[{"id":1}]},{"error":"no such table: bar"}]}',
    );
    expect(cluster.callsTo("execute")).toHaveLength(1);
  });

  it("needs the write role only when it writes", async () => {
    const { cluster, request } = harness();
    const read = await request("POST", "/db/request", { json: ["SELECT 1"], token: TOKENS.reader });
    expect(read.status).toBe(200);
    const write = await request("POST", "/db/request", {
      json: ["SELECT 1", "INSERT INTO t VALUES(1)"],
      token: TOKENS.reader,
    });
    expect(write.status).toBe(403);
    expect(await write.text()).toBe('{"error":"this token lacks the \\"write\\" role"}');
    expect(cluster.callsTo("execute")).toEqual([]);
  });

  it("serves WITH and PRAGMA that only read on /db/request's read path, as rqlite does; those that write go through the log", async () => {
    const { cluster, request } = harness();
    for (const sql of ["WITH x AS (SELECT 1) SELECT * FROM x", "PRAGMA table_info(foo)"]) {
      const unified = await request("POST", "/db/request", { json: [sql], token: TOKENS.reader });
      expect(unified.status, sql).toBe(200);
      const queried = await request("POST", "/db/query", { json: [sql], token: TOKENS.reader });
      expect(queried.status, sql).toBe(200);
    }
    expect(cluster.callsTo("execute")).toEqual([]);
    for (const sql of ["WITH x AS (SELECT 1) INSERT INTO foo SELECT * FROM x", "PRAGMA defer_foreign_keys = ON"]) {
      const unified = await request("POST", "/db/request", { json: ["SELECT 1", sql], token: TOKENS.reader });
      expect(unified.status, sql).toBe(403);
    }
    expect(cluster.callsTo("execute")).toEqual([]);
    await request("POST", "/db/request", {
      json: ["WITH x AS (SELECT 1) INSERT INTO foo SELECT * FROM x"],
      token: TOKENS.writer,
    });
    expect(cluster.callsTo("execute")).toHaveLength(1);
  });
});

describe("GET /db/backup and POST /db/load", () => {
  it("dumps the leader's state as SQL", async () => {
    const { cluster, request } = harness(new FakeCluster(["n1", "n2", "n3"], "n2"));
    const response = await request("GET", "/db/backup?fmt=sql");
    expect(response.status).toBe(200);
    expect(response.headers.get("content-type")).toBe("application/sql");
    expect(response.headers.get("X-DHA-Node")).toBe("n2");
    expect(new TextDecoder().decode(await response.arrayBuffer())).toContain("CREATE TABLE foo");
    expect(cluster.callsTo("backup").map((call) => call.node)).toContain("n2");
    // Without fmt: the same dump as a SQLite database file.
    const binary = await request("GET", "/db/backup");
    expect(binary.status).toBe(200);
    expect(binary.headers.get("content-type")).toBe("application/octet-stream");
    expect(new TextDecoder().decode(new Uint8Array(await binary.arrayBuffer()).slice(0, 16))).toBe("SQLite format 3\0");
  });

  it("loads a dump as one transactional request", async () => {
    const { cluster, request } = harness();
    const dump =
      "PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE foo (id INTEGER, name TEXT);\nINSERT INTO foo VALUES(1,'a;b');\nCOMMIT;\n";
    const response = await request("POST", "/db/load", { body: dump, headers: { "Content-Type": "text/plain" } });
    expect(response.status).toBe(200);
    expect(await response.text()).toBe(
      '{"results":[{"last_insert_id":1,"rows_affected":1},{"last_insert_id":1,"rows_affected":1},' +
        '{"last_insert_id":1,"rows_affected":1}]}',
    );
    const sent = lastExecute(cluster);
    expect(sent.request.transaction).toBe(true);
    // The dump's PRAGMA foreign_keys=OFF becomes the deferral every load begins with.
    expect(sent.request.statements).toEqual([
      { sql: "PRAGMA defer_foreign_keys = ON" },
      { sql: "CREATE TABLE foo (id INTEGER, name TEXT)" },
      { sql: "INSERT INTO foo VALUES(1,'a;b')" },
    ]);
  });

  it("refuses unreadable SQLite files, empty dumps and oversized dumps, applying nothing", async () => {
    const { cluster, request } = harness(new FakeCluster(), { limits: { maxLoadBodyBytes: 200 } });
    const sqlite = new Uint8Array([...new TextEncoder().encode("SQLite format 3\0"), 1, 2, 3]);
    const binary = await request("POST", "/db/load", {
      body: sqlite,
      headers: { "Content-Type": "application/octet-stream" },
    });
    expect(binary.status).toBe(400);
    expect(((await binary.json()) as { error: string }).error).toMatch(/^the body is not a SQLite database file/);
    const empty = await request("POST", "/db/load", {
      body: "-- nothing\n",
      headers: { "Content-Type": "text/plain" },
    });
    expect(empty.status).toBe(400);
    expect(await empty.text()).toBe('{"results":[],"error":"the dump holds no statements"}');
    const rolledBack = await request("POST", "/db/load", { body: "CREATE TABLE a(x);\nROLLBACK; -- due to errors\n" });
    expect(rolledBack.status).toBe(400);
    expect(((await rolledBack.json()) as { error: string }).error).toMatch(/^statement 2 of the dump is ROLLBACK/);
    const unterminated = await request("POST", "/db/load", { body: "INSERT INTO a VALUES('open);" });
    expect(unterminated.status).toBe(400);
    expect(((await unterminated.json()) as { error: string }).error).toMatch(/^the dump cannot be read: unterminated/);
    const large = await request("POST", "/db/load", {
      body: "INSERT INTO t VALUES(1);".repeat(20),
      headers: { "Content-Type": "text/plain" },
    });
    expect(large.status).toBe(413);
    expect(cluster.callsTo("execute")).toEqual([]);
  });
});

describe("a deadline spent in the worker", () => {
  /** A clock that stands at 0 when the request arrives and at `laterMs` from then on (the body took that long). */
  function clockJumpingTo(laterMs: number): () => number {
    let calls = 0;
    return () => (calls++ === 0 ? 0 : laterMs);
  }

  it("says that reading and parsing a load spent it, and sends nothing", async () => {
    const { cluster, request } = harness(new FakeCluster(), { now: clockJumpingTo(900) });
    const dump = Array.from({ length: 50 }, (_, i) => `INSERT INTO t VALUES(${i});`).join("\n");
    const response = await request("POST", "/db/load?timeout=700ms", {
      body: dump,
      headers: { "Content-Type": "text/plain" },
    });
    expect(response.status).toBe(503);
    expect(response.headers.get("X-DHA-Error-Code")).toBe("DEADLINE");
    expect(await response.text()).toBe(
      '{"results":[],"error":"the deadline (700 ms) passed while the worker read and parsed the load (900 ms); ' +
        'nothing was sent, nothing applied: send it again with a longer timeout"}',
    );
    expect(cluster.callsTo("execute")).toEqual([]);
  });

  it("says so for an execute and a query too", async () => {
    const { cluster, request } = harness(new FakeCluster(), { now: clockJumpingTo(1500) });
    const write = await request("POST", "/db/execute?timeout=1s", { json: ["DELETE FROM t"] });
    expect(write.status).toBe(503);
    expect(((await write.json()) as { error: string }).error).toBe(
      "the deadline (1000 ms) passed while the worker read and parsed the request (1500 ms); " +
        "nothing was sent, nothing applied: send it again with a longer timeout",
    );
    // Without ?timeout=: the default deadline.
    const read = await harness(cluster, { now: clockJumpingTo(12_000) }).request("GET", "/db/query?q=SELECT%201");
    expect(read.status).toBe(503);
    expect(((await read.json()) as { error: string }).error).toBe(
      "the deadline (10000 ms) passed while the worker read and parsed the request (12000 ms); " +
        "nothing was sent: send it again with a longer timeout",
    );
    expect(cluster.callsTo("execute")).toEqual([]);
    expect(cluster.callsTo("query")).toEqual([]);
  });
});

describe("timings", () => {
  it("times each statement that succeeded, and answers a failed one with its error alone, as rqlite does", async () => {
    const { cluster, request } = harness();
    cluster.queryResult = (statement) =>
      statement.sql.includes("nope")
        ? { error: "no such table: nope", time: 0.125 }
        : { columns: ["x"], types: ["integer"], rows: [[1]], time: 0.25 };
    const queried = await request("POST", "/db/query?timings", { json: ["SELECT x FROM nope", "SELECT 1 AS x"] });
    const body = (await queried.json()) as { results: unknown[] };
    expect(body.results).toEqual([
      { error: "no such table: nope" },
      { columns: ["x"], types: ["integer"], values: [[1]], time: 0.25 },
    ]);
    cluster.executeResult = (statement) =>
      statement.sql.includes("nope") ? { error: "no such table: nope", time: 0.125 } : { rowsAffected: 1, time: 0.25 };
    for (const path of ["/db/execute?timings", "/db/request?timings&associative"]) {
      const executed = await request("POST", path, { json: ["INSERT INTO nope VALUES (1)", "DELETE FROM t"] });
      const results = ((await executed.json()) as { results: Record<string, unknown>[] }).results;
      expect(results[0], path).toEqual({ error: "no such table: nope" });
      expect(results[1], path).toMatchObject({ rows_affected: 1, time: 0.25 });
    }
  });
});

describe('empty statements (""), skipped as rqlite 8.26.8 skips them', () => {
  it("answers a request of only empty statements 200 with no results, asking no node", async () => {
    const { cluster, request } = harness();
    for (const path of ["/db/execute", "/db/query", "/db/request"]) {
      const answer = await request("POST", path, { json: ["", ""] });
      expect(answer.status, path).toBe(200);
      expect(await answer.text(), path).toBe('{"results":[]}');
      expect(answer.headers.get("X-DHA-Node"), path).toBeNull();
    }
    // Nothing to write: a reader may send them to /db/request.
    const reader = await request("POST", "/db/request", { json: [""], token: TOKENS.reader });
    expect(reader.status).toBe(200);
    expect(cluster.calls).toEqual([]);
  });

  it("drops the empty ones and runs the rest, answering only for those", async () => {
    const { cluster, request } = harness();
    cluster.executeResult = () => ({ lastInsertId: 1, rowsAffected: 1 });
    const executed = await request("POST", "/db/execute", { json: ["", "INSERT INTO foo VALUES (1)", ""] });
    expect(executed.status).toBe(200);
    expect(await executed.text()).toBe('{"results":[{"last_insert_id":1,"rows_affected":1}]}');
    expect(lastExecute(cluster).request.statements).toEqual([{ sql: "INSERT INTO foo VALUES (1)" }]);

    cluster.queryResult = (statement) => ({ columns: ["q"], types: ["text"], rows: [[statement.sql]] });
    const queried = await request("POST", "/db/query", { json: ["", "SELECT 1", "DELETE FROM foo", "", "SELECT 2"] });
    expect(await queried.json()).toEqual({
      results: [
        { columns: ["q"], types: ["text"], values: [["SELECT 1"]] },
        { error: "attempt to change database via query operation" },
        { columns: ["q"], types: ["text"], values: [["SELECT 2"]] },
      ],
    });
    expect(lastQuery(cluster).statements).toEqual([{ sql: "SELECT 1" }, { sql: "SELECT 2" }]);

    const unified = await request("POST", "/db/request", { json: ["", "SELECT 3"], token: TOKENS.reader });
    expect(await unified.json()).toEqual({ results: [{ columns: ["q"], types: ["text"], values: [["SELECT 3"]] }] });
    expect(lastQuery(cluster).statements).toEqual([{ sql: "SELECT 3" }]);
  });

  it("names a statement a node refuses as the client numbered it", async () => {
    const { cluster, request } = harness();
    const refuse = (what: string) => () =>
      nodeError("n1", "INVALID_REQUEST", `statements[1]: ${what}`, { retryable: false });
    cluster.on("n1", "execute", refuse("only one SQL statement per entry"));
    const executed = await request("POST", "/db/execute", { json: ["", "INSERT INTO t VALUES (1)", "", "x; y"] });
    expect(executed.status).toBe(400);
    expect(await executed.text()).toBe('{"results":[],"error":"statements[3]: only one SQL statement per entry"}');
    cluster.on("n1", "query", refuse("random() is not supported"));
    // The nodes see the reads only: the write and the empty statements are answered by the worker.
    const queried = await request("POST", "/db/query", { json: ["", "DELETE FROM t", "SELECT 1", "SELECT random()"] });
    expect(queried.status).toBe(400);
    expect(await queried.text()).toBe('{"results":[],"error":"statements[3]: random() is not supported"}');
  });

  it("still refuses a statement of only whitespace (rqlited 8.26.8 hangs on it), naming it", async () => {
    const { cluster, request } = harness();
    const refused = await request("POST", "/db/execute", { json: ["", "SELECT 1", " \n "] });
    expect(refused.status).toBe(400);
    expect(await refused.text()).toBe(
      '{"results":[],"error":"statement 3 is only whitespace: send \\"\\" to have it skipped, or leave it out"}',
    );
    expect(cluster.calls).toEqual([]);
  });
});

describe("node refusals", () => {
  it("maps INVALID_REQUEST to 400 and INTERNAL to 500 in rqlite's request-level shape", async () => {
    const { cluster, request } = harness();
    cluster.on("n1", "execute", () =>
      nodeError("n1", "INVALID_REQUEST", "random() is not deterministic", { retryable: false }),
    );
    const invalid = await request("POST", "/db/execute", { json: ["INSERT INTO t VALUES(random())"] });
    expect(invalid.status).toBe(400);
    expect(await invalid.text()).toBe('{"results":[],"error":"random() is not deterministic"}');
    expect(invalid.headers.get("X-DHA-Error-Code")).toBe("INVALID_REQUEST");
    const other = new FakeCluster();
    other.on("n1", "query", () => nodeError("n1", "INTERNAL", "disk on fire", { retryable: false }));
    const broken = await harness(other).request("GET", "/db/query?q=SELECT%201");
    expect(broken.status).toBe(500);
    expect(await broken.text()).toBe('{"results":[],"error":"disk on fire"}');
  });
});
