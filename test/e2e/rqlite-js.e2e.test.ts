// End to end with a real rqlite client: rqlite-js, pointed at the local server (`npm start`) once at the
// wrangler.toml database (`/db/...`) and once at a database created at run time (`/databases/{name}/...`). Both
// must pass the same checks: the client builds every URL from the host it was given, so a base path must work.
import { DataApiClient } from "rqlite-js";
import { describe, expect, it } from "vitest";
import { pollUntil, withLocalServer } from "./local-server";

const DATABASE = "rqlitejs";
const LEADER_TIMEOUT_MS = 30_000;

const local = withLocalServer();

function client(basePath: string): DataApiClient {
  return new DataApiClient(`${local.server.baseUrl}${basePath}`, {
    authentication: { username: "any", password: local.token },
  });
}

/** The first write waits for the database's leader: rqlite-js gives up on a 503 sooner than an election takes. */
async function firstWrite(db: DataApiClient, table: string): Promise<void> {
  await pollUntil(`a leader for ${table}`, { timeoutMs: LEADER_TIMEOUT_MS, intervalMs: 50 }, async () => {
    try {
      const results = await db.execute(
        `CREATE TABLE IF NOT EXISTS ${table} (id integer not null primary key, name text)`,
      );
      return results.hasError() ? undefined : true;
    } catch {
      return undefined;
    }
  });
}

async function checkClient(basePath: string, table: string): Promise<void> {
  const db = client(basePath);
  await firstWrite(db, table);

  const written = await db.execute([
    [`INSERT INTO ${table}(name) VALUES(?)`, "fiona"],
    [`INSERT INTO ${table}(id, name) VALUES(?, ?)`, 42, "big"],
  ]);
  expect(written.hasError()).toBe(false);
  expect([written.get(0).getLastInsertId(), written.get(0).getRowsAffected()]).toEqual([1, 1]);
  expect([written.get(1).getLastInsertId(), written.get(1).getRowsAffected()]).toEqual([42, 1]);

  for (const level of ["none", "weak", "strong"] as const) {
    const rows = await db.query(`SELECT id, name FROM ${table} ORDER BY name`, { level });
    expect(rows.hasError(), level).toBe(false);
    expect(rows.get(1).toObject(), level).toEqual({ id: 1, name: "fiona" });
    expect(rows.get(0).toObject().name, level).toBe("big");
  }

  // A write sent through query() answers rqlite's per-statement error, which rqlite-js reports, and writes nothing.
  const misrouted = await db.query([`SELECT count(*) AS n FROM ${table}`, `INSERT INTO ${table}(name) VALUES('q')`]);
  expect(misrouted.hasError()).toBe(true);
  expect(misrouted.get(0).toObject()).toEqual({ n: 2 });
  expect(String(misrouted.getFirstError()?.toString())).toMatch(/attempt to change database via query operation/);
  const after = await db.query(`SELECT count(*) AS n FROM ${table}`, { level: "strong" });
  expect(after.get(0).toObject()).toEqual({ n: 2 });

  const failed = await db.execute(`INSERT INTO ${table}(id, name) VALUES(1, 'again')`);
  expect(failed.hasError()).toBe(true);
  expect(String(failed.getFirstError()?.toString())).toMatch(/UNIQUE constraint failed/);
}

describe("rqlite-js against npm start", () => {
  it("works against /db (the wrangler.toml database)", { timeout: 60_000 }, async () => {
    await checkClient("", "js_default");
  });

  it("works unchanged against /databases/{name}, and the two databases stay apart", { timeout: 90_000 }, async () => {
    const created = await fetch(`${local.server.baseUrl}/api/v1/databases/${DATABASE}`, {
      method: "PUT",
      headers: { Authorization: `Bearer ${local.token}`, "Content-Type": "application/json" },
      body: JSON.stringify({ nodes: 3 }),
    });
    expect([200, 201]).toContain(created.status);

    await checkClient(`/databases/${DATABASE}`, "js_named");

    const named = await client(`/databases/${DATABASE}`).query(
      "SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name",
      { level: "strong" },
    );
    expect(named.toArray().map((row) => row.name)).toEqual(["js_named"]);
  });
});
