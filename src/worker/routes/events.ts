// GET /api/v1/cluster/events (read role): recent elections, leader changes, breaker transitions, replica status
// changes, membership changes and snapshots of every node, merged by time.
import { Hono } from "hono";
import { z } from "zod";
import { MAX_EVENTS_PER_NODE } from "../../objects/api";
import { parseGoDurationMs } from "../http/duration";
import { badRequest } from "../http/errors";
import { requireRole } from "../middleware/auth";
import { gatherEvents } from "../metrics/events";
import type { AppBindings } from "../types";

const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1_000;

const querySchema = z.object({
  limit: z
    .string()
    .regex(/^[0-9]{1,4}$/, { error: `limit must be a whole number from 1 to ${MAX_LIMIT}` })
    .transform(Number)
    .refine((limit) => limit >= 1 && limit <= MAX_LIMIT, { error: `limit must be a whole number from 1 to ${MAX_LIMIT}` })
    .optional(),
  since: z
    .string()
    .transform((text, ctx) => {
      const ms = /^[0-9]{1,15}$/.test(text) ? Number(text) : Date.parse(text);
      if (!Number.isFinite(ms)) {
        ctx.addIssue({ code: "custom", message: `since ${JSON.stringify(text)} is neither epoch milliseconds nor an ISO 8601 time` });
        return z.NEVER;
      }
      return ms;
    })
    .optional(),
  timeout: z
    .string()
    .transform((text, ctx) => {
      const ms = parseGoDurationMs(text);
      if (ms === null || ms < 0) {
        ctx.addIssue({ code: "custom", message: `timeout ${JSON.stringify(text)} is not a valid duration: use Go syntax such as 500ms or 2s` });
        return z.NEVER;
      }
      return ms;
    })
    .optional(),
});

export function eventRoutes(): Hono<AppBindings> {
  const app = new Hono<AppBindings>();
  app.get("/api/v1/cluster/events", requireRole("read"), async (c) => {
    const runtime = c.var.runtime();
    const first: Record<string, string> = {};
    for (const [key, value] of new URL(c.req.url).searchParams) if (!Object.hasOwn(first, key)) first[key] = value;
    const parsed = querySchema.safeParse(first);
    if (!parsed.success) throw badRequest(parsed.error.issues.map((issue) => issue.message).join("; "));
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
