// The worker's cache of catalog entries (src/worker/databases/deployment.ts): a burst of requests to one database
// makes one read of the catalog, not one each (an outside check sent 1,500 writes at once to a new database: 1,500
// reads of the system database at once cost its leader its quorum, and every named database failed meanwhile).
import { describe, expect, it } from "vitest";
import { waitFor } from "./helpers/cluster";
import {
  CATALOG_CACHE_TTL_MS,
  CATALOG_READ_TAKEOVER_MS,
  forgetEntry,
  resolveDatabase,
  type Deployment,
} from "../../src/worker/databases/deployment";
import type { Runtime } from "../../src/worker/runtime";

interface FakeCatalog {
  reads: number;
  /** What the catalog holds when a read is made (null: no such database). */
  holds: unknown;
  /** Reads still waiting for their answer: each resolves with the entry when the test says. */
  readonly pending: Array<() => void>;
  failNext: boolean;
}

let deploymentNumber = 0;
const READY_ENTRY = { name: "db", state: "READY", nodes: ["n1", "n2", "n3"] };

/** A deployment of its own (the cache is per isolate, keyed by deployment name) whose catalog the test answers. */
function fakeDeployment(): { deployment: Deployment; catalog: FakeCatalog } {
  const catalog: FakeCatalog = { reads: 0, holds: READY_ENTRY, pending: [], failNext: false };
  const deployment = {
    config: { name: `catalog-cache-${++deploymentNumber}`, members: [] },
    catalog: {
      get: () => {
        catalog.reads += 1;
        const fail = catalog.failNext;
        const entry = catalog.holds;
        catalog.failNext = false;
        return new Promise((resolve, reject) => {
          catalog.pending.push(() => (fail ? reject(new Error("catalog unavailable")) : resolve(entry)));
        });
      },
    },
    runtimeOf: () => ({}) as Runtime,
  } as unknown as Deployment;
  return { deployment, catalog };
}

function answerAll(catalog: FakeCatalog): void {
  for (const answer of catalog.pending.splice(0)) {
    answer();
  }
}

describe("catalog entries in the worker", () => {
  it("a burst of requests to a database never read makes one read of the catalog", async () => {
    const { deployment, catalog } = fakeDeployment();
    const options = { now: () => Date.now(), deadlineAt: Date.now() + 5_000, shape: "plain" as const };
    const burst = Array.from({ length: 200 }, () => resolveDatabase(deployment, "db", options));
    await waitFor("the first read", () => (catalog.pending.length > 0 ? true : undefined));
    answerAll(catalog);
    const runtimes = await Promise.all(burst);
    expect(runtimes).toHaveLength(200);
    expect(catalog.reads).toBe(1);
  });

  it("an old entry serves the burst while one request reads it again", async () => {
    const { deployment, catalog } = fakeDeployment();
    let nowMs = 1_000_000;
    const options = { now: () => nowMs, deadlineAt: Number.MAX_SAFE_INTEGER, shape: "plain" as const };
    const first = resolveDatabase(deployment, "db", options);
    answerAll(catalog);
    await first;
    nowMs += CATALOG_CACHE_TTL_MS + 1;
    const burst = Array.from({ length: 100 }, () => resolveDatabase(deployment, "db", options));
    // All but the one that reads again are answered from the old entry at once.
    await Promise.all(burst.slice(1));
    expect(catalog.reads).toBe(2);
    answerAll(catalog);
    await burst[0];
    expect(catalog.reads).toBe(2);
  });

  it("when the one read fails, the next waiting request reads again, one at a time", async () => {
    const { deployment, catalog } = fakeDeployment();
    const options = { now: () => Date.now(), deadlineAt: Date.now() + 5_000, shape: "plain" as const };
    catalog.failNext = true;
    const burst = Array.from({ length: 20 }, () =>
      resolveDatabase(deployment, "db", options).then(
        () => "ok",
        (error: unknown) => String(error),
      ),
    );
    await waitFor("the first read", () => (catalog.pending.length > 0 ? true : undefined));
    answerAll(catalog);
    await waitFor("a second read", () => (catalog.pending.length > 0 ? true : undefined));
    expect(catalog.pending).toHaveLength(1);
    answerAll(catalog);
    const outcomes = await Promise.all(burst);
    expect(outcomes.filter((outcome) => outcome !== "ok")).toEqual(["Error: catalog unavailable"]);
    expect(catalog.reads).toBe(2);
  });

  it("a read that never ends (its request cancelled) is taken over by one waiting request after a second", async () => {
    const { deployment, catalog } = fakeDeployment();
    let skewMs = 0;
    const options = { now: () => Date.now() + skewMs, deadlineAt: Date.now() + 60_000, shape: "plain" as const };
    void resolveDatabase(deployment, "db", options).catch(() => undefined);
    await waitFor("the first read", () => (catalog.pending.length > 0 ? true : undefined));
    catalog.pending.length = 0; // never answered
    const waiting = Array.from({ length: 20 }, () => resolveDatabase(deployment, "db", options));
    skewMs = CATALOG_READ_TAKEOVER_MS;
    await waitFor("one takeover read", () => (catalog.pending.length > 0 ? true : undefined));
    expect(catalog.reads).toBe(2);
    answerAll(catalog);
    expect(await Promise.all(waiting)).toHaveLength(20);
    expect(catalog.reads).toBe(2);
  });

  it("a create in this isolate lets go of a read begun before it: the next request reads again", async () => {
    const { deployment, catalog } = fakeDeployment();
    const options = { now: () => Date.now(), deadlineAt: Date.now() + 5_000, shape: "plain" as const };
    catalog.holds = null;
    const before = resolveDatabase(deployment, "db", options).then(
      () => "found",
      (error: unknown) => String(error),
    );
    await waitFor("the first read", () => (catalog.pending.length > 0 ? true : undefined));
    catalog.holds = READY_ENTRY;
    forgetEntry(deployment, "db");
    const after = resolveDatabase(deployment, "db", options).then(
      () => "found",
      (error: unknown) => String(error),
    );
    await waitFor("a second read", () => (catalog.pending.length > 1 ? true : undefined));
    answerAll(catalog);
    expect(await before).toContain("no database");
    expect(await after).toBe("found");
  });
});
