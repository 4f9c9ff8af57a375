// The exposition formats (0.0.4 and OpenMetrics), content negotiation, and the node counters, in isolation.
import { describe, expect, it } from "vitest";
import { envelopeKind, LATENCY_BUCKETS_SECONDS, NodeCounters } from "../../src/objects/metrics-counters";
import { PROTOCOL_VERSION } from "../../src/objects/api";
import { runWithTrace } from "../../src/objects/trace";
import type { RaftEnvelope } from "../../src/objects/transport/index";
import { negotiateFormat, renderMetrics, type MetricFamily } from "../../src/worker/metrics/exposition";

const families: MetricFamily[] = [
  {
    name: "demo_requests_total",
    type: "counter",
    help: "Requests.\nSecond line with a \\ backslash.",
    samples: [{ labels: { cluster: "c", node: 'n"1\\\n' }, value: 3 }],
  },
  {
    name: "demo_up",
    type: "gauge",
    help: "Up.",
    samples: [
      { labels: { node: "n1" }, value: 1 },
      { labels: { node: "n2" }, value: Number.NaN },
    ],
  },
  { name: "demo_empty", type: "gauge", help: "Never rendered: no samples.", samples: [] },
  {
    name: "demo_duration_seconds",
    type: "histogram",
    unit: "seconds",
    help: "Durations.",
    samples: [
      {
        labels: { node: "n1" },
        buckets: [
          { le: 0.1, count: 1 },
          { le: 1, count: 2 },
        ],
        sum: 1.25,
        count: 3,
      },
    ],
  },
];

describe("text exposition format 0.0.4", () => {
  it("renders HELP, TYPE, escaped labels, special values and histograms", () => {
    expect(renderMetrics(families, "prometheus")).toBe(
      [
        "# HELP demo_requests_total Requests.\\nSecond line with a \\\\ backslash.",
        "# TYPE demo_requests_total counter",
        'demo_requests_total{cluster="c",node="n\\"1\\\\\\n"} 3',
        "# HELP demo_up Up.",
        "# TYPE demo_up gauge",
        'demo_up{node="n1"} 1',
        'demo_up{node="n2"} NaN',
        "# HELP demo_duration_seconds Durations.",
        "# TYPE demo_duration_seconds histogram",
        'demo_duration_seconds_bucket{node="n1",le="0.1"} 1',
        'demo_duration_seconds_bucket{node="n1",le="1"} 2',
        'demo_duration_seconds_bucket{node="n1",le="+Inf"} 3',
        'demo_duration_seconds_sum{node="n1"} 1.25',
        'demo_duration_seconds_count{node="n1"} 3',
        "",
      ].join("\n"),
    );
  });

  it("refuses malformed families instead of rendering output a scraper would reject", () => {
    const counterWithoutTotal: MetricFamily = { name: "demo_requests", type: "counter", help: "x", samples: [] };
    const gaugeWithTotal: MetricFamily = { name: "demo_things_total", type: "gauge", help: "x", samples: [] };
    const duplicateSeries: MetricFamily = {
      name: "demo_up",
      type: "gauge",
      help: "x",
      samples: [
        { labels: { a: "1" }, value: 1 },
        { labels: { a: "1" }, value: 2 },
      ],
    };
    const badLabel: MetricFamily = {
      name: "demo_up",
      type: "gauge",
      help: "x",
      samples: [{ labels: { "bad-label": "1" }, value: 1 }],
    };
    const shrinkingBuckets: MetricFamily = {
      name: "demo_seconds",
      type: "histogram",
      help: "x",
      samples: [
        {
          labels: {},
          buckets: [
            { le: 1, count: 2 },
            { le: 2, count: 1 },
          ],
          sum: 0,
          count: 2,
        },
      ],
    };
    const wrongUnit: MetricFamily = { name: "demo_up", type: "gauge", unit: "seconds", help: "x", samples: [] };
    for (const family of [
      counterWithoutTotal,
      gaugeWithTotal,
      duplicateSeries,
      badLabel,
      shrinkingBuckets,
      wrongUnit,
    ]) {
      expect(() => renderMetrics([family], "prometheus"), family.name).toThrow();
    }
    expect(() => renderMetrics([families[1]!, families[1]!], "prometheus")).toThrow(/twice/);
  });
});

