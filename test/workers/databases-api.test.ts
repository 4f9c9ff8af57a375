// Many databases per deployment over real ClusterNode objects: the catalog routes, /databases/{name}/... on each
// database's own Raft group, isolation, scoped tokens, limits, drop under load with its tombstone, re-creation.
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { describe, expect, it, vi } from "vitest";
import { PROTOCOL_VERSION } from "../../src/objects/api";
import { DeploymentHarness, type Reply } from "./helpers/databases";
import { pause } from "./helpers/ha";
import { TOKENS } from "./http-support";

const T = "timeout=30s";

async function rows(h: DeploymentHarness, database: string, sql: string): Promise<unknown[][]> {
  const reply = await h.untilDone(
    "GET",
    `/databases/${database}/db/query?${T}&level=strong&q=${encodeURIComponent(sql)}`,
  );
  expect(reply.status, reply.text).toBe(200);
  return (reply.json().results[0].values ?? []) as unknown[][];
}

/** A write retried (under one Idempotency-Key, so applied once) while the database has no leader. */
function execute(h: DeploymentHarness, database: string, statements: unknown): Promise<Reply> {
  return h.untilDone("POST", `/databases/${database}/db/execute?${T}`, {
    json: statements,
    headers: { "Idempotency-Key": crypto.randomUUID() },
  });
}

/** Several Raft groups per test on a shared machine: more room than the suite's default. */
const SLOW_MS = 180_000;
/** A drop under write load answers within this, with room for a loaded machine. */
const DROP_BOUND_MS = 20_000;

