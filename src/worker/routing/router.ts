// Sends a call to the leader (writes, weak and strong reads, admin) or to any node (none and linearizable reads,
// read-your-writes), following "not leader" hints, waiting out elections (bounded), retrying with exponential
// backoff and full jitter, all inside the request's deadline.
import type { ClusterNodeRpc, NodeAddress, NodeError, NodeResult, NodeStatusReport } from "../../objects/api";
import { nodeAddress, type NodeDirectory } from "../directory";
import { DeadlineExceeded, sleep, withDeadline } from "./deadline";
import type { LeaderCache } from "./leader-cache";

export interface RoutingPolicy {
  /** Deadline of a request that names none (?timeout=). */
  readonly defaultTimeoutMs: number;
  /** The longest deadline a request may ask for. */
  readonly maxTimeoutMs: number;
  /** Node calls per request, waits for an election included. */
  readonly maxAttempts: number;
  readonly baseBackoffMs: number;
  readonly maxBackoffMs: number;
  /** The longest one call may take, so that a hung node cannot eat the whole deadline. */
  readonly attemptTimeoutMs: number;
  /**
   * The share of the remaining deadline one call may take when another node could serve it too (reads any node
   * may serve): a lagging follower that waits to catch up then leaves time to read from the leader.
   */
  readonly anyNodeAttemptShare: number;
  /** The longest a request waits for an election to complete (waitForLeader). */
  readonly maxElectionWaitMs: number;
  /**
   * The node's own timeout is this much shorter than ours (at least one heartbeat interval, the step in which nodes
   * wait), so that it answers TIMEOUT before we stop listening.
   */
  readonly nodeMarginMs: number;
  /** Per-node deadline of status fan-outs (health, /nodes, /status, /readyz). */
  readonly statusTimeoutMs: number;
}

export const DEFAULT_ROUTING_POLICY: RoutingPolicy = {
  defaultTimeoutMs: 10_000,
  maxTimeoutMs: 60_000,
  maxAttempts: 8,
  baseBackoffMs: 25,
  maxBackoffMs: 1_000,
  attemptTimeoutMs: 5_000,
  anyNodeAttemptShare: 0.5,
  maxElectionWaitMs: 5_000,
  nodeMarginMs: 50,
  statusTimeoutMs: 2_000,
};

/** What a call does with a node: every call receives the node's address and how long it may take. */
export type NodeCall<T> = (node: ClusterNodeRpc, address: NodeAddress, timeoutMs: number) => Promise<NodeResult<T>>;

/**
 * write: retried with the same request id (the leader deduplicates); a lost answer makes the outcome unknown.
 * read: retried freely. admin: not retried after TIMEOUT (the change may be under way), conflicts answered at once.
 */
export type RouteKind = "write" | "read" | "admin";

export interface RouteSuccess<T> {
  readonly ok: true;
  /** The node that answered. */
  readonly node: string;
  readonly value: T;
  readonly attempts: number;
}

export type FailureStatus = 400 | 404 | 409 | 500 | 503 | 504;

export interface RouteFailure {
  readonly ok: false;
  readonly status: FailureStatus;
  /** A NodeErrorCode, or UNREACHABLE / OVERLOADED / DEADLINE for failures of the transport. */
  readonly code: string;
  readonly message: string;
  readonly retryAfterSeconds?: number;
  readonly node?: string;
  /** A write may or may not have been applied. */
  readonly outcomeUnknown: boolean;
}

export type RouteOutcome<T> = RouteSuccess<T> | RouteFailure;

export interface RouteOptions {
  /** Epoch milliseconds after which nothing more is attempted. */
  readonly deadlineAt: number;
  readonly kind: RouteKind;
}

export interface RouterDeps {
  readonly directory: NodeDirectory;
  readonly leaders: LeaderCache;
  readonly policy: RoutingPolicy;
  /** In [0, 1): jitter and the choice of a first node. */
  readonly random: () => number;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
}

type Invocation<T> =
  | { readonly kind: "answer"; readonly result: NodeResult<T> }
  | { readonly kind: "transport"; readonly message: string; readonly overloaded: boolean; readonly timedOut: boolean };

export type StatusProbe =
  | { readonly ok: true; readonly node: string; readonly report: NodeStatusReport; readonly elapsedMs: number }
  | { readonly ok: false; readonly node: string; readonly error: string; readonly code: string; readonly elapsedMs: number };

export class ClusterRouter {
  constructor(private readonly deps: RouterDeps) {}

  get config() {
    return this.deps.directory.config;
  }

  get policy(): RoutingPolicy {
    return this.deps.policy;
  }

