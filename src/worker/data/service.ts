// The data operations, independent of HTTP: the routes and the service-binding entrypoint both call these.
import type { BackupValue, ExecuteValue, MemberConfig, MembershipValue, QueryValue } from "../../objects/api";
import type { ReadLevel, Statement } from "../../shared/sql";
import type { NodeCall, RouteOutcome } from "../routing/router";
import type { Runtime } from "../runtime";
import { isReadStatement } from "../../shared/sql-text/classify";

export interface ExecuteInput {
  readonly statements: readonly Statement[];
  readonly transaction: boolean;
  /** Reused by every retry of this request: the leader applies it once. */
  readonly requestId: string;
  readonly deadlineAt: number;
}

export interface QueryInput {
  readonly statements: readonly Statement[];
  /** Omitted: rqlite's default, weak. */
  readonly level?: ReadLevel;
  readonly freshnessMs?: number;
  /** Read-your-writes: serve only once the node has applied this log index. */
  readonly minRaftIndex?: number;
  readonly transaction: boolean;
  readonly deadlineAt: number;
  /** Where to read first when any node may serve (e.g. the caller's continent). Defaults to a random rotation. */
  readonly preference?: readonly string[];
}

export type ConcreteLevel = Exclude<ReadLevel, "auto">;

/** Executes statements through the log, on the leader. */
export async function executeStatements(runtime: Runtime, input: ExecuteInput): Promise<RouteOutcome<ExecuteValue>> {
  const outcome = await runtime.router.toLeader(
    (node, address, timeoutMs) =>
      node.execute({
        ...address,
        request: { id: input.requestId, statements: input.statements, transaction: input.transaction },
        timeoutMs,
      }),
    { deadlineAt: input.deadlineAt, kind: "write" },
  );
  if (outcome.ok) {
    runtime.recentWrites.acknowledged(outcome.value.raftIndex, runtime.now());
  }
  return outcome;
}

/**
 * Reads at the requested level. weak and strong go to the leader; none and linearizable to any node (a follower
 * asks the leader for a read index); a read carrying a raft index without an explicit level reads at "none" with
 * that index as a floor, so any node that has applied the write may serve it.
 */
export function queryStatements(runtime: Runtime, input: QueryInput): Promise<RouteOutcome<QueryValue>> {
  const level = concreteLevel(input);
  const { floor, recent } = readFloor(runtime, input, level);
  /** Nodes this read gave the floor's whole wait: only their STALE says they are behind (not a short deadline). */
  const waitedFully = new Set<string>();
  const call: NodeCall<QueryValue> = (node, address, timeoutMs) => {
    if (floor.minAppliedWaitMs !== undefined && timeoutMs >= floor.minAppliedWaitMs) {
      waitedFully.add(address.node);
    }
    return node.query({
      ...address,
      statements: input.statements,
      level,
      ...(level === "none" && input.freshnessMs !== undefined && input.freshnessMs > 0
        ? { freshnessMs: input.freshnessMs }
        : {}),
      ...floor,
      transaction: input.transaction,
      timeoutMs,
    });
  };
  const options = {
    deadlineAt: input.deadlineAt,
    kind: "read" as const,
    endWhenEveryNodeStale: isFreshnessBound(input),
  };
  if (level === "weak" || level === "strong") {
    return runtime.router.toLeader(call, options);
  }
  if (!recent) {
    return runtime.router.toAnyNode(call, options, input.preference ?? []);
  }
  // This isolate's own floor: a node that lately answered STALE to it after the whole wait is asked last, and one
  // that answers so now will be.
  const onStale = (node: string) => {
    if (waitedFully.has(node)) {
      runtime.recentWrites.nodeBehind(node, runtime.now());
    }
  };
  const behind = runtime.recentWrites.nodesBehind(runtime.now());
  return runtime.router.toAnyNode(call, { ...options, onStale }, input.preference ?? [], behind);
}

/**
 * The applied index a read needs: the client's own (read-your-writes), else for level none what this isolate
 * acknowledged lately, waited for only briefly (data/recent-writes.ts); none for the leader-served levels.
 */
function readFloor(
  runtime: Runtime,
  input: Pick<QueryInput, "minRaftIndex">,
  level: ConcreteLevel,
): {
  readonly floor: { readonly minAppliedIndex?: number; readonly minAppliedWaitMs?: number };
  /** Whether the floor is this isolate's recent writes' (not the client's own). */
  readonly recent: boolean;
} {
  if (input.minRaftIndex !== undefined) {
    return { floor: { minAppliedIndex: input.minRaftIndex }, recent: false };
  }
  const recent = level === "none" ? runtime.recentWrites.floorAt(runtime.now()) : null;
  return recent === null
    ? { floor: {}, recent: false }
    : { floor: { minAppliedIndex: recent.minRaftIndex, minAppliedWaitMs: recent.waitMs }, recent: true };
}

