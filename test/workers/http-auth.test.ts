// Credentials and roles, failing closed; public routes; unknown routes and methods.
import { describe, expect, it } from "vitest";
import { FakeCluster, harness, TOKENS } from "./http-support";

const basic = (user: string, password: string) => `Basic ${btoa(`${user}:${password}`)}`;

describe("public routes", () => {
  it("serves /livez and /openapi.json without credentials, even when auth is not configured", async () => {
    const { request } = harness(new FakeCluster(), {}, { DHA_TOKENS: undefined });
    const livez = await request("GET", "/livez", { token: null });
    expect(livez.status).toBe(200);
    expect(await livez.text()).toBe("ok\n");
    const openapi = await request("GET", "/openapi.json", { token: null });
    expect(openapi.status).toBe(200);
    const document = (await openapi.json()) as { openapi: string; paths: Record<string, unknown> };
    expect(document.openapi).toBe("3.1.0");
    for (const path of [
      "/db/execute",
      "/db/query",
      "/db/request",
      "/status",
      "/nodes",
      "/readyz",
      "/leader",
      "/api/v1/cluster/health",
    ]) {
      expect(document.paths[path], path).toBeDefined();
    }
  });

  it("answers unknown routes with a JSON 404 and wrong methods with 405 and Allow", async () => {
    const { request } = harness();
    const missing = await request("GET", "/nope", { token: null });
    expect(missing.status).toBe(404);
    expect(await missing.json()).toEqual({ error: "no route for GET /nope" });
    expect(missing.headers.get("X-DHA-Error-Code")).toBe("NO_ROUTE");
    // A trailing slash is another path (the router is strict): 404, not a 405 naming the very method sent.
    for (const path of ["/livez/", "/status/", "/api/v1/cluster/", "/db/execute/"]) {
      const slashed = await request("GET", path, { token: null });
      expect(slashed.status, path).toBe(404);
      expect(slashed.headers.get("X-DHA-Error-Code"), path).toBe("NO_ROUTE");
    }
    const wrong = await request("GET", "/db/execute");
    expect(wrong.status).toBe(405);
    expect(wrong.headers.get("Allow")).toBe("POST");
    expect(await wrong.json()).toEqual({ error: "method GET is not allowed on /db/execute: use POST" });
    expect(wrong.headers.get("X-DHA-Error-Code")).toBe("METHOD_NOT_ALLOWED");
    const member = await request("GET", "/api/v1/cluster/members/n2");
    expect(member.status).toBe(405);
    expect(member.headers.get("Allow")).toBe("DELETE");
  });
});

describe("authentication", () => {
  it("refuses a request without credentials with 401 and both challenges", async () => {
    const { cluster, request } = harness();
    const response = await request("POST", "/db/execute", { json: ["DELETE FROM foo"], token: null });
    expect(response.status).toBe(401);
    expect(response.headers.get("WWW-Authenticate")).toBe(
      'Bearer realm="durable-ha", Basic realm="durable-ha", charset="UTF-8"',
    );
    expect(await response.json()).toEqual({
      error: "credentials required: send Authorization: Bearer <token>, or HTTP Basic with the token as password",
    });
    expect(cluster.calls).toEqual([]);
  });

  it("refuses unknown tokens and malformed headers", async () => {
    const { cluster, request } = harness();
    const cases: [string, string][] = [
      ["Bearer not-a-known-token", "invalid token"],
      ["Bearer", "malformed Authorization header: expected Bearer <token>"],
      [`Bearer ${TOKENS.admin} extra`, "malformed Authorization header: expected Bearer <token>"],
      ["Basic !!!", "malformed Authorization header: expected Basic base64(user:token)"],
      [basic("admin", "wrong-password-123"), "invalid token"],
      [basic(TOKENS.admin, ""), "invalid token"],
      ["Digest abc", 'unsupported authorization scheme "Digest": use Bearer or Basic'],
    ];
    for (const [authorization, message] of cases) {
      const response = await request("GET", "/db/query?q=SELECT%201", {
        token: null,
        headers: { Authorization: authorization },
      });
      expect(response.status, authorization).toBe(401);
      expect(await response.json(), authorization).toEqual({ error: message });
    }
    expect(cluster.calls).toEqual([]);
  });

  it("accepts a bearer token (any case of the scheme) and HTTP Basic with the token as password", async () => {
    const { request } = harness();
    for (const authorization of [
      `Bearer ${TOKENS.reader}`,
      `bearer ${TOKENS.reader}`,
      basic("anyone", TOKENS.reader),
      basic("", TOKENS.reader),
    ]) {
      const response = await request("GET", "/db/query?q=SELECT%201", {
        token: null,
        headers: { Authorization: authorization },
      });
      expect(response.status, authorization).toBe(200);
    }
  });
  it("accepts a token again and again, and refuses its near misses and the tokens of another DHA_TOKENS", async () => {
    const { request } = harness();
    const query = (authorization: string) =>
      request("GET", "/db/query?q=SELECT%201", { token: null, headers: { Authorization: authorization } });
    for (let round = 0; round < 3; round++) {
      expect((await query(`Bearer ${TOKENS.reader}`)).status).toBe(200);
      expect((await query(`Bearer ${TOKENS.reader}x`)).status).toBe(401);
      expect((await query(`Bearer ${TOKENS.reader.slice(0, -1)}`)).status).toBe(401);
    }
    // The same token is not valid under another DHA_TOKENS.
    const other = harness(new FakeCluster(), {}, { DHA_TOKENS: JSON.stringify({ "another-token-123": ["read"] }) });
    const refused = await other.request("GET", "/db/query?q=SELECT%201", {
      token: null,
      headers: { Authorization: `Bearer ${TOKENS.reader}` },
    });
    expect(refused.status).toBe(401);
    const accepted = await other.request("GET", "/db/query?q=SELECT%201", {
      token: null,
      headers: { Authorization: "Bearer another-token-123" },
    });
    expect(accepted.status).toBe(200);
  });
});