  /** The configured members, in configuration order. */
  memberNames(): string[] {
    return this.config.members.map((member) => member.name);
  }

  cachedLeader(): string | undefined {
    return this.deps.leaders.get(this.config.name);
  }

  noteLeader(leader: string): void {
    this.deps.leaders.set(this.config.name, leader);
  }

  /** Seconds a client should wait before retrying after an election-related 503. */
  retryAfterSeconds(): number {
    return Math.max(1, Math.ceil((2 * this.config.electionTimeoutMs) / 1000));
  }

  /** Sends the call to the leader: the cached hint first, then wherever "not leader" answers point. */
  toLeader<T>(call: NodeCall<T>, options: RouteOptions): Promise<RouteOutcome<T>> {
    const members = this.rotatedMembers();
    const cached = this.cachedLeader();
    const order = cached === undefined ? members : [cached, ...members.filter((name) => name !== cached)];
    return this.route(call, options, order, true);
  }

  /** Sends the call to the first node of `preference` that answers; failures move on, STALE moves to the leader. */
  toAnyNode<T>(call: NodeCall<T>, options: RouteOptions, preference: readonly string[]): Promise<RouteOutcome<T>> {
    const order = preference.length > 0 ? [...preference] : this.rotatedMembers();
    return this.route(call, options, order, false);
  }

  /** One node's status, within `timeoutMs`; never throws. */
  async probeStatus(node: string, timeoutMs: number): Promise<StatusProbe> {
    const started = this.deps.now();
    const invocation = await this.invoke(node, (rpc, address) => rpc.status(address), timeoutMs);
    const elapsedMs = this.deps.now() - started;
    if (invocation.kind === "transport") {
      return { ok: false, node, error: invocation.message, code: invocation.timedOut ? "DEADLINE" : "UNREACHABLE", elapsedMs };
    }
    const result = invocation.result;
    if (!result.ok) {
      return { ok: false, node, error: result.error.message, code: result.error.code, elapsedMs };
    }
    return { ok: true, node, report: result.value, elapsedMs };
  }

  /** Every named node's status in parallel, each within the per-node deadline. */
  probeAll(nodes: readonly string[], timeoutMs = this.policy.statusTimeoutMs): Promise<StatusProbe[]> {
    return Promise.all(nodes.map((node) => this.probeStatus(node, timeoutMs)));
  }

