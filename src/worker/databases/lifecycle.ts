// Creating and dropping the databases of a deployment: the catalog transitions (CREATING -> ONLINE, -> DROPPING ->
// DROPPED), each logged as one JSON line, and the calls to the database's nodes in between. Every step is
// idempotent: a request that fails half way leaves a state that the same request, repeated, finishes.
import {
  CONFIG_LIMITS,
  databaseClusterName,
  parseDatabaseClusterName,
  SYSTEM_DATABASE,
  SYSTEM_GENERATION,
  validateClusterConfig,
  type ClusterConfig,
  type DropValue,
  type MemberConfig,
} from "../../objects/api";
import { ApiError } from "../http/errors";
import type { Runtime } from "../runtime";
import type { Catalog } from "./catalog";
import {
  MAX_ADDED_NODES,
  type CreateDatabaseBody,
  type DatabaseEntry,
  type DatabaseOptions,
  type DatabaseState,
} from "./schemas";

/** Drop: how long calls in flight and long operations (load, backup, snapshot streams) may still run, by default. */
export const DEFAULT_DROP_DRAIN_MS = 10_000;
/** At most this many rounds of asking nodes for members the catalog does not list (added at run time). */
const MAX_MEMBER_ROUNDS = 3;

/** The system database: the deployment's nodes and timing, its own Raft group (created by its first call). */
export function systemClusterConfig(deployment: ClusterConfig): ClusterConfig {
  return {
    name: databaseClusterName({
      deployment: deployment.name,
      database: SYSTEM_DATABASE,
      generation: SYSTEM_GENERATION,
    }),
    members: deployment.members,
    heartbeatIntervalMs: deployment.heartbeatIntervalMs,
    electionTimeoutMs: deployment.electionTimeoutMs,
  };
}

/** The Raft group of one generation of a database. */
export function databaseClusterConfig(deployment: ClusterConfig, entry: DatabaseEntry): ClusterConfig {
  return {
    name: databaseClusterName({ deployment: deployment.name, database: entry.name, generation: entry.generation }),
    members: entry.options.members.map((member) => ({ ...member })),
    heartbeatIntervalMs: entry.options.heartbeatIntervalMs,
    electionTimeoutMs: entry.options.electionTimeoutMs,
  };
}

/** PUT's options with the deployment's defaults filled in; 400 for a combination the nodes would refuse. */
export function resolveOptions(body: CreateDatabaseBody, deployment: ClusterConfig): DatabaseOptions {
  let members: MemberConfig[];
  if (body.nodes === undefined) {
    members = deployment.members.map((member) => ({ ...member }));
  } else if (typeof body.nodes === "number") {
    members = Array.from({ length: body.nodes }, (_, i) => ({ name: `n${i + 1}` }));
  } else {
    members = body.nodes.map((name) => ({ name }));
  }
  if (body.locationHints !== undefined) {
    const hints = body.locationHints;
    members = members.map((member, i) => ({ name: member.name, locationHint: hints[i % hints.length] as string }));
  }
  const options: DatabaseOptions = {
    members,
    heartbeatIntervalMs: body.heartbeatIntervalMs ?? deployment.heartbeatIntervalMs,
    electionTimeoutMs: body.electionTimeoutMs ?? deployment.electionTimeoutMs,
  };
  try {
    validateClusterConfig({ name: deployment.name, ...options });
  } catch (error) {
    throw new ApiError(400, (error as Error).message.replace(/^cluster configuration: /, "database options: "), {
      code: "BAD_REQUEST",
    });
  }
  return options;
}

export function sameOptions(a: DatabaseOptions, b: DatabaseOptions): boolean {
  return JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));
}

function canonical(options: DatabaseOptions): DatabaseOptions {
  return {
    members: options.members.map((m) => (m.locationHint === undefined ? { name: m.name } : { ...m })),
    heartbeatIntervalMs: options.heartbeatIntervalMs,
    electionTimeoutMs: options.electionTimeoutMs,
  };
}

/** One JSON line per catalog transition (Workers Logs / wrangler tail). */
export function logTransition(
  entry: { readonly name: string; readonly generation: number; readonly from: DatabaseState | null },
  to: DatabaseState,
  reason: string,
  atMs: number,
): void {
  console.log(
    JSON.stringify({
      level: "info",
      event: "databaseStateChanged",
      database: entry.name,
      generation: entry.generation,
      from: entry.from,
      to,
      reason,
      at: new Date(atMs).toISOString(),
    }),
  );
}

