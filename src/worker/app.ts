import { Hono } from "hono";
import type { Env } from "./env";

/** Builds the HTTP application. Routes are grouped by concern and mounted here. */
export function createApp(): Hono<{ Bindings: Env }> {
  const app = new Hono<{ Bindings: Env }>();
  app.get("/livez", (c) => c.text("ok\n"));
  app.notFound((c) => c.json({ error: `no route for ${c.req.method} ${new URL(c.req.url).pathname}` }, 404));
  return app;
}
