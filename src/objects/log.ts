// Structured logs: one JSON line per event, with the node, its term and what changed, so that `wrangler tail`
// and Workers Logs can filter on fields.
import { currentTrace } from "./trace";

export type LogLevel = "debug" | "info" | "warn" | "error";

export interface LogContext {
  readonly cluster: string;
  readonly node: string;
  readonly term: number;
}

const LEVEL_ORDER: Record<LogLevel, number> = { debug: 0, info: 1, warn: 2, error: 3 };
let minimumLevel: LogLevel = "info";

/** Sets the lowest level that is printed (DHA_LOG_LEVEL); unknown values leave "info". */
export function setLogLevel(level: string | undefined): void {
  if (level !== undefined && level in LEVEL_ORDER) {
    minimumLevel = level as LogLevel;
  }
}

/** Sees every event, whatever the level, with the trace it belongs to (the node's event feed, events.ts); must not throw. */
export type LogObserver = (
  level: LogLevel,
  context: LogContext,
  event: string,
  fields: Record<string, unknown>,
  trace: { readonly traceId: string; readonly spanId: string } | undefined,
) => void;
const observers = new Set<LogObserver>();

/** Adds an observer; returns the function that removes it. */
export function addLogObserver(observer: LogObserver): () => void {
  observers.add(observer);
  return () => observers.delete(observer);
}

export function logEvent(
  level: LogLevel,
  context: LogContext,
  event: string,
  fields: Record<string, unknown> = {},
): void {
  const trace = currentTrace();
  const traced = trace === undefined ? undefined : { traceId: trace.traceId, spanId: trace.spanId };
  for (const observer of observers) {
    observer(level, context, event, fields, traced);
  }
  if (LEVEL_ORDER[level] < LEVEL_ORDER[minimumLevel]) {
    return;
  }
  const line = JSON.stringify({
    level,
    event,
    cluster: context.cluster,
    node: context.node,
    term: context.term,
    ...traced,
    ...fields,
  });
  if (level === "error") {
    console.error(line);
  } else if (level === "warn") {
    console.warn(line);
  } else {
    console.log(line);
  }
}
