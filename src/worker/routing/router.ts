// Sends a call to the leader (writes, weak and strong reads, admin, backups) or to any node (none and linearizable
// reads, read-your-writes), following "not leader" hints, waiting out elections (bounded), retrying with backoff,
// all inside the request's deadline. The retry arithmetic lives in ./retry-policy, the leader hint's rules in
// ./leader-cache, the choice of status and code in ./failure; this file decides what to do after each answer.
import {
  DeadlineExceeded,
  electionRetryAfterSeconds,
  nodeTimeoutWithinMs,
  realTimers,
  sleep,
  withDeadline,
  type ClusterNodeRpc,
  type NodeAddress,
  type NodeError,
  type NodeResult,
  type NodeStatusReport,
  type ScheduleTimer,
  type Timers,
} from "../../objects/api";
import { nodeAddress, type NodeDirectory } from "../directory";
import {
  adminMayCompleteFailure,
  definiteRefusalFailure,
  everyNodeStaleFailure,
  finalOutcome,
  giveUpFailure,
  isConflictCode,
  isOutcomeUnknownCode,
  legacyGiveUpFailure,
  legacyNoLeaderFailure,
  noMembersFailure,
  notRepairedFailure,
  overloadedFailure,
  persistentConflictFailure,
  unretriedErrorFailure,
  writeMayHaveApplied,
  type AskingEndedBy,
  type LastFailure,
  type RouteFailure,
} from "./failure";
import { ClusterLeaderHint, type LeaderCache } from "./leader-cache";
import { attemptBudgetMs, backoffDelayMs, electionWaitMs, type Reach, type RoutingPolicy } from "./retry-policy";
import { LEGACY_MAX_ATTEMPTS, NO_ROUTER_BUGS, type RouterBugs } from "./router-bugs";

export { DEFAULT_ROUTING_POLICY, type RoutingPolicy } from "./retry-policy";
export type { FailureStatus, RouteFailure } from "./failure";
export type { RouterBugs } from "./router-bugs";

/** What a call does with a node: every call receives the node's address and how long it may take. */
export type NodeCall<T> = (node: ClusterNodeRpc, address: NodeAddress, timeoutMs: number) => Promise<NodeResult<T>>;

/**
 * write: retried with the same request id (the leader deduplicates); any answer that does not prove the write was
 * refused makes its outcome unknown. read: retried freely. admin: not retried after TIMEOUT (the change may be
 * under way); a conflict (TRANSFER_IN_PROGRESS, CONFIG_CHANGE_IN_PROGRESS: nothing was proposed) is asked again
 * until the deadline, and answered 409 if it lasts that long.
 */
export type RouteKind = "write" | "read" | "admin";

export interface RouteSuccess<T> {
  readonly ok: true;
  /** The node that answered. */
  readonly node: string;
  readonly value: T;
  readonly attempts: number;
}

export type RouteOutcome<T> = RouteSuccess<T> | RouteFailure;

export interface RouteOptions {
  /** Epoch milliseconds after which nothing more is attempted. */
  readonly deadlineAt: number;
  readonly kind: RouteKind;
  /** Told of each node that answered STALE (it has not applied the read's floor), before the read moves on. */
  readonly onStale?: (node: string) => void;
  /**
   * A read bounded by freshness: once every node has answered STALE or could not be reached, stop with STALE rather
   * than ask them again until the deadline. A node that has not heard from a leader lately is not made fresh by
   * being asked again; rqlite answers such a read at once ("stale read"), and clients fall back to another level.
   */
  readonly endWhenEveryNodeStale?: boolean;
}

/** Time, waiting and chance as the router (and what runs beside it) sees them: tests and the simulator inject theirs. */
export interface RoutingSeams {
  /** In [0, 1): jitter and the choice of a first node. */
  readonly random: () => number;
  readonly now: () => number;
  readonly sleep: (ms: number) => Promise<void>;
}

export interface RouterDeps extends RoutingSeams {
  readonly directory: NodeDirectory;
  readonly leaders: LeaderCache;
  readonly policy: RoutingPolicy;
  /** Timers for the deadline of each node call (real ones by default; the simulator's run on simulated time). */
  readonly timer?: ScheduleTimer;
  /** Test only: defects to put back (see router-bugs.ts). */
  readonly bugs?: RouterBugs;
}