/** rqlite's levels, resolved: no level is weak; auto is none when freshness bounds it, else weak. */
export function concreteLevel(input: Pick<QueryInput, "level" | "freshnessMs" | "minRaftIndex">): ConcreteLevel {
  const bounded = input.freshnessMs !== undefined && input.freshnessMs > 0;
  if (input.level === undefined) {
    return input.minRaftIndex !== undefined ? "none" : "weak";
  }
  if (input.level === "auto") {
    return bounded || input.minRaftIndex !== undefined ? "none" : "weak";
  }
  return input.level;
}

/** A read at level none bounded by freshness alone (no raft index of the client's own to wait for). */
export function isFreshnessBound(input: Pick<QueryInput, "level" | "freshnessMs" | "minRaftIndex">): boolean {
  const bounded = input.freshnessMs !== undefined && input.freshnessMs > 0;
  return bounded && input.minRaftIndex === undefined && concreteLevel(input) === "none";
}

/**
 * The unified endpoint: the read path when the node would serve every statement as a read (as rqlite sends a request
 * of read-only statements to its query path), otherwise everything goes through the log.
 */
export function requestNeedsLog(statements: readonly Statement[]): boolean {
  return !statements.every((statement) => isReadStatement(statement.sql));
}

/**
 * A SQL dump of the leader's applied state: a follower's may miss acknowledged writes. Sent only to a node that
 * reports itself leader (nodes refuse backups as followers too), and never taken as proof of who leads. A dump past
 * `maxDumpBytes` is refused by the leader (TOO_LARGE, 413), once: every node would refuse it.
 */
export function backupFromLeader(
  runtime: Runtime,
  options: { readonly deadlineAt: number; readonly maxDumpBytes: number },
): Promise<RouteOutcome<BackupValue>> {
  return runtime.router.toCheckedLeader(
    (node, address) => node.backup({ ...address, maxDumpBytes: options.maxDumpBytes }),
    { deadlineAt: options.deadlineAt, kind: "read" },
  );
}

export function transferLeadership(
  runtime: Runtime,
  to: string | undefined,
  deadlineAt: number,
): Promise<RouteOutcome<{ readonly leader: string; readonly term: number }>> {
  return runtime.router.toLeader(
    async (node, address, timeoutMs) => {
      if (to === address.node) {
        // Handing leadership to the node we are calling: if it already leads, there is nothing to do.
        const status = await node.status(address);
        if (status.ok && status.value.role === "leader") {
          return { ok: true, node: address.node, value: { leader: address.node, term: status.value.term } };
        }
      }
      return node.transferLeadership({ ...address, ...(to === undefined ? {} : { to }), timeoutMs });
    },
    { deadlineAt, kind: "admin" },
  );
}

export function addMember(
  runtime: Runtime,
  member: MemberConfig,
  deadlineAt: number,
): Promise<RouteOutcome<MembershipValue>> {
  return runtime.router.toLeader((node, address, timeoutMs) => node.addMember({ ...address, member, timeoutMs }), {
    deadlineAt,
    kind: "admin",
  });
}

export function removeMember(
  runtime: Runtime,
  name: string,
  deadlineAt: number,
): Promise<RouteOutcome<MembershipValue>> {
  return runtime.router.toLeader(
    (node, address, timeoutMs) => node.removeMember({ ...address, member: { name }, timeoutMs }),
    { deadlineAt, kind: "admin" },
  );
}

/** The leader replaces `name`'s state with its own (the consistency monitor's repair). */
export function repairMember(
  runtime: Runtime,
  name: string,
  deadlineAt: number,
): Promise<RouteOutcome<{ readonly node: string; readonly imageIndex: number; readonly durationMs: number }>> {
  return runtime.router.toLeader(
    async (node, address, timeoutMs) => {
      if (node.repairMember === undefined) {
        return {
          ok: false,
          node: address.node,
          error: { code: "PROTOCOL", message: `node ${address.node} runs a version without repair`, retryable: false },
        };
      }
      return node.repairMember({ ...address, member: name, timeoutMs });
    },
    { deadlineAt, kind: "admin" },
  );
}

/** Continents as Cloudflare reports them (request.cf.continent), to the location hints nearest to each. */
const HINTS_BY_CONTINENT: Record<string, readonly string[]> = {
  NA: ["wnam", "enam"],
  SA: ["sam"],
  EU: ["weur", "eeur"],
  AS: ["apac", "me"],
  OC: ["oc"],
  AF: ["afr"],
};

/** Nodes placed on the caller's continent first, then the rest; each group in a random rotation to spread load. */
export function nodePreference(runtime: Runtime, continent: string | undefined): string[] {
  const near = new Set(continent === undefined ? [] : (HINTS_BY_CONTINENT[continent] ?? []));
  const members = runtime.config.members;
  const close = members.filter((m) => m.locationHint !== undefined && near.has(m.locationHint)).map((m) => m.name);
  const far = members.filter((m) => !close.includes(m.name)).map((m) => m.name);
  return [...rotate(close, runtime.random), ...rotate(far, runtime.random)];
}

function rotate(names: readonly string[], random: () => number): string[] {
  if (names.length === 0) {
    return [];
  }
  const start = Math.floor(random() * names.length) % names.length;
  return [...names.slice(start), ...names.slice(0, start)];
}
