// Node names and members in requests, checked by the objects' validateMember: the worker accepts exactly what the
// nodes accept, and refuses the rest with the nodes' own explanation. A well-formed name must also belong to the
// cluster before any object of that name is reached: every object reached is created, and billed, for good.
import { z } from "zod";
import type { MemberConfig } from "../../objects/api";
import { viewOf } from "../cluster/gather";
import { memberProblem } from "../config";
import type { Runtime } from "../types";
import { ApiError, badRequest, type ErrorShape } from "./errors";
import { memberBodySchema } from "./schemas";

export { nodeNameSchema } from "./schemas";

/** A member to add: the body's fields, checked by the objects' validateMember (the location hint included). */
export const memberSchema = memberBodySchema.transform((body, ctx): MemberConfig => {
  const member: MemberConfig =
    body.locationHint === undefined ? { name: body.name } : { name: body.name, locationHint: body.locationHint };
  // The name passed above, so a problem left is the location hint's.
  const problem = memberProblem(member);
  if (problem !== null) {
    ctx.addIssue({ code: "custom", message: problem, path: ["locationHint"] });
    return z.NEVER;
  }
  return member;
});

/**
 * Refuses a name that is malformed (400) or not a member of the cluster (404). A configured name passes without a
 * call, unless `live` asks for the membership the configured nodes report (the admin routes on a member: a configured
 * node that was removed would be refused by the leader on every retry until the deadline); any other name is looked
 * up there (members added at run time). The status calls go to configured members only; when none answers, a
 * configured name is let through (the call then meets the nodes' own answer) and any other is a 503.
 */
export async function requireMember(
  runtime: Runtime,
  name: string,
  options: { what: string; timeoutMs: number; shape?: ErrorShape; live?: boolean },
): Promise<void> {
  const shape = options.shape ?? "plain";
  const problem = memberProblem({ name });
  if (problem !== null) {
    throw badRequest(`${options.what}: ${problem}`, shape);
  }
  const configured = runtime.router.memberNames();
  // A health check of one node must not wait on the others (a load balancer's check of n1 while n2 hangs).
  if (options.live !== true && configured.includes(name)) {
    return;
  }
  const probes = await runtime.router.probeAll(configured, options.timeoutMs);
  if (!probes.some((probe) => probe.ok)) {
    if (configured.includes(name)) {
      return;
    }
    throw new ApiError(503, `cannot tell whether ${name} is a member: no configured node answered`, {
      shape,
      code: "UNREACHABLE",
      retryAfterSeconds: runtime.router.retryAfterSeconds(),
    });
  }
  const view = viewOf(runtime.config, probes);
  const members = [...new Set([...view.voters, ...view.learners])];
  if (!members.includes(name)) {
    throw new ApiError(
      404,
      `${options.what}: ${name} is not a member of cluster ${runtime.config.name}: members are ${members.join(", ")}`,
      {
        shape,
        code: "NOT_MEMBER",
      },
    );
  }
}
