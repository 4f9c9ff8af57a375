// Review of 2 Dec: empty statements skipped (c60a5e4), no "time" on failed statements (e05ddd4), and repair answering
// 503 NOT_REPAIRED (fce3a5b). Each test failed on the code as it was at e05ddd4.
import { describe, expect, it } from "vitest";
import { mayHaveReachedPeer } from "../../src/objects/runtime/peers";
import type { DeliveryFailure } from "../../src/objects/transport/peer-transport";
import { inRequestNumbering } from "../../src/worker/data/statements";
import { clusterFactory } from "./helpers/cluster";
import { RealHarness } from "./http-support";

const newCluster = clusterFactory();

async function harnessWithTable(prefix: string): Promise<RealHarness> {
  const h = new RealHarness(newCluster({ prefix, nodes: 3 }));
  const created = await h.send("POST", "/db/execute", { json: ["CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)"] });
  expect(created.status, created.text).toBe(200);
  return h;
}

const ENDLESS = "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c";
const TOO_MANY_ROWS =
  "the results hold more than 100000 rows, the most one request may return (DHA_MAX_RESULT_ROWS): add a LIMIT, or page with WHERE";

describe("reads in a transaction that fail", () => {
  // rqlited 8.26.8, asked the same (2 Dec): a failed read does not stop the reads after it, at any level, on /db/query
  // and on /db/request of reads only; a write on /db/query is refused and the reads after it still run.
  it("answer every statement, as rqlite does, at every level (not 500, not cut at the failure)", async () => {
    const h = await harnessWithTable("review-tx-read");
    const failure = '{"error":"no such column: nosuch"}';
    const one = '{"columns":["1"],"types":["integer"],"values":[[1]]}';
    for (const level of ["none", "weak", "linearizable", "strong", "auto"]) {
      const queried = await h.send("POST", `/db/query?transaction&level=${level}`, {
        json: ["SELECT nosuch FROM t", "SELECT 1"],
      });
      expect(queried.status, `${level}: ${queried.text}`).toBe(200);
      expect(queried.text, level).toBe(`{"results":[${failure},${one}]}`);
    }
    // The writes are answered by the worker; the empty statement by nothing; no "time" on the failures.
    const mixed = await h.send("POST", "/db/query?transaction&timings", {
      json: ["", "INSERT INTO t VALUES (1, 'a')", "SELECT nosuch FROM t", "SELECT 1", "DELETE FROM t"],
    });
    expect(mixed.status, mixed.text).toBe(200);
    const refused = { error: "attempt to change database via query operation" };
    // The read's own time is left out where the platform's clock did not move while it ran (README: Timings).
    const { results: mixedResults, time } = JSON.parse(mixed.text) as { results: object[]; time: unknown };
    expect(time).toBeTypeOf("number");
    expect(mixedResults.map(({ time: _time, ...result }: { time?: unknown }) => result)).toEqual([
      refused,
      { error: "no such column: nosuch" },
      { columns: ["1"], types: ["integer"], values: [[1]] },
      refused,
    ]);
    // /db/request of reads only takes the same path.
    const requested = await h.send("POST", "/db/request?transaction&associative", {
      json: ["", "SELECT 1 AS one", "SELECT nosuch FROM t", "SELECT 2"],
    });
    expect(requested.status, requested.text).toBe(200);
    expect(requested.text).toBe(
      `{"results":[{"types":{"one":"integer"},"rows":[{"one":1}]},${failure},{"types":{"2":"integer"},"rows":[{"2":2}]}]}`,
    );
  });
});

describe("/db/request of statements that only read, WITH and PRAGMA included", () => {
  it("answers as rqlited 8.26.8 does, from the read path (no node asked to write)", async () => {
    const h = await harnessWithTable("review-request-with");
    const executes = h.callsTo("execute").length;
    const answered = await h.send("POST", "/db/request", {
      json: [
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c LIMIT 3) SELECT x FROM c",
        "PRAGMA read_uncommitted",
      ],
    });
    expect(answered.status, answered.text).toBe(200);
    expect(answered.text).toBe(
      '{"results":[{"columns":["x"],"types":["integer"],"values":[[1],[2],[3]]},' +
        '{"columns":["read_uncommitted"],"types":["integer"],"values":[[0]]}]}',
    );
    expect(h.callsTo("execute")).toHaveLength(executes);
    expect(h.callsTo("query").length).toBeGreaterThan(0);
    const written = await h.send("POST", "/db/request", {
      json: ["WITH x(v) AS (SELECT 'w') INSERT INTO t (v) SELECT v FROM x"],
    });
    expect(written.status, written.text).toBe(200);
    expect(JSON.parse(written.text)).toEqual({ results: [{ last_insert_id: 1, rows_affected: 1 }] });
    expect(h.callsTo("execute").length).toBeGreaterThan(executes);
  });
});

describe("a read past the result limits, named by a node as 'statement n'", () => {
  it("is renamed to the client's numbering, as 'statements[k]' is", async () => {
    const h = await harnessWithTable("review-limit-name");
    for (const json of [
      ["", "SELECT 1", ENDLESS],
      // On /db/query the worker answers the write itself: the node sees two reads.
      ["INSERT INTO t VALUES (9, 'z')", "SELECT 1", ENDLESS],
    ]) {
      const read = await h.send("POST", "/db/query", { json });
      expect(read.status, read.text).toBe(400);
      expect(JSON.parse(read.text)).toEqual({ results: [], error: `statement 3: ${TOO_MANY_ROWS}` });
    }
    expect(inRequestNumbering("statement 2: x", [1, 3])).toBe("statement 4: x");
    expect(inRequestNumbering("statement 3: x", [1, 3])).toBe("statement 3: x");
    expect(inRequestNumbering("statements[1]: statement 1: x", [1, 3])).toBe("statements[3]: statement 1: x");
  });
});

describe("a repair chunk's delivery", () => {
  const failure = (fields: Partial<DeliveryFailure>): DeliveryFailure => ({
    kind: "refused",
    detail: "PROTOCOL: the caller speaks protocol version 1; this node speaks 2",
    messages: [],
    attempts: 1,
    callsMade: 1,
    refusal: "PROTOCOL",
    ...fields,
  });

  it("may have reached the peer when a call before the refused one failed with a retryable error", () => {
    // One call, refused before anything was taken in: surely not installed.
    expect(mayHaveReachedPeer(failure({}))).toBe(false);
    // The first call failed retryably (the peer may have installed the image, then been reset for a code update);
    // the retry was refused by the new code: the refusal says nothing of the first call.
    expect(mayHaveReachedPeer(failure({ attempts: 2, callsMade: 2 }))).toBe(true);
    expect(mayHaveReachedPeer(failure({ kind: "broken", refusal: undefined, attempts: 1, callsMade: 0 }))).toBe(false);
    expect(mayHaveReachedPeer(failure({ refusal: "UNAVAILABLE" }))).toBe(true);
  });
});