/** The membership change a node is recorded for. */
export type MemberChange = "addition" | "removal";

/**
 * Records `node` in the catalog as a node of the database `runtime` serves, before an admin call that may give it
 * storage (an addition) or leave it holding some (a removal) reaches the leader: a drop wipes every recorded node,
 * so none keeps a copy of a dropped database. Configured members are wiped anyway and need no record. 410 once the
 * database is being dropped (the call would be refused), 409 when its record is full (a removal then too: removed
 * unrecorded, the node would keep its copy out of any drop's reach).
 */
export async function recordNode(
  catalog: Catalog,
  runtime: Runtime,
  node: string,
  options: { readonly atMs: number; readonly deadlineAt: number; readonly change: MemberChange },
): Promise<void> {
  if (runtime.config.members.some((member) => member.name === node)) {
    return;
  }
  const parsed = parseDatabaseClusterName(runtime.config.name);
  if (parsed === null) {
    throw new Error(`assertion failed: ${runtime.config.name} is not the cluster of a named database`);
  }
  const { database: name, generation } = parsed;
  const refusal = await catalog
    .recordNode({ name, generation, node, atMs: options.atMs, deadlineAt: options.deadlineAt })
    .catch((error: unknown) => {
      throw unrecorded(error, node, options.change);
    });
  if (refusal === "DROPPED") {
    throw new ApiError(410, `database ${JSON.stringify(name)} was dropped (or is being dropped)`, {
      code: "DROPPED",
    });
  }
  if (refusal === "FULL") {
    const full = `database ${name} has had ${MAX_ADDED_NODES} nodes added at run time, the most one database may have (a drop must reach each)`;
    throw new ApiError(
      409,
      options.change === "addition"
        ? `${full}: add one of those names again (a removed node may be added back), or move to a new database`
        : `${full}, and ${node} is not among them (a worker of an earlier version added it): it cannot be removed, since a removed node keeps its copy of the data and only a member or a recorded node is wiped by a drop; leave it a member (a drop wipes it), or move to a new database`,
      { code: "MEMBER_LIMIT" },
    );
  }
}

/**
 * The change was not sent when its record failed: a 504 of the catalog (its write not confirmed in time) is a 503
 * here, nothing changed, for the client to retry (a record that was applied after all costs nothing: the same name
 * counts once).
 */
function unrecorded(error: unknown, node: string, change: MemberChange): unknown {
  if (!(error instanceof ApiError) || error.status !== 504) {
    return error;
  }
  return new ApiError(
    503,
    `the catalog of databases did not confirm the record of ${node} in time, so the ${change} was not sent: nothing changed, retry (${error.message})`,
    { code: "UNAVAILABLE", retryAfterSeconds: 1 },
  );
}

/**
 * A DROPPED generation whose record still names nodes was dropped by a worker of an earlier version, which neither
 * read nor forgot the record: a member removed before that drop kept its copy. Wipes the recorded nodes (the others
 * answer from their tombstones) and forgets the record; 503 when a node cannot be reached (repeat the DELETE).
 * The usual record is empty: one read.
 */
export async function wipeLeftBehind(
  context: LifecycleContext,
  entry: DatabaseEntry,
  options: { reason: string },
): Promise<void> {
  const recorded = await context.catalog.recordedNodes(entry, context.deadlineAt);
  if (recorded.length === 0) {
    return;
  }
  const report = await dropNodes(context, entry, { drainMs: 0, reason: options.reason });
  if (report.failures.length > 0) {
    throw notEveryNodeDropped(entry, report.failures);
  }
  await context.catalog.forgetNodes(entry, context.deadlineAt);
  console.log(
    JSON.stringify({
      level: "warn",
      event: "databaseRecordedNodesWiped",
      database: entry.name,
      generation: entry.generation,
      nodes: recorded,
      reason: "an earlier version dropped the database without the record of the nodes added at run time",
    }),
  );
}

/** A drop that could not reach every node: the database stays as it is (DROPPING, or DROPPED with its record). */
export function notEveryNodeDropped(
  entry: { readonly name: string; readonly state: DatabaseState },
  failures: readonly string[],
): ApiError {
  const state =
    entry.state === "DROPPED"
      ? "is DROPPED, but a drop by an earlier version left nodes it had recorded"
      : "is DROPPING and refuses every request";
  return new ApiError(
    503,
    `database ${entry.name} ${state}, and not every node could be dropped yet (${failures.join("; ")}): repeat the DELETE`,
    { code: "DROPPING", retryAfterSeconds: 1 },
  );
}

