// The node's own spans for OTLP export (only when DHA_OTLP_ENDPOINT is set): one SERVER span per traced call from the
// worker (its id is the span the node's log lines carry; its parent is the worker's CLIENT span for the call) and one
// per traced append a follower receives (its parent is the leader's span that sent it). They are buffered in the
// object (bounded) and sent on the next alarm, or after a call when enough of them wait (FLUSH_AFTER_CALL).
import type { RaftEnvelope } from "./transport/index";
import type { NodeAddress } from "./cluster-types";
import type { OtlpSpanExporter, SpanAttributes } from "./otlp-export";
import { currentTrace, parseTraceparent, type TraceContext } from "./trace";

/**
 * After a call the buffer is sent only when it holds a good part of a batch or its oldest span waited a second; the
 * alarm (every heartbeat on a live node) sends the rest, so a busy node sends batches, not one request per call.
 */
const FLUSH_AFTER_CALL = { minSpans: 64, maxAgeMs: 1_000 } as const;

/** What the span of a node call says about the node once the call is over. */
export interface NodeSpanFacts {
  readonly node: string;
  readonly role: () => string;
  readonly term: () => number;
}

/** Records a SERVER span of this node, ending now, whose parent is a span of another process (worker or leader). */
function recordServerSpan(
  exporter: OtlpSpanExporter,
  fields: {
    readonly name: string;
    readonly span: TraceContext;
    readonly parent: { readonly spanId: string };
    readonly startMs: number;
    readonly attributes: SpanAttributes;
    readonly error: string | undefined;
  },
): void {
  exporter.record({
    name: fields.name,
    kind: "server",
    traceId: fields.span.traceId,
    spanId: fields.span.spanId,
    parentSpanId: fields.parent.spanId,
    parentIsRemote: true,
    flags: fields.span.flags,
    startMs: fields.startMs,
    endMs: Date.now(),
    attributes: fields.attributes,
    ...(fields.error === undefined ? {} : { error: fields.error }),
  });
}

/** The RPC method a worker call is, told by the fields only that request carries (api.ts). */
function operationOf(address: NodeAddress): string {
  if ("request" in address) {
    return "execute";
  }
  if ("statements" in address) {
    return "query";
  }
  if ("member" in address) {
    return "changeMember";
  }
  return "call";
}

/**
 * Wraps the body of a worker call (inside tracedBody, so the current trace is the node's span for it) so that the
 * call is recorded as a span and the buffer is flushed afterwards. Unchanged when export is off or the call is untraced.
 */
export function spannedNodeCall<A, T>(
  exporter: OtlpSpanExporter | null,
  address: NodeAddress,
  facts: NodeSpanFacts,
  body: (arg: A) => Promise<T>,
): (arg: A) => Promise<T> {
  const parent = parseTraceparent(address.traceparent);
  if (exporter === null || parent === null) {
    return body;
  }
  return async (arg) => {
    const span = currentTrace();
    const startMs = Date.now();
    let outcome = "ok";
    let error: string | undefined;
    let raftIndex: number | undefined;
    try {
      const value = await body(arg);
      const index = (value as { raftIndex?: unknown } | null)?.raftIndex;
      if (typeof index === "number") {
        raftIndex = index;
      }
      return value;
    } catch (err) {
      const code = (err as { error?: { code?: unknown } } | null)?.error?.code;
      outcome = typeof code === "string" ? code : "thrown";
      error = err instanceof Error ? err.message : String(err);
      throw err;
    } finally {
      if (span !== undefined) {
        const operation = operationOf(address);
        const attributes: SpanAttributes = {
          "dha.node": facts.node,
          "dha.operation": operation,
          "dha.role": facts.role(),
          "dha.term": facts.term(),
          "dha.outcome": outcome,
        };
        if (raftIndex !== undefined) {
          attributes["dha.raft_index"] = raftIndex;
        }
        if ("level" in address && typeof address.level === "string") {
          attributes["dha.level"] = address.level;
        }
        recordServerSpan(exporter, {
          name: `ClusterNode.${operation}`,
          span,
          parent,
          startMs,
          attributes,
          // A refusal the caller acts on (NOT_LEADER, STALE, ...) is not the node's failure; internal errors are.
          error: outcome === "INTERNAL" || outcome === "thrown" ? (error ?? outcome) : undefined,
        });
      }
      void exporter.flushIfDue(FLUSH_AFTER_CALL);
    }
  };
}

/**
 * Wraps a follower's handling of a traced envelope (inside runWithTrace of its span) so that each append carrying
 * entries is recorded as a span, child of the leader's span that sent it.
 */
export function spannedAppend(
  exporter: OtlpSpanExporter | null,
  options: {
    readonly traceparent: unknown;
    readonly envelope: RaftEnvelope;
    readonly node: string;
    readonly term: () => number;
  },
  handle: () => void,
): () => void {
  const parent = parseTraceparent(options.traceparent);
  if (exporter === null || parent === null) {
    return handle;
  }
  return () => {
    const span = currentTrace();
    const startMs = Date.now();
    let error: string | undefined;
    try {
      handle();
    } catch (err) {
      error = err instanceof Error ? err.message : String(err);
      throw err;
    } finally {
      if (span !== undefined) {
        for (const message of options.envelope.messages) {
          if (message.type !== "append" || message.entries.length === 0) {
            continue;
          }
          recordServerSpan(exporter, {
            name: "raft.append",
            span,
            parent,
            startMs,
            error,
            attributes: {
              "dha.node": options.node,
              "dha.from": message.from,
              "dha.term": options.term(),
              "dha.first_index": message.entries[0]?.index ?? 0,
              "dha.last_index": message.entries[message.entries.length - 1]?.index ?? 0,
              "dha.entries": message.entries.length,
            },
          });
          // One envelope carries at most one append per sender; a span per envelope is enough.
          break;
        }
      }
      void exporter.flushIfDue(FLUSH_AFTER_CALL);
    }
  };
}
