// End to end: OTLP/HTTP span export. The local server (`npm start`, wrangler dev) runs with DHA_OTLP_ENDPOINT
// pointing at a small OTLP receiver on 127.0.0.1 (a Node HTTP server that records POST /v1/traces bodies, or holds
// them unanswered to play a collector that hangs). A request with a given traceparent must yield the worker's
// request span, its node-call spans and the nodes' own spans under that trace id, with consistent parent ids; a
// hanging collector must neither slow nor fail requests, and export must resume once it answers again.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { describe, expect, it } from "vitest";
import { freePort, pollUntil, withLocalServer } from "./local-server";

const REQUEST_TIMEOUT_MS = 15_000;
/** The exporters' timeout and pause after a failure (DEFAULT_OTLP_LIMITS in src/objects/otlp-export.ts). */
const EXPORT_TIMEOUT_MS = 3_000;
const PAUSE_AFTER_FAILURE_MS = 10_000;
const AUTH_HEADER_VALUE = "Bearer e2e collector secret";

// ---------------------------------------------------------------------------------------------------------------
// The OTLP receiver

interface OtlpValue {
  stringValue?: string;
  intValue?: number | string;
  boolValue?: boolean;
  doubleValue?: number;
}

interface OtlpSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string;
  endTimeUnixNano: string;
  attributes: { key: string; value: OtlpValue }[];
  status: { code?: number; message?: string };
}

interface ReceivedSpan extends OtlpSpan {
  readonly resource: Record<string, unknown>;
  readonly attrs: Record<string, unknown>;
}

interface HeldExport {
  readonly arrivedAtMs: number;
  closedAtMs: number | null;
}

class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  readonly headers: IncomingMessage["headers"][] = [];
  readonly held: HeldExport[] = [];
  readonly badRequests: string[] = [];
  /** "hang": accept the export and never answer (the client must give up by itself). */
  mode: "answer" | "hang" = "answer";
  private readonly server: Server;
  private readonly sockets = new Set<Socket>();

  constructor() {
    this.server = createServer((request, response) => this.handle(request, response));
    this.server.on("connection", (socket) => {
      this.sockets.add(socket);
      socket.once("close", () => this.sockets.delete(socket));
    });
  }

  async listen(port: number): Promise<void> {
    await new Promise<void>((done) => this.server.listen(port, "127.0.0.1", done));
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) {
      socket.destroy();
    }
    await new Promise<void>((done) => this.server.close(() => done()));
  }

  spansOf(traceId: string): ReceivedSpan[] {
    return this.spans.filter((span) => span.traceId === traceId);
  }

  private handle(request: IncomingMessage, response: ServerResponse): void {
    if (request.method !== "POST" || request.url !== "/v1/traces") {
      this.badRequests.push(`${request.method} ${request.url}`);
      response.writeHead(404).end();
      return;
    }
    if (this.mode === "hang") {
      const held: HeldExport = { arrivedAtMs: Date.now(), closedAtMs: null };
      this.held.push(held);
      request.resume();
      response.once("close", () => (held.closedAtMs = Date.now()));
      return;
    }
    const chunks: Buffer[] = [];
    request.on("data", (chunk: Buffer) => chunks.push(chunk));
    request.on("end", () => {
      try {
        const body = JSON.parse(Buffer.concat(chunks).toString("utf8")) as {
          resourceSpans: { resource: { attributes: OtlpSpan["attributes"] }; scopeSpans: { spans: OtlpSpan[] }[] }[];
        };
        this.headers.push(request.headers);
        for (const resourceSpans of body.resourceSpans) {
          const resource = attributesOf(resourceSpans.resource.attributes);
          for (const scope of resourceSpans.scopeSpans) {
            for (const span of scope.spans) {
              this.spans.push({ ...span, resource, attrs: attributesOf(span.attributes) });
            }
          }
        }
        response.writeHead(200, { "Content-Type": "application/json" }).end("{}");
      } catch (error) {
        this.badRequests.push(`unparsable body: ${String(error)}`);
        response.writeHead(400).end();
      }
    });
  }
}

function attributesOf(attributes: OtlpSpan["attributes"]): Record<string, unknown> {
  return Object.fromEntries(
    attributes.map(({ key, value }) => [
      key,
      value.stringValue ??
        (value.intValue === undefined ? undefined : Number(value.intValue)) ??
        value.boolValue ??
        value.doubleValue,
    ]),
  );
}

// ---------------------------------------------------------------------------------------------------------------
// A small client

