// Response helpers shared by the routes: rqlite's content type, error bodies and the headers a failure carries.
import type { Context } from "hono";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import type { RouteFailure } from "../routing/router";
import type { AppBindings } from "../types";
import { ApiError, ERROR_CODE_HEADER, type ErrorShape } from "./errors";
import { NODE_HEADER } from "./params";
import { encodeWire, type WireValue } from "./wire-json";

export const JSON_CONTENT_TYPE = "application/json; charset=utf-8";

export function jsonResponse(
  status: ContentfulStatusCode,
  body: string,
  headers: Readonly<Record<string, string>> = {},
): Response {
  return new Response(body, { status, headers: { "Content-Type": JSON_CONTENT_TYPE, ...headers } });
}

export function wireResponse(
  c: Context<AppBindings>,
  value: WireValue,
  status: ContentfulStatusCode = 200,
  headers: Readonly<Record<string, string>> = {},
): Response {
  const pretty = new URL(c.req.url).searchParams.has("pretty");
  return jsonResponse(status, encodeWire(value, pretty), headers);
}

/** The body of an error: rqlite's {"results": [], "error": ...} on data routes, {"error": ...} elsewhere. */
export function errorBody(message: string, shape: ErrorShape): string {
  return shape === "rqlite" ? encodeWire({ results: [], error: message }) : encodeWire({ error: message });
}

export function apiErrorResponse(error: ApiError): Response {
  const headers: Record<string, string> = { ...error.options.headers };
  if (error.options.retryAfterSeconds !== undefined) {
    headers["Retry-After"] = String(error.options.retryAfterSeconds);
  }
  if (error.options.code !== undefined) {
    headers[ERROR_CODE_HEADER] = error.options.code;
  }
  return jsonResponse(error.status, errorBody(error.message, error.options.shape ?? "plain"), headers);
}

/** Turns a routing failure into an ApiError: 503s carry Retry-After, every failure names the node when known. */
export function failureError(
  failure: RouteFailure,
  shape: ErrorShape,
  headers: Readonly<Record<string, string>> = {},
): ApiError {
  return new ApiError(failure.status, failure.message, {
    shape,
    code: failure.code,
    ...(failure.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: failure.retryAfterSeconds }),
    headers: failure.node === undefined ? { ...headers } : { ...headers, [NODE_HEADER]: failure.node },
  });
}
