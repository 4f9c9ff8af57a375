// Test-only routes for the end-to-end nemesis: inject network faults into a node and crash it. They exist only when
// test configuration switched fault injection on (DHA_TEST_FAULTS = "1", never in wrangler.toml): otherwise every
// path here is an ordinary 404. They still require the admin role.
import { Hono } from "hono";
import { z } from "zod";
import { faultsEnabled, objectName, parseFaultRules } from "../../objects/api";
import { ApiError, badRequest } from "../http/errors";
import { readJsonBody } from "../http/json-body";
import { requireRole } from "../middleware/auth";
import type { AppBindings } from "../types";

export function testHookRoutes(): Hono<AppBindings> {
  const app = new Hono<AppBindings>();

  app.use("*", async (c, next) => {
    if (!faultsEnabled(c.env)) {
      return c.json({ error: `no route for ${c.req.method} ${new URL(c.req.url).pathname}` }, 404);
    }
    await next();
  });

  app.post("/nodes/:name/faults", requireRole("admin"), async (c) => {
    const node = nodeStub(
      c.env,
      c.var.runtime().config.name,
      c.req.param("name"),
      c.var.runtime().config.members.map((m) => m.name),
    );
    let rules;
    try {
      rules = parseFaultRules(await readJsonBody(c, z.unknown()));
    } catch (err) {
      throw badRequest(err instanceof Error ? err.message : String(err));
    }
    await node.setFaults(rules);
    return c.json({ ok: true });
  });

  app.post("/nodes/:name/crash", requireRole("admin"), async (c) => {
    const node = nodeStub(
      c.env,
      c.var.runtime().config.name,
      c.req.param("name"),
      c.var.runtime().config.members.map((m) => m.name),
    );
    // The crash resets the object mid-call: the RPC fails by design.
    await node.testCrash().catch(() => undefined);
    return c.json({ ok: true });
  });

  return app;
}

function nodeStub(env: AppBindings["Bindings"], cluster: string, name: string, members: readonly string[]) {
  // Configured members only, checked before any object is reached: an unknown name is a 404, never a new object.
  if (!members.includes(name)) {
    throw new ApiError(404, `unknown node "${name}" (configured: ${members.join(", ")})`, { code: "NOT_MEMBER" });
  }
  return env.CLUSTER_NODE.getByName(objectName({ cluster, node: name }));
}