  private async route<T>(
    call: NodeCall<T>,
    options: RouteOptions,
    order: readonly string[],
    leaderMode: boolean,
  ): Promise<RouteOutcome<T>> {
    const { policy, now } = this.deps;
    const cluster = this.config.name;
    let position = 0;
    let target = order[0] ?? this.memberNames()[0];
    if (target === undefined) {
      return this.fail(500, "INTERNAL", "the cluster has no members", { outcomeUnknown: false });
    }
    // The next node in order that is not the current target (a followed hint may have put us anywhere).
    const nextTarget = (): string => {
      for (let step = 0; step < order.length; step++) {
        position = (position + 1) % order.length;
        if (order[position] !== target) {
          break;
        }
      }
      return order[position] as string;
    };
    let attempts = 0;
    let failures = 0;
    let hops = 0;
    let outcomeUnknown = false;
    let last: { code: string; message: string; node: string } | undefined;

    while (attempts < policy.maxAttempts) {
      const remaining = options.deadlineAt - now();
      if (remaining <= 0) {
        break;
      }
      attempts++;
      const budgetMs = leaderMode ? remaining : remaining * policy.anyNodeAttemptShare;
      const invocation = await this.invoke(target, call, Math.min(budgetMs, policy.attemptTimeoutMs));
      if (invocation.kind === "transport") {
        last = { code: invocation.timedOut ? "DEADLINE" : "UNREACHABLE", message: invocation.message, node: target };
        if (options.kind === "write") {
          outcomeUnknown = true;
        }
        this.deps.leaders.forget(cluster, target);
        if (options.kind === "admin" && invocation.timedOut) {
          // The node did not answer in time: the change may be under way; retrying elsewhere could start another.
          return this.fail(504, "TIMEOUT", `${invocation.message}; the change may still complete: check GET /api/v1/cluster`, {
            node: target,
            outcomeUnknown: true,
          });
        }
        if (invocation.overloaded) {
          return this.fail(503, "OVERLOADED", `node ${target} is overloaded: ${invocation.message}`, {
            node: target,
            outcomeUnknown,
            retryAfterSeconds: this.retryAfterSeconds(),
          });
        }
        target = nextTarget();
        await this.backoff(++failures, options.deadlineAt);
        continue;
      }
      const result = invocation.result;
      if (result.ok) {
        if (leaderMode) {
          this.deps.leaders.set(cluster, result.node);
        }
        return { ok: true, node: result.node, value: result.value, attempts };
      }
      const error: NodeError = result.error;
      last = { code: error.code, message: error.message, node: result.node };
      switch (error.code) {
        case "NOT_LEADER":
        case "NO_LEADER": {
          this.deps.leaders.forget(cluster, target);
          const hint = error.code === "NOT_LEADER" ? error.leader : null;
          if (hint !== undefined && hint !== null && hint !== target) {
            target = hint;
            this.deps.leaders.set(cluster, hint);
            // Hints can chase each other while leadership moves: after a full round, slow down.
            if (++hops >= order.length) {
              await this.backoff(++failures, options.deadlineAt);
            }
            continue;
          }
          const waited = await this.waitForLeader(target, options.deadlineAt);
          if (waited.kind === "leader") {
            this.deps.leaders.set(cluster, waited.leader);
            // Reads that any node may serve stay on their (nearby) node; leader calls go to the new leader.
            if (leaderMode) {
              target = waited.leader;
            }
            continue;
          }
          if (waited.kind === "unreachable") {
            last = { code: "UNREACHABLE", message: waited.message, node: target };
            target = nextTarget();
            await this.backoff(++failures, options.deadlineAt);
            continue;
          }
          if (outcomeUnknown) {
            // An earlier attempt timed out after proposing: say so, or a client might resend without its key.
            return this.fail(504, "OUTCOME_UNKNOWN", `no leader (${waited.message}) after an earlier attempt timed out: the write may or may not have been applied`, {
              node: target,
              outcomeUnknown: true,
            });
          }
          return this.fail(503, "NO_LEADER", `no leader: ${waited.message}`, {
            node: target,
            outcomeUnknown: false,
            retryAfterSeconds: this.retryAfterSeconds(),
          });
        }
        case "TIMEOUT":
          if (options.kind === "admin") {
            return this.fail(504, "TIMEOUT", `${error.message}; the change may still complete: check GET /api/v1/cluster`, {
              node: result.node,
              outcomeUnknown: true,
            });
          }
          if (options.kind === "write") {
            outcomeUnknown = true;
          }
          // Same node, same request id: the leader deduplicates a retried proposal.
          await this.backoff(++failures, options.deadlineAt);
          continue;
        case "QUEUE_FULL":
          await this.backoff(++failures, options.deadlineAt);
          continue;
        case "TRANSFER_IN_PROGRESS":
        case "CONFIG_CHANGE_IN_PROGRESS":
          if (options.kind === "admin") {
            return this.fail(409, error.code, error.message, { node: result.node, outcomeUnknown: false });
          }
          this.deps.leaders.forget(cluster, target);
          await this.backoff(++failures, options.deadlineAt);
          continue;
        case "STALE": {
          // The leader has applied at least as much as anyone: go there (or to the next node when it is unknown).
          const leader = this.cachedLeader() ?? error.leader ?? undefined;
          target = leader !== undefined && leader !== target ? leader : nextTarget();
          await this.backoff(++failures, options.deadlineAt);
          continue;
        }
        case "NOT_MEMBER":
        case "PROTOCOL":
          this.deps.leaders.forget(cluster, target);
          target = nextTarget();
          await this.backoff(++failures, options.deadlineAt);
          continue;
        case "INVALID_REQUEST":
          return this.fail(400, error.code, error.message, { node: result.node, outcomeUnknown: false });
        case "INTERNAL":
        default:
          return this.fail(500, error.code, error.message, { node: result.node, outcomeUnknown });
      }
    }
    return this.giveUp(options, attempts, outcomeUnknown, last);
  }

  private giveUp(
    options: RouteOptions,
    attempts: number,
    outcomeUnknown: boolean,
    last: { code: string; message: string; node: string } | undefined,
  ): RouteFailure {
    const reason = last === undefined ? "no node was tried" : `last error from ${last.node}: ${last.code}: ${last.message}`;
    const ranOut = options.deadlineAt - this.deps.now() <= 0 ? "the deadline passed" : `${attempts} attempts failed`;
    if (outcomeUnknown) {
      return this.fail(
        504,
        "OUTCOME_UNKNOWN",
        `${ranOut} before the write was confirmed; it may or may not have been applied (${reason})`,
        { node: last?.node, outcomeUnknown: true },
      );
    }
    const code = last?.code === "NO_LEADER" || last?.code === "NOT_LEADER" ? "NO_LEADER" : (last?.code ?? "UNAVAILABLE");
    return this.fail(503, code, `${ranOut} (${reason})`, {
      node: last?.node,
      outcomeUnknown: false,
      retryAfterSeconds: this.retryAfterSeconds(),
    });
  }

