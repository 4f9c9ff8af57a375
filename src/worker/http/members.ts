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
 * Refuses a name that is malformed (400) or not a member of the cluster (404). The name is looked up in the
 * membership the configured nodes report (members added at run time are there; a configured node that was removed is
 * not: a call for it would be refused by the leader on every retry until the deadline). The status calls go to
 * configured members only; when none answers, a configured name is let through (the call then meets the nodes'
 * own answer) and any other is a 503.
 */
export async function requireMember(
  runtime: Runtime,
  name: string,
  options: { what: string; timeoutMs: number; shape?: ErrorShape },
): Promise<void> {
  const shape = options.shape ?? "plain";
  const problem = memberProblem({ name });
  if (problem !== null) {
    throw badRequest(`${options.what}: ${problem}`, shape);
  }
  const configured = runtime.router.memberNames();
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
