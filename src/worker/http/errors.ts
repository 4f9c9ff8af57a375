// Errors that end a request with a chosen status and a JSON body saying why.
import type { ContentfulStatusCode } from "hono/utils/http-status";

/** The response header naming the error code of a failure (INVALID_REQUEST, NOT_LEADER, ...). */
export const ERROR_CODE_HEADER = "X-DHA-Error-Code";

/** The body shape of an error: data routes use rqlite's request-level form, the others a bare error object. */
export type ErrorShape = "rqlite" | "plain";

export interface ApiErrorOptions {
  readonly shape?: ErrorShape;
  /** Seconds, for 503s: when a retry has a fair chance. */
  readonly retryAfterSeconds?: number;
  readonly headers?: Readonly<Record<string, string>>;
  /** A machine-readable reason, sent as the X-DHA-Error-Code header. */
  readonly code?: string;
}

export class ApiError extends Error {
  override readonly name = "ApiError";

  constructor(
    readonly status: ContentfulStatusCode,
    message: string,
    readonly options: ApiErrorOptions = {},
  ) {
    super(message);
  }
}

export function badRequest(message: string, shape: ErrorShape = "plain"): ApiError {
  return new ApiError(400, message, { shape, code: "BAD_REQUEST" });
}
