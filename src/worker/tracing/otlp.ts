// OTLP span export from the worker (on only when DHA_OTLP_ENDPOINT is set): one SERVER span per request, whose id is
// the span the trace-context middleware runs the request in (the traceparent on the response), and one CLIENT span
// per call to a node, whose id is the traceparent that call carries, so the node's own spans are its children.
// Spans are sent after the response, in ctx.waitUntil, by the bounded exporter of src/objects/otlp-export.ts.
import type { MiddlewareHandler } from "hono";
import { routePath } from "hono/route";
import {
  childSpan,
  currentTrace,
  otlpExporterFromEnv,
  parseTraceparent,
  runWithTrace,
  type ClusterNodeRpc,
  type OtlpEnv,
  type OtlpSpanExporter,
  type SpanAttributes,
  type TraceContext,
} from "../../objects/api";
import type { NodeDirectory } from "../directory";
import { RAFT_INDEX_HEADER, NODE_HEADER } from "../http/params";
import { ERROR_CODE_HEADER } from "../http/errors";
import { TRACEPARENT_HEADER } from "../metrics/trace-context";

/** Per request: how many node calls it made so far (the attempt number of the next one). */
const nodeCallsOf = new WeakMap<TraceContext, { calls: number }>();
const exporters = new WeakMap<object, OtlpSpanExporter | null>();

/** The isolate's exporter for this environment (one per env object), or null when export is off. */
export function workerExporter(env: unknown): OtlpSpanExporter | null {
  if (typeof env !== "object" || env === null) {
    return null;
  }
  const cached = exporters.get(env);
  if (cached !== undefined) {
    return cached;
  }
  const exporter = otlpExporterFromEnv(env as OtlpEnv, { "dha.component": "worker", ...clusterAttribute(env) });
  exporters.set(env, exporter);
  return exporter;
}

function clusterAttribute(env: object): SpanAttributes {
  const name = (env as { CLUSTER_NAME?: unknown }).CLUSTER_NAME;
  return typeof name === "string" ? { "dha.cluster": name } : {};
}

/**
 * Records the request's span and sends the isolate's buffered spans after the response. Mount right after
 * traceContext() (it reads the span that middleware runs the request in).
 */
export function otlpRequestSpans(): MiddlewareHandler {
  return async (c, next) => {
    const exporter = workerExporter(c.env);
    const span = currentTrace();
    if (exporter === null || span === undefined) {
      return next();
    }
    const startMs = Date.now();
    nodeCallsOf.set(span, { calls: 0 });
    let thrown: unknown = null;
    try {
      await next();
    } catch (err) {
      thrown = err;
      throw err;
    } finally {
      const parent = parseTraceparent(c.req.header(TRACEPARENT_HEADER));
      const status = thrown === null ? c.res.status : 500;
      const route = routePath(c, -1);
      const level = c.req.query("level");
      const errorCode = thrown === null ? c.res.headers.get(ERROR_CODE_HEADER) : "THROWN";
      const servedBy = thrown === null ? c.res.headers.get(NODE_HEADER) : null;
      const raftIndex = thrown === null ? Number(c.res.headers.get(RAFT_INDEX_HEADER) ?? Number.NaN) : Number.NaN;
      const clusterName = (c.env as { CLUSTER_NAME?: unknown } | undefined)?.CLUSTER_NAME;
      exporter.record({
        name: route === "" || route === "/*" || route === "*" ? c.req.method : `${c.req.method} ${route}`,
        kind: "server",
        traceId: span.traceId,
        spanId: span.spanId,
        ...(parent === null ? {} : { parentSpanId: parent.spanId, parentIsRemote: true }),
        flags: span.flags,
        startMs,
        endMs: Date.now(),
        attributes: {
          "http.request.method": c.req.method,
          "url.path": new URL(c.req.url).pathname,
          "http.response.status_code": status,
          ...(route === "" || route.includes("*") ? {} : { "http.route": route }),
          ...(typeof clusterName === "string" ? { "db.namespace": clusterName } : {}),
          // Only what looks like a level name: an attribute never carries arbitrary client input.
          ...(level !== undefined && /^[a-z]{1,16}$/.test(level) ? { "dha.level": level } : {}),
          ...(errorCode === null ? {} : { "error.type": errorCode }),
          ...(servedBy === null ? {} : { "dha.node": servedBy }),
          ...(Number.isSafeInteger(raftIndex) ? { "dha.raft_index": raftIndex } : {}),
          "dha.node_calls": nodeCallsOf.get(span)?.calls ?? 0,
        },
        // Server spans: only a 5xx is the server's failure (OpenTelemetry's HTTP conventions).
        ...(status >= 500 ? { error: errorCode ?? `HTTP ${status}` } : {}),
      });
      nodeCallsOf.delete(span);
      const flushed = exporter.flush();
      try {
        c.executionCtx.waitUntil(flushed);
      } catch {
        // No execution context (the app called directly, as some tests do): the flush runs on its own.
      }
    }
  };
}

/**
 * Wraps the node directory (outside tracedDirectory) so that every node call runs in its own CLIENT span: the
 * traceparent the call carries names that span, and the span is recorded with the node, the method, the attempt
 * number within the request and the outcome.
 */
export function spannedDirectory(directory: NodeDirectory, exporter: OtlpSpanExporter): NodeDirectory {
  return {
    config: directory.config,
    node: (name) => spannedNode(directory.node(name), name, exporter),
  };
}

function spannedNode(node: ClusterNodeRpc, name: string, exporter: OtlpSpanExporter): ClusterNodeRpc {
  return new Proxy(node, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== "function" || typeof property !== "string") {
        return value;
      }
      return (...args: unknown[]) => {
        const parent = currentTrace();
        if (parent === undefined) {
          return Reflect.apply(value as (...a: unknown[]) => unknown, target, args);
        }
        const counter = nodeCallsOf.get(parent);
        const attempt = counter === undefined ? undefined : ++counter.calls;
        const span = childSpan(parent);
        const startMs = Date.now();
        const finish = (outcome: string, error?: string) =>
          exporter.record({
            name: `ClusterNode.${property}`,
            kind: "client",
            traceId: span.traceId,
            spanId: span.spanId,
            parentSpanId: parent.spanId,
            flags: span.flags,
            startMs,
            endMs: Date.now(),
            attributes: {
              "rpc.system": "cloudflare_durable_objects",
              "rpc.method": property,
              "dha.node": name,
              "dha.outcome": outcome,
              ...(attempt === undefined ? {} : { "dha.attempt": attempt }),
            },
            ...(error === undefined ? {} : { error }),
          });
        // Reflect.apply, not value.call: on an RPC stub every property, `call` included, is a remote method.
        const result = runWithTrace(span, () => Reflect.apply(value as (...a: unknown[]) => unknown, target, args));
        return Promise.resolve(result).then(
          (answer: unknown) => {
            const failed = typeof answer === "object" && answer !== null && (answer as { ok?: unknown }).ok === false;
            const code = failed ? String((answer as { error?: { code?: unknown } }).error?.code ?? "ERROR") : "ok";
            // A refusal (NOT_LEADER, ...) is an answer, not a failed call: the router acts on it.
            finish(code);
            return answer;
          },
          (err: unknown) => {
            finish("thrown", err instanceof Error ? err.message : String(err));
            throw err;
          },
        );
      };
    },
  });
}