const receiver = new OtlpReceiver();
let receiverPort = 0;
const local = withLocalServer({
  before: async () => {
    receiverPort = await freePort();
    await receiver.listen(receiverPort);
  },
  extraArgs: () => [
    "--var",
    `DHA_OTLP_ENDPOINT:http://127.0.0.1:${receiverPort}`,
    "--var",
    `DHA_OTLP_HEADERS:authorization=${encodeURIComponent(AUTH_HEADER_VALUE)}`,
  ],
  after: () => receiver.close(),
});

interface Reply {
  readonly status: number;
  readonly headers: Headers;
  readonly text: string;
  readonly elapsedMs: number;
}

async function call(method: string, path: string, init: { json?: unknown; traceparent?: string } = {}): Promise<Reply> {
  const startedAt = Date.now();
  const response = await fetch(`${local.server.baseUrl}${path}`, {
    method,
    headers: {
      Authorization: `Bearer ${local.token}`,
      ...(init.json === undefined ? {} : { "Content-Type": "application/json" }),
      ...(init.traceparent === undefined ? {} : { traceparent: init.traceparent }),
    },
    ...(init.json === undefined ? {} : { body: JSON.stringify(init.json) }),
    signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, text, elapsedMs: Date.now() - startedAt };
}

/** pollUntil, and on a timeout the server's export warnings in the error (an export that failed pauses export). */
async function pollSpans<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  try {
    return await pollUntil(what, { timeoutMs }, probe);
  } catch (error) {
    const warnings = local.server.log
      .split("\n")
      .filter((line) => line.includes("otlp"))
      .slice(-10);
    throw new Error(`${String(error)}; export warnings of the server: ${warnings.join("\n") || "none"}`, {
      cause: error,
    });
  }
}

function randomHex(bytes: number): string {
  return Buffer.from(crypto.getRandomValues(new Uint8Array(bytes))).toString("hex");
}

/** The span id of the worker's span, from the traceparent on the response. */
function responseSpanId(reply: Reply): string {
  const match = /^00-([0-9a-f]{32})-([0-9a-f]{16})-[0-9a-f]{2}$/.exec(reply.headers.get("traceparent") ?? "");
  expect(match, `response traceparent: ${reply.headers.get("traceparent")}`).not.toBeNull();
  return match?.[2] ?? "";
}

// ---------------------------------------------------------------------------------------------------------------

