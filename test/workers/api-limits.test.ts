// Limits a client meets before any node is asked: the URL length (the platform's 16 KB).
import { describe, expect, it } from "vitest";
import { MAX_URL_BYTES } from "../../src/worker/middleware/url-limit";
import { harness } from "./http-support";

describe("long URLs", () => {
  it("answers 414 with a JSON error pointing to POST /db/query when a GET query's URL is over the platform's limit", async () => {
    const { cluster, request } = harness();
    const sql = (length: number) => `SELECT '${"x".repeat(length)}'`;
    const prefix = "https://db.example.com/db/query?q=".length;
    const tooLong = `/db/query?q=${encodeURIComponent(sql(MAX_URL_BYTES))}`;
    const refused = await request("GET", tooLong);
    expect(refused.status).toBe(414);
    expect(refused.headers.get("content-type")).toBe("application/json; charset=utf-8");
    expect(refused.headers.get("X-DHA-Error-Code")).toBe("URL_TOO_LONG");
    const body = (await refused.json()) as { results: unknown[]; error: string };
    expect(body.results).toEqual([]);
    expect(body.error).toMatch(
      /^the URL is \d+ bytes long; at most 16384 are allowed: send the statements in a JSON body instead, with POST \/db\/query/,
    );
    expect(cluster.callsTo("query")).toEqual([]);

    // The same statement as a JSON body is served, and a URL exactly at the limit still is.
    const posted = await request("POST", "/db/query", { json: [sql(MAX_URL_BYTES)] });
    expect(posted.status).toBe(200);
    const atLimit = `/db/query?q=${"x".repeat(MAX_URL_BYTES - prefix)}`;
    expect(`https://db.example.com${atLimit}`.length).toBe(MAX_URL_BYTES);
    expect((await request("GET", atLimit)).status).not.toBe(414);
  });

  it("answers 414 in the plain error shape on other routes", async () => {
    const { request } = harness();
    const refused = await request("GET", `/status?key=${"a".repeat(MAX_URL_BYTES)}`);
    expect(refused.status).toBe(414);
    expect(((await refused.json()) as { error: string }).error).toMatch(/send long values in a request body instead/);
  });
});