describe("OpenMetrics", () => {
  it("names counter families without _total, announces units and ends with # EOF", () => {
    const text = renderMetrics(families, "openmetrics");
    expect(text).toContain("# TYPE demo_requests counter\n");
    expect(text).toContain("# HELP demo_requests Requests.");
    expect(text).toContain('\ndemo_requests_total{cluster="c"');
    expect(text).toContain("# TYPE demo_duration_seconds histogram\n# UNIT demo_duration_seconds seconds\n");
    expect(text.endsWith("# EOF\n")).toBe(true);
    expect(renderMetrics(families, "prometheus")).not.toContain("# EOF");
  });

  it("is chosen only when the Accept header ranks it at least as high as text/plain", () => {
    const prometheusDefault =
      "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    expect(negotiateFormat(prometheusDefault)).toBe("openmetrics");
    expect(negotiateFormat("application/openmetrics-text")).toBe("openmetrics");
    expect(negotiateFormat("text/plain;version=0.0.4;q=1,application/openmetrics-text;q=0.5")).toBe("prometheus");
    expect(negotiateFormat("application/openmetrics-text;version=2.0.0")).toBe("prometheus");
    expect(negotiateFormat("application/openmetrics-text;q=0")).toBe("prometheus");
    expect(negotiateFormat("*/*")).toBe("prometheus");
    expect(negotiateFormat(undefined)).toBe("prometheus");
    expect(negotiateFormat("")).toBe("prometheus");
    expect(negotiateFormat("application/json")).toBe("prometheus");
  });
});

