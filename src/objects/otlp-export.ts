// OTLP/HTTP export of spans, shared by the worker and the node objects; off unless DHA_OTLP_ENDPOINT is set.
// The JSON payload is built by @opentelemetry/otlp-transformer (the OpenTelemetry project's own OTLP encoder). The
// sending is ours: the project's fetch transport sets RequestInit.mode (which the Workers runtime refuses) and
// retries a batch up to five times; here a batch is sent once within a timeout and dropped (counted) if that fails,
// after which export pauses for a while, so an unreachable collector costs one bounded request per pause at most.
import { SpanKind, SpanStatusCode, type HrTime } from "@opentelemetry/api";
import { JsonTraceSerializer } from "@opentelemetry/otlp-transformer";
import { resourceFromAttributes, type Resource } from "@opentelemetry/resources";

/** The variables that configure export (wrangler.toml [vars] and secrets). */
export interface OtlpEnv {
  /** The collector's OTLP/HTTP base URL (spans go to <url>/v1/traces), or a URL that already ends in /v1/traces. */
  readonly DHA_OTLP_ENDPOINT?: string;
  /** Secret, optional: headers sent with every export, as OTEL_EXPORTER_OTLP_HEADERS writes them: k1=v1,k2=v2. */
  readonly DHA_OTLP_HEADERS?: string;
}

export interface OtlpSettings {
  readonly tracesUrl: string;
  readonly headers: Readonly<Record<string, string>>;
}

export class OtlpConfigError extends Error {
  override readonly name = "OtlpConfigError";
}

const TRACES_PATH = "/v1/traces";
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const MAX_HEADERS = 32;

/** The export settings, or null when DHA_OTLP_ENDPOINT is unset or empty; throws OtlpConfigError naming a bad value. */
export function otlpSettingsFromEnv(env: OtlpEnv): OtlpSettings | null {
  const endpoint = env.DHA_OTLP_ENDPOINT?.trim() ?? "";
  if (endpoint === "") {
    return null;
  }
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    throw new OtlpConfigError(`DHA_OTLP_ENDPOINT is not a URL: ${JSON.stringify(endpoint)}`);
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw new OtlpConfigError(`DHA_OTLP_ENDPOINT must be an http or https URL, not ${url.protocol}`);
  }
  if (!url.pathname.endsWith(TRACES_PATH)) {
    url.pathname = `${url.pathname.replace(/\/+$/, "")}${TRACES_PATH}`;
  }
  return { tracesUrl: url.href, headers: parseHeaders(env.DHA_OTLP_HEADERS ?? "") };
}

function parseHeaders(text: string): Record<string, string> {
  const headers: Record<string, string> = {};
  const pairs = text.split(",").filter((pair) => pair.trim() !== "");
  if (pairs.length > MAX_HEADERS) {
    throw new OtlpConfigError(`DHA_OTLP_HEADERS lists ${pairs.length} headers; at most ${MAX_HEADERS}`);
  }
  for (const pair of pairs) {
    const equals = pair.indexOf("=");
    const name = (equals < 0 ? pair : pair.slice(0, equals)).trim();
    if (equals < 0 || !HEADER_NAME.test(name)) {
      throw new OtlpConfigError("DHA_OTLP_HEADERS must read name=value,name=value (values may be percent-encoded)");
    }
    let value: string;
    try {
      value = decodeURIComponent(pair.slice(equals + 1).trim());
    } catch {
      throw new OtlpConfigError(`DHA_OTLP_HEADERS: the value of ${name} is not valid percent-encoding`);
    }
    headers[name] = value;
  }
  return headers;
}

// -----------------------------------------------------------------------------------------------------------------
// Spans

export type SpanAttributes = Record<string, string | number | boolean>;

/** One finished span, as the code that timed it describes it. Ids are lowercase hex (trace.ts). */
export interface SpanRecord {
  readonly name: string;
  readonly kind: "server" | "client" | "internal";
  readonly traceId: string;
  readonly spanId: string;
  /** The caller's span; absent for a root span. */
  readonly parentSpanId?: string;
  /** Whether the parent span came from another process (an incoming traceparent). */
  readonly parentIsRemote?: boolean;
  /** W3C trace flags, 2 hex digits. */
  readonly flags: string;
  readonly startMs: number;
  readonly endMs: number;
  readonly attributes: SpanAttributes;
  /** Set when the operation failed: the span's status is ERROR with this message. */
  readonly error?: string;
}