type Invocation<T> =
  | { readonly kind: "answer"; readonly result: NodeResult<T> }
  | { readonly kind: "transport"; readonly message: string; readonly overloaded: boolean; readonly timedOut: boolean };

export type StatusProbe =
  | { readonly ok: true; readonly node: string; readonly report: NodeStatusReport; readonly elapsedMs: number }
  | {
      readonly ok: false;
      readonly node: string;
      readonly error: string;
      readonly code: string;
      readonly elapsedMs: number;
    };

/** What to do after an answer: stop with an outcome, or call again (where, and whether to back off first). */
type Next<T> =
  | { readonly kind: "done"; readonly outcome: RouteOutcome<T> }
  | { readonly kind: "retry"; readonly to: "same" | "next" | { readonly node: string }; readonly backoff: boolean };

interface Plan {
  readonly options: RouteOptions;
  readonly reach: Reach;
  /** A success proves the node led: only for calls that nodes serve as leader only. */
  readonly successProvesLeader: boolean;
}

/** The state of one request as it moves between nodes. */
class Attempts {
  target: string;
  position = 0;
  calls = 0;
  failures = 0;
  /** Hints followed since the last backoff: hints can chase each other while leadership moves. */
  hops = 0;
  /** Consecutive NO_LEADER answers of reads that any node may serve, since the last wait for an election. */
  leaderless = 0;
  outcomeUnknown = false;
  /**
   * An admin call's answer was lost in transit (the object was not merely overloaded): that attempt may have proposed
   * the change, so a later refusal may be about the call's own change and proves nothing.
   */
  adminAnswerLost = false;
  last: LastFailure | undefined;
  /** Nodes that answered STALE in this request, with their reason (endWhenEveryNodeStale). */
  readonly stale = new Map<string, string>();
  /** Nodes whose answer was lost in this request (endWhenEveryNodeStale). */
  readonly unreached = new Set<string>();

  constructor(
    readonly order: readonly string[],
    first: string,
    readonly startedAt: number,
  ) {
    this.target = first;
  }

  /** The next node in order that is not the current target (a followed hint may have put us anywhere). */
  advance(): string {
    for (let step = 0; step < this.order.length; step++) {
      this.position = (this.position + 1) % this.order.length;
      if (this.order[this.position] !== this.target) {
        break;
      }
    }
    this.target = this.order[this.position] as string;
    return this.target;
  }
}

export class ClusterRouter {
  private readonly bugs: RouterBugs;
  private readonly leader: ClusterLeaderHint;
  private readonly timers: Timers;

