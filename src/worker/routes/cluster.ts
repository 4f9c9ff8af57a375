// The cluster API (mounted at /api/v1/cluster): health, membership and leadership.
import { Hono, type Context } from "hono";
import { zValidator } from "@hono/zod-validator";
import { gatherCluster } from "../cluster/gather";
import { summarizeHealth } from "../cluster/health";
import { addMember, removeMember, repairMember, transferLeadership } from "../data/service";
import { badRequest } from "../http/errors";
import { readJsonBody, validationHook } from "../http/json-body";
import { memberSchema, requireMember } from "../http/members";
import { memberNameParamsSchema, transferBodySchema } from "../http/schemas";
import { deadlineFor, NODE_HEADER, parseQueryParams } from "../http/params";
import { failureError, wireResponse } from "../http/respond";
import type { WireValue } from "../http/wire-json";
import { requireRole } from "../middleware/auth";
import { limitBody } from "../middleware/body-limit";
import type { RouteOutcome } from "../routing/router";
import { resolveLimits, type AppOptions, type Runtime } from "../runtime";
import type { AppBindings } from "../types";

export function clusterRoutes(options: AppOptions): Hono<AppBindings> {
  const limits = resolveLimits(options);
  const limitAdminBody = limitBody(limits.maxAdminBodyBytes, "plain");
  const app = new Hono<AppBindings>();

  app.get("/health", requireRole("read"), async (c) => {
    const runtime = c.var.runtime();
    const view = await gatherCluster(runtime.router, perNodeTimeout(c, runtime));
    const health = summarizeHealth(view);
    if (view.leader !== undefined) {
      runtime.router.noteLeader(view.leader.name);
    }
    const headers: Record<string, string> = health.quorumAvailable
      ? {}
      : { "Retry-After": String(runtime.router.retryAfterSeconds()) };
    const body = { ...health, checkedAt: new Date(runtime.now()).toISOString() };
    return wireResponse(c, body as unknown as WireValue, health.quorumAvailable ? 200 : 503, headers);
  });

  app.get("/", requireRole("read"), async (c) => {
    const runtime = c.var.runtime();
    const view = await gatherCluster(runtime.router, perNodeTimeout(c, runtime));
    const probes = new Map(view.probes.map((probe) => [probe.node, probe]));
    const hints = new Map(runtime.config.members.map((member) => [member.name, member.locationHint]));
    const configured = new Set(hints.keys());
    const names = [...new Set([...view.voters, ...view.learners, ...configured])];
    const members = names.map((name) => {
      const probe = probes.get(name);
      const report = probe?.ok === true ? probe.report : undefined;
      const learner = view.learners.includes(name);
      const voter = view.voters.includes(name);
      return {
        name,
        role: !voter && !learner ? "removed" : report === undefined ? "unknown" : learner ? "learner" : report.role,
        voter,
        learner,
        configured: configured.has(name),
        locationHint: report?.locationHint ?? hints.get(name) ?? null,
        reachable: probe?.ok === true,
      };
    });
    return wireResponse(c, {
      name: runtime.config.name,
      leader: view.leader?.name ?? null,
      term: view.term,
      heartbeatIntervalMs: runtime.config.heartbeatIntervalMs,
      electionTimeoutMs: runtime.config.electionTimeoutMs,
      members,
    });
  });

  app.post("/leader/stepdown", requireRole("admin"), async (c) => {
    const runtime = c.var.runtime();
    return adminResponse(c, await transferLeadership(runtime, undefined, adminDeadline(c, runtime)));
  });

  app.post("/leader/transfer", requireRole("admin"), limitAdminBody, async (c) => {
    const runtime = c.var.runtime();
    const { to } = await readJsonBody(c, transferBodySchema);
    await requireMember(runtime, to, { what: "to", timeoutMs: runtime.policy.statusTimeoutMs, live: true });
    return adminResponse(c, await transferLeadership(runtime, to, adminDeadline(c, runtime)));
  });

  app.post("/members", requireRole("admin"), limitAdminBody, async (c) => {
    const runtime = c.var.runtime();
    const member = await readJsonBody(c, memberSchema);
    const deadlineAt = adminDeadline(c, runtime);
    await c.var.recordNode?.(member.name, { deadlineAt, change: "addition" });
    return adminResponse(c, await addMember(runtime, member, deadlineAt));
  });

  /**
   * An admin route on one member: the name checked (400 malformed, 404 not a member), recorded when `record` (a
   * removed node keeps its storage: the drop of a named database must still reach it), then `act` on the leader.
   */
  const onMember = <T extends Record<string, unknown>>(
    act: (runtime: Runtime, name: string, deadlineAt: number) => Promise<RouteOutcome<T>>,
    options: { readonly record: boolean },
  ) =>
    [
      requireRole("admin"),
      zValidator("param", memberNameParamsSchema, validationHook),
      async (c: Context<AppBindings>) => {
        const runtime = c.var.runtime();
        const name = c.req.param("name") ?? "";
        await requireMember(runtime, name, { what: "name", timeoutMs: runtime.policy.statusTimeoutMs, live: true });
        const deadlineAt = adminDeadline(c, runtime);
        if (options.record) {
          await c.var.recordNode?.(name, { deadlineAt, change: "removal" });
        }
        return adminResponse(c, await act(runtime, name, deadlineAt));
      },
    ] as const;

  app.delete("/members/:name", ...onMember(removeMember, { record: true }));
  app.post("/members/:name/repair", ...onMember(repairMember, { record: false }));

  return app;
}

function perNodeTimeout(c: Context<AppBindings>, runtime: Runtime): number {
  const params = parseQueryParams(new URL(c.req.url), "plain", c.var.querySchema);
  const timeoutMs = params.timeoutMs ?? runtime.policy.statusTimeoutMs;
  if (timeoutMs <= 0 || timeoutMs > runtime.policy.maxTimeoutMs) {
    throw badRequest(`timeout must be between 0 and ${runtime.policy.maxTimeoutMs / 1000}s`);
  }
  return timeoutMs;
}

function adminDeadline(c: Context<AppBindings>, runtime: Runtime): number {
  return deadlineFor(
    parseQueryParams(new URL(c.req.url), "plain", c.var.querySchema),
    c.var.startedAt,
    runtime.policy,
    "plain",
  );
}

function adminResponse<T extends Record<string, unknown>>(c: Context<AppBindings>, outcome: RouteOutcome<T>): Response {
  if (!outcome.ok) {
    throw failureError(outcome, "plain");
  }
  if (typeof outcome.value.leader === "string") {
    c.var.runtime().router.noteLeader(outcome.value.leader);
  }
  return wireResponse(c, outcome.value as unknown as WireValue, 200, { [NODE_HEADER]: outcome.node });
}
