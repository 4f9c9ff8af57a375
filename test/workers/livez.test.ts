import { exports } from "cloudflare:workers";
import { env } from "cloudflare:test";
import { describe, expect, it } from "vitest";

describe("worker", () => {
  it("answers GET /livez", async () => {
    const response = await exports.default.fetch("https://example.com/livez");
    expect(response.status).toBe(200);
    expect(await response.text()).toBe("ok\n");
  });

  it("answers an unknown route with a JSON 404", async () => {
    const response = await exports.default.fetch("https://example.com/nope");
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({ error: "no route for GET /nope" });
  });

  it("reaches a ClusterNode object over RPC", async () => {
    const stub = env.CLUSTER_NODE.getByName("livez-test/n1");
    expect(await stub.ping()).toEqual({ ok: true });
  });
});