  constructor(private readonly deps: RouterDeps) {
    this.bugs = deps.bugs ?? NO_ROUTER_BUGS;
    this.timers = deps.timer === undefined ? realTimers : { schedule: deps.timer };
    this.leader = new ClusterLeaderHint(deps.leaders, deps.directory.config.name);
  }

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
    return this.leader.get();
  }

  noteLeader(leader: string): void {
    this.leader.learn(leader);
  }

  /** Seconds a client should wait before retrying after an election-related 503. */
  retryAfterSeconds(): number {
    return electionRetryAfterSeconds(this.config);
  }

  /** Sends the call to the leader: the cached hint first, then wherever "not leader" answers point. */
  toLeader<T>(call: NodeCall<T>, options: RouteOptions): Promise<RouteOutcome<T>> {
    return this.route(call, this.leaderOrder(), { options, reach: "leader", successProvesLeader: true });
  }

  /**
   * Sends a call that only the leader may serve but that a node might answer whatever its role (a backup: nodes
   * older than the leader-only check dump whatever they have applied). The call goes only to a node that reports
   * itself leader just before, and its success teaches the leader cache nothing.
   */
  toCheckedLeader<T>(call: NodeCall<T>, options: RouteOptions): Promise<RouteOutcome<T>> {
    if (this.bugs.backupFromAnyNode === true) {
      return this.toLeader(call, options);
    }
    return this.route(leaderChecked(call), this.leaderOrder(), {
      options,
      reach: "leader",
      successProvesLeader: false,
    });
  }

  /**
   * Sends the call to the first node of `preference` that serves it, the nodes of `askLast` after every other;
   * STALE moves to the leader.
   */
  toAnyNode<T>(
    call: NodeCall<T>,
    options: RouteOptions,
    preference: readonly string[],
    askLast: readonly string[] = [],
  ): Promise<RouteOutcome<T>> {
    const order = preference.length > 0 ? [...preference] : this.rotatedMembers();
    const demoted = new Set(askLast);
    const ordered =
      demoted.size === 0 ? order : [...order.filter((n) => !demoted.has(n)), ...order.filter((n) => demoted.has(n))];
    return this.route(call, ordered, { options, reach: "any", successProvesLeader: false });
  }

  /** One node's status, within `timeoutMs`; never throws. */
  async probeStatus(node: string, timeoutMs: number): Promise<StatusProbe> {
    const started = this.deps.now();
    const invocation = await this.invoke(node, (rpc, address) => rpc.status(address), timeoutMs);
    const elapsedMs = this.deps.now() - started;
    if (invocation.kind === "transport") {
      return {
        ok: false,
        node,
        error: invocation.message,
        code: invocation.timedOut ? "DEADLINE" : "UNREACHABLE",
        elapsedMs,
      };
    }
    const result = invocation.result;
    if (!result.ok) {
      return { ok: false, node, error: result.error.message, code: result.error.code, elapsedMs };
    }
    return { ok: true, node, report: result.value, elapsedMs };
  }

  /** One call to one named node (no retries, no leader search), within `timeoutMs`; never throws. */
  async toNode<T>(
    node: string,
    call: NodeCall<T>,
    timeoutMs: number,
  ): Promise<{ ok: true; value: T } | { ok: false; code: string; message: string }> {
    if (timeoutMs <= 0) {
      return { ok: false, code: "DEADLINE", message: "the deadline passed before the call" };
    }
    const invocation = await this.invoke(node, call, timeoutMs);
    if (invocation.kind === "transport") {
      return { ok: false, code: invocation.timedOut ? "DEADLINE" : "UNREACHABLE", message: invocation.message };
    }
    const result = invocation.result;
    return result.ok
      ? { ok: true, value: result.value }
      : { ok: false, code: result.error.code, message: `${result.error.code}: ${result.error.message}` };
  }

  /** Every named node's status in parallel, each within the per-node deadline. */
  probeAll(nodes: readonly string[], timeoutMs = this.policy.statusTimeoutMs): Promise<StatusProbe[]> {
    return Promise.all(nodes.map((node) => this.probeStatus(node, timeoutMs)));
  }

  private leaderOrder(): string[] {
    const members = this.rotatedMembers();
    const cached = this.cachedLeader();
    return cached === undefined ? members : [cached, ...members.filter((name) => name !== cached)];
  }

  private async route<T>(call: NodeCall<T>, order: readonly string[], plan: Plan): Promise<RouteOutcome<T>> {
    const first = order[0] ?? this.memberNames()[0];
    if (first === undefined) {
      return noMembersFailure();
    }
    const state = new Attempts(order, first, this.deps.now());
    while (state.calls < this.maxAttempts()) {
      const budgetMs = this.attemptBudget(plan);
      if (budgetMs <= 0 || this.tooLateToAskAgain(state, plan, budgetMs)) {
        break;
      }
      state.calls++;
      const invocation = await this.invoke(state.target, call, budgetMs);
      const next = await this.decide(invocation, state, plan);
      if (next.kind === "done") {
        return this.finish(next.outcome, state, plan);
      }
      await this.move(next, state, plan.options.deadlineAt);
    }
    return this.finish(this.giveUp(state, plan), state, plan);
  }

  /**
   * After a conflict, an admin change is not asked again with less than half an election timeout left: if the
   * conflict cleared just then, the change would be proposed but not confirmed in time (a 504, may still complete),
   * where stopping now answers a definite 409 (nothing was applied).
   */
  private tooLateToAskAgain(state: Attempts, plan: Plan, budgetMs: number): boolean {
    const last = state.last;
    return (
      plan.options.kind === "admin" &&
      last !== undefined &&
      isConflictCode(last.code) &&
      budgetMs < this.config.electionTimeoutMs / 2
    );
  }

  /** The cap on calls per request (RoutingPolicy.maxAttempts). */
  private maxAttempts(): number {
    return this.bugs.fixedRetryBudget === true ? LEGACY_MAX_ATTEMPTS : this.policy.maxAttempts;
  }

  /** Why the loop of `route` stopped asking, once it did without an answer to end with. */
  private askingEndedBy(state: Attempts, plan: Plan): AskingEndedBy {
    if (state.calls >= this.maxAttempts()) {
      return "attemptCap";
    }
    return plan.options.deadlineAt - this.deps.now() <= 0 || this.attemptBudget(plan) <= 0
      ? "deadline"
      : "tooLittleTime";
  }

  private attemptBudget(plan: Plan): number {
    const remainingMs = plan.options.deadlineAt - this.deps.now();
    if (this.bugs.fixedRetryBudget === true && plan.reach === "any") {
      // The old bound: a share of the deadline, however many election timeouts that is.
      return remainingMs <= 0
        ? 0
        : Math.min(remainingMs * this.policy.anyNodeAttemptShare, this.policy.attemptTimeoutMs);
    }
    return attemptBudgetMs(this.policy, {
      remainingMs,
      reach: plan.reach,
      electionTimeoutMs: this.config.electionTimeoutMs,
    });
  }

  private decide<T>(invocation: Invocation<T>, state: Attempts, plan: Plan): Promise<Next<T>> | Next<T> {
    if (invocation.kind === "transport") {
      return this.afterLostAnswer(invocation, state, plan);
    }
    const result = invocation.result;
    if (result.ok) {
      if (plan.successProvesLeader) {
        this.leader.servedAsLeader(result.node);
      }
      return { kind: "done", outcome: { ok: true, node: result.node, value: result.value, attempts: state.calls } };
    }
    return this.afterRefusal(result.error, result.node, state, plan);
  }

  /** The call failed in transit: a write may have arrived (outcome unknown); try the next node. */
  private afterLostAnswer<T>(invocation: Invocation<T> & { kind: "transport" }, state: Attempts, plan: Plan): Next<T> {
    const node = state.target;
    state.last = { code: invocation.timedOut ? "DEADLINE" : "UNREACHABLE", message: invocation.message, node };
    // An overloaded object refused the call without running it; any other lost answer may follow a proposal.
    if (plan.options.kind === "write" && !invocation.overloaded) {
      state.outcomeUnknown = true;
    }
    if (plan.options.kind === "admin" && !invocation.overloaded) {
      state.adminAnswerLost = true;
    }
    this.leader.forget(node);
    state.unreached.add(node);
    if (this.everyNodeStale(state, plan)) {
      return done(everyNodeStaleFailure(state.stale, state.unreached));
    }
    if (plan.options.kind === "admin" && invocation.timedOut) {
      // The node did not answer in time: the change may be under way; retrying elsewhere could start another.
      return done(adminMayCompleteFailure("TIMEOUT", invocation.message, node));
    }
    if (invocation.overloaded) {
      return done(
        overloadedFailure(node, invocation.message, {
          outcomeUnknown: state.outcomeUnknown,
          retryAfterSeconds: this.retryAfterSeconds(),
        }),
      );
    }
    return { kind: "retry", to: "next", backoff: true };
  }

  private async afterRefusal<T>(error: NodeError, node: string, state: Attempts, plan: Plan): Promise<Next<T>> {
    const { kind } = plan.options;
    state.last = { code: error.code, message: error.message, node };
    if (kind === "write" && this.writeOutcomeNowUnknown(error.code)) {
      state.outcomeUnknown = true;
    }
    const code: string = error.code;
    if (kind === "admin" && state.adminAnswerLost && mayBeAboutOwnChange(code)) {
      return done(
        adminMayCompleteFailure(
          "OUTCOME_UNKNOWN",
          `${error.message} (the answer to an earlier attempt of this call was lost: it may have made the change)`,
          node,
        ),
      );
    }
    switch (code) {
      case "NOT_LEADER":
      case "NO_LEADER":
        return this.afterNotLeader(error, state, plan);
      case "QUEUE_FULL":
        return { kind: "retry", to: "same", backoff: true };
      case "TRANSFER_IN_PROGRESS":
      case "CONFIG_CHANGE_IN_PROGRESS":
        // Refused before anything was proposed, and cleared by the cluster itself within moments (a transfer ends
        // within an election timeout; a new leader commits in its term, and a pending config entry applies, within a
        // round trip or two): ask again, with backoff, until the deadline (giveUp answers 409 if it persists).
        if (code === "TRANSFER_IN_PROGRESS") {
          this.leader.forget(state.target);
        }
        return { kind: "retry", to: "same", backoff: true };
      case "STALE": {
        plan.options.onStale?.(state.target);
        state.stale.set(state.target, error.message);
        if (this.everyNodeStale(state, plan)) {
          return done(everyNodeStaleFailure(state.stale, state.unreached));
        }
        // The leader has applied at least as much as anyone: go there (or to the next node when it is unknown).
        const leader = this.cachedLeader() ?? error.leader ?? undefined;
        return {
          kind: "retry",
          to: leader !== undefined && leader !== state.target ? { node: leader } : "next",
          backoff: true,
        };
      }
      case "NOT_MEMBER":
      case "PROTOCOL":
        this.leader.forget(state.target);
        return { kind: "retry", to: "next", backoff: true };
      case "INVALID_REQUEST":
      case "IDEMPOTENCY_KEY_REUSED":
      case "DROPPED":
      case "TOO_LARGE":
        return done(definiteRefusalFailure(code, error.message, node));
      case "NOT_REPAIRED":
        // The leader answered: asking it again now would find the replica as unreachable as it just did.
        return done(notRepairedFailure(error.message, { node, retryAfterSeconds: this.retryAfterSeconds() }));
      default:
        return this.afterUncertainAnswer(error, node, state, plan);
    }
  }

  /** TIMEOUT, INTERNAL, an "outcome unknown" answer or a code this worker does not know. */
  private afterUncertainAnswer<T>(
    error: NodeError,
    node: string,
    state: Attempts,
    plan: Plan,
  ): Next<T> | Promise<Next<T>> {
    const { kind } = plan.options;
    const code: string = error.code;
    const legacyWrites = this.bugs.definiteWriteFailures === true;
    const uncertain = code === "TIMEOUT" || (!legacyWrites && isOutcomeUnknownCode(code));
    if (kind === "admin" && uncertain) {
      return done(adminMayCompleteFailure(code === "TIMEOUT" ? "TIMEOUT" : "OUTCOME_UNKNOWN", error.message, node));
    }
    // A write answered INTERNAL (or with a code this worker does not know) may have been applied: resend it under
    // the same request id rather than report a failure that may be false.
    if (!uncertain && !(kind === "write" && !legacyWrites)) {
      return done(unretriedErrorFailure(code, error.message, { node, outcomeUnknown: state.outcomeUnknown }));
    }
    if (code !== "TIMEOUT") {
      // The node may have stepped down or restarted: its hint (if any) is where the call should go next.
      this.leader.forget(state.target);
    }
    const hint = error.leader ?? undefined;
    if (hint !== undefined && hint !== state.target && !legacyWrites) {
      this.leader.learn(hint);
      return { kind: "retry", to: { node: hint }, backoff: true };
    }
    if (plan.reach === "leader" && code !== "TIMEOUT" && uncertain && !this.waitsOnFailedLeader()) {
      // The node let go of the write (it lost the majority or stepped down) and names no other leader: the election
      // that follows is seen by the others, so wait for it there (afterNotLeader) rather than resend here.
      return this.afterNotLeader<T>({ ...error, code: "NO_LEADER", leader: null }, state, plan);
    }
    if (plan.reach === "any" && this.bugs.fixedRetryBudget !== true) {
      // A node that cannot confirm a read in its share of the deadline is likely cut off: another one may.
      return { kind: "retry", to: "next", backoff: true };
    }
    // Same node, same request id: the leader deduplicates a resent proposal.
    return { kind: "retry", to: "same", backoff: true };
  }

  private async afterNotLeader<T>(error: NodeError, state: Attempts, plan: Plan): Promise<Next<T>> {
    const legacy = this.bugs.fixedRetryBudget === true;
    this.leader.forget(state.target);
    const hint = error.code === "NOT_LEADER" ? (error.leader ?? undefined) : undefined;
    if (hint !== undefined && hint !== state.target) {
      state.last = { ...(state.last as LastFailure), leaderHint: hint };
      this.leader.learn(hint);
      // Hints can chase each other while leadership moves: after a full round, slow down.
      return { kind: "retry", to: { node: hint }, backoff: ++state.hops >= state.order.length };
    }
    if (plan.reach === "any" && !legacy && ++state.leaderless < state.order.length) {
      // This node knows no leader (it may be cut off from the majority): another node may, without waiting here.
      return { kind: "retry", to: "next", backoff: false };
    }
    state.leaderless = 0;
    if (plan.reach === "leader" && !this.waitsOnFailedLeader() && state.order.length > 1) {
      // A node that knows no leader may be the one cut off (a deposed leader never sees the election end there): wait
      // for the election on the next node, at once, instead of backing off and asking this one again.
      state.advance();
    }
    const waited = await this.waitForLeader(state.target, plan.options.deadlineAt, legacy ? "leader" : plan.reach);
    if (waited.kind === "leader") {
      this.leader.learn(waited.leader);
      // Reads that any node may serve stay on their (nearby) node; leader calls go to the new leader.
      if (plan.reach === "leader") {
        return { kind: "retry", to: { node: waited.leader }, backoff: ++state.hops >= state.order.length };
      }
      return { kind: "retry", to: "same", backoff: !legacy };
    }
    if (waited.kind === "unreachable") {
      state.last = { code: "UNREACHABLE", message: waited.message, node: state.target };
      return { kind: "retry", to: "next", backoff: true };
    }
    state.last = { code: "NO_LEADER", message: waited.message, node: state.target };
    if (legacy) {
      return done(
        legacyNoLeaderFailure(waited.message, {
          node: state.target,
          outcomeUnknown: state.outcomeUnknown,
          retryAfterSeconds: this.retryAfterSeconds(),
        }),
      );
    }
    // This node saw no election finish: another node may know better (or the deadline ends it).
    return { kind: "retry", to: "next", backoff: true };
  }

  /** A freshness-bounded read that every node refused as STALE, or left unanswered, at least once. */
  private everyNodeStale(state: Attempts, plan: Plan): boolean {
    return (
      plan.options.endWhenEveryNodeStale === true &&
      state.stale.size > 0 &&
      state.order.every((node) => state.stale.has(node) || state.unreached.has(node))
    );
  }

  /** The old rule (`waitsOnFailedLeader`, or with `fixedRetryBudget`): wait for the election on the node that failed. */
  private waitsOnFailedLeader(): boolean {
    return this.bugs.waitsOnFailedLeader === true || this.bugs.fixedRetryBudget === true;
  }

  /** Whether an answer to a write leaves open that it was applied (the old rule under `definiteWriteFailures`). */
  private writeOutcomeNowUnknown(code: string): boolean {
    if (this.bugs.definiteWriteFailures === true) {
      return code === "TIMEOUT";
    }
    return writeMayHaveApplied(code);
  }

  private async move<T>(next: Next<T> & { kind: "retry" }, state: Attempts, deadlineAt: number): Promise<void> {
    if (next.to === "next") {
      state.advance();
    } else if (next.to !== "same") {
      state.target = next.to.node;
    }
    if (next.backoff) {
      state.hops = 0;
      const waitMs = backoffDelayMs(this.policy, {
        failures: ++state.failures,
        random: this.deps.random(),
        remainingMs: deadlineAt - this.deps.now(),
      });
      if (waitMs > 0) {
        await this.deps.sleep(waitMs);
      }
    }
  }

  private giveUp(state: Attempts, plan: Plan): RouteFailure {
    const now = this.deps.now();
    const last = state.last;
    if (plan.options.kind === "admin" && state.adminAnswerLost) {
      return adminMayCompleteFailure(
        "OUTCOME_UNKNOWN",
        `no attempt was answered by the deadline after an earlier attempt's answer was lost${last === undefined ? "" : ` (last: ${last.code}: ${last.message})`}`,
        last?.node,
      );
    }
    if (plan.options.kind === "admin" && last !== undefined && isConflictCode(last.code)) {
      return persistentConflictFailure(last.code, {
        message: last.message,
        node: last.node,
        attempts: state.calls,
        elapsedMs: now - state.startedAt,
        endedBy: this.askingEndedBy(state, plan),
      });
    }
    const context = {
      attempts: state.calls,
      elapsedMs: now - state.startedAt,
      deadlinePassed: plan.options.deadlineAt - now <= 0,
      outcomeUnknown: state.outcomeUnknown,
      last: state.last,
      retryAfterSeconds: this.retryAfterSeconds(),
    };
    return this.bugs.fixedRetryBudget === true ? legacyGiveUpFailure(context) : giveUpFailure(context);
  }

  /** Whatever ended the call, a write that may have been applied is not answered as a definite failure. */
  private finish<T>(outcome: RouteOutcome<T>, state: Attempts, plan: Plan): RouteOutcome<T> {
    const legacyWrites = this.bugs.definiteWriteFailures === true;
    return finalOutcome(outcome, plan.options.kind === "write" && state.outcomeUnknown && !legacyWrites);
  }

  /**
   * Asks `node` to wait (bounded) until a leader is known: one call that returns as the election ends, rather than
   * polling nodes while it runs.
   */
  private async waitForLeader(
    node: string,
    deadlineAt: number,
    reach: Reach,
  ): Promise<
    { kind: "leader"; leader: string } | { kind: "unreachable"; message: string } | { kind: "none"; message: string }
  > {
    const waitMs = electionWaitMs(this.policy, {
      remainingMs: deadlineAt - this.deps.now(),
      reach,
      electionTimeoutMs: this.config.electionTimeoutMs,
    });
    if (waitMs <= 0) {
      return { kind: "none", message: "no leader is known and the deadline has passed" };
    }
    const invocation = await this.invoke(
      node,
      (rpc, address, timeoutMs) => rpc.waitForLeader({ ...address, timeoutMs }),
      waitMs,
    );
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
      message: `${node} saw no leader elected within ${Math.round(waitMs)} ms (an election is under way or no quorum is reachable from it)`,
    };
  }

  private async invoke<T>(name: string, call: NodeCall<T>, guardMs: number): Promise<Invocation<T>> {
    const nodeTimeoutMs = nodeTimeoutWithinMs(this.config, {
      callerTimeoutMs: guardMs,
      minMarginMs: this.policy.nodeMarginMs,
    });
    try {
      const node = this.deps.directory.node(name);
      const result = await withDeadline(call(node, nodeAddress(this.config, name), nodeTimeoutMs), {
        timeoutMs: guardMs,
        what: `node ${name}`,
        timers: this.timers,
      });
      if (!isNodeResult(result)) {
        return {
          kind: "transport",
          message: `node ${name} sent a malformed answer`,
          overloaded: false,
          timedOut: false,
        };
      }
      return { kind: "answer", result };
    } catch (error) {
      const timedOut = error instanceof DeadlineExceeded;
      const overloaded = (error as { overloaded?: unknown } | null)?.overloaded === true;
      const message = timedOut ? (error as Error).message : `node ${name}: RPC failed: ${describe(error)}`;
      return { kind: "transport", message, overloaded, timedOut };
    }
  }

  /** Members from a random starting point, so that leaderless requests do not all land on the first node. */
  private rotatedMembers(): string[] {
    const members = this.memberNames();
    const start = Math.floor(this.deps.random() * members.length) % Math.max(1, members.length);
    return [...members.slice(start), ...members.slice(0, start)];
  }
}

