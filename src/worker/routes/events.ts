// GET /api/v1/cluster/events (read role): recent elections, leader changes, breaker transitions, replica status
// changes, membership changes and snapshots of every node, merged by time.
import { Hono } from "hono";
import { MAX_EVENTS_PER_NODE } from "../../objects/api";
import { badRequest } from "../http/errors";
import { eventsQuerySchema } from "../http/schemas";
import { requireRole } from "../middleware/auth";
import { gatherEvents } from "../metrics/events";
import type { AppBindings } from "../types";

const DEFAULT_LIMIT = 100;

export function eventRoutes(): Hono<AppBindings> {
  const app = new Hono<AppBindings>();
  app.get("/api/v1/cluster/events", requireRole("read"), async (c) => {
    const runtime = c.var.runtime();
    const first: Record<string, string> = {};
    for (const [key, value] of new URL(c.req.url).searchParams) {
      if (!Object.hasOwn(first, key)) {
        first[key] = value;
      }
    }
    // The schema /openapi.json documents for this route (routes/spec.ts).
    const parsed = eventsQuerySchema.safeParse(first);
    if (!parsed.success) {
      throw badRequest(parsed.error.issues.map((issue) => issue.message).join("; "));
    }
    const { limit = DEFAULT_LIMIT, since, timeout } = parsed.data;
    const perNodeTimeoutMs = timeout ?? runtime.policy.statusTimeoutMs;
    if (perNodeTimeoutMs <= 0 || perNodeTimeoutMs > runtime.policy.maxTimeoutMs) {
      throw badRequest(`timeout must be between 0 and ${runtime.policy.maxTimeoutMs / 1000}s`);
    }
    const events = await gatherEvents(runtime.router, {
      limit,
      ...(since === undefined ? {} : { sinceMs: since }),
      perNodeTimeoutMs,
      now: runtime.now,
    });
    return c.json({ ...events, maxEventsPerNode: MAX_EVENTS_PER_NODE }, 200, { "Cache-Control": "no-store" });
  });
  return app;
}
