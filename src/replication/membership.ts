// Cluster configurations: validation, single-server changes, and the JSON carried by config entries.
// A config entry's data is the JSON of the full resulting Membership; it takes effect when the entry is applied.
import { invariant, RaftInvariantError } from "./assert.js";
import type { ConfigChange, Membership, NodeId } from "./types.js";

export const EMPTY_MEMBERSHIP: Membership = Object.freeze({ voters: Object.freeze([]), learners: Object.freeze([]) });

export function isVoter(membership: Membership, id: NodeId): boolean {
  return membership.voters.includes(id);
}

export function isLearner(membership: Membership, id: NodeId): boolean {
  return membership.learners.includes(id);
}

export function isMember(membership: Membership, id: NodeId): boolean {
  return isVoter(membership, id) || isLearner(membership, id);
}

/** Every voter and learner except `id`. */
export function membersExcept(membership: Membership, id: NodeId): NodeId[] {
  return [...membership.voters, ...membership.learners].filter((member) => member !== id);
}

/** A description of what is wrong with `membership`, or null when it is well formed. */
export function membershipProblem(membership: unknown): string | null {
  if (typeof membership !== "object" || membership === null) {
    return "membership must be an object";
  }
  const { voters, learners } = membership as { voters?: unknown; learners?: unknown };
  if (!Array.isArray(voters) || !Array.isArray(learners)) {
    return "membership needs arrays `voters` and `learners`";
  }
  const seen = new Set<string>();
  for (const id of [...voters, ...learners] as unknown[]) {
    if (typeof id !== "string" || id.length === 0) {
      return `node ids must be non-empty strings, got ${JSON.stringify(id)}`;
    }
    if (seen.has(id)) {
      return `node ${id} is listed twice`;
    }
    seen.add(id);
  }
  return null;
}

/** Throws a clear error unless `membership` is a usable bootstrap configuration (at least one voter). */
export function validateBootstrapMembership(membership: Membership): void {
  const problem = membershipProblem(membership);
  if (problem !== null) {
    throw new TypeError(`bootstrap membership: ${problem}`);
  }
  if (membership.voters.length === 0) {
    throw new TypeError("bootstrap membership: at least one voter is required");
  }
}

export type ConfigChangeResult =
  { readonly ok: true; readonly membership: Membership } | { readonly ok: false; readonly message: string };

/** The membership after `change`, or why the change is not allowed. */
export function applyConfigChange(membership: Membership, change: ConfigChange): ConfigChangeResult {
  if (typeof change !== "object" || change === null || typeof change.node !== "string" || change.node.length === 0) {
    return { ok: false, message: "a config change needs a non-empty node id" };
  }
  const node = change.node;
  switch (change.kind) {
    case "addLearner":
      if (isMember(membership, node)) {
        return { ok: false, message: `node ${node} is already a member` };
      }
      return { ok: true, membership: { voters: [...membership.voters], learners: [...membership.learners, node] } };
    case "promote":
      if (!isLearner(membership, node)) {
        return { ok: false, message: `node ${node} is not a learner; only learners can be promoted` };
      }
      return {
        ok: true,
        membership: { voters: [...membership.voters, node], learners: membership.learners.filter((id) => id !== node) },
      };
    case "remove":
      if (!isMember(membership, node)) {
        return { ok: false, message: `node ${node} is not a member` };
      }
      if (isVoter(membership, node) && membership.voters.length === 1) {
        return { ok: false, message: `node ${node} is the last voter; a cluster cannot remove its last voter` };
      }
      return {
        ok: true,
        membership: {
          voters: membership.voters.filter((id) => id !== node),
          learners: membership.learners.filter((id) => id !== node),
        },
      };
    default:
      return {
        ok: false,
        message: `unknown config change kind ${JSON.stringify((change as { kind?: unknown }).kind)}`,
      };
  }
}

export function encodeMembership(membership: Membership): string {
  return JSON.stringify({ voters: membership.voters, learners: membership.learners });
}

/** Decodes a committed config entry; a malformed one means a corrupted log, hence an invariant error. */
export function decodeMembership(data: string, index: number): Membership {
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    throw new RaftInvariantError(`config entry ${index} does not hold JSON: ${data.slice(0, 200)}`);
  }
  const problem = membershipProblem(parsed);
  invariant(problem === null, () => `config entry ${index} holds a malformed membership: ${String(problem)}`);
  const { voters, learners } = parsed as Membership;
  return { voters: [...voters], learners: [...learners] };
}

export function sameMembership(a: Membership, b: Membership): boolean {
  const sameSet = (x: readonly NodeId[], y: readonly NodeId[]): boolean =>
    x.length === y.length && x.every((id) => y.includes(id));
  return sameSet(a.voters, b.voters) && sameSet(a.learners, b.learners);
}
