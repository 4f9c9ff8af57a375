// The databases API (mounted at /api/v1/databases): create, list, describe and drop the databases of this
// deployment, each its own Raft group; and the middleware that serves every per-database route under
// /databases/{name}/... on the database's own nodes.
import { Hono, type Context, type MiddlewareHandler } from "hono";
import { zValidator } from "@hono/zod-validator";
import { createMiddleware } from "hono/factory";
import { DEFAULT_DATABASE, databaseNameProblem } from "../../objects/api";
import { ApiError } from "../http/errors";
import { readJsonBody, validationHook } from "../http/json-body";
import { deadlineFor, parseQueryParams } from "../http/params";
import { wireResponse } from "../http/respond";
import type { WireValue } from "../http/wire-json";
import { assertDatabase, authenticate, mayAccessDatabase, requireRole } from "../middleware/auth";
import { limitBody } from "../middleware/body-limit";
import { resolveLimits, type AppOptions } from "../runtime";
import type { AppBindings } from "../types";
import { Deployment, forgetEntry, resolveDatabase, type ClusterRuntimeOf } from "../databases/deployment";
import {
  bringOnline,
  DEFAULT_DROP_DRAIN_MS,
  dropNodes,
  logDropTimeline,
  logTransition,
  notEveryNodeDropped,
  recordNode,
  resolveOptions,
  sameOptions,
  transition,
  wipeLeftBehind,
  type LifecycleContext,
} from "../databases/lifecycle";
import { createDatabaseBodySchema, databaseParamsSchema, type DatabaseEntry } from "../databases/schemas";

/** A drop leaves this much of the request's deadline for wiping the nodes and the last catalog write. */
const DROP_WIPE_MARGIN_MS = 3_000;

export function databaseRoutes(options: AppOptions, clusterRuntime: ClusterRuntimeOf): Hono<AppBindings> {
  const limits = resolveLimits(options);
  const app = new Hono<AppBindings>();
  const nameParam = zValidator("param", databaseParamsSchema, validationHook);

  app.get("/", requireRole("admin"), async (c) => {
    const { deployment, context } = prepare(c, clusterRuntime);
    const principal = await authenticate(c);
    const entries = (await deployment.catalog.list(context.deadlineAt)).filter((entry) =>
      mayAccessDatabase(principal, entry.name),
    );
    const described = await Promise.all(entries.map((entry) => describeLive(deployment, entry)));
    return json(c, { databases: described });
  });

  app.get("/:name", requireRole("admin"), nameParam, async (c) => {
    const { deployment, entry } = await existingEntry(c, c.req.valid("param").name, clusterRuntime);
    return json(c, await describeLive(deployment, entry));
  });

  app.put("/:name", requireRole("admin"), nameParam, limitBody(limits.maxAdminBodyBytes, "plain"), async (c) => {
    const name = c.req.valid("param").name;
    assertDatabase(await authenticate(c), name);
    const body = (await readJsonBody(c, createDatabaseBodySchema, { optional: true })) ?? {};
    const { deployment, context } = prepare(c, clusterRuntime);
    const wanted = resolveOptions(body, deployment.config);
    let entry = await deployment.catalog.get(name, { deadlineAt: context.deadlineAt, strong: true });
    let created = false;
    if (entry === null || entry.state === "DROPPED") {
      const atMs = context.now();
      const limit = deployment.maxDatabases();
      created = await deployment.catalog.insertCreating({
        name,
        options: wanted,
        atMs,
        limit,
        deadlineAt: context.deadlineAt,
      });
      const previous = entry;
      entry = await deployment.catalog.get(name, { deadlineAt: context.deadlineAt, strong: true });
      if (!created && (entry === null || entry.state === "DROPPED")) {
        throw new ApiError(
          409,
          `this deployment already holds ${limit} databases (DHA_MAX_DATABASES): drop one first`,
          {
            code: "DATABASE_LIMIT",
          },
        );
      }
      if (created && entry !== null) {
        logTransition(
          { name, generation: entry.generation, from: previous?.state ?? null },
          "CREATING",
          entry.reason ?? "created",
          atMs,
        );
      }
    }
    if (entry === null) {
      throw new ApiError(503, `database ${name} vanished from the catalog while it was being created: retry`, {
        code: "CATALOG",
        retryAfterSeconds: 1,
      });
    }
    if (!sameOptions(entry.options, wanted)) {
      throw new ApiError(409, `database ${name} exists with other options: ${JSON.stringify(entry.options)}`, {
        code: "DATABASE_EXISTS",
      });
    }
    if (entry.state === "DROPPING") {
      throw new ApiError(409, `database ${name} is being dropped: repeat the DELETE, then create it again`, {
        code: "DROPPING",
      });
    }
    forgetEntry(deployment, name);
    const online = entry.state === "CREATING" ? await bringOnline(context, entry) : entry;
    return json(c, online, created ? 201 : 200);
  });

  app.delete("/:name", requireRole("admin"), nameParam, async (c) => {
    const receivedAtMs = c.var.startedAt;
    const { name, deployment, context, entry } = await existingEntry(c, c.req.valid("param").name, clusterRuntime);
    const foundAtMs = context.now();
    if (entry.state === "DROPPED") {
      await wipeLeftBehind(context, entry, { reason: `dropped by DELETE /api/v1/databases/${name}` });
      return json(c, entry);
    }
    const reason = `dropped by DELETE /api/v1/databases/${name}`;
    const moved =
      entry.state === "DROPPING"
        ? null
        : await transition(context, entry, { from: ["CREATING", "ONLINE"], to: "DROPPING", reason });
    const droppingAtMs = context.now();
    forgetEntry(deployment, name);
    const dropping: DatabaseEntry = moved ?? { ...entry, state: "DROPPING", reason };
    const drainMs = Math.min(DEFAULT_DROP_DRAIN_MS, context.deadlineAt - context.now() - DROP_WIPE_MARGIN_MS);
    const report = await dropNodes(context, dropping, { drainMs: Math.max(0, drainMs), reason });
    if (report.failures.length > 0) {
      throw notEveryNodeDropped(dropping, report.failures);
    }
    const done = `${report.nodes.length} nodes wiped${report.brokenLeases > 0 ? `, ${report.brokenLeases} leases broken` : ""}`;
    const dropped = await transition(context, dropping, { from: ["DROPPING"], to: "DROPPED", reason: done });
    forgetEntry(deployment, name);
    const droppedAtMs = context.now();
    logDropTimeline(entry, { receivedAtMs, foundAtMs, droppingAtMs, droppedAtMs, answers: report.answers });
    return json(c, dropped ?? { ...dropping, state: "DROPPED", reason: done });
  });

  return app;
}

