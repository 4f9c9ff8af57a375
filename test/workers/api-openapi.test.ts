// /openapi.json is generated from the schemas the routes validate with: every served route is documented, and
// each drift found between the old hand-written document and the server stays fixed.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { memberProblem } from "../../src/worker/config";
import { LOCATION_HINTS, NODE_NAME_PATTERN } from "../../src/worker/http/schemas";
import { API_ROUTES, honoPath } from "../../src/worker/routes/spec";
import { operationOf, responseProblems, schemaErrors, type OpenApiDocument } from "./api-document";
import { FakeCluster, harness } from "./http-support";

async function documentOf(h = harness()): Promise<OpenApiDocument> {
  return (await (await h.request("GET", "/openapi.json", { token: null })).json()) as OpenApiDocument;
}

function parameterSchema(
  document: OpenApiDocument,
  method: string,
  path: string,
  name: string,
): Record<string, unknown> {
  const parameter = operationOf(document, method, path).parameters?.find((p) => p.name === name);
  if (parameter === undefined) {
    throw new Error(`${method} ${path} does not document ${name}`);
  }
  return parameter.schema;
}

const accepts = (document: OpenApiDocument, schema: Record<string, unknown>, value: unknown) =>
  schemaErrors(document, schema, value).length === 0;

describe("/openapi.json", () => {
  it("documents exactly the routes the app serves", async () => {
    const h = harness();
    const served = new Set(
      h.app.routes
        .filter((route) => route.method !== "ALL" && !route.path.includes("*") && !route.path.startsWith("/_test"))
        .map((route) => `${route.method} ${route.path}`),
    );
    const declared = new Set(API_ROUTES.map(({ route }) => `${route.method.toUpperCase()} ${honoPath(route)}`));
    expect([...served].filter((route) => !declared.has(route))).toEqual([]);
    const document = await documentOf(h);
    const documented = Object.entries(document.paths).flatMap(([path, operations]) =>
      Object.keys(operations).map((method) => `${method.toUpperCase()} ${path.replace(/\{([^}]+)\}/g, ":$1")}`),
    );
    expect(new Set(documented)).toEqual(declared);
    // Each declared route has a handler behind the declaration: without credentials it asks for them (or serves).
    for (const { route, access } of API_ROUTES) {
      const response = await h.request(route.method.toUpperCase(), honoPath(route).replace(":name", "n2"), {
        token: null,
      });
      expect(response.status, `${route.method} ${route.path}`).toBe(access === "public" ? 200 : 401);
    }
  });

  it("documents 401, 403, 414 and 500 on every protected route, and 414 on every route", async () => {
    const document = await documentOf();
    for (const [path, operations] of Object.entries(document.paths)) {
      for (const [method, operation] of Object.entries(operations)) {
        const statuses = Object.keys(operation.responses);
        expect(statuses, `${method} ${path}`).toContain("414");
        if ((operation.security ?? document.security ?? []).length > 0) {
          expect(statuses, `${method} ${path}`).toEqual(expect.arrayContaining(["401", "403", "500"]));
        }
      }
    }
    expect(operationOf(document, "GET", "/livez").security).toEqual([]);
  });

  it("documents timeout and db_timeout where the server parses them, with the server's duration syntax", async () => {
    const document = await documentOf();
    for (const [method, path] of [
      ["POST", "/db/execute"],
      ["GET", "/db/query"],
      ["POST", "/db/query"],
      ["POST", "/db/request"],
      ["POST", "/db/load"],
      ["GET", "/db/backup"],
    ] as const) {
      for (const name of ["timeout", "db_timeout"]) {
        const schema = parameterSchema(document, method, path, name);
        expect(accepts(document, schema, "1m30s"), `${method} ${path} ${name}`).toBe(true);
        for (const bad of ["", "-1s", "10", "abc", "1x"]) {
          expect(accepts(document, schema, bad), `${method} ${path} ${name}=${bad}`).toBe(false);
        }
      }
    }
    for (const path of ["/status", "/nodes", "/readyz", "/leader", "/api/v1/cluster/health", "/api/v1/cluster"]) {
      expect(parameterSchema(document, "GET", path, "timeout")).toBeDefined();
    }
    // The server refuses what the document refuses.
    const h = harness();
    for (const bad of ["-1s", "10", "1x"]) {
      expect((await h.request("GET", `/nodes?timeout=${bad}`)).status, bad).toBe(400);
      expect((await h.request("POST", `/db/execute?db_timeout=${bad}`, { json: ["SELECT 1"] })).status, bad).toBe(400);
    }
  });

  it("requires id in POST /leader's body, constrains ver, and is as strict as the server on names, levels and raft indexes", async () => {
    const h = harness();
    const document = await documentOf(h);
    const leaderBody = operationOf(document, "POST", "/leader").requestBody?.content["application/json"]?.schema ?? {};
    expect(accepts(document, leaderBody, {})).toBe(false);
    expect(accepts(document, leaderBody, { id: "n2" })).toBe(true);
    expect((await h.request("POST", "/leader", { json: {} })).status).toBe(400);

    const ver = parameterSchema(document, "GET", "/nodes", "ver");
    expect(accepts(document, ver, "2")).toBe(true);
    expect(accepts(document, ver, "3")).toBe(false);
    expect((await h.request("GET", "/nodes?ver=3")).status).toBe(400);

    for (const [path, name] of [
      ["/status", "node"],
      ["/readyz", "node"],
    ] as const) {
      const schema = parameterSchema(document, "GET", path, name);
      for (const bad of ["", "a/b", "-n", "x".repeat(65)]) {
        expect(accepts(document, schema, bad), `${path} ${name}=${bad}`).toBe(false);
        expect(
          (await h.request("GET", `${path}?${name}=${encodeURIComponent(bad)}`)).status,
          `${path} ${name}=${bad}`,
        ).toBe(400);
      }
    }
    const level = parameterSchema(document, "POST", "/db/query", "level");
    expect(accepts(document, level, "")).toBe(false);
    const q = parameterSchema(document, "GET", "/db/query", "q");
    expect(accepts(document, q, "")).toBe(false);
    expect(accepts(document, q, "   ")).toBe(false);
    const index = parameterSchema(document, "POST", "/db/query", "min_raft_index");
    expect(accepts(document, index, "999999999999999")).toBe(true);
    expect(accepts(document, index, "9999999999999999")).toBe(false);
    expect((await h.request("POST", "/db/query?min_raft_index=9999999999999999", { json: ["SELECT 1"] })).status).toBe(
      400,
    );
  });

  it("describes statement parameters as the server parses them", async () => {
    const h = harness();
    const document = await documentOf(h);
    const body = operationOf(document, "POST", "/db/execute").requestBody?.content["application/json"]?.schema ?? {};
    const valid = [
      ["SELECT 1"],
      [["SELECT ?, ?, ?, ?", 1, "a", null, true]],
      [["SELECT ?", [1, 2, 255]]],
      [["SELECT :a", { a: 1 }]],
      // An empty statement is skipped, as rqlite skips it; one of only whitespace is refused.
      [""],
      ["", "SELECT 1"],
    ];
    const invalid = [
      [],
      ["  "],
      [[]],
      [[1]],
      [["SELECT ?", { a: { b: 1 } }]],
      [["SELECT ?", [256]]],
      [["SELECT ?", [1.5]]],
      [{ sql: "SELECT 1" }],
      "SELECT 1",
    ];
    for (const statements of valid) {
      expect(accepts(document, body, statements), JSON.stringify(statements)).toBe(true);
      expect((await h.request("POST", "/db/execute", { json: statements })).status, JSON.stringify(statements)).toBe(
        200,
      );
    }
    for (const statements of invalid) {
      expect(accepts(document, body, statements), JSON.stringify(statements)).toBe(false);
      expect((await h.request("POST", "/db/execute", { json: statements })).status, JSON.stringify(statements)).toBe(
        400,
      );
    }
  });

  it("matches both /nodes shapes, associative results with rows: null, and the status document", async () => {
    const cluster = new FakeCluster();
    cluster.executeResult = () => ({ lastInsertId: 3, rowsAffected: 1 });
    const h = harness(cluster);
    const document = await documentOf(h);
    const check = async (method: string, path: string, documentedPath: string, init = {}) => {
      const response = await h.request(method, path, init);
      expect(response.status, path).toBe(200);
      expect(await responseProblems(document, method, documentedPath, response)).toEqual([]);
    };
    await check("GET", "/nodes", "/nodes");
    await check("GET", "/nodes?ver=2&nonvoters", "/nodes");
    await check("POST", "/db/request?associative", "/db/request", { json: ["INSERT INTO t VALUES (1)", "SELECT 1"] });
    await check("POST", "/db/request", "/db/request", { json: ["INSERT INTO t VALUES (1)"] });
    await check("POST", "/db/request", "/db/request", { json: ["SELECT 1"] });
    await check("GET", "/db/query?q=SELECT%201&associative&timings", "/db/query");
    await check("GET", "/status", "/status");
    await check("GET", "/leader", "/leader");
    await check("GET", "/api/v1/cluster/health", "/api/v1/cluster/health");
    await check("GET", "/api/v1/cluster", "/api/v1/cluster");
    const status = (await (await h.request("GET", "/status")).json()) as unknown;
    expect(schemaErrors(document, { $ref: "#/components/schemas/Status" }, status)).toEqual([]);
    const associative = (await (
      await h.request("POST", "/db/request?associative", { json: ["INSERT INTO t VALUES (1)"] })
    ).json()) as unknown;
    expect(associative).toEqual({ results: [{ last_insert_id: 3, rows_affected: 1, rows: null }] });
  });

  it("states node names and location hints exactly as the nodes' own rule (validateMember) accepts them", () => {
    const pattern = new RegExp(NODE_NAME_PATTERN);
    const names = fc.oneof(fc.string({ maxLength: 70 }), fc.stringMatching(/^[A-Za-z0-9_.\-/ ]{0,70}$/));
    fc.assert(
      fc.property(names, (name) => {
        expect(pattern.test(name), JSON.stringify(name)).toBe(memberProblem({ name }) === null);
      }),
      { numRuns: 2000 },
    );
    for (const hint of LOCATION_HINTS) {
      expect(memberProblem({ name: "n1", locationHint: hint }), hint).toBeNull();
    }
    const refusal = memberProblem({ name: "n1", locationHint: "mars" }) ?? "";
    expect(
      refusal
        .match(/\(one of (.*)\)$/)?.[1]
        ?.split(", ")
        .sort(),
    ).toEqual([...LOCATION_HINTS].sort());
  });
});
