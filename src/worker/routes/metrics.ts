// GET /metrics: the cluster's metrics for Prometheus, gathered from every node on each scrape. Open to tokens with
// the "read" role, or the "metrics" role alone (a scraper then holds no data access).
import { Hono } from "hono";
import { createMiddleware } from "hono/factory";
import { ApiError, badRequest } from "../http/errors";
import { parseQueryParams } from "../http/params";
import { authenticate } from "../middleware/auth";
import { gatherScrape, scrapeFamilies } from "../metrics/collect";
import { CONTENT_TYPES, negotiateFormat, renderMetrics } from "../metrics/exposition";
import type { AppBindings } from "../types";

/** Either role opens the route. */
const requireReadOrMetrics = createMiddleware<AppBindings>(async (c, next) => {
  const principal = await authenticate(c);
  if (!principal.roles.has("read") && !principal.roles.has("metrics")) {
    throw new ApiError(403, 'this token lacks the "read" or "metrics" role', { code: "FORBIDDEN" });
  }
  await next();
});

export function metricsRoutes(): Hono<AppBindings> {
  const app = new Hono<AppBindings>();
  app.get("/metrics", requireReadOrMetrics, async (c) => {
    const runtime = c.var.runtime();
    const params = parseQueryParams(new URL(c.req.url), "plain", c.var.querySchema);
    const perNodeTimeoutMs = params.timeoutMs ?? runtime.policy.statusTimeoutMs;
    if (perNodeTimeoutMs <= 0 || perNodeTimeoutMs > runtime.policy.maxTimeoutMs) {
      throw badRequest(`timeout must be between 0 and ${runtime.policy.maxTimeoutMs / 1000}s`);
    }
    const scrape = await gatherScrape(runtime.router, { perNodeTimeoutMs, now: runtime.now });
    const format = negotiateFormat(c.req.header("accept"));
    const body = renderMetrics(scrapeFamilies(scrape, runtime.config), format);
    return c.body(body, 200, { "Content-Type": CONTENT_TYPES[format], "Cache-Control": "no-store" });
  });
  return app;
}
