// Property-based: generated valid and invalid requests to every route of /openapi.json, through the app with fake
// nodes. For each answer: no 5xx; the status is documented for that route; a JSON body matches the documented
// schema; a refused request (4xx) applied nothing and names its X-DHA-Error-Code; a request valid by the document
// is not refused as bad input.
// A failure prints fast-check's seed and path; rerun with them to replay it exactly.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { API_ROUTES } from "../../src/worker/routes/spec";
import type { OpenApiDocument } from "./api-document";
import { checkAnswer, credential, describeRequest, ROUTES, send, type Generated } from "./api-generators";
import { FakeCluster, harness } from "./http-support";

function isDatabasesRoute(path: string): boolean {
  return path.startsWith("/databases/") || path.startsWith("/api/v1/databases");
}

interface ClusterState {
  readonly applied: number;
  readonly voters: string;
  readonly learners: string;
  readonly leader: string | null;
  readonly term: number;
}

function stateOf(cluster: FakeCluster): ClusterState {
  return {
    applied: cluster.applied_requests.size,
    voters: cluster.voters.join(","),
    learners: cluster.learners.join(","),
    leader: cluster.leader,
    term: cluster.term,
  };
}

/** The body for a failure message, as text only when it is text. */
async function bodyText(response: Response): Promise<string> {
  const type = response.headers.get("content-type") ?? "";
  return /json|text|sql/.test(type) ? (await response.text()).slice(0, 300) : `(${type})`;
}

describe("every route, with generated valid and invalid input", () => {
  it("never answers 5xx, answers only documented statuses and shapes, applies nothing it refuses, and accepts what the document allows", async () => {
    const document = (await (
      await harness().request("GET", "/openapi.json", { token: null })
    ).json()) as OpenApiDocument;
    const declared = API_ROUTES.filter(({ route }) => !isDatabasesRoute(route.path))
      .map(({ route }) => `${route.method.toUpperCase()} ${route.path}`)
      .filter((route) => route !== "GET /metrics");
    // Every declared route but /metrics (which fakes cannot serve: it needs the nodes' metrics RPC) has a generator.
    // The databases API and the routes under /databases/{database} need real nodes (a catalog in a system
    // database): test/workers/databases-*.test.ts covers them.
    expect(Object.keys(ROUTES).sort()).toEqual(declared.sort());
    const counts = { requests: 0, valid: 0, refused: 0 };
    const statuses = new Map<number, number>();

    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...Object.keys(ROUTES)).chain((key) => ROUTES[key] as fc.Arbitrary<Generated>),
        credential,
        async (generated, who) => {
          const cluster = new FakeCluster();
          // Every generated bookmark (0-12) is applied already, so no read waits for its deadline; the default
          // deadline is then long enough that only a timeout the request sets itself can run out.
          cluster.raftIndex = 20;
          const h = harness(cluster, { policy: { defaultTimeoutMs: 5_000 } });
          const before = stateOf(cluster);
          const response = await send(h, generated, who);
          const status = response.status;
          counts.requests++;
          statuses.set(status, (statuses.get(status) ?? 0) + 1);
          const authorized = await checkAnswer(document, generated, who, response, cluster.raftIndex);
          if (status >= 400) {
            counts.refused++;
            expect(
              response.headers.get("X-DHA-Error-Code") ?? "(none)",
              `${describeRequest(generated, who)}: ${status} without an error code`,
            ).toMatch(/^[A-Z_]+$/);
            expect(stateOf(cluster), `${describeRequest(generated, who)}: refused with ${status} but applied`).toEqual(
              before,
            );
          }
          if (!authorized) {
            return;
          }
          const label = describeRequest(generated, who);
          if (generated.valid) {
            counts.valid++;
            expect(
              status,
              `${label}: valid by the document, refused: ${status === 400 ? await response.text() : ""}`,
            ).not.toBe(400);
            expect([200, 404, 503, 504].includes(status) || status === 409, label).toBe(true);
          } else {
            expect(
              status,
              `${label}: invalid, yet ${status}: ${status < 400 ? await bodyText(response) : ""}`,
            ).toBeGreaterThanOrEqual(400);
          }
        },
      ),
      { numRuns: 700 },
    );
    console.log(
      `property run: ${counts.requests} requests, ${counts.valid} valid and authorized, ${counts.refused} refused; statuses ${JSON.stringify(Object.fromEntries(statuses))}`,
    );
    expect(counts.requests).toBeGreaterThanOrEqual(700);
  });
});