export interface LifecycleContext {
  readonly catalog: Catalog;
  /** The database's runtime (router over its nodes) for a catalog entry. */
  readonly runtimeOf: (entry: DatabaseEntry) => Runtime;
  readonly now: () => number;
  readonly deadlineAt: number;
}

/**
 * Moves the entry and logs the transition: the entry as the catalog now holds it, or null (nothing logged) when
 * another request moved it first.
 */
export async function transition(
  context: LifecycleContext,
  entry: DatabaseEntry,
  options: { from: readonly DatabaseState[]; to: DatabaseState; reason: string },
): Promise<DatabaseEntry | null> {
  const atMs = context.now();
  const moved = await context.catalog.transition({ entry, ...options, atMs, deadlineAt: context.deadlineAt });
  if (!moved) {
    return null;
  }
  logTransition(
    { name: entry.name, generation: entry.generation, from: entry.state },
    options.to,
    options.reason,
    atMs,
  );
  return { ...entry, state: options.to, reason: options.reason, updatedAt: new Date(atMs).toISOString() };
}

/** CREATING -> ONLINE once every configured node has started and a leader is elected. */
export async function bringOnline(context: LifecycleContext, entry: DatabaseEntry): Promise<DatabaseEntry> {
  const runtime = context.runtimeOf(entry);
  const started = await Promise.all(
    runtime.router.memberNames().map(async (node) => {
      const remainingMs = context.deadlineAt - context.now();
      const outcome = await runtime.router.toNode(node, (rpc, address) => rpc.start(address), remainingMs);
      return outcome.ok ? null : { node, code: outcome.code, message: outcome.message };
    }),
  );
  const failed = started.filter((failure) => failure !== null);
  if (failed.some((failure) => failure.code === "DROPPED")) {
    throw droppedWhileCreating(entry);
  }
  const failures = failed.map((failure) => `${failure.node}: ${failure.message}`);
  if (failures.length > 0) {
    throw new ApiError(
      503,
      `database ${entry.name} is CREATING: not every node started (${failures.join("; ")}); repeat the PUT to finish`,
      {
        code: "CREATING",
        retryAfterSeconds: runtime.router.retryAfterSeconds(),
      },
    );
  }
  const leader = await runtime.router.toLeader(
    (rpc, address, timeoutMs) => rpc.waitForLeader({ ...address, timeoutMs }),
    { deadlineAt: context.deadlineAt, kind: "admin" },
  );
  if (!leader.ok) {
    throw new ApiError(
      503,
      `database ${entry.name} is CREATING: no leader yet (${leader.message}); repeat the PUT to finish`,
      {
        code: "CREATING",
        retryAfterSeconds: runtime.router.retryAfterSeconds(),
      },
    );
  }
  const reason = `leader ${leader.value.leader} elected`;
  const online = await transition(context, entry, { from: ["CREATING"], to: "ONLINE", reason });
  if (online !== null) {
    return online;
  }
  // Another request moved it first: a concurrent PUT brought it online (that is the answer), or a DELETE began to
  // drop it (then it is not online, whatever this PUT saw).
  const current = await context.catalog.get(entry.name, { deadlineAt: context.deadlineAt, strong: true });
  if (current !== null && current.generation === entry.generation && current.state === "ONLINE") {
    return current;
  }
  throw droppedWhileCreating(entry);
}

function droppedWhileCreating(entry: DatabaseEntry): ApiError {
  return new ApiError(
    409,
    `database ${entry.name} was dropped while it was being created: repeat the DELETE if it is still DROPPING, then the PUT`,
    { code: "DROPPING" },
  );
}

export interface DropReport {
  readonly nodes: readonly string[];
  readonly brokenLeases: number;
  readonly failures: readonly string[];
  /** When each node answered each phase and how long its drain waited (for the drop's log line). */
  readonly answers: readonly NodeDropAnswer[];
}

export interface NodeDropAnswer {
  readonly node: string;
  readonly phase: "close" | "wipe";
  readonly answeredAtMs: number;
  /** How long the node waited for calls in flight to end; null when it did not answer. */
  readonly drainedMs: number | null;
}

/** When a drop reached each phase (clock ms), for its log line. */
export interface DropTimeline {
  readonly receivedAtMs: number;
  readonly foundAtMs: number;
  readonly droppingAtMs: number;
  readonly droppedAtMs: number;
  readonly answers: readonly NodeDropAnswer[];
}