describe("databases of one deployment", { timeout: SLOW_MS }, () => {
  it("creates a database, serves its data API under /databases/{name}, lists it, drops it for good", async () => {
    const h = new DeploymentHarness("db-smoke");
    const created = await h.create("alpha");
    expect(created).toEqual({ generation: 1, status: 201 });
    const again = await h.create("alpha");
    expect(again.status).toBe(200);
    const conflict = await h.send("PUT", `/api/v1/databases/alpha?${T}`, { json: { nodes: 1 } });
    expect(conflict.status, conflict.text).toBe(409);

    const write = await execute(h, "alpha", ["CREATE TABLE t (x)", "INSERT INTO t VALUES (1)"]);
    expect(write.status, write.text).toBe(200);
    expect(await rows(h, "alpha", "SELECT x FROM t")).toEqual([[1]]);

    const list = await h.untilDone("GET", `/api/v1/databases?${T}`);
    expect(list.status, list.text).toBe(200);
    const listed = list.json().databases;
    expect(listed.map((d: { name: string; state: string }) => [d.name, d.state])).toEqual([["alpha", "ONLINE"]]);
    expect(listed[0].leader).toMatch(/^n[123]$/);
    expect(listed[0].sizeBytes).toBeGreaterThan(0);
    const one = await h.untilDone("GET", `/api/v1/databases/alpha?${T}`);
    expect(one.json()).toMatchObject({ name: "alpha", state: "ONLINE", generation: 1 });

    const dropped = await h.untilDone("DELETE", `/api/v1/databases/alpha?${T}`);
    expect(dropped.status, dropped.text).toBe(200);
    expect(dropped.json().state).toBe("DROPPED");
    const late = await h.send("GET", "/databases/alpha/db/query?q=SELECT%201");
    expect(late.status, late.text).toBe(410);
    expect(late.headers.get("X-DHA-Error-Code")).toBe("DROPPED");
    for (const node of h.nodes) {
      expect(await h.storageOf(h.clusterOf("alpha", 1), node)).toEqual({
        keys: ["lifecycle/tombstone"],
        tables: [],
        alarm: null,
      });
    }
    const recreated = await h.create("alpha");
    expect(recreated).toEqual({ generation: 2, status: 201 });
    expect(await rows(h, "alpha", "SELECT name FROM sqlite_master")).toEqual([]);
  });

  it("keeps two databases written concurrently apart, and apart from the default database", async () => {
    // One node per group here: isolation does not depend on replication, and the machine runs several groups.
    const h = new DeploymentHarness("db-isolation", { nodes: 1 });
    await Promise.all([h.create("left", { nodes: 1 }), h.create("right", { nodes: 1 })]);
    for (const name of ["left", "right"]) {
      expect((await execute(h, name, ["CREATE TABLE t (db TEXT, i INTEGER)"])).status).toBe(200);
    }
    const writes = Array.from({ length: 12 }, (_, i) =>
      (["left", "right"] as const).map((name) => execute(h, name, [["INSERT INTO t VALUES (?, ?)", name, i]])),
    ).flat();
    const answers = await Promise.all(writes);
    expect(answers.map((reply) => reply.status)).toEqual(answers.map(() => 200));
    for (const name of ["left", "right"]) {
      const seen = await rows(h, name, "SELECT db, count(*) FROM t GROUP BY db");
      expect(seen).toEqual([[name, 12]]);
    }
    // The default database (wrangler.toml's, at /db) has no table t.
    const fromDefault = await h.untilDone(
      "GET",
      `/db/query?${T}&level=strong&q=${encodeURIComponent("SELECT * FROM t")}`,
    );
    expect(fromDefault.status, fromDefault.text).toBe(200);
    expect(fromDefault.json().results[0].error).toMatch(/no such table/);

    // Discovery hands out each database's own address: a client that follows api_addr stays on its database.
    const origin = "https://db.example.com";
    const addresses = async (prefix: string) => {
      const nodes = await h.untilDone("GET", `${prefix}/nodes?${T}`);
      const leader = await h.untilDone("GET", `${prefix}/leader?${T}`);
      const status = await h.untilDone("GET", `${prefix}/status?${T}&key=http`);
      return [
        ...Object.values(nodes.json() as Record<string, { api_addr: string }>).map((node) => node.api_addr),
        (leader.json() as { api_addr: string }).api_addr,
        (status.json() as { api_addr: string }).api_addr,
      ];
    };
    expect(new Set(await addresses("/databases/left"))).toEqual(new Set([`${origin}/databases/left`]));
    expect(new Set(await addresses(""))).toEqual(new Set([origin]));
  });

  it("enforces tokens scoped to databases: 403 on any other, the default one and the catalog included", async () => {
    const scoped = "scoped-writer-token-0001";
    const scopedAdmin = "scoped-admin-token-00001";
    const defaultOnly = "default-only-token-00001";
    const tokens = JSON.stringify({
      [TOKENS.admin]: ["read", "write", "admin"],
      [scoped]: { roles: ["read", "write"], databases: ["mine"] },
      [scopedAdmin]: { roles: ["read", "admin"], databases: ["mine"] },
      [defaultOnly]: { roles: ["read"], databases: ["default"] },
    });
    const h = new DeploymentHarness("db-scopes", { tokens, nodes: 1 });
    await Promise.all([h.create("mine", { nodes: 1 }), h.create("theirs", { nodes: 1 })]);

    expect((await execute(h, "mine", ["CREATE TABLE t (x)"])).status).toBe(200);
    const mine = await h.send("POST", `/databases/mine/db/execute?${T}`, {
      token: scoped,
      json: ["INSERT INTO t VALUES (1)"],
    });
    expect(mine.status, mine.text).toBe(200);
    for (const [method, path] of [
      ["POST", "/databases/theirs/db/execute"],
      ["GET", "/databases/theirs/db/query?q=SELECT%201"],
      ["GET", "/databases/theirs/status"],
      ["GET", "/databases/theirs/api/v1/cluster/health"],
      ["GET", "/databases/theirs/metrics"],
      ["GET", "/databases/nonexistent/db/query?q=SELECT%201"],
      ["GET", "/db/query?q=SELECT%201"],
      ["GET", "/databases/default/db/query?q=SELECT%201"],
      ["GET", "/status"],
    ] as const) {
      const reply = await h.send(method, path, { token: scoped, json: method === "POST" ? ["SELECT 1"] : undefined });
      expect(reply.status, `${method} ${path}: ${reply.text}`).toBe(403);
      expect(reply.headers.get("X-DHA-Error-Code")).toBe("FORBIDDEN");
    }
    // Basic auth (rqlite clients) is scoped the same way.
    const basic = `Basic ${btoa(`any:${scoped}`)}`;
    const viaBasic = await h.send("GET", "/databases/theirs/db/query?q=SELECT%201", {
      token: null,
      headers: { Authorization: basic },
    });
    expect(viaBasic.status).toBe(403);

    // A scoped admin sees and manages only its databases.
    const list = await h.send("GET", `/api/v1/databases?${T}`, { token: scopedAdmin });
    expect(list.status, list.text).toBe(200);
    expect(list.json().databases.map((d: { name: string }) => d.name)).toEqual(["mine"]);
    expect((await h.send("GET", `/api/v1/databases/theirs?${T}`, { token: scopedAdmin })).status).toBe(403);
    expect((await h.send("DELETE", `/api/v1/databases/theirs?${T}`, { token: scopedAdmin })).status).toBe(403);
    expect((await h.send("PUT", `/api/v1/databases/other?${T}`, { token: scopedAdmin })).status).toBe(403);
    // Roles still apply inside the scope.
    expect((await h.send("GET", `/api/v1/databases?${T}`, { token: scoped })).status).toBe(403);

    const onDefault = await h.send("GET", "/livez", { token: defaultOnly });
    expect(onDefault.status).toBe(200);
    expect((await h.send("GET", "/databases/mine/db/query?q=SELECT%201", { token: defaultOnly })).status).toBe(403);
  });

  it("validates names and options, and holds at most DHA_MAX_DATABASES databases", async () => {
    const h = new DeploymentHarness("db-limits", { maxDatabases: 1, nodes: 1 });
    for (const [name, body] of [
      ["Upper", {}],
      ["_system", {}],
      ["default", {}],
      ["x".repeat(49), {}],
      ["ok", { nodes: 10 }],
      ["ok", { nodes: ["n1", "n1"] }],
      ["ok", { locationHints: ["mars"] }],
      ["ok", { heartbeatIntervalMs: 100, electionTimeoutMs: 200 }],
      ["ok", { unknown: 1 }],
    ] as const) {
      const reply = await h.send("PUT", `/api/v1/databases/${name}?${T}`, { json: body });
      expect(reply.status, `${name} ${JSON.stringify(body)}: ${reply.text}`).toBe(400);
    }
    expect((await h.send("GET", "/databases/_system/db/query?q=SELECT%201")).status).toBe(400);
    expect((await h.send("GET", "/databases/never-made/db/query?q=SELECT%201")).status).toBe(404);
    expect((await h.send("DELETE", `/api/v1/databases/never-made?${T}`)).status).toBe(404);

    await h.create("first", { nodes: 1 });
    const second = await h.send("PUT", `/api/v1/databases/second?${T}`, { json: { nodes: 1 } });
    expect(second.status, second.text).toBe(409);
    expect(second.headers.get("X-DHA-Error-Code")).toBe("DATABASE_LIMIT");
    expect((await h.untilDone("DELETE", `/api/v1/databases/first?${T}`)).status).toBe(200);
    await h.create("second", { nodes: 1 });
  });

  it("drops under write load: every write gets its result or a clear error; no storage, no alarm, no way back", async () => {
    const h = new DeploymentHarness("db-drop-load");
    const { generation } = await h.create("busy");
    expect((await execute(h, "busy", ["CREATE TABLE t (i INTEGER)"])).status).toBe(200);
    const statuses = new Map<number, number>();
    const acked: number[] = [];
    // Each writer writes until the drop answers it 410. A write sent after the DELETE was answered must be that 410:
    // writers never outlive the drop, whatever the machine's speed.
    let dropAnswered = false;
    // The writers say when ten writes are acknowledged. Not a polling wait: while the writers keep this isolate busy
    // (nodes, worker and test share it), a test timer fired 30 to 140 s late, and the test spent that waiting.
    let tenAcked: () => void = () => undefined;
    const tenWritesAcknowledged = new Promise<void>((resolve) => {
      tenAcked = resolve;
    });
    const writer = async (id: number) => {
      for (let i = 0; i < 100_000; i++) {
        const sentAfterDrop = dropAnswered;
        const value = id * 100_000 + i;
        const reply = await h.send("POST", `/databases/busy/db/execute?${T}`, {
          json: [["INSERT INTO t VALUES (?)", value]],
        });
        statuses.set(reply.status, (statuses.get(reply.status) ?? 0) + 1);
        if (reply.status === 200) {
          expect(sentAfterDrop, "a write sent after the drop was answered was applied").toBe(false);
          acked.push(value);
          if (acked.length === 10) {
            tenAcked();
          }
          expect(reply.json().results[0].error).toBeUndefined();
          continue;
        }
        // Otherwise a clear error with its code: the database was dropped (410), or, on a loaded machine, an
        // election (503 with Retry-After, or 504 for a write whose outcome a lost leader left unknown).
        expect([410, 503, 504], reply.text).toContain(reply.status);
        expect(reply.headers.get("X-DHA-Error-Code")).toMatch(/^[A-Z_]+$/);
        if (reply.status === 410) {
          expect(reply.headers.get("X-DHA-Error-Code")).toBe("DROPPED");
          expect(reply.json().error).toMatch(/dropped/);
          return;
        }
        expect(sentAfterDrop, `a write sent after the drop was answered got ${reply.status}`).toBe(false);
      }
    };
    const writers = [1, 2, 3].map(writer);
    // Writers end only on a 410 (after the drop) or a failed expectation: either way before ten acknowledgements
    // means the test failed.
    await Promise.race([
      tenWritesAcknowledged,
      Promise.all(writers).then(() => {
        throw new Error(`the writers ended before ten writes were acknowledged: ${JSON.stringify([...statuses])}`);
      }),
    ]);
    const dropStartedMs = Date.now();
    const dropped = await h.untilDone("DELETE", `/api/v1/databases/busy?${T}`);
    const dropMs = Date.now() - dropStartedMs;
    expect(dropped.status, dropped.text).toBe(200);
    dropAnswered = true;
    // The drop closes the database promptly (about 1 to 4 s on this machine, idle to very loaded); a drop that waited
    // out its drain deadline (DEFAULT_DROP_DRAIN_MS) for requests that never end, or fell behind the load, would not.
    expect(dropMs, `the drop took ${dropMs} ms`).toBeLessThan(DROP_BOUND_MS);
    await Promise.all(writers);
    // Every writer ended on a 410; no request went unanswered or got a 5xx other than an election's.
    expect(statuses.get(410), JSON.stringify([...statuses])).toBe(3);
    expect([...statuses.keys()].filter((status) => ![200, 410, 503, 504].includes(status))).toEqual([]);
    // Every acknowledged write was in the database until it was dropped: none is lost before the drop.
    expect(acked.length).toBeGreaterThanOrEqual(10);

    const cluster = h.clusterOf("busy", generation);
    for (const node of h.nodes) {
      expect(await h.storageOf(cluster, node)).toEqual({ keys: ["lifecycle/tombstone"], tables: [], alarm: null });
      // A late call cannot start the object again...
      const address = {
        protocolVersion: PROTOCOL_VERSION,
        cluster: {
          name: cluster,
          members: h.nodes.map((name) => ({ name })),
          heartbeatIntervalMs: 50,
          electionTimeoutMs: 600,
        },
        node,
      };
      const late = await h.stub(cluster, node).start(address);
      expect(late.ok).toBe(false);
      expect(late.ok ? null : late.error.code).toBe("DROPPED");
      // ...nor can a late alarm.
      await runInDurableObject(h.stub(cluster, node), (_instance, state) => state.storage.setAlarm(Date.now() + 1));
      expect(await runDurableObjectAlarm(h.stub(cluster, node))).toBe(true);
      expect(await h.storageOf(cluster, node)).toEqual({ keys: ["lifecycle/tombstone"], tables: [], alarm: null });
    }
    const catalog = await h.untilDone("GET", `/api/v1/databases/busy?${T}`);
    expect(catalog.json()).toMatchObject({ state: "DROPPED", generation });
    expect((await h.send("DELETE", `/api/v1/databases/busy?${T}`)).status).toBe(200);
  });
  it("answers hostile database names with a clear 4xx on every route, and creates nothing", async () => {
    const h = new DeploymentHarness("db-hostile", { nodes: 1 });
    const hostile = [
      "x".repeat(49),
      "x".repeat(6000),
      "_system",
      "_other",
      "..",
      "%2e%2e",
      ".",
      "a%2Fb",
      "%2F",
      "a%252Fb",
      "a%5Cb",
      "%C3%A9t%C3%A9",
      "%E6%95%B0%E6%8D%AE",
      "%F0%9F%92%A5",
      "a%00b",
      "a%20b",
      "UPPER",
      "-lead",
    ];
    for (const name of hostile) {
      // "/databases/../db/query" is "/db/query" by URL rules (for every client too): the default database's route,
      // not a database named "..". Dot segments are checked on the admin routes only, where they name no route.
      const dotSegment = ["..", "%2e%2e", "."].includes(name);
      for (const [method, path] of [
        ["PUT", `/api/v1/databases/${name}?${T}`],
        ["GET", `/api/v1/databases/${name}?${T}`],
        ["DELETE", `/api/v1/databases/${name}?${T}`],
        ...(dotSegment
          ? []
          : ([
              ["GET", `/databases/${name}/db/query?q=SELECT%201`],
              ["POST", `/databases/${name}/db/execute`],
              ["GET", `/databases/${name}/status`],
            ] as const)),
      ] as const) {
        const reply = await h.send(method, path, { json: method === "POST" ? ["CREATE TABLE t (x)"] : undefined });
        const label = `${method} ${path.slice(0, 120)}: ${reply.status} ${reply.text.slice(0, 200)}`;
        expect(reply.status, label).toBeGreaterThanOrEqual(400);
        expect(reply.status, label).toBeLessThan(500);
        // Clear: a message saying what is wrong, and an error code unless no route matched at all (404/405: a path
        // with "." or ".." segments is resolved by URL rules, as any client does, before it reaches a route).
        const error = String(reply.json().error);
        expect(error, label).toMatch(/\S/);
        if (!/^(no route for|method \S+ is not allowed)/.test(error)) {
          expect(reply.headers.get("X-DHA-Error-Code") ?? "(none)", label).toMatch(/^[A-Z_]+$/);
        }
      }
    }
    const list = await h.untilDone("GET", `/api/v1/databases?${T}`);
    expect(list.status, list.text).toBe(200);
    expect(list.json().databases).toEqual([]);
  });

  it("ends concurrent PUT and DELETE of one name from two clients in a consistent catalog", async () => {
    const h = new DeploymentHarness("db-race", { nodes: 1 });
    const logged = vi.spyOn(console, "log");
    const onlineLogged = (generation: number) =>
      logged.mock.calls.some(([line]) => {
        if (typeof line !== "string" || !line.includes('"databaseStateChanged"')) {
          return false;
        }
        const event = JSON.parse(line) as { database: string; generation: number; to: string };
        return event.database === "race" && event.generation === generation && event.to === "ONLINE";
      });
    const outcomes: string[] = [];
    for (let round = 1; round <= 4; round++) {
      let putAnswered = false;
      const put = h
        .untilDone("PUT", `/api/v1/databases/race?${T}`, { json: { nodes: 1 } })
        .finally(() => (putAnswered = true));
      // The other client deletes as soon as the name exists: its DELETE lands while the PUT brings the nodes up.
      // It pauses between tries: a loop of calls that never waits on a timer starves every timer of this isolate
      // (the PUT's retries, the test's timeout) and the PUT would never finish.
      const drop = (async () => {
        for (let attempt = 0; ; attempt++) {
          const reply = await h.untilDone("DELETE", `/api/v1/databases/race?${T}`);
          // Each round creates generation `round`: an older generation's DROPPED entry is not this round's name.
          const stale = reply.status === 404 || (reply.status === 200 && reply.json().generation < round);
          if (!stale || putAnswered || attempt >= 2_000) {
            return reply;
          }
          await pause(5);
        }
      })();
      const [created, dropped] = await Promise.all([put, drop]);
      const entry = await h.untilDone("GET", `/api/v1/databases/race?${T}`);
      expect(entry.status, entry.text).toBe(200);
      const final = entry.json() as { state: string; generation: number };
      h.touch("race", final.generation);
      outcomes.push(`PUT ${created.status} DELETE ${dropped.status} -> ${final.state} g${final.generation}`);
      const label = outcomes.join("; ");
      expect([200, 201, 409], `${label}: ${created.text}`).toContain(created.status);
      expect([200, 404], `${label}: ${dropped.text}`).toContain(dropped.status);
      // Neither request is left half done: the name is ONLINE or DROPPED, never CREATING or DROPPING.
      expect(["ONLINE", "DROPPED"], label).toContain(final.state);
      if (created.status === 409) {
        expect(created.headers.get("X-DHA-Error-Code"), label).toBe("DROPPING");
      } else {
        // A PUT that answered ONLINE made it so: the catalog moved that generation to ONLINE.
        expect(created.json().state, label).toBe("ONLINE");
        expect(onlineLogged(created.json().generation as number), `${label}: ONLINE never committed`).toBe(true);
      }
      if (dropped.status === 200 && dropped.json().generation === final.generation) {
        expect(final.state, label).toBe("DROPPED");
      }
      if (final.state === "DROPPED") {
        expect(await h.storageOf(h.clusterOf("race", final.generation), "n1")).toEqual({
          keys: ["lifecycle/tombstone"],
          tables: [],
          alarm: null,
        });
      } else {
        const write = await execute(h, "race", ["CREATE TABLE IF NOT EXISTS t (x)"]);
        expect(write.status, `${label}: ${write.text}`).toBe(200);
        expect((await h.untilDone("DELETE", `/api/v1/databases/race?${T}`)).status).toBe(200);
      }
    }
    console.info(`PUT/DELETE races: ${outcomes.join("; ")}`);
  });
});
