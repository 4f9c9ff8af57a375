// OTLP export switch and bounds, in workerd: off unless DHA_OTLP_ENDPOINT is set (no outbound request at all), the
// settings as documented, and the exporter's bounds (buffer, batch size, batches per flush, export timeout, pause
// after a failure). The spans' content and their delivery to a real receiver are checked end to end in
// test/e2e/otlp.e2e.test.ts.
import { env } from "cloudflare:test";
import { afterEach, describe, expect, it, vi } from "vitest";
import { OtlpConfigError, otlpSettingsFromEnv, OtlpSpanExporter, type SpanRecord } from "../../src/objects/otlp-export";
import { createApp } from "../../src/worker/app";
import { waitFor } from "./helpers/cluster";

const TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736";

afterEach(() => {
  vi.restoreAllMocks();
});

function span(index: number): SpanRecord {
  return {
    name: `s${index}`,
    kind: "internal",
    traceId: TRACE_ID,
    spanId: (index + 1).toString(16).padStart(16, "0"),
    flags: "01",
    startMs: 1_000,
    endMs: 1_001,
    attributes: { index },
  };
}

function sentSpanNames(body: unknown): string[] {
  const text = new TextDecoder().decode(body as Uint8Array);
  const request = JSON.parse(text) as { resourceSpans: { scopeSpans: { spans: { name: string }[] }[] }[] };
  return request.resourceSpans.flatMap((resource) =>
    resource.scopeSpans.flatMap((scope) => scope.spans.map((one) => one.name)),
  );
}

describe("OTLP settings", () => {
  it("is off when DHA_OTLP_ENDPOINT is unset or blank", () => {
    expect(otlpSettingsFromEnv({})).toBeNull();
    expect(otlpSettingsFromEnv({ DHA_OTLP_ENDPOINT: "  " })).toBeNull();
  });

  it("posts to <endpoint>/v1/traces, or to the URL as given when it already ends so", () => {
    expect(otlpSettingsFromEnv({ DHA_OTLP_ENDPOINT: "https://otel.example.com:4318" })?.tracesUrl).toBe(
      "https://otel.example.com:4318/v1/traces",
    );
    expect(otlpSettingsFromEnv({ DHA_OTLP_ENDPOINT: "https://otel.example.com/otlp/" })?.tracesUrl).toBe(
      "https://otel.example.com/otlp/v1/traces",
    );
    expect(otlpSettingsFromEnv({ DHA_OTLP_ENDPOINT: "http://127.0.0.1:4318/v1/traces" })?.tracesUrl).toBe(
      "http://127.0.0.1:4318/v1/traces",
    );
  });

  it("reads DHA_OTLP_HEADERS as name=value pairs with percent-encoded values", () => {
    expect(
      otlpSettingsFromEnv({
        DHA_OTLP_ENDPOINT: "https://x.example",
        DHA_OTLP_HEADERS: "authorization=Basic%20YWJj, x-scope-orgid=tenant-1",
      })?.headers,
    ).toEqual({
      authorization: "Basic YWJj",
      "x-scope-orgid": "tenant-1",
    });
  });

  it("refuses what it cannot use, naming the variable", () => {
    for (const bad of [
      { DHA_OTLP_ENDPOINT: "otel.example.com:4318" },
      { DHA_OTLP_ENDPOINT: "ftp://otel.example.com" },
      { DHA_OTLP_ENDPOINT: "https://x.example", DHA_OTLP_HEADERS: "novalue" },
      { DHA_OTLP_ENDPOINT: "https://x.example", DHA_OTLP_HEADERS: "bad name=v" },
      { DHA_OTLP_ENDPOINT: "https://x.example", DHA_OTLP_HEADERS: "a=%E0%A4%A" },
    ]) {
      expect(() => otlpSettingsFromEnv(bad), JSON.stringify(bad)).toThrow(OtlpConfigError);
      expect(() => otlpSettingsFromEnv(bad)).toThrow(/DHA_OTLP_/);
    }
  });
});

