// End to end: the local server started as `npm start` starts it (scripts/start.mjs: wrangler dev, the cluster of
// wrangler.toml: n1, n2, n3 with a 100 ms heartbeat and a 1 s election timeout), from an empty state directory, driven
// over real HTTP with the development token of .dev.vars.example. A write, a read at every level, then a leader
// step-down in the middle of a stream of writes whose client retries 503/504 with the same Idempotency-Key; every
// acknowledged write must then be present exactly once.
import { describe, expect, it } from "vitest";
import { pollUntil, sleep, withLocalServer } from "./local-server";

const REQUEST_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------------------------------------------
// A small client

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
}

interface QueryBody {
  results: { columns?: string[]; values?: unknown[][]; error?: string; rows_affected?: number }[];
  error?: string;
}

const local = withLocalServer();

async function call(
  method: string,
  path: string,
  init: { json?: unknown; headers?: Record<string, string> } = {},
): Promise<Reply> {
  const response = await fetch(`${local.server.baseUrl}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${local.token}`,
      ...(init.json === undefined ? {} : { "Content-Type": "application/json" }),
      ...init.headers,
    },
    ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  return { status: response.status, headers: response.headers, text: await response.text() };
}

function query(sql: string, params: string): Promise<Reply> {
  return call("GET", `/db/query?${params}${params === "" ? "" : "&"}q=${encodeURIComponent(sql)}`);
}

/**
 * A client that retries what may be retried: 503 (no leader, overloaded; after Retry-After or less) and 504 or a
 * lost connection (the outcome is unknown), always with the same Idempotency-Key, with exponential backoff and
 * full jitter, at most `maxAttempts` times and never past `deadlineMs`.
 */
async function writeWithRetries(
  statements: unknown,
  options: { key: string; deadlineMs: number; maxAttempts: number },
): Promise<{ reply: Reply; attempts: number }> {
  const deadlineAt = Date.now() + options.deadlineMs;
  let last = "no attempt";
  for (let attempt = 1; attempt <= options.maxAttempts && Date.now() < deadlineAt; attempt++) {
    try {
      const reply = await call("POST", "/db/execute?timeout=3s", {
        json: statements,
        headers: { "Idempotency-Key": options.key },
      });
      if (reply.status !== 503 && reply.status !== 504) {
        return { reply, attempts: attempt };
      }
      last = `${reply.status} ${reply.text}`;
      const retryAfterMs = Number(reply.headers.get("Retry-After") ?? "1") * 1000;
      await sleep(
        Math.min(
          Math.random() * Math.min(1_000, 50 * 2 ** attempt),
          retryAfterMs,
          Math.max(0, deadlineAt - Date.now()),
        ),
      );
    } catch (error) {
      last = `connection failed: ${String(error)}`;
      await sleep(Math.min(Math.random() * Math.min(1_000, 50 * 2 ** attempt), Math.max(0, deadlineAt - Date.now())));
    }
  }
  throw new Error(
    `write ${options.key} was not acknowledged within ${options.maxAttempts} attempts or ${options.deadlineMs} ms; last answer: ${last}`,
  );
}

async function currentLeader(): Promise<string> {
  const reply = await call("GET", "/leader");
  expect(reply.status, reply.text).toBe(200);
  return (JSON.parse(reply.text) as { id: string }).id;
}

// ---------------------------------------------------------------------------------------------------------------

