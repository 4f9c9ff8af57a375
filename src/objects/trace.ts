// W3C Trace Context (traceparent: version-traceid-parentid-flags). The worker accepts it on every request (or starts
// a trace), passes it to the node it calls in the call's address, the node hands it on to the peers it sends the
// resulting Raft messages to, and every log line written while a traced call runs carries its traceId and spanId.
// The current trace lives in an AsyncLocalStorage, so it follows the awaits and timers a call starts (the
// transport's background sends included) without being passed by hand.
import { AsyncLocalStorage } from "node:async_hooks";
import type { RaftEnvelope } from "./transport/index";

export interface TraceContext {
  /** 32 lowercase hex digits, not all zero. */
  readonly traceId: string;
  /** This span: 16 lowercase hex digits, not all zero. */
  readonly spanId: string;
  /** Trace flags, 2 hex digits ("01": sampled). */
  readonly flags: string;
}

const storage = new AsyncLocalStorage<TraceContext>();
const TRACEPARENT = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$/;

/** The trace the running code belongs to, if any. */
export function currentTrace(): TraceContext | undefined {
  return storage.getStore();
}

/** Runs `fn` as part of `trace` (nothing changes when it is undefined). */
export function runWithTrace<T>(trace: TraceContext | undefined, fn: () => T): T {
  return trace === undefined ? fn() : storage.run(trace, fn);
}

/**
 * Reads a traceparent header value; null when it is absent or invalid (then a new trace is started, as the
 * specification asks). Version ff is invalid; version 00 has exactly four fields; later versions may add fields.
 */
export function parseTraceparent(value: unknown): TraceContext | null {
  if (typeof value !== "string" || value.length > 512) {
    return null;
  }
  const match = TRACEPARENT.exec(value.trim().toLowerCase());
  if (match === null) {
    return null;
  }
  const [, version = "", traceId = "", spanId = "", flags = "", rest] = match;
  if (version === "ff" || (version === "00" && rest !== undefined)) {
    return null;
  }
  if (/^0+$/.test(traceId) || /^0+$/.test(spanId)) {
    return null;
  }
  return { traceId, spanId, flags };
}

export function formatTraceparent(trace: TraceContext): string {
  return `00-${trace.traceId}-${trace.spanId}-${trace.flags}`;
}

/** A new span of the same trace (its parent is `parent.spanId`). */
export function childSpan(parent: TraceContext): TraceContext {
  return { traceId: parent.traceId, spanId: randomHex(8), flags: parent.flags };
}

/** A new trace, not sampled: only requests whose caller sampled them get the detailed lines (logTracedAppends). */
export function newTrace(): TraceContext {
  return { traceId: randomHex(16), spanId: randomHex(8), flags: "00" };
}

/** The span a node works in for a call that carried `traceparent`: a child of the caller's, or none. */
export function spanForIncoming(traceparent: unknown): TraceContext | undefined {
  const parent = parseTraceparent(traceparent);
  return parent === null ? undefined : childSpan(parent);
}

/** The traceparent to send with an outgoing call from the running code, if it is traced. */
export function outgoingTraceparent(): string | undefined {
  const trace = currentTrace();
  return trace === undefined ? undefined : formatTraceparent(trace);
}

/** Wraps a call body so that it runs in the span of the trace its address carried. */
export function tracedBody<A, T>(
  address: { readonly traceparent?: string },
  body: (arg: A) => Promise<T>,
): (arg: A) => Promise<T> {
  const span = spanForIncoming(address.traceparent);
  return span === undefined ? body : (arg) => runWithTrace(span, () => body(arg));
}

/** Whether the trace's sampled flag is set: the caller asked for this request to be followed. */
export function isSampled(trace: TraceContext): boolean {
  return (Number.parseInt(trace.flags, 16) & 1) === 1;
}

/**
 * On a follower, inside a traced receive: one line per append that carries entries, so that a write's trace can be
 * followed from the HTTP request to the replicas' logs. At info level (and in the event feed) when the trace is
 * sampled, at debug level otherwise.
 */
export function logTracedAppends(
  envelope: RaftEnvelope,
  log: (level: "info" | "debug", fields: Record<string, unknown>) => void,
): void {
  // Most envelopes carry no entries: look at them before asking the async context (not free) for the trace.
  const appends = envelope.messages.filter((message) => message.type === "append" && message.entries.length > 0);
  const trace = appends.length === 0 ? undefined : currentTrace();
  if (trace === undefined) {
    return;
  }
  for (const message of appends) {
    if (message.type !== "append") {
      continue;
    }
    log(isSampled(trace) ? "info" : "debug", {
      from: message.from,
      firstIndex: message.entries[0]?.index,
      lastIndex: message.entries[message.entries.length - 1]?.index,
      entries: message.entries.length,
    });
  }
}

/**
 * Hex ids from a fast non-cryptographic generator: trace and span ids name requests, they are no secrets (W3C Trace
 * Context asks for randomness enough to keep them unique, not for unpredictability). crypto.getRandomValues, a
 * typed array and a join per id cost a measurable share of a write's CPU; two 32-bit draws per 8 bytes do not.
 */
function randomHex(bytes: 8 | 16): string {
  for (;;) {
    let value = "";
    for (let i = 0; i < bytes; i += 4) {
      value += randomWord32().toString(16).padStart(8, "0");
    }
    if (!ALL_ZERO.test(value)) {
      return value;
    }
  }
}

const ALL_ZERO = /^0+$/;

function randomWord32(): number {
  return Math.floor(Math.random() * 0x1_0000_0000);
}