  private fail(
    status: FailureStatus,
    code: string,
    message: string,
    extra: { node?: string | undefined; outcomeUnknown: boolean; retryAfterSeconds?: number },
  ): RouteFailure {
    return {
      ok: false,
      status,
      code,
      message,
      outcomeUnknown: extra.outcomeUnknown,
      ...(extra.node === undefined ? {} : { node: extra.node }),
      ...(extra.retryAfterSeconds === undefined ? {} : { retryAfterSeconds: extra.retryAfterSeconds }),
    };
  }

  /** The HA plan's waitForElectionComplete: asks `node` to wait (bounded) until a leader is known. */
  private async waitForLeader(
    node: string,
    deadlineAt: number,
  ): Promise<{ kind: "leader"; leader: string } | { kind: "unreachable"; message: string } | { kind: "none"; message: string }> {
    const remaining = deadlineAt - this.deps.now();
    const waitMs = Math.min(remaining, this.policy.maxElectionWaitMs);
    if (waitMs <= 0) {
      return { kind: "none", message: "no leader is known and the deadline has passed" };
    }
    const invocation = await this.invoke(node, (rpc, address, timeoutMs) => rpc.waitForLeader({ ...address, timeoutMs }), waitMs);
    if (invocation.kind === "transport") {
      return { kind: "unreachable", message: invocation.message };
    }
    const result = invocation.result;
    if (result.ok) {
      return { kind: "leader", leader: result.value.leader };
    }
    if (result.error.code === "NOT_MEMBER" || result.error.code === "PROTOCOL") {
      return { kind: "unreachable", message: `${result.error.code}: ${result.error.message}` };
    }
    return {
      kind: "none",
      message: `no leader was elected within ${Math.round(waitMs)} ms (an election is under way or no quorum is reachable): ${result.error.message}`,
    };
  }

  private async invoke<T>(name: string, call: NodeCall<T>, guardMs: number): Promise<Invocation<T>> {
    // Nodes wait in steps of one heartbeat: leave them at least that much room to answer TIMEOUT themselves.
    const marginMs = Math.max(this.policy.nodeMarginMs, this.config.heartbeatIntervalMs);
    const nodeTimeoutMs = Math.max(1, Math.floor(guardMs - marginMs));
    try {
      const node = this.deps.directory.node(name);
      const result = await withDeadline(call(node, nodeAddress(this.config, name), nodeTimeoutMs), guardMs);
      if (!isNodeResult(result)) {
        return { kind: "transport", message: `node ${name} sent a malformed answer`, overloaded: false, timedOut: false };
      }
      return { kind: "answer", result };
    } catch (error) {
      const timedOut = error instanceof DeadlineExceeded;
      const overloaded = (error as { overloaded?: unknown } | null)?.overloaded === true;
      const message = timedOut ? `node ${name}: ${(error as Error).message}` : `node ${name}: RPC failed: ${describe(error)}`;
      return { kind: "transport", message, overloaded, timedOut };
    }
  }

  /** Full jitter: a uniform wait in [0, min(max, base * 2^(n-1))), never past the deadline. */
  private async backoff(failures: number, deadlineAt: number): Promise<void> {
    const { policy, random, now } = this.deps;
    const ceilingMs = Math.min(policy.maxBackoffMs, policy.baseBackoffMs * 2 ** Math.min(failures - 1, 30));
    const waitMs = Math.min(random() * ceilingMs, deadlineAt - now());
    if (waitMs > 0) {
      await this.deps.sleep(waitMs);
    }
  }

  /** Members from a random starting point, so that leaderless requests do not all land on the first node. */
  private rotatedMembers(): string[] {
    const members = this.memberNames();
    const start = Math.floor(this.deps.random() * members.length) % Math.max(1, members.length);
    return [...members.slice(start), ...members.slice(0, start)];
  }
}

function isNodeResult(value: unknown): value is NodeResult<unknown> {
  if (typeof value !== "object" || value === null) {
    return false;
  }
  const candidate = value as { ok?: unknown; error?: unknown; node?: unknown };
  if (candidate.ok === true) {
    return typeof candidate.node === "string";
  }
  return candidate.ok === false && typeof candidate.error === "object" && candidate.error !== null;
}

function describe(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

export const defaultRouterDeps = {
  random: () => Math.random(),
  now: () => Date.now(),
  sleep,
} as const;
