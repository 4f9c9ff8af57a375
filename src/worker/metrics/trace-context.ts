// W3C Trace Context in the worker: every request runs in a span of the trace its `traceparent` header names (a new
// trace when it names none or an invalid one), the response carries the worker's span as `traceparent`, and every
// call to a node carries it in the call's address, so that the nodes' log lines (and the followers' appends of a
// write) carry the same trace id.
import type { MiddlewareHandler } from "hono";
import {
  childSpan,
  formatTraceparent,
  newTrace,
  outgoingTraceparent,
  parseTraceparent,
  runWithTrace,
  type ClusterNodeRpc,
} from "../../objects/api";
import type { NodeDirectory } from "../directory";

export const TRACEPARENT_HEADER = "traceparent";

/** Runs the rest of the request in its span and returns that span's traceparent on the response. */
export function traceContext(): MiddlewareHandler {
  return async (c, next) => {
    const incoming = parseTraceparent(c.req.header(TRACEPARENT_HEADER));
    const span = incoming === null ? newTrace() : childSpan(incoming);
    await runWithTrace(span, () => next());
    try {
      c.res.headers.set(TRACEPARENT_HEADER, formatTraceparent(span));
    } catch {
      // A response with immutable headers: copy it.
      c.res = new Response(c.res.body, c.res);
      c.res.headers.set(TRACEPARENT_HEADER, formatTraceparent(span));
    }
  };
}

/** Adds the running request's traceparent to the address of every call made through the directory. */
export function tracedDirectory(directory: NodeDirectory): NodeDirectory {
  return {
    config: directory.config,
    node: (name) => tracedNode(directory.node(name)),
  };
}

function tracedNode(node: ClusterNodeRpc): ClusterNodeRpc {
  return new Proxy(node, {
    get(target, property) {
      const value: unknown = Reflect.get(target, property);
      if (typeof value !== "function") {
        return value;
      }
      return (first: unknown, ...rest: unknown[]) => {
        const traceparent = outgoingTraceparent();
        const argument =
          traceparent !== undefined && typeof first === "object" && first !== null ? { ...first, traceparent } : first;
        // Reflect.apply, not value.call: on an RPC stub every property, `call` included, is a remote method.
        return Reflect.apply(value as (...args: unknown[]) => unknown, target, [argument, ...rest]);
      };
    },
  });
}
