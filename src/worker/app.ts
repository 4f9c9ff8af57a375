import { Hono, type MiddlewareHandler } from "hono";
import { cors } from "hono/cors";
import { HTTPException } from "hono/http-exception";
import { requestId } from "hono/request-id";
import { secureHeaders } from "hono/secure-headers";
import { ApiError, ERROR_CODE_HEADER } from "./http/errors";
import { IDEMPOTENCY_HEADER, NODE_HEADER, RAFT_INDEX_HEADER, REQUEST_ID_HEADER } from "./http/params";
import { apiErrorResponse, jsonResponse, errorBody } from "./http/respond";
import { clusterRoutes } from "./routes/cluster";
import { dataRoutes } from "./routes/data";
import { eventRoutes } from "./routes/events";
import { traceContext } from "./metrics/trace-context";
import { otlpRequestSpans } from "./tracing/otlp";
import { metricsRoutes } from "./routes/metrics";
import { openApiDocument } from "./routes/openapi";
import { API_ROUTES, honoPath } from "./routes/spec";
import { statusRoutes } from "./routes/status";
import { testHookRoutes } from "./routes/test-hooks";
import { limitUrl, MAX_URL_BYTES } from "./middleware/url-limit";
import { databaseRoutes, databaseScope } from "./routes/databases";
import { DEFAULT_DATABASE } from "../objects/api";
import { clusterRuntimeFactory, resolveLimits, runtimeFactory, type AppOptions } from "./runtime";
import type { AppBindings } from "./types";

export type { AppOptions } from "./runtime";
export type { AppBindings } from "./types";

/** Builds the HTTP application. Routes are grouped by concern and mounted here; options exist for tests. */
export function createApp(options: AppOptions = {}): Hono<AppBindings> {
  const app = new Hono<AppBindings>();
  const runtimeOf = runtimeFactory(options);
  const clusterRuntime = clusterRuntimeFactory(options);
  const now = options.now ?? Date.now;

  app.use("*", traceContext());
  app.use("*", otlpRequestSpans());
  app.use("*", requestId());
  app.use("*", limitUrl({ maxUrlBytes: MAX_URL_BYTES, maxBodyBytes: resolveLimits(options).maxBodyBytes }));
  app.use("*", secureHeaders({ crossOriginResourcePolicy: false, crossOriginOpenerPolicy: false }));
  app.use("*", corsFromEnv());
  app.use("*", async (c, next) => {
    c.set("startedAt", now());
    c.set("runtime", () => runtimeOf(c.env));
    await next();
  });

  // Each declared route's query schema, for its handlers: what they validate with is what /openapi.json states.
  // Routes of one database learn which: the default one at the root, a named one under /databases/{database}/.
  const scoped = databaseScope(clusterRuntime, now);
  for (const { route, scope } of API_ROUTES) {
    const schema = route.request?.query;
    app.on(route.method.toUpperCase(), honoPath(route), async (c, next) => {
      c.set("querySchema", schema);
      if (scope === undefined) {
        c.set("database", DEFAULT_DATABASE);
      }
      await next();
    });
    if (scope === "prefixed") {
      app.on(route.method.toUpperCase(), honoPath(route), scoped);
    }
  }
  app.get("/livez", (c) => c.text("ok\n"));
  app.get("/openapi.json", (c) => c.json(openApiDocument()));
  app.route("/api/v1/databases", databaseRoutes(options, clusterRuntime));
  // The routes of one database, mounted twice: at the root for the default database, under /databases/{database}.
  for (const prefix of ["/", "/databases/:database"]) {
    app.route(prefix, dataRoutes(options));
    app.route(prefix, statusRoutes(options));
    app.route(prefix, metricsRoutes());
    app.route(prefix, eventRoutes());
    app.route(`${prefix === "/" ? "" : prefix}/api/v1/cluster`, clusterRoutes(options));
  }
  // Fault injection for end-to-end tests: a 404 unless test configuration set DHA_TEST_FAULTS = "1".
  app.route("/_test", testHookRoutes());

  app.notFound((c) => {
    const path = new URL(c.req.url).pathname;
    const allowed = allowedMethods(app, path);
    if (allowed.length > 0) {
      return jsonResponse(
        405,
        errorBody(`method ${c.req.method} is not allowed on ${path}: use ${allowed.join(" or ")}`, "plain"),
        { Allow: allowed.join(", "), [ERROR_CODE_HEADER]: "METHOD_NOT_ALLOWED" },
      );
    }
    return jsonResponse(404, errorBody(`no route for ${c.req.method} ${path}`, "plain"), {
      [ERROR_CODE_HEADER]: "NO_ROUTE",
    });
  });

  app.onError((error, c) => {
    if (error instanceof ApiError) {
      return apiErrorResponse(error);
    }
    if (error instanceof HTTPException) {
      const status = error.status;
      return jsonResponse(
        status === 401 || status === 413 ? status : 400,
        errorBody(error.message || "bad request", "plain"),
        { [ERROR_CODE_HEADER]: HTTP_EXCEPTION_CODES[status] ?? "BAD_REQUEST" },
      );
    }
    console.error(`unhandled error on ${c.req.method} ${new URL(c.req.url).pathname}`, error);
    return jsonResponse(500, errorBody(`internal error: ${(error as Error)?.message ?? String(error)}`, "plain"), {
      [ERROR_CODE_HEADER]: "INTERNAL",
    });
  });

  return app;
}

/** Error codes of the statuses Hono's own middleware throws (auth and body limits); everything else is a 400. */
const HTTP_EXCEPTION_CODES: Readonly<Record<number, string>> = { 401: "UNAUTHORIZED", 413: "BODY_TOO_LARGE" };

/** CORS only when DHA_CORS_ORIGINS lists origins; the handler is rebuilt only when the list changes. */
function corsFromEnv(): MiddlewareHandler<AppBindings> {
  let cached: { origins: string; handler: MiddlewareHandler } | undefined;
  return async (c, next) => {
    const origins = c.env?.DHA_CORS_ORIGINS?.trim() ?? "";
    if (origins === "") {
      return next();
    }
    if (cached?.origins !== origins) {
      cached = {
        origins,
        handler: cors({
          origin: origins
            .split(",")
            .map((origin) => origin.trim())
            .filter((origin) => origin !== ""),
          allowMethods: ["GET", "POST", "DELETE", "OPTIONS"],
          allowHeaders: ["Authorization", "Content-Type", IDEMPOTENCY_HEADER, RAFT_INDEX_HEADER],
          exposeHeaders: [NODE_HEADER, RAFT_INDEX_HEADER, REQUEST_ID_HEADER, ERROR_CODE_HEADER, "Retry-After"],
          credentials: true,
          maxAge: 600,
        }),
      };
    }
    return cached.handler(c, next);
  };
}

/** The methods registered for a path, so that a wrong method gets 405 rather than 404. */
function allowedMethods(app: Hono<AppBindings>, path: string): string[] {
  const methods = new Set<string>();
  for (const route of app.routes) {
    if (route.method === "ALL" || route.path.includes("*")) {
      continue;
    }
    const pattern = new RegExp(
      // Exactly the route's path: the router is strict about a trailing slash, and a 405 naming the very method sent
      // for `/livez/` contradicted itself.
      `^${route.path.replace(/[.+?^${}()|[\]\\]/g, "\\$&").replace(/\/:[^/]+/g, "/[^/]+")}$`,
    );
    if (pattern.test(path)) {
      methods.add(route.method);
    }
  }
  return [...methods].sort();
}