describe("roles", () => {
  it("gives each route the role it needs", async () => {
    const { request } = harness();
    const cases: [string, string, string, unknown, number][] = [
      ["reader", "GET", "/db/query?q=SELECT%201", undefined, 200],
      ["reader", "POST", "/db/execute", ["DELETE FROM foo"], 403],
      ["reader", "POST", "/db/load", undefined, 403],
      ["reader", "GET", "/api/v1/cluster/health", undefined, 200],
      ["reader", "POST", "/api/v1/cluster/leader/stepdown", undefined, 403],
      ["writer", "POST", "/db/execute", ["DELETE FROM foo"], 200],
      ["writer", "POST", "/leader", undefined, 403],
      ["writer", "DELETE", "/api/v1/cluster/members/n3", undefined, 403],
      ["admin", "POST", "/api/v1/cluster/leader/stepdown", undefined, 200],
    ];
    for (const [who, method, path, json, status] of cases) {
      const token = TOKENS[who as keyof typeof TOKENS];
      const response = await request(method, path, { token, ...(json === undefined ? {} : { json }) });
      expect(response.status, `${who} ${method} ${path}`).toBe(status);
      if (status === 403) {
        expect(((await response.json()) as { error: string }).error).toMatch(
          /^this token lacks the "(write|admin)" role$/,
        );
      }
    }
  });

  it("requires credentials for health detail", async () => {
    const { request } = harness();
    for (const path of [
      "/api/v1/cluster/health",
      "/api/v1/cluster",
      "/status",
      "/nodes",
      "/readyz",
      "/leader",
      "/db/backup?fmt=sql",
    ]) {
      const response = await request("GET", path, { token: null });
      expect(response.status, path).toBe(401);
    }
  });
});

describe("failing closed", () => {
  it("refuses every protected route when DHA_TOKENS is missing", async () => {
    const { cluster, request } = harness(new FakeCluster(), {}, { DHA_TOKENS: undefined });
    for (const [method, path] of [
      ["POST", "/db/execute"],
      ["GET", "/db/query?q=SELECT%201"],
      ["GET", "/api/v1/cluster/health"],
    ] as const) {
      const response = await request(method, path, method === "POST" ? { json: ["SELECT 1"] } : {});
      expect(response.status, path).toBe(500);
      expect(((await response.json()) as { error: string }).error).toMatch(
        /^authentication is not configured: set the DHA_TOKENS secret/,
      );
    }
    expect(cluster.calls).toEqual([]);
  });

  it("explains a malformed DHA_TOKENS without revealing any token", async () => {
    const secret = "short";
    const cases: [string, RegExp][] = [
      ["not json", /DHA_TOKENS is not valid JSON/],
      ['["a"]', /must be a JSON object/],
      ["{}", /holds no tokens/],
      [JSON.stringify({ [secret]: ["read"] }), /token #1 is invalid/],
      [
        JSON.stringify({ "long-enough-token-1": ["read"], "long-enough-token-2": ["root"] }),
        /token #2 has invalid roles/,
      ],
      [JSON.stringify({ "long-enough-token-1": [] }), /token #1 has invalid roles/],
    ];
    for (const [tokens, message] of cases) {
      const { request } = harness(new FakeCluster(), {}, { DHA_TOKENS: tokens });
      const response = await request("GET", "/db/query?q=SELECT%201", { token: "long-enough-token-1" });
      expect(response.status, tokens).toBe(500);
      const text = await response.text();
      expect(text, tokens).toMatch(message);
      expect(text).not.toContain(secret);
      expect(text).not.toContain("long-enough-token");
    }
  });

  it("says which cluster setting is wrong once authenticated", async () => {
    const { request } = harness(new FakeCluster(), {}, { CLUSTER_NODES: "n1,,n2" });
    const response = await request("GET", "/db/query?q=SELECT%201");
    expect(response.status).toBe(500);
    expect(((await response.json()) as { error: string }).error).toMatch(
      /^the cluster configuration is invalid: CLUSTER_NODES/,
    );
  });
});

describe("CORS", () => {
  it("answers preflights for configured origins only", async () => {
    const { request } = harness(new FakeCluster(), {}, { DHA_CORS_ORIGINS: "https://app.example.com" });
    const preflight = await request("OPTIONS", "/db/query", {
      token: null,
      headers: { Origin: "https://app.example.com", "Access-Control-Request-Method": "POST" },
    });
    expect(preflight.status).toBe(204);
    expect(preflight.headers.get("Access-Control-Allow-Origin")).toBe("https://app.example.com");
    expect(preflight.headers.get("Access-Control-Allow-Headers")).toMatch(/Authorization/);
    const response = await request("GET", "/db/query?q=SELECT%201", { headers: { Origin: "https://app.example.com" } });
    expect(response.headers.get("Access-Control-Expose-Headers")).toMatch(/X-DHA-Raft-Index/);
    const { request: plain } = harness();
    const none = await plain("GET", "/db/query?q=SELECT%201", { headers: { Origin: "https://app.example.com" } });
    expect(none.headers.get("Access-Control-Allow-Origin")).toBeNull();
  });
});
