// Hono's body limit, answering with our JSON error shapes.
import type { MiddlewareHandler } from "hono";
import { bodyLimit } from "hono/body-limit";
import { ApiError, type ErrorShape } from "../http/errors";
import { apiErrorResponse } from "../http/respond";
import type { AppBindings } from "../types";

export function limitBody(maxBytes: number, shape: ErrorShape): MiddlewareHandler<AppBindings> {
  return bodyLimit({
    maxSize: maxBytes,
    onError: () =>
      apiErrorResponse(
        new ApiError(413, `the request body is larger than ${maxBytes} bytes`, { shape, code: "BODY_TOO_LARGE" }),
      ),
  });
}