/**
 * One JSON line per finished drop: milliseconds from the DELETE's arrival to the catalog read, DROPPING committed,
 * every node closed (new calls refused, calls in flight drained), every node wiped, and DROPPED committed.
 */
export function logDropTimeline(database: { readonly name: string; readonly generation: number }, t: DropTimeline) {
  const since = (atMs: number) => atMs - t.receivedAtMs;
  const lastAnswer = (phase: "close" | "wipe") =>
    since(Math.max(t.droppingAtMs, ...t.answers.filter((a) => a.phase === phase).map((a) => a.answeredAtMs)));
  console.log(
    JSON.stringify({
      level: "info",
      event: "databaseDropTimeline",
      database: database.name,
      generation: database.generation,
      catalogReadMs: since(t.foundAtMs),
      droppingCommittedMs: since(t.droppingAtMs),
      nodesClosedMs: lastAnswer("close"),
      nodesWipedMs: lastAnswer("wipe"),
      droppedCommittedMs: since(t.droppedAtMs),
      longestDrainMs: Math.max(0, ...t.answers.map((a) => a.drainedMs ?? 0)),
      nodes: t.answers.map((a) => ({
        node: a.node,
        phase: a.phase,
        answeredAfterMs: since(a.answeredAtMs),
        drainedMs: a.drainedMs,
      })),
    }),
  );
}

/**
 * DROPPING (committed before this is called): close every node (new calls refused, calls in flight and long
 * operations drained for up to `drainMs`, then broken), then wipe every node (stopped, alarm deleted, storage
 * deleted, tombstone written). Every node is the configured members, the nodes the catalog recorded as added at run
 * time (members removed since included: a removal keeps the node's storage), and the members the nodes report (one
 * added by a worker of an earlier version, or while the drop began). Wiping a recorded node that never got storage
 * leaves only its tombstone.
 */
export async function dropNodes(
  context: LifecycleContext,
  entry: DatabaseEntry,
  options: { drainMs: number; reason: string },
): Promise<DropReport> {
  const runtime = context.runtimeOf(entry);
  const recorded = await context.catalog.recordedNodes(entry, context.deadlineAt);
  const known = new Set([...runtime.router.memberNames(), ...recorded]);
  const failures: string[] = [];
  const answers: NodeDropAnswer[] = [];
  let brokenLeases = 0;
  const phase = async (name: "close" | "wipe", nodes: readonly string[]): Promise<string[]> => {
    const learned: string[] = [];
    await Promise.all(
      nodes.map(async (node) => {
        const remainingMs = context.deadlineAt - context.now();
        const outcome = await runtime.router.toNode(
          node,
          (rpc, address) => {
            if (rpc.drop === undefined) {
              throw new Error("this node cannot drop databases (an older version)");
            }
            return rpc.drop({
              ...address,
              phase: name,
              timeoutMs: Math.max(0, Math.min(options.drainMs, remainingMs - 1_000)),
              reason: options.reason,
            });
          },
          remainingMs,
        );
        const answeredAtMs = context.now();
        if (!outcome.ok) {
          answers.push({ node, phase: name, answeredAtMs, drainedMs: null });
          failures.push(`${node} (${name}): ${outcome.message}`);
          return;
        }
        const value: DropValue = outcome.value;
        answers.push({ node, phase: name, answeredAtMs, drainedMs: value.waitedMs });
        brokenLeases += value.brokenLeases.length;
        learned.push(...value.members.filter((member) => !known.has(member)));
      }),
    );
    return learned;
  };
  let pending = [...known];
  for (let round = 0; round < MAX_MEMBER_ROUNDS && pending.length > 0; round++) {
    const learned = [...new Set(await phase("close", pending))].slice(0, CONFIG_LIMITS.maxMembers);
    learned.forEach((node) => known.add(node));
    pending = learned;
  }
  // A wipe answers the members its node knew after draining: one added by a call in flight when the drop began is
  // learned only there, and is wiped too.
  let toWipe = failures.length === 0 ? [...known] : [];
  for (let round = 0; round < MAX_MEMBER_ROUNDS && toWipe.length > 0 && failures.length === 0; round++) {
    const learned = [...new Set(await phase("wipe", toWipe))].slice(0, CONFIG_LIMITS.maxMembers);
    learned.forEach((node) => known.add(node));
    toWipe = learned;
  }
  return { nodes: [...known], brokenLeases, failures, answers };
}