/**
 * For /databases/{database}/...: authenticates (401 before anything is revealed), checks the name (400), the
 * token's scope (403) and the catalog (404, 410), then runs the route on the database's runtime.
 */
export function databaseScope(clusterRuntime: ClusterRuntimeOf, now: () => number): MiddlewareHandler<AppBindings> {
  return createMiddleware<AppBindings>(async (c, next) => {
    const name = c.req.param("database") ?? "";
    const shape = new URL(c.req.url).pathname.includes("/db/") ? "rqlite" : "plain";
    c.set("database", name);
    await authenticate(c);
    if (name === DEFAULT_DATABASE) {
      await next();
      return;
    }
    const problem = databaseNameProblem(name);
    if (problem !== null) {
      throw new ApiError(400, problem, { code: "BAD_REQUEST", shape });
    }
    const deployment = new Deployment(c.env, clusterRuntime);
    const deadlineAt = now() + deployment.system.policy.statusTimeoutMs * 2;
    const runtime = await resolveDatabase(deployment, name, { now, deadlineAt, shape });
    c.set("runtime", () => runtime);
    c.set("recordNode", (node, options) => recordNode(deployment.catalog, runtime, node, { atMs: now(), ...options }));
    await next();
  });
}

function prepare(
  c: Context<AppBindings>,
  clusterRuntime: ClusterRuntimeOf,
): { deployment: Deployment; context: LifecycleContext } {
  const deployment = new Deployment(c.env, clusterRuntime);
  const system = deployment.system;
  const params = parseQueryParams(new URL(c.req.url), "plain", c.var.querySchema);
  const deadlineAt = deadlineFor(params, c.var.startedAt, system.policy, "plain");
  return {
    deployment,
    context: {
      catalog: deployment.catalog,
      runtimeOf: (entry) => deployment.runtimeOf(entry),
      now: system.now,
      deadlineAt,
    },
  };
}

/** The entry with its leader and the leader's storage size, when the database runs; each probe bounded. */
async function describeLive(deployment: Deployment, entry: DatabaseEntry) {
  if (entry.state === "DROPPING" || entry.state === "DROPPED") {
    return { ...entry, leader: null, sizeBytes: null };
  }
  const runtime = deployment.runtimeOf(entry);
  const timeoutMs = runtime.policy.statusTimeoutMs;
  const probes = await runtime.router.probeAll(runtime.router.memberNames(), timeoutMs);
  const leader = probes.find((probe) => probe.ok && probe.report.role === "leader")?.node ?? null;
  let sizeBytes: number | null = null;
  if (leader !== null) {
    const metrics = await runtime.router.toNode(
      leader,
      (rpc, address) => (rpc.metrics === undefined ? Promise.reject(new Error("no metrics")) : rpc.metrics(address)),
      timeoutMs,
    );
    sizeBytes = metrics.ok ? metrics.value.storage.databaseBytes : null;
  }
  return { ...entry, leader, sizeBytes };
}

/** The catalog entry of a database the token may address (403), read through the log; 404 when there is none. */
async function existingEntry(c: Context<AppBindings>, name: string, clusterRuntime: ClusterRuntimeOf) {
  assertDatabase(await authenticate(c), name);
  const { deployment, context } = prepare(c, clusterRuntime);
  const entry = await deployment.catalog.get(name, { deadlineAt: context.deadlineAt, strong: true });
  if (entry === null) {
    throw new ApiError(404, `no database ${JSON.stringify(name)}`, { code: "NO_DATABASE" });
  }
  return { name, deployment, context, entry };
}

/** A JSON answer of the databases API, indented with ?pretty as on the other admin routes. */
function json(c: Context<AppBindings>, value: unknown, status: 200 | 201 = 200): Response {
  return wireResponse(c, value as WireValue, status);
}
