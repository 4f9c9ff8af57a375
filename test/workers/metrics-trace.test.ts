// W3C traceparent: accepted on every request (a new trace when absent or invalid), returned on the response, and
// followed from the HTTP request of a write to the followers' log lines (and event feed) for the append that carries
// it when the trace is sampled.
import { afterEach, describe, expect, it, vi } from "vitest";
import { logEvent } from "../../src/objects/log";
import { parseTraceparent, runWithTrace } from "../../src/objects/trace";
import { clusterFactory, waitFor } from "./helpers/cluster";
import { MetricsHarness } from "./helpers/metrics-harness";

const newCluster = clusterFactory();
/** Generous: on a loaded machine the nodes (which share the test's thread) may take long to agree on a leader. */
const LEADER_TIMEOUT_MS = 40_000;
const TRACEPARENT = /^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$/;
const INCOMING = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7" };

afterEach(() => {
  vi.restoreAllMocks();
});

describe("traceparent", () => {
  it("parses the W3C format and refuses invalid values", () => {
    expect(parseTraceparent(`00-${INCOMING.traceId}-${INCOMING.spanId}-01`)).toEqual({ ...INCOMING, flags: "01" });
    expect(parseTraceparent(`01-${INCOMING.traceId}-${INCOMING.spanId}-01-future-field`)).toEqual({
      ...INCOMING,
      flags: "01",
    });
    for (const invalid of [
      `ff-${INCOMING.traceId}-${INCOMING.spanId}-01`,
      `00-${"0".repeat(32)}-${INCOMING.spanId}-01`,
      `00-${INCOMING.traceId}-${"0".repeat(16)}-01`,
      `00-${INCOMING.traceId}-${INCOMING.spanId}-01-extra`,
      `00-${INCOMING.traceId.slice(1)}-${INCOMING.spanId}-01`,
      "garbage",
      undefined,
    ]) {
      expect(parseTraceparent(invalid), String(invalid)).toBeNull();
    }
  });

  it("puts the trace and span ids into every log line written in a traced call", () => {
    const printed: string[] = [];
    vi.spyOn(console, "warn").mockImplementation((line: unknown) => void printed.push(String(line)));
    runWithTrace({ ...INCOMING, flags: "01" }, () =>
      logEvent("warn", { cluster: "c", node: "n1", term: 3 }, "steppedDown", { reason: "test" }),
    );
    logEvent("warn", { cluster: "c", node: "n1", term: 3 }, "steppedDown", { reason: "untraced" });
    expect(printed.map((line) => JSON.parse(line) as Record<string, unknown>)).toEqual([
      {
        level: "warn",
        event: "steppedDown",
        cluster: "c",
        node: "n1",
        term: 3,
        traceId: INCOMING.traceId,
        spanId: INCOMING.spanId,
        reason: "test",
      },
      { level: "warn", event: "steppedDown", cluster: "c", node: "n1", term: 3, reason: "untraced" },
    ]);
  });

  it("answers every request with a traceparent: a child of the one sent, or a new trace", async () => {
    const cluster = newCluster({ prefix: "trace-headers", nodes: 3 });
    const h = new MetricsHarness(cluster);
    const fresh = await h.send("GET", "/livez");
    expect(fresh.headers.get("traceparent")).toMatch(TRACEPARENT);
    const child = await h.send("GET", "/livez", {
      headers: { traceparent: `00-${INCOMING.traceId}-${INCOMING.spanId}-01` },
    });
    const span = parseTraceparent(child.headers.get("traceparent"));
    expect(span?.traceId).toBe(INCOMING.traceId);
    expect(span?.spanId).not.toBe(INCOMING.spanId);
    expect(span?.flags).toBe("01");
    const invalid = await h.send("GET", "/livez", {
      headers: { traceparent: `ff-${INCOMING.traceId}-${INCOMING.spanId}-01` },
    });
    expect(parseTraceparent(invalid.headers.get("traceparent"))?.traceId).not.toBe(INCOMING.traceId);
    // Errors carry it too.
    const refused = await h.send("GET", "/metrics", {
      token: "not-a-valid-token-at-all",
      headers: { traceparent: `00-${INCOMING.traceId}-${INCOMING.spanId}-00` },
    });
    expect(refused.status).toBe(401);
    expect(parseTraceparent(refused.headers.get("traceparent"))).toMatchObject({
      traceId: INCOMING.traceId,
      flags: "00",
    });
  });

  it("follows a write's trace id from the HTTP request to the followers' appends in the logs", async () => {
    const cluster = newCluster({ prefix: "trace-append", nodes: 3 });
    const h = new MetricsHarness(cluster);
    await cluster.startAll();
    const leader = await cluster.waitForLeader({ timeoutMs: LEADER_TIMEOUT_MS });
    const created = await h.send("POST", "/db/execute", { json: ["CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT)"] });
    expect(created.status, created.text).toBe(200);

    // An unsampled trace: its appends are logged at debug level only, and kept out of the event feed.
    const unsampled = "1f2e3d4c5b6a79881f2e3d4c5b6a7988";
    const quiet = await h.send("POST", "/db/execute", {
      json: [["INSERT INTO t(v) VALUES(?)", "quiet"]],
      headers: { traceparent: `00-${unsampled}-b7ad6b7169203331-00` },
    });
    expect(quiet.status, quiet.text).toBe(200);
    expect(parseTraceparent(quiet.headers.get("traceparent"))).toMatchObject({ traceId: unsampled, flags: "00" });

    // A sampled trace. Its append goes out from the write's own call unless the transport's call slots to that
    // follower are all busy (then a later send takes it along, under its own trace): write again, bounded, until
    // both followers show one. The feed is read over RPC from the nodes, like any client would.
    const traceId = "0af7651916cd43dd8448eb211c80319c";
    const followers = cluster.names.filter((name) => name !== leader);
    let writes = 0;
    const feed = await waitFor(
      "both followers to show an append under the write's trace id",
      async () => {
        const written = await h.send("POST", "/db/execute", {
          json: [["INSERT INTO t(v) VALUES(?)", `traced-${++writes}`]],
          headers: { traceparent: `00-${traceId}-b7ad6b7169203331-01` },
        });
        expect(written.status, written.text).toBe(200);
        expect(parseTraceparent(written.headers.get("traceparent"))?.traceId).toBe(traceId);
        const events = await h.send("GET", "/api/v1/cluster/events?limit=1000");
        expect(events.status, events.text).toBe(200);
        const all = (
          JSON.parse(events.text) as { events: { event: string; node: string; details: Record<string, unknown> }[] }
        ).events;
        const traced = all.filter((event) => event.event === "appendReceived" && event.details.traceId === traceId);
        return followers.every((node) => traced.some((event) => event.node === node)) ? { all, traced } : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    for (const event of feed.traced) {
      expect(event.details.from).toBe(leader);
      expect(event.details.entries).toBeGreaterThanOrEqual(1);
    }
    expect(feed.all.filter((event) => event.event === "appendReceived" && event.details.traceId === unsampled)).toEqual(
      [],
    );
  });
});