describe("node counters", () => {
  function envelope(types: ("append" | "heartbeat" | "vote" | "appendResponse")[], chunk = false): RaftEnvelope {
    const messages = types.map(
      (type) =>
        ({
          type,
          from: "n1",
          to: "n2",
          term: 1,
          ...(type === "append" ? { entries: [] } : {}),
        }) as unknown as RaftEnvelope["messages"][number],
    );
    return {
      protocolVersion: PROTOCOL_VERSION,
      cluster: "c",
      from: "n1",
      to: "n2",
      messages,
      ...(chunk
        ? { snapshotChunk: { snapshotIndex: 5, snapshotTerm: 1, seq: 0, last: true, data: "x".repeat(10) } }
        : {}),
    };
  }

  it("counts a leader change only when a different leader becomes known", () => {
    const counters = new NodeCounters(() => 0);
    for (const leader of ["n1", "n1", null, "n1", "n2", null, null, "n3"]) {
      counters.observeLeader(leader);
    }
    expect(counters.snapshot().leaderChangesSeen).toBe(3);
  });

  it("counts pending and failed writes on a leader, and times them", async () => {
    let now = 1_000;
    const counters = new NodeCounters(() => now);
    type Answer = { ok: boolean; error?: { code: string } };
    let release: (value: Answer) => void = () => {};
    const running = counters.trackWrite(
      { asLeader: true },
      () => new Promise<Answer>((resolve) => (release = resolve)),
    );
    expect(counters.snapshot().proposalsPending).toBe(1);
    now += 30;
    release({ ok: false, error: { code: "TIMEOUT" } });
    await running;
    await counters.trackWrite({ asLeader: true }, async () => ({ ok: false, error: { code: "INVALID_REQUEST" } }));
    await counters.trackWrite({ asLeader: false }, async () => ({ ok: false, error: { code: "NOT_LEADER" } }));
    await counters.trackWrite({ asLeader: true }, async () => ({ ok: true }));
    const snapshot = counters.snapshot();
    expect(snapshot.proposalsPending).toBe(0);
    expect(snapshot.proposalsFailed).toEqual([{ code: "TIMEOUT", count: 1 }]);
    expect(snapshot.writeDuration.count).toBe(4);
    expect(snapshot.writeDuration.sumSeconds).toBeCloseTo(0.03);
    // 30 ms falls in the 0.05 bucket and above; the three instant writes in every bucket.
    const bucket25ms = LATENCY_BUCKETS_SECONDS.indexOf(0.025);
    expect(snapshot.writeDuration.cumulativeCounts[bucket25ms]).toBe(3);
    expect(snapshot.writeDuration.cumulativeCounts[bucket25ms + 1]).toBe(4);
  });

  it("times reads by level, counting a refused read too", async () => {
    const counters = new NodeCounters(() => 0);
    await counters.trackRead("linearizable", async () => ({ ok: true }));
    await expect(counters.trackRead("weak", async () => Promise.reject(new Error("gone")))).rejects.toThrow("gone");
    const levels = Object.fromEntries(
      counters.snapshot().readDuration.map((entry) => [entry.level, entry.duration.count]),
    );
    expect(levels).toEqual({ linearizable: 1, weak: 1 });
  });

  it("counts calls, retries and failures per peer and kind through an instrumented stub", async () => {
    const counters = new NodeCounters(() => 0);
    const answers: unknown[] = [{ ok: true }, { ok: false, error: { code: "UNAVAILABLE" } }, "throw", { ok: true }];
    const stub = counters.instrumentPeer("n2", {
      receive: async () => {
        const next = answers.shift();
        if (next === "throw") {
          throw new Error("network");
        }
        return next;
      },
      start: async () => ({ ok: true }),
    });
    const append = envelope(["heartbeat", "append"]);
    await stub.receive(append);
    await stub.receive(append); // the same envelope again: a retry, refused by the peer
    await expect(stub.receive(envelope(["vote"]))).rejects.toThrow("network");
    await stub.receive(envelope(["appendResponse"], true));
    const rpc = Object.fromEntries(counters.snapshot().rpc.map((series) => [`${series.peer}/${series.kind}`, series]));
    expect(rpc["n2/append"]).toMatchObject({ calls: 2, retries: 1, failures: 1 });
    expect(rpc["n2/vote"]).toMatchObject({ calls: 1, retries: 0, failures: 1 });
    expect(rpc["n2/snapshot"]).toMatchObject({ calls: 1, failures: 0 });
    expect(rpc["n2/append"]!.duration.count).toBe(2);
    expect(counters.snapshot().snapshotSentBytes).toBe(10);
  });

  it("passes the running trace on with appends that carry entries, and only with those", async () => {
    const counters = new NodeCounters(() => 0);
    const received: (string | undefined)[] = [];
    const stub = counters.instrumentPeer("n2", {
      receive: async (_envelope, traceparent) => {
        received.push(traceparent);
        return { ok: true };
      },
      start: async () => ({ ok: true }),
    });
    const withEntries = envelope(["append"]);
    const entries = [{ index: 7, term: 1, kind: "normal", data: "{}" }];
    const appendWithEntries = {
      ...withEntries,
      messages: withEntries.messages.map((message) => ({ ...message, entries })),
    } as RaftEnvelope;
    const trace = { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", flags: "01" };
    await runWithTrace(trace, async () => {
      await stub.receive(appendWithEntries);
      await stub.receive(envelope(["heartbeat"]));
      await stub.receive(envelope(["append"]));
    });
    await stub.receive(appendWithEntries);
    expect(received).toEqual([`00-${trace.traceId}-${trace.spanId}-01`, undefined, undefined, undefined]);
  });

  it("ranks envelope kinds: snapshot, append, vote, ..., response", () => {
    expect(envelopeKind(envelope(["appendResponse", "heartbeat"]))).toBe("heartbeat");
    expect(envelopeKind(envelope(["heartbeat", "vote"]))).toBe("vote");
    expect(envelopeKind(envelope(["vote", "append"]))).toBe("append");
    expect(envelopeKind(envelope(["append"], true))).toBe("snapshot");
    expect(envelopeKind(envelope(["appendResponse"]))).toBe("response");
  });
});