export interface OtlpExporterLimits {
  /** Spans kept while waiting to be sent; the oldest are dropped beyond it. */
  readonly maxBufferedSpans: number;
  /** Spans per export request. */
  readonly maxBatchSpans: number;
  /** One export request may take this long; then it is aborted and its batch dropped. */
  readonly exportTimeoutMs: number;
  /** After a failed export nothing is sent for this long (spans recorded meanwhile are buffered, bounded). */
  readonly pauseAfterFailureMs: number;
  /** A flush sends at most this many batches before it returns (the rest waits for the next flush). */
  readonly maxBatchesPerFlush: number;
}

export const DEFAULT_OTLP_LIMITS: OtlpExporterLimits = {
  maxBufferedSpans: 1024,
  maxBatchSpans: 256,
  exportTimeoutMs: 3_000,
  pauseAfterFailureMs: 10_000,
  maxBatchesPerFlush: 4,
};

export interface OtlpExporterOptions {
  readonly settings: OtlpSettings;
  /** Resource attributes: who exports (service.name is durable-ha; dha.component says worker or node). */
  readonly resource: SpanAttributes;
  readonly limits?: Partial<OtlpExporterLimits>;
  readonly now?: () => number;
  readonly fetch?: typeof fetch;
}

export interface OtlpExporterStats {
  readonly exportedSpans: number;
  /** Spans dropped because the buffer was full. */
  readonly droppedSpans: number;
  /** Spans in batches whose export failed (not retried). */
  readonly failedSpans: number;
  readonly failedExports: number;
}

const SCOPE = { name: "durable-ha", version: "0.1.0" } as const;

/**
 * Buffers spans (bounded) and sends them in batches. flush() never rejects and runs one send loop at a time: a
 * flush asked for while one runs returns that one, which takes the new spans along before it ends.
 */
export class OtlpSpanExporter {
  private readonly limits: OtlpExporterLimits;
  private readonly resource: Resource;
  private readonly now: () => number;
  private readonly send: typeof fetch;
  private buffer: SpanRecord[] = [];
  private running: Promise<void> | null = null;
  private pausedUntilMs = 0;
  private counts = { exportedSpans: 0, droppedSpans: 0, failedSpans: 0, failedExports: 0 };

  constructor(private readonly options: OtlpExporterOptions) {
    this.limits = { ...DEFAULT_OTLP_LIMITS, ...options.limits };
    if (
      this.limits.maxBatchSpans < 1 ||
      this.limits.maxBufferedSpans < this.limits.maxBatchSpans ||
      this.limits.exportTimeoutMs < 1
    ) {
      throw new Error(
        "OTLP exporter limits: need 1 <= maxBatchSpans <= maxBufferedSpans and a positive export timeout",
      );
    }
    this.resource = resourceFromAttributes({ "service.name": "durable-ha", ...options.resource });
    this.now = options.now ?? Date.now;
    // Looked up at each call, not captured: tests and the runtime may replace the global.
    this.send = options.fetch ?? ((input, init) => fetch(input, init));
  }

  record(span: SpanRecord): void {
    if (this.buffer.length >= this.limits.maxBufferedSpans) {
      this.buffer.shift();
      this.counts.droppedSpans++;
    }
    this.buffer.push(span);
  }

  get bufferedSpans(): number {
    return this.buffer.length;
  }

  stats(): OtlpExporterStats {
    return { ...this.counts };
  }

  /** Sends what is buffered (bounded: maxBatchesPerFlush batches, each within the export timeout); never rejects. */
  flush(): Promise<void> {
    if (this.running !== null) {
      return this.running;
    }
    if (this.buffer.length === 0 || this.now() < this.pausedUntilMs) {
      return Promise.resolve();
    }
    this.running = this.drain();
    return this.running;
  }

  /**
   * Flushes when at least `minSpans` wait or the oldest ended `maxAgeMs` ago; otherwise leaves them for a later
   * flush, so that a busy node sends batches rather than one request per call.
   */
  flushIfDue(options: { readonly minSpans: number; readonly maxAgeMs: number }): Promise<void> {
    const oldest = this.buffer[0];
    if (oldest === undefined) {
      return Promise.resolve();
    }
    return this.buffer.length >= options.minSpans || this.now() - oldest.endMs >= options.maxAgeMs
      ? this.flush()
      : Promise.resolve();
  }

