// Node names and members in request bodies, checked by the objects' validateMember: the worker accepts exactly
// what the nodes accept, and refuses the rest with the nodes' own explanation.
import { z } from "zod";
import type { MemberConfig } from "../../objects/api";
import { memberProblem } from "../config";

export const nodeNameSchema = z.string().superRefine((name, ctx) => {
  const problem = memberProblem({ name });
  if (problem !== null) {
    ctx.addIssue({ code: "custom", message: problem });
  }
});

export const memberSchema = z
  .strictObject({ name: nodeNameSchema, locationHint: z.string().optional() })
  .transform((body, ctx): MemberConfig => {
    const member: MemberConfig = body.locationHint === undefined ? { name: body.name } : { name: body.name, locationHint: body.locationHint };
    // The name passed above, so a problem left is the location hint's.
    const problem = memberProblem(member);
    if (problem !== null) {
      ctx.addIssue({ code: "custom", message: problem, path: ["locationHint"] });
      return z.NEVER;
    }
    return member;
  });
