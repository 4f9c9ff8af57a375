// Cloudflare refuses URLs over 16 KB before a Worker runs; the worker enforces the same bound itself, so that a
// long ?q= fails the same way under `wrangler dev` as in production, with an error that says what to do instead.
import type { MiddlewareHandler } from "hono";
import { ApiError } from "../http/errors";
import { apiErrorResponse } from "../http/respond";
import type { AppBindings } from "../types";

/** The platform's URL limit (Workers limits: "URL size 16 KB"), counted in bytes of the encoded URL. */
export const MAX_URL_BYTES = 16 * 1024;

export function limitUrl(options: { maxUrlBytes: number; maxBodyBytes: number }): MiddlewareHandler<AppBindings> {
  const { maxUrlBytes, maxBodyBytes } = options;
  return async (c, next) => {
    // request.url is percent-encoded: one character is one byte.
    const urlBytes = c.req.url.length;
    if (urlBytes <= maxUrlBytes) {
      return next();
    }
    const path = new URL(c.req.url).pathname;
    const dataRoute = path.startsWith("/db/");
    const hint =
      path === "/db/query" || path === "/db/request"
        ? `: send the statements in a JSON body instead, with POST ${path} (e.g. [["SELECT ... WHERE x = ?", value]]), which takes up to ${maxBodyBytes} bytes`
        : ": send long values in a request body instead";
    return apiErrorResponse(
      new ApiError(414, `the URL is ${urlBytes} bytes long; at most ${maxUrlBytes} are allowed${hint}`, {
        shape: dataRoute ? "rqlite" : "plain",
        code: "URL_TOO_LONG",
      }),
    );
  };
}