  private async drain(): Promise<void> {
    let batches = 0;
    try {
      while (this.buffer.length > 0 && batches < this.limits.maxBatchesPerFlush && this.now() >= this.pausedUntilMs) {
        batches++;
        const batch = this.buffer.splice(0, this.limits.maxBatchSpans);
        await this.exportBatch(batch);
      }
    } finally {
      // Cleared in the same turn as the last check of the buffer: a span recorded after it starts a new flush.
      this.running = null;
    }
  }

  private async exportBatch(batch: readonly SpanRecord[]): Promise<void> {
    try {
      const body = JsonTraceSerializer.serializeRequest(batch.map((span) => this.readable(span)));
      if (body === undefined) {
        throw new Error("the OTLP encoder returned nothing");
      }
      const response = await this.send(this.options.settings.tracesUrl, {
        method: "POST",
        headers: { ...this.options.settings.headers, "Content-Type": "application/json" },
        body,
        signal: AbortSignal.timeout(this.limits.exportTimeoutMs),
      });
      // The body is read (bounded by the same timeout) so that the connection can be reused.
      await response.arrayBuffer();
      if (!response.ok) {
        throw new Error(`the collector answered ${response.status}`);
      }
      this.counts.exportedSpans += batch.length;
    } catch (err) {
      this.counts.failedSpans += batch.length;
      this.counts.failedExports++;
      this.pausedUntilMs = this.now() + this.limits.pauseAfterFailureMs;
      if (this.counts.failedExports === 1 || this.counts.failedExports % 100 === 0) {
        console.warn(
          JSON.stringify({
            level: "warn",
            event: "otlpExportFailed",
            url: this.options.settings.tracesUrl,
            spans: batch.length,
            failedExports: this.counts.failedExports,
            error: err instanceof Error ? err.message : String(err),
          }),
        );
      }
    }
  }

  /** The SDK's ReadableSpan shape, which the encoder reads. */
  private readable(span: SpanRecord): Parameters<typeof JsonTraceSerializer.serializeRequest>[0][number] {
    const traceFlags = Number.parseInt(span.flags, 16) & 0xff;
    const startTime = hrTime(span.startMs);
    const endTime = hrTime(Math.max(span.endMs, span.startMs));
    return {
      name: span.name,
      kind: span.kind === "server" ? SpanKind.SERVER : span.kind === "client" ? SpanKind.CLIENT : SpanKind.INTERNAL,
      spanContext: () => ({ traceId: span.traceId, spanId: span.spanId, traceFlags }),
      ...(span.parentSpanId === undefined
        ? {}
        : {
            parentSpanContext: {
              traceId: span.traceId,
              spanId: span.parentSpanId,
              traceFlags,
              isRemote: span.parentIsRemote === true,
            },
          }),
      startTime,
      endTime,
      duration: hrTime(Math.max(0, span.endMs - span.startMs)),
      status:
        span.error === undefined ? { code: SpanStatusCode.UNSET } : { code: SpanStatusCode.ERROR, message: span.error },
      attributes: span.attributes,
      links: [],
      events: [],
      ended: true,
      resource: this.resource,
      instrumentationScope: SCOPE,
      droppedAttributesCount: 0,
      droppedEventsCount: 0,
      droppedLinksCount: 0,
    };
  }
}

function hrTime(ms: number): HrTime {
  const seconds = Math.floor(ms / 1000);
  return [seconds, Math.round((ms - seconds * 1000) * 1_000_000)];
}

/**
 * The exporter for `env`, or null when export is off. A bad setting is reported once (a warn line) and turns export
 * off rather than failing requests: tracing must never take the database down.
 */
export function otlpExporterFromEnv(
  env: OtlpEnv,
  resource: SpanAttributes,
  limits?: Partial<OtlpExporterLimits>,
): OtlpSpanExporter | null {
  let settings: OtlpSettings | null;
  try {
    settings = otlpSettingsFromEnv(env);
  } catch (err) {
    if (!(err instanceof OtlpConfigError)) {
      throw err;
    }
    console.warn(JSON.stringify({ level: "warn", event: "otlpConfigInvalid", error: err.message }));
    return null;
  }
  return settings === null
    ? null
    : new OtlpSpanExporter({ settings, resource, ...(limits === undefined ? {} : { limits }) });
}
