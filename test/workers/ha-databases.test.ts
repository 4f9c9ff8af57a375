// HA scenarios of the databases lifecycle on real ClusterNode objects: the catalog (the system database) survives
// the loss of a node, and databases are created and dropped while nodes of the catalog and of the databases crash.
// The admin routes are idempotent: a request cut short by a crash is repeated until it answers, as a client would.
import { describe, expect, it } from "vitest";
import { DeploymentHarness } from "./helpers/databases";
import { SeededRandom } from "../../src/replication/random";
import { pause, scenarioSeed } from "./helpers/ha";

const T = "timeout=30s";

describe("databases: HA", { timeout: 300_000 }, () => {
  it("keeps the catalog when a node of the system database is lost for good", async () => {
    const h = new DeploymentHarness("db-catalog-loss");
    await h.create("kept");
    const system = h.clusterOf("_system", 1);
    // n1 of the system database stops for good (its storage kept but it answers nothing any more).
    await h.stub(system, "n1").testHalt();
    const entry = await h.untilDone("GET", `/api/v1/databases/kept?${T}`);
    expect(entry.status, entry.text).toBe(200);
    expect(entry.json()).toMatchObject({ name: "kept", state: "ONLINE", generation: 1 });
    // The two remaining nodes are a quorum: the catalog still takes changes.
    const created = await h.untilDone("PUT", `/api/v1/databases/added?${T}`, { json: { nodes: 1 } });
    expect(created.status, created.text).toBe(201);
    const list = await h.untilDone("GET", `/api/v1/databases?${T}`);
    expect(list.json().databases.map((d: { name: string }) => d.name)).toEqual(["added", "kept"]);
  });

  it("creates and drops databases while nodes of the catalog and of the databases crash", async () => {
    const seed = new SeededRandom(scenarioSeed("databases: create and drop while nodes crash"));
    const random = () => seed.nextFloat();
    const h = new DeploymentHarness("db-crashes");
    const system = h.clusterOf("_system", 1);
    let crashes = 0;
    let crashing = true;
    const crasher = (async () => {
      while (crashing) {
        const node = h.nodes[Math.floor(random() * h.nodes.length)] as string;
        const generation = 1 + Math.floor(random() * 2);
        const cluster = random() < 0.5 ? system : h.clusterOf("churn", generation);
        // A crash loses the instance's memory; its storage (or tombstone) stays, and the next call restarts it.
        await h
          .stub(cluster, node)
          .testCrash()
          .catch(() => undefined);
        crashes++;
        await pause(150 + Math.floor(random() * 150));
      }
    })();
    try {
      for (let round = 1; round <= 2; round++) {
        const created = await h.untilDone("PUT", `/api/v1/databases/churn?${T}`, { json: { nodes: 3 } });
        expect([200, 201], created.text).toContain(created.status);
        expect(created.json()).toMatchObject({ state: "ONLINE", generation: round });
        const written = await h.untilDone("POST", `/databases/churn/db/execute?${T}`, {
          headers: { "Idempotency-Key": `churn-round-${round}` },
          json: ["CREATE TABLE IF NOT EXISTS t (round INTEGER)", ["INSERT INTO t VALUES (?)", round]],
        });
        expect(written.status, written.text).toBe(200);
        const read = await h.untilDone(
          "GET",
          `/databases/churn/db/query?${T}&level=strong&q=SELECT%20round%20FROM%20t`,
        );
        // Each generation starts empty: only this round's row.
        expect(read.json().results[0].values).toEqual([[round]]);
        const dropped = await h.untilDone("DELETE", `/api/v1/databases/churn?${T}`);
        expect(dropped.status, dropped.text).toBe(200);
        expect(dropped.json().state).toBe("DROPPED");
      }
    } finally {
      crashing = false;
      await crasher;
    }
    expect(crashes).toBeGreaterThan(3);
    for (const generation of [1, 2]) {
      for (const node of h.nodes) {
        expect(await h.storageOf(h.clusterOf("churn", generation), node)).toEqual({
          keys: ["lifecycle/tombstone"],
          tables: [],
          alarm: null,
        });
      }
    }
  });
});