describe("OTLP span export, npm start with DHA_OTLP_ENDPOINT", () => {
  it(
    "exports a write's spans under the caller's trace: request -> node calls -> the leader's call -> followers' appends",
    { timeout: 60_000 },
    async () => {
      const created = await pollUntil("the cluster to accept a write", { timeoutMs: 20_000 }, async () => {
        const reply = await call("POST", "/db/execute", {
          json: ["CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, v TEXT)"],
        });
        return reply.status === 200 ? reply : undefined;
      });
      expect(created.status).toBe(200);

      const traceId = randomHex(16);
      const callerSpanId = randomHex(8);
      // Write under the caller's trace until a follower's append shows up under it too: the append normally goes out
      // from the write's own call, but a later call may take it along while the calls to a follower are busy.
      let writes = 0;
      const workerSpanIds: string[] = [];
      const spans = await pollSpans("the write's spans, a follower's append among them", 30_000, async () => {
        const written = await call("POST", "/db/execute", {
          json: [["INSERT INTO t(v) VALUES(?)", `traced-${++writes}`]],
          traceparent: `00-${traceId}-${callerSpanId}-01`,
        });
        expect(written.status, written.text).toBe(200);
        workerSpanIds.push(responseSpanId(written));
        const received = receiver.spansOf(traceId);
        return received.some((span) => span.name === "raft.append") &&
          received.some((span) => span.spanId === workerSpanIds[0])
          ? received
          : undefined;
      });
      // A follower exports its append at once; the leader's span of the write only when the write is applied. Wait
      // (bounded) until the leader spans of every append seen have arrived too.
      const appendsSeen = new Set(spans.filter((span) => span.name === "raft.append").map((span) => span.spanId));
      await pollSpans("the leader spans the appends name as parents", 20_000, async () => {
        expect((await call("GET", "/livez")).status).toBe(200);
        const received = receiver.spansOf(traceId);
        const ids = new Set(received.map((span) => span.spanId));
        return received.filter((span) => appendsSeen.has(span.spanId)).every((span) => ids.has(span.parentSpanId ?? ""))
          ? true
          : undefined;
      });
      spans.splice(0, spans.length, ...receiver.spansOf(traceId));

      // The worker's request span: the span the response named, a child of the caller's.
      const request = spans.find((span) => span.spanId === workerSpanIds[0]);
      expect(request).toBeDefined();
      expect(request).toMatchObject({ name: "POST /db/execute", kind: 2, parentSpanId: callerSpanId });
      expect(request?.attrs).toMatchObject({
        "http.request.method": "POST",
        "http.route": "/db/execute",
        "http.response.status_code": 200,
        "db.namespace": "main",
      });
      expect(request?.attrs["dha.node"]).toMatch(/^n[123]$/);
      expect(request?.resource).toMatchObject({ "service.name": "durable-ha", "dha.component": "worker" });
      expect(request?.status.code ?? 0).toBe(0);
      expect(BigInt(request?.endTimeUnixNano ?? "0")).toBeGreaterThanOrEqual(BigInt(request?.startTimeUnixNano ?? "1"));

      // Its node calls: CLIENT spans, children of the request span, numbered by attempt; the last one succeeded.
      const calls = spans
        .filter((span) => span.parentSpanId === request?.spanId)
        .sort((a, b) => Number(a.attrs["dha.attempt"]) - Number(b.attrs["dha.attempt"]));
      const nodeCalls = Number(request?.attrs["dha.node_calls"]);
      expect(calls.length).toBeGreaterThanOrEqual(1);
      // A call the router gave up waiting for is recorded when it settles, possibly after this export.
      expect(calls.length).toBeLessThanOrEqual(nodeCalls);
      expect(new Set(calls.map((span) => span.attrs["dha.attempt"])).size).toBe(calls.length);
      for (const span of calls) {
        // Mostly one execute; a leader change in between adds refused attempts (or a wait for the new leader).
        expect(span).toMatchObject({ name: `ClusterNode.${String(span.attrs["rpc.method"])}`, kind: 3 });
        expect(span.attrs["dha.attempt"]).toBeGreaterThanOrEqual(1);
        expect(span.attrs["dha.attempt"]).toBeLessThanOrEqual(nodeCalls);
        expect(span.attrs["dha.node"]).toMatch(/^n[123]$/);
      }
      const served = calls[calls.length - 1];
      expect(served?.attrs["dha.attempt"]).toBe(nodeCalls);
      expect(served).toMatchObject({ name: "ClusterNode.execute" });
      expect(served?.attrs).toMatchObject({ "dha.outcome": "ok", "dha.node": request?.attrs["dha.node"] });

      // The leader's own span for that call, a child of the worker's CLIENT span.
      const leaderSpan = spans.find((span) => span.parentSpanId === served?.spanId);
      expect(leaderSpan).toMatchObject({ name: "ClusterNode.execute", kind: 2 });
      expect(leaderSpan?.attrs).toMatchObject({
        "dha.node": served?.attrs["dha.node"],
        "dha.role": "leader",
        "dha.outcome": "ok",
        "dha.operation": "execute",
      });
      expect(leaderSpan?.resource).toMatchObject({ "service.name": "durable-ha", "dha.component": "node" });
      expect(leaderSpan?.attrs["dha.raft_index"]).toBeGreaterThan(0);

      // Followers' appends: children of a leader span of this trace, received from the leader by another node.
      const leaderSpanIds = new Set(
        spans.filter((span) => span.name === "ClusterNode.execute" && span.kind === 2).map((span) => span.spanId),
      );
      const appends = spans.filter((span) => appendsSeen.has(span.spanId));
      expect(appends.length).toBeGreaterThanOrEqual(1);
      for (const append of appends) {
        expect(leaderSpanIds.has(append.parentSpanId ?? ""), JSON.stringify(append)).toBe(true);
        expect(append.attrs["dha.from"]).toBe(leaderSpan?.attrs["dha.node"]);
        expect(append.attrs["dha.node"]).not.toBe(append.attrs["dha.from"]);
        expect(append.attrs["dha.entries"]).toBeGreaterThanOrEqual(1);
      }

      // Every export carried the configured headers and the JSON content type; nothing else reached the receiver.
      expect(receiver.headers.length).toBeGreaterThanOrEqual(1);
      for (const headers of receiver.headers) {
        expect(headers["authorization"]).toBe(AUTH_HEADER_VALUE);
        expect(headers["content-type"]).toBe("application/json");
      }
      expect(receiver.badRequests).toEqual([]);
    },
  );

  it(
    "records the status, error code and consistency level of refused and read requests",
    { timeout: 30_000 },
    async () => {
      const traceId = randomHex(16);
      const refused = await call("GET", "/db/query?level=bogus&q=SELECT%201", {
        traceparent: `00-${traceId}-${randomHex(8)}-01`,
      });
      expect(refused.status, refused.text).toBe(400);
      const read = await call("GET", "/db/query?level=linearizable&q=SELECT%201", {
        traceparent: `00-${traceId}-${randomHex(8)}-00`,
      });
      expect(read.status, read.text).toBe(200);
      const [refusedSpanId, readSpanId] = [responseSpanId(refused), responseSpanId(read)];
      const spans = await pollSpans("both requests' spans", 30_000, async () => {
        // As traffic would: a later request's flush takes along spans an earlier one left (its export was still
        // running, or paused after a failure on a loaded machine).
        expect((await call("GET", "/livez")).status).toBe(200);
        const received = receiver.spansOf(traceId);
        return received.some((span) => span.spanId === refusedSpanId) &&
          received.some((span) => span.spanId === readSpanId)
          ? received
          : undefined;
      });
      const refusedSpan = spans.find((span) => span.spanId === refusedSpanId);
      expect(refusedSpan?.attrs).toMatchObject({
        "http.route": "/db/query",
        "http.response.status_code": 400,
        "dha.level": "bogus",
      });
      expect(refusedSpan?.attrs["error.type"]).toEqual(refused.headers.get("X-DHA-Error-Code") ?? undefined);
      // A 4xx is the client's error, not the server's: the span's status stays unset.
      expect(refusedSpan?.status.code ?? 0).toBe(0);
      const readSpan = spans.find((span) => span.spanId === readSpanId);
      expect(readSpan?.attrs).toMatchObject({
        "http.route": "/db/query",
        "http.response.status_code": 200,
        "dha.level": "linearizable",
      });
      // The read's node call and the node's own span of it.
      const nodeCall = spans.find(
        (span) =>
          span.parentSpanId === readSpanId &&
          span.attrs["rpc.method"] === "query" &&
          span.attrs["dha.outcome"] === "ok",
      );
      expect(nodeCall).toMatchObject({ name: "ClusterNode.query", kind: 3 });
      await pollSpans("the node's span of the read", 10_000, async () =>
        receiver
          .spansOf(traceId)
          .find((span) => span.parentSpanId === nodeCall?.spanId && span.name === "ClusterNode.query"),
      );
    },
  );

  it(
    "a collector that hangs neither slows nor fails requests; export gives up within its timeout and resumes",
    { timeout: 90_000 },
    async () => {
      receiver.mode = "hang";
      const hungTrace = randomHex(16);
      for (let i = 0; i < 5; i++) {
        const reply = await call("GET", "/livez", { traceparent: `00-${hungTrace}-${randomHex(8)}-01` });
        expect(reply.status).toBe(200);
        // The export runs after the response (waitUntil): a request never waits for the collector.
        expect(reply.elapsedMs, "a request waited for the collector").toBeLessThan(EXPORT_TIMEOUT_MS);
      }
      const held = await pollUntil(
        "an export to reach the hanging collector",
        { timeoutMs: 10_000 },
        async () => receiver.held[0],
      );
      // The exporter aborts its request at its timeout (with some slack for a loaded machine).
      await pollUntil(
        "the held export to be aborted by the exporter",
        { timeoutMs: EXPORT_TIMEOUT_MS + 10_000 },
        async () => (held.closedAtMs === null ? undefined : held),
      );
      expect((held.closedAtMs ?? 0) - held.arrivedAtMs).toBeLessThan(EXPORT_TIMEOUT_MS + 5_000);
      // No retry storm: after a failure an exporter pauses, so only a few exports are tried meanwhile.
      expect(receiver.held.length).toBeLessThanOrEqual(4);

      receiver.mode = "answer";
      const resumedTrace = randomHex(16);
      const resumed = await pollUntil(
        "export to resume once the collector answers",
        { timeoutMs: PAUSE_AFTER_FAILURE_MS + 20_000 },
        async () => {
          const reply = await call("GET", "/livez", { traceparent: `00-${resumedTrace}-${randomHex(8)}-01` });
          expect(reply.status).toBe(200);
          return receiver.spansOf(resumedTrace).find((span) => span.name === "GET /livez");
        },
      );
      expect(resumed.attrs).toMatchObject({ "http.route": "/livez", "http.response.status_code": 200 });
    },
  );
});
