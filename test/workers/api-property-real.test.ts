// The property test's generated requests (api-generators.ts) against the production app over a real 3-node cluster:
// real SQL validation, real routing, real nodes. Data and read-only cluster routes (leadership and membership
// changes are covered with fakes, where they cannot disturb the check below). For each answer: no 5xx, a documented
// status and body shape; and a request refused with 4xx or 503 left the leader's log as it was: nothing applied.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import type { OpenApiDocument } from "./api-document";
import { checkAnswer, credential, describeRequest, ROUTES, send, type Generated } from "./api-generators";
import { clusterFactory } from "./helpers/cluster";
import { RealHarness } from "./http-support";

const newCluster = clusterFactory();

const REAL_ROUTES = [
  "POST /db/execute",
  "GET /db/query",
  "POST /db/query",
  "POST /db/request",
  "GET /db/backup",
  "POST /db/load",
  "GET /status",
  "GET /nodes",
  "GET /readyz",
  "GET /leader",
  "GET /api/v1/cluster/health",
  "GET /api/v1/cluster",
];

describe("generated requests against a real cluster", () => {
  it("never answer 5xx, answer as documented, and apply nothing when refused", async () => {
    const cluster = newCluster({ prefix: "api-property", nodes: 3, heartbeatIntervalMs: 50, electionTimeoutMs: 3_000 });
    const h = new RealHarness(cluster);
    await cluster.startAll();
    let leader = await cluster.waitForLeader();
    await cluster.execute([
      "CREATE TABLE foo (id INTEGER PRIMARY KEY, name TEXT)",
      "INSERT INTO foo VALUES (1, 'fiona')",
    ]);
    // Past every bookmark the generators send (0-12), so no read waits for its deadline, which stays the default.
    for (let id = 2; id <= 13; id++) {
      await cluster.execute([{ sql: "INSERT INTO foo VALUES (?, 'x')", params: [id] }]);
    }
    const document = (await (await h.request("GET", "/openapi.json", { token: null })).json()) as OpenApiDocument;
    const counts = { requests: 0, refused: 0, logChecked: 0 };
    const statuses = new Map<number, number>();
    const started = Date.now();

    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...REAL_ROUTES).chain((key) => ROUTES[key] as fc.Arbitrary<Generated>),
        credential,
        async (generated, who) => {
          let before = await cluster.status(leader);
          if (before.role !== "leader") {
            leader = await cluster.waitForLeader();
            before = await cluster.status(leader);
          }
          const response = await send(h, generated, who);
          counts.requests++;
          statuses.set(response.status, (statuses.get(response.status) ?? 0) + 1);
          await checkAnswer(document, generated, who, response, before.appliedIndex);
          // 504 alone leaves a write's outcome unknown (documented); every other refusal applied nothing.
          if (response.status >= 400 && response.status !== 504) {
            counts.refused++;
            const after = await cluster.status(leader);
            // A new term appends the new leader's no-op: the log says nothing about this request then (a loaded
            // machine can cost the leader its lease); otherwise it must be exactly as it was.
            if (after.role === "leader" && after.term === before.term) {
              counts.logChecked++;
              expect(
                after.lastLogIndex,
                `${describeRequest(generated, who)}: refused with ${response.status} but appended to the log`,
              ).toBe(before.lastLogIndex);
            }
          }
        },
      ),
      { numRuns: 250 },
    );
    console.log(
      `real property run: ${counts.requests} requests in ${Date.now() - started} ms, ${counts.refused} refused (${counts.logChecked} with the log checked); statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
    expect(counts.requests).toBeGreaterThanOrEqual(250);
    // Most refusals had their log checked (only those that met a leader change were not).
    expect(counts.logChecked).toBeGreaterThan(counts.refused / 2);
  });
});