describe("npm start, over real HTTP", () => {
  it("writes, then reads at every consistency level", { timeout: 30_000 }, async () => {
    expect((await call("GET", "/db/query?q=SELECT%201", { headers: { Authorization: "Bearer wrong" } })).status).toBe(
      401,
    );

    const written = await writeWithRetries(
      ["CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)", ["INSERT INTO foo(name) VALUES(?)", "fiona"]],
      {
        key: "create-foo",
        deadlineMs: 15_000,
        maxAttempts: 20,
      },
    );
    expect(written.reply.status, written.reply.text).toBe(200);
    expect(written.reply.text).toBe('{"results":[{},{"last_insert_id":1,"rows_affected":1}]}');
    const bookmark = written.reply.headers.get("X-DHA-Raft-Index");
    expect(Number(bookmark)).toBeGreaterThan(0);

    const fiona = '{"results":[{"columns":["id","name"],"types":["integer","text"],"values":[[1,"fiona"]]}]}';
    for (const level of ["weak", "linearizable", "strong", "auto"]) {
      const read = await query("SELECT * FROM foo", `level=${level}`);
      expect(read.status, `${level}: ${read.text}`).toBe(200);
      expect(read.text, level).toBe(fiona);
    }
    // Read-your-writes: the write's raft index lets any node that applied it serve the read.
    const bookmarked = await call("GET", `/db/query?q=${encodeURIComponent("SELECT * FROM foo")}`, {
      headers: { "X-DHA-Raft-Index": bookmark ?? "" },
    });
    expect(bookmarked.status, bookmarked.text).toBe(200);
    expect(bookmarked.text).toBe(fiona);
    // Level none reads whichever node it reaches; within a few heartbeats every node has the row.
    const none = await pollUntil("a level-none read to see the row", { timeoutMs: 10_000 }, async () => {
      const read = await query("SELECT * FROM foo", "level=none&freshness=5s");
      return read.status === 200 && read.text === fiona ? read : undefined;
    });
    expect(none.headers.get("X-DHA-Node")).toMatch(/^n[123]$/);

    const health = await call("GET", "/api/v1/cluster/health");
    expect(health.status, health.text).toBe(200);
    expect(JSON.parse(health.text)).toMatchObject({
      cluster: "main",
      voters: ["n1", "n2", "n3"],
      quorumAvailable: true,
    });
  });

  it(
    "loses nothing and applies nothing twice when the leader steps down in the middle of a stream of writes",
    { timeout: 45_000 },
    async () => {
      const created = await writeWithRetries(
        ["CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, k TEXT NOT NULL)"],
        {
          key: "create-events",
          deadlineMs: 15_000,
          maxAttempts: 20,
        },
      );
      expect(created.reply.status, created.reply.text).toBe(200);
      const firstLeader = await currentLeader();

      const total = 60;
      const stepDownAfter = 20;
      const acknowledged: string[] = [];
      const servedBy = new Map<string, string>();
      let retried = 0;
      let next = 0;
      const writer = async () => {
        while (next < total) {
          const key = `event-${next++}`;
          const { reply, attempts } = await writeWithRetries([["INSERT INTO events(k) VALUES(?)", key]], {
            key,
            deadlineMs: 20_000,
            maxAttempts: 30,
          });
          expect(reply.status, `${key}: ${reply.text}`).toBe(200);
          const body = JSON.parse(reply.text) as QueryBody;
          expect(body.results[0]?.error, key).toBeUndefined();
          expect(body.results[0]?.rows_affected, key).toBe(1);
          acknowledged.push(key);
          servedBy.set(key, reply.headers.get("X-DHA-Node") ?? "?");
          retried += attempts - 1;
        }
      };
      const stepDown = async () => {
        await pollUntil(`${stepDownAfter} acknowledged writes before the step-down`, { timeoutMs: 20_000 }, async () =>
          acknowledged.length >= stepDownAfter ? true : undefined,
        );
        const reply = await call("POST", "/api/v1/cluster/leader/stepdown");
        expect(reply.status, reply.text).toBe(200);
        return { leader: (JSON.parse(reply.text) as { leader: string }).leader, atWrite: acknowledged.length };
      };
      const [moved] = await Promise.all([stepDown(), writer(), writer(), writer()]);

      expect(moved.leader).not.toBe(firstLeader);
      expect(await currentLeader()).toBe(moved.leader);
      expect(moved.atWrite).toBeLessThan(total);
      expect(acknowledged).toHaveLength(total);
      // The stream really crossed the step-down: writes were served by the old leader and by the new one.
      const servers = new Set(servedBy.values());
      expect(servers.has(firstLeader)).toBe(true);
      expect(servers.has(moved.leader)).toBe(true);

      const counted = await query("SELECT k, count(*) FROM events GROUP BY k ORDER BY k", "level=strong");
      expect(counted.status, counted.text).toBe(200);
      const rows = (JSON.parse(counted.text) as QueryBody).results[0]?.values ?? [];
      const counts = new Map(rows.map(([k, count]) => [String(k), Number(count)]));
      for (const key of acknowledged) {
        expect(counts.get(key), `${key} (retried attempts in the stream: ${retried})`).toBe(1);
      }
      expect(counts.size).toBe(total);
    },
  );
});