/**
 * Wraps a call so that it runs only on a node that reports itself leader just before: otherwise it answers as a
 * follower would (NOT_LEADER naming the leader it knows, or NO_LEADER), which the router follows.
 */
function leaderChecked<T>(call: NodeCall<T>): NodeCall<T> {
  return async (node, address, timeoutMs) => {
    const status = await node.status(address);
    if (!status.ok) {
      return status;
    }
    const report = status.value;
    if (report.role !== "leader") {
      const leader = report.leader !== null && report.leader !== address.node ? report.leader : null;
      return {
        ok: false,
        node: status.node,
        error: {
          code: leader === null ? "NO_LEADER" : "NOT_LEADER",
          message: `${address.node} is not the leader (${report.role}); only the leader serves this`,
          leader,
          retryable: true,
        },
      };
    }
    return call(node, address, timeoutMs);
  };
}

function done<T>(outcome: RouteOutcome<T>): Next<T> {
  return { kind: "done", outcome };
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

export const defaultRouterDeps: RoutingSeams = {
  random: () => Math.random(),
  now: () => Date.now(),
  sleep: (ms: number) => sleep(ms),
};

/**
 * Refusals that, after an attempt whose answer was lost, may be about the call's own change: a conflict (its change
 * still pending), an invalid request ("already a member", "not a member", ...), or a repair not made this time (the
 * lost attempt may have made it).
 */
function mayBeAboutOwnChange(code: string): boolean {
  return isConflictCode(code) || code === "INVALID_REQUEST" || code === "NOT_REPAIRED";
}