describe("the worker", () => {
  it("makes no outbound request when DHA_OTLP_ENDPOINT is unset, and posts the request's span when it is set", async () => {
    // The collector's answer is stubbed here (test/e2e/otlp.e2e.test.ts exports to a real receiver).
    const fetchSpy = vi.spyOn(globalThis, "fetch").mockImplementation(async () => new Response("{}"));
    const app = createApp();
    const traceparent = `00-${TRACE_ID}-00f067aa0ba902b7-01`;
    const off = await app.request("/livez", { headers: { traceparent } }, { ...env });
    expect(off.status).toBe(200);
    // The flush would have started before the response returned: nothing was sent.
    expect(fetchSpy).not.toHaveBeenCalled();

    const on = await app.request(
      "/livez",
      { headers: { traceparent } },
      { ...env, DHA_OTLP_ENDPOINT: "http://127.0.0.1:9" },
    );
    expect(on.status).toBe(200);
    const [url, init] = await waitFor("the export request", async () => fetchSpy.mock.calls[0], {
      timeoutMs: 10_000,
      intervalMs: 20,
    });
    expect(String(url)).toBe("http://127.0.0.1:9/v1/traces");
    expect(init?.method).toBe("POST");
    expect(sentSpanNames(init?.body)).toEqual(["GET /livez"]);
  });
});

describe("the exporter's bounds", () => {
  const settings = { tracesUrl: "https://collector.example/v1/traces", headers: {} };

  it("keeps at most maxBufferedSpans (the oldest are dropped) and sends them in batches of maxBatchSpans, maxBatchesPerFlush per flush", async () => {
    const batches: string[][] = [];
    const exporter = new OtlpSpanExporter({
      settings,
      resource: {},
      limits: { maxBufferedSpans: 10, maxBatchSpans: 4, maxBatchesPerFlush: 2 },
      fetch: async (_url, init) => {
        batches.push(sentSpanNames(init?.body));
        return new Response("{}");
      },
    });
    for (let i = 0; i < 13; i++) {
      exporter.record(span(i));
    }
    expect(exporter.bufferedSpans).toBe(10);
    await exporter.flush();
    expect(batches).toEqual([
      ["s3", "s4", "s5", "s6"],
      ["s7", "s8", "s9", "s10"],
    ]);
    await exporter.flush();
    expect(batches[2]).toEqual(["s11", "s12"]);
    expect(exporter.stats()).toEqual({ exportedSpans: 10, droppedSpans: 3, failedSpans: 0, failedExports: 0 });
  });

  it("gives up on a collector that does not answer within the export timeout, drops the batch and pauses", async () => {
    let calls = 0;
    const exporter = new OtlpSpanExporter({
      settings,
      resource: {},
      limits: { exportTimeoutMs: 200, pauseAfterFailureMs: 60_000 },
      // A collector that accepts the request and never answers: only the exporter's own signal ends the wait.
      fetch: (_url, init) => {
        calls++;
        return new Promise<Response>((_resolve, reject) =>
          init?.signal?.addEventListener("abort", () => reject(init.signal?.reason as Error)),
        );
      },
    });
    vi.spyOn(console, "warn").mockImplementation(() => undefined);
    exporter.record(span(1));
    const startedAt = Date.now();
    await exporter.flush();
    expect(Date.now() - startedAt).toBeLessThan(5_000);
    expect(exporter.stats()).toMatchObject({ failedSpans: 1, failedExports: 1, exportedSpans: 0 });
    // Paused: later spans are buffered (bounded), not sent, and no retry storm follows.
    exporter.record(span(2));
    await exporter.flush();
    expect(calls).toBe(1);
    expect(exporter.bufferedSpans).toBe(1);
  });

  it("flushIfDue sends only once enough spans wait or the oldest waited long enough", async () => {
    let nowMs = 10_000;
    let calls = 0;
    const exporter = new OtlpSpanExporter({
      settings,
      resource: {},
      now: () => nowMs,
      fetch: async () => (calls++, new Response("{}")),
    });
    const due = { minSpans: 3, maxAgeMs: 1_000 };
    exporter.record({ ...span(1), endMs: nowMs });
    exporter.record({ ...span(2), endMs: nowMs });
    await exporter.flushIfDue(due);
    expect(calls).toBe(0);
    exporter.record({ ...span(3), endMs: nowMs });
    await exporter.flushIfDue(due);
    expect(calls).toBe(1);
    exporter.record({ ...span(4), endMs: nowMs });
    nowMs += 999;
    await exporter.flushIfDue(due);
    expect(calls).toBe(1);
    nowMs += 1;
    await exporter.flushIfDue(due);
    expect(calls).toBe(2);
    expect(exporter.stats().exportedSpans).toBe(4);
  });

  it("counts a collector's error answer as a failed export", async () => {
    const exporter = new OtlpSpanExporter({
      settings,
      resource: {},
      fetch: async () => new Response("no", { status: 503 }),
    });
    vi.spyOn(console, "warn").mockImplementation(() => undefined);
    exporter.record(span(1));
    await exporter.flush();
    expect(exporter.stats()).toMatchObject({ failedSpans: 1, failedExports: 1, exportedSpans: 0 });
  });
});
