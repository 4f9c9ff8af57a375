// ClusterNode: one Raft node of one cluster, as a Durable Object. This file is the object's shell: lazy start,
// the one alarm, and the RPC methods. The Raft plumbing lives in NodeRuntime, the SQL in ./sql.
import { DurableObject } from "cloudflare:workers";
import type { Env } from "./env";
import {
  PROTOCOL_VERSION,
  type ClusterConfig,
  type ClusterNodeRpc,
  type ExecuteRequest,
  type ExecuteValue,
  type MemberChangeRequest,
  type MemberConfig,
  type NodeAddress,
  type NodeResult,
  type NodeStatusReport,
  type QueryRequest,
  type QueryValue,
  type TransferRequest,
  type WaitForLeaderRequest,
} from "./api";
import { objectName, validateClusterConfig, validateMember } from "./config";
import { logEvent, setLogLevel } from "./log";
import { RaftInvariantError } from "../replication/index";
import { NodeFailure, NodeRuntime, nodeError, type NodeIdentity, type PeerAnswer, type PeerStub } from "./node-runtime";
import { createStateMachine, stateMachineOptionsFromEnv } from "./sql/port";
import { parseShellBugs, SHELL_BUGS_STORAGE_KEY, type ShellBugs } from "./shell-bugs";
import { NodeCounters, nodeMetricsReport, type NodeMetricsReport } from "./metrics-counters";
import { NodeEventLog, registerEventLog, type EventsRequest, type EventsValue } from "./events";
import { logTracedAppends, runWithTrace, spanForIncoming, tracedBody } from "./trace";
import { otlpExporterFromEnv, type OtlpSpanExporter } from "./otlp-export";
import { spannedAppend, spannedNodeCall } from "./otlp-spans";
import {
  assertFaultsEnabled,
  FAULT_RULES_STORAGE_KEY,
  faultsEnabled,
  parseFaultRules,
  systemClock,
  validateEnvelope,
  type FaultRules,
} from "./transport/index";

const IDENTITY_KEY = "node/identity";
const REMOVED_KEY = "node/removed";
const INCARNATION_KEY = "node/incarnation";
/** Calls this node makes to peers outside the transport (start, leave, forwarded removal) are bounded too. */
const PEER_CALL_TIMEOUT_MS = 5_000;
/** A backup waits this long at most for the leader to confirm its read index and apply up to it. */
const BACKUP_TIMEOUT_MS = 10_000;

export class ClusterNode extends DurableObject<Env> implements ClusterNodeRpc {
  private runtime: NodeRuntime | null = null;
  private identity: NodeIdentity | null = null;
  private removedReason: string | null = null;
  private alarmAtMs: number | null = null;
  /** Test only (set through testSetBugs when test configuration enabled faults); empty in production. */
  private bugs: ShellBugs = {};
  /** In-memory counters for GET /metrics (reset when the instance restarts). */
  private readonly counters = new NodeCounters(() => Date.now());
  /** Recent elections, leader changes, breaker and replica transitions... for GET /api/v1/cluster/events. */
  private readonly events = new NodeEventLog(
    () => Date.now(),
    () => this.runtime?.status().commit ?? null,
  );
  /** Whether this instance deleted any alarm left on a node that may not tick (see scheduleAlarm). */
  private strayAlarmCleared = false;
  /** OTLP span export (otlp-spans.ts); null unless DHA_OTLP_ENDPOINT is set. */
  private readonly otlp: OtlpSpanExporter | null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    setLogLevel(env.DHA_LOG_LEVEL);
    this.otlp = otlpExporterFromEnv(env as Env & { DHA_OTLP_ENDPOINT?: string; DHA_OTLP_HEADERS?: string }, {
      "dha.component": "node",
      "dha.cluster": env.CLUSTER_NAME,
    });
    // A node evicted while it was a member must come back by itself: its alarm brings it back, and so does any
    // call. Loading is lazy and retried on the next call if it fails, never wedged.
    void ctx.blockConcurrencyWhile(async () => {
      try {
        await this.loadRuntime();
      } catch (err) {
        logEvent("error", { cluster: "?", node: "?", term: 0 }, "startFailed", { error: String(err) });
      }
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // RPC: worker-facing

  async start(address: NodeAddress): Promise<NodeResult<NodeStatusReport>> {
    return this.handle(address, async (runtime) =>
      runtime.statusReport({ locationHint: this.locationHintOf(address.node) }),
    );
  }

  async status(address: NodeAddress): Promise<NodeResult<NodeStatusReport>> {
    return this.handle(address, async (runtime) =>
      runtime.statusReport({ locationHint: this.locationHintOf(address.node) }),
    );
  }

  async execute(request: ExecuteRequest): Promise<NodeResult<ExecuteValue>> {
    const asLeader = this.runtime?.status().role === "leader";
    return this.counters.trackWrite({ asLeader }, () =>
      this.handle(request, (runtime) =>
        runtime.execute({ request: request.request, timeoutMs: boundedTimeout(request.timeoutMs) }),
      ),
    );
  }

  async query(request: QueryRequest): Promise<NodeResult<QueryValue>> {
    return this.counters.trackRead(request.level, () =>
      this.handle(request, (runtime) =>
        runtime.query({
          statements: request.statements,
          level: request.level,
          ...(request.freshnessMs === undefined ? {} : { freshnessMs: request.freshnessMs }),
          ...(request.minAppliedIndex === undefined ? {} : { minAppliedIndex: request.minAppliedIndex }),
          transaction: request.transaction,
          timeoutMs: boundedTimeout(request.timeoutMs),
        }),
      ),
    );
  }

  async waitForLeader(request: WaitForLeaderRequest): Promise<NodeResult<{ leader: string; term: number }>> {
    return this.handle(request, (runtime) => runtime.waitForLeader(boundedTimeout(request.timeoutMs)));
  }

  async transferLeadership(request: TransferRequest): Promise<NodeResult<{ leader: string; term: number }>> {
    return this.handle(request, (runtime) =>
      runtime.transferLeadership({
        ...(request.to === undefined ? {} : { to: request.to }),
        timeoutMs: boundedTimeout(request.timeoutMs),
      }),
    );
  }

  async addMember(
    request: MemberChangeRequest,
  ): Promise<NodeResult<{ voters: readonly string[]; learners: readonly string[] }>> {
    return this.handle(request, async (runtime) => {
      try {
        validateMember(request.member);
      } catch (err) {
        throw nodeError("INVALID_REQUEST", err instanceof Error ? err.message : String(err), { retryable: false });
      }
      const membership = await runtime.changeMembership({
        change: { kind: "addLearner", node: request.member.name },
        ...(request.member.locationHint === undefined ? {} : { locationHint: request.member.locationHint }),
        timeoutMs: boundedTimeout(request.timeoutMs),
      });
      // Reach the new node now so it starts and the leader can replicate to it.
      await this.startPeer(request, request.member);
      return { voters: membership.voters, learners: membership.learners };
    });
  }

  async removeMember(
    request: MemberChangeRequest,
  ): Promise<NodeResult<{ voters: readonly string[]; learners: readonly string[] }>> {
    return this.handle(request, async (runtime) => {
      const timeoutMs = boundedTimeout(request.timeoutMs);
      if (request.member.name === runtime.identity.node) {
        // Decommissioning the leader: hand leadership over first, then let the new leader remove us.
        const moved = await runtime.transferLeadership({ timeoutMs: Math.floor(timeoutMs / 2) });
        const stub = this.stubFor(request.cluster, { name: moved.leader });
        const answer = await withDeadline<NodeResult<{ voters: readonly string[]; learners: readonly string[] }>>(
          stub.removeMember({ ...request, node: moved.leader, timeoutMs: Math.floor(timeoutMs / 2) }),
          timeoutMs,
        ).catch((err: unknown) => {
          throw nodeError(
            "TIMEOUT",
            `leadership moved to ${moved.leader}, but forwarding the removal failed: ${String(err)}; retry the removal`,
            { leader: moved.leader, retryable: true },
          );
        });
        if (!answer.ok) {
          throw new NodeFailure(answer.error);
        }
        return answer.value;
      }
      const membership = await runtime.changeMembership({
        change: { kind: "remove", node: request.member.name },
        timeoutMs,
      });
      await this.notifyRemoved(request, request.member.name);
      return { voters: membership.voters, learners: membership.learners };
    });
  }

  async metrics(address: NodeAddress): Promise<NodeResult<NodeMetricsReport>> {
    return this.handle(address, async (runtime) =>
      nodeMetricsReport({
        counters: this.counters,
        status: runtime.statusReport({ locationHint: this.locationHintOf(address.node) }),
        storage: this.ctx.storage,
      }),
    );
  }

  async recentEvents(request: EventsRequest): Promise<NodeResult<EventsValue>> {
    return this.handle(request, async () => this.events.answer(request));
  }

  async backup(address: NodeAddress): Promise<NodeResult<{ sql: string; raftIndex: number }>> {
    return this.handle(address, async (runtime) => runtime.backup({ timeoutMs: BACKUP_TIMEOUT_MS }));
  }

  // -------------------------------------------------------------------------------------------------------------
  // RPC: node-to-node

  /** Raft messages from a peer. A refusal is an answer ({ ok: false }), never an exception. */
  async receive(
    envelope: unknown,
    traceparent?: unknown,
  ): Promise<PeerAnswer | { ok: false; notStarted?: boolean; error: { code: string; message: string } }> {
    this.counters.received("peer");
    const runtime = await this.loadRuntime();
    if (runtime === null || this.identity === null) {
      return {
        ok: false,
        notStarted: true,
        error: { code: "UNAVAILABLE", message: "this node has not been started yet" },
      };
    }
    if (this.removedReason !== null) {
      return { ok: false, error: { code: "UNAVAILABLE", message: this.removedReason } };
    }
    const checked = validateEnvelope(envelope, { cluster: this.identity.cluster.name, node: this.identity.node });
    if (!checked.ok) {
      return { ok: false, error: checked.error };
    }
    try {
      const counted = this.counters.watchEnvelope(checked.envelope, () => runtime.peerReport().appliedIndex);
      const node = this.identity.node;
      runWithTrace(
        spanForIncoming(traceparent),
        spannedAppend(
          this.otlp,
          { traceparent, envelope: checked.envelope, node, term: () => runtime.status().term },
          () => {
            logTracedAppends(checked.envelope, (level, fields) => runtime.log(level, "appendReceived", fields));
            runtime.receiveEnvelope(checked.envelope);
          },
        ),
      );
      counted();
    } catch (err) {
      if (err instanceof RaftInvariantError || runtime.isBroken) {
        await this.discardRuntime(runtime, err);
      }
      return { ok: false, error: { code: "UNAVAILABLE", message: err instanceof Error ? err.message : String(err) } };
    }
    await this.scheduleAlarm(runtime);
    return { ok: true, report: runtime.peerReport() };
  }

  /** Called by the leader once this node's removal is applied: it stops for good and says so. */
  async leave(address: NodeAddress): Promise<NodeResult<{ removed: true }>> {
    return this.handle(address, async (runtime) => {
      await this.markRemoved(runtime, `${address.node} was removed from cluster ${address.cluster.name}`);
      return { removed: true as const };
    });
  }

  /** Test-only: network fault rules for messages this node sends. Refused unless test configuration enabled it. */
  async setFaults(rules: unknown): Promise<void> {
    assertFaultsEnabled(this.env);
    const parsed: FaultRules = parseFaultRules(rules);
    this.ctx.storage.kv.put(FAULT_RULES_STORAGE_KEY, parsed);
  }

  /**
   * Test-only: stops this node for good (alarm cleared, waiting requests failed, every later call refused), so a
   * finished test leaves no cluster ticking in the background. Refused unless test configuration enabled faults.
   */
  async testHalt(): Promise<void> {
    assertFaultsEnabled(this.env);
    this.ctx.storage.kv.put(REMOVED_KEY, "halted by the test harness");
    const runtime = await this.loadRuntime();
    if (runtime !== null) {
      await this.markRemoved(runtime, "halted by the test harness");
    }
    await this.ctx.storage.deleteAlarm();
  }

  /**
   * Test-only: puts back bugs of the shell (shell-bugs.ts) for this node's next runtime (call before start, or crash
   * the node after). Refused unless test configuration enabled faults; production never sets any.
   */
  async testSetBugs(bugs: unknown): Promise<void> {
    assertFaultsEnabled(this.env);
    this.ctx.storage.kv.put(SHELL_BUGS_STORAGE_KEY, parseShellBugs(bugs));
  }

  /** Test-only: crashes this object (in-memory state lost, storage kept); its alarm or the next call restarts it. */
  async testCrash(): Promise<void> {
    assertFaultsEnabled(this.env);
    this.ctx.abort("crash injected by the test harness");
  }

  // -------------------------------------------------------------------------------------------------------------
  // The one alarm: every timer (election, heartbeat, retries, probes) is a tick of the core.

  override async alarm(): Promise<void> {
    this.counters.alarmWakeup();
    // The spans of recent calls go out in one batch (bounded; never awaited; see otlp-spans.ts).
    void this.otlp?.flush();
    this.alarmAtMs = null;
    const runtime = await this.loadRuntime();
    if (runtime === null || runtime.isStopped) {
      return;
    }
    try {
      runtime.advanceClock();
      const status = runtime.status();
      if (status.removed && status.role !== "leader") {
        await this.markRemoved(
          runtime,
          `${runtime.identity.node} is no longer a member of cluster ${runtime.identity.cluster.name}`,
        );
        return;
      }
    } catch (err) {
      await this.discardRuntime(runtime, err);
      // Come back soon from storage rather than keep running in a state the core refused.
      await this.ctx.storage.setAlarm(Date.now() + this.identityTickMs());
      return;
    }
    await this.scheduleAlarm(runtime);
  }

  /**
   * Something unexpected failed inside the runtime (an assertion of the core, a storage error): stopping is better
   * than running in a wrong state. Drop the in-memory node; the next event reloads it from storage.
   */
  private async discardRuntime(runtime: NodeRuntime, err: unknown): Promise<void> {
    runtime.log("error", "runtimeDiscarded", {
      error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    });
    if (this.runtime === runtime) {
      this.runtime = null;
    }
    this.alarmAtMs = null;
    await runtime.stop("the node hit an internal error and is restarting from storage");
  }

  /** A random id written with the node's first state: a peer that sees it change knows the storage was wiped. */
  private incarnation(): string {
    const existing = this.ctx.storage.kv.get<string>(INCARNATION_KEY);
    if (existing !== undefined) {
      return existing;
    }
    const created = crypto.randomUUID();
    this.ctx.storage.kv.put(INCARNATION_KEY, created);
    return created;
  }

  private identityTickMs(): number {
    return this.identity?.cluster.heartbeatIntervalMs ?? 100;
  }

  private async scheduleAlarm(runtime: NodeRuntime): Promise<void> {
    this.counters.observeLeader(runtime.status().leader);
    if (runtime.isStopped) {
      return;
    }
    if (!mayTick(runtime)) {
      // Never a member (reached by a name no membership lists): it must not tick, and be billed, forever. A leader
      // adding it makes it a member with its first entries, and the next scheduling arms the alarm. An alarm left
      // from before (this instance has not cleared one yet) is deleted, once.
      if (this.alarmAtMs !== null || !this.strayAlarmCleared) {
        this.alarmAtMs = null;
        this.strayAlarmCleared = true;
        await this.ctx.storage.deleteAlarm();
      }
      return;
    }
    const nowMs = Date.now();
    // Never at the current instant: at least now + 1 (an alarm in the past fires at once, again and again).
    const wakeAtMs = Math.max(runtime.nextWakeAtMs(), nowMs + 1);
    if (this.alarmAtMs !== null && this.alarmAtMs <= wakeAtMs && this.alarmAtMs > nowMs) {
      return;
    }
    this.alarmAtMs = wakeAtMs;
    await this.ctx.storage.setAlarm(wakeAtMs);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Start-up

  /** Loads the runtime from storage if this node was started before; null if it never was. */
  private async loadRuntime(): Promise<NodeRuntime | null> {
    const current = this.runtime;
    if (current !== null && current.isBroken && this.bugs.brokenRuntimeKeepsServing !== true) {
      // It broke in a callback no request awaited: drop it (synchronously, so no other event can use it) and reload.
      this.runtime = null;
      this.alarmAtMs = null;
      current.log("error", "runtimeDiscarded", { error: "the runtime broke in a background callback" });
      void current.stop("the node hit an internal error and is restarting from storage").catch(() => undefined);
    } else if (current !== null) {
      return current;
    }
    const identity = this.ctx.storage.kv.get<NodeIdentity>(IDENTITY_KEY);
    if (identity === undefined) {
      return null;
    }
    return this.startRuntime(identity);
  }

  private async startRuntime(identity: NodeIdentity): Promise<NodeRuntime> {
    this.identity = identity;
    registerEventLog({ cluster: identity.cluster.name, node: identity.node }, this.events);
    this.removedReason = this.ctx.storage.kv.get<string>(REMOVED_KEY) ?? null;
    this.bugs = faultsEnabled(this.env) ? (this.ctx.storage.kv.get<ShellBugs>(SHELL_BUGS_STORAGE_KEY) ?? {}) : {};
    const runtime = new NodeRuntime({
      identity,
      bugs: this.bugs,
      kv: this.ctx.storage.kv,
      stateMachine: createStateMachine(this.ctx.storage, stateMachineOptionsFromEnv(this.env)),
      peerStub: (member) => this.counters.instrumentPeer(member.name, this.stubFor(identity.cluster, member)),
      faultsEnabled: faultsEnabled(this.env),
      clock: systemClock,
      seed: crypto.getRandomValues(new Uint32Array(1))[0] ?? 1,
      incarnation: this.incarnation(),
    });
    this.runtime = runtime;
    if (this.removedReason !== null) {
      await runtime.stop(this.removedReason);
      await this.ctx.storage.deleteAlarm();
      return runtime;
    }
    await this.scheduleAlarm(runtime);
    return runtime;
  }

  /** First contact: validate the address, persist the identity, start. Harmless when already started. */
  private async ensureStarted(address: NodeAddress): Promise<NodeRuntime> {
    if (address.protocolVersion !== PROTOCOL_VERSION) {
      throw nodeError(
        "PROTOCOL",
        `the caller speaks protocol version ${String(address.protocolVersion)}; this node speaks ${PROTOCOL_VERSION}`,
        { retryable: false },
      );
    }
    const loaded = await this.loadRuntime();
    if (loaded !== null) {
      if (
        this.identity !== null &&
        (this.identity.cluster.name !== address.cluster.name || this.identity.node !== address.node)
      ) {
        throw nodeError(
          "INVALID_REQUEST",
          `this object is node ${this.identity.node} of cluster ${this.identity.cluster.name}, not ${address.node} of ${address.cluster.name}`,
          { retryable: false },
        );
      }
      return loaded;
    }
    try {
      validateClusterConfig(address.cluster);
    } catch (err) {
      throw nodeError("INVALID_REQUEST", err instanceof Error ? err.message : String(err), { retryable: false });
    }
    const identity: NodeIdentity = { cluster: address.cluster, node: address.node };
    let started: NodeRuntime | null = null;
    await this.ctx.blockConcurrencyWhile(async () => {
      if (this.runtime !== null) {
        started = this.runtime;
        return;
      }
      this.ctx.storage.kv.put(IDENTITY_KEY, identity);
      started = await this.startRuntime(identity);
    });
    if (started === null) {
      throw nodeError("INTERNAL", "the node failed to start", { retryable: true });
    }
    return started;
  }

  /** Runs one RPC: start if needed, run, translate failures into NodeResult errors, keep the alarm set. */
  private async handle<T>(address: NodeAddress, body: (runtime: NodeRuntime) => Promise<T>): Promise<NodeResult<T>> {
    this.counters.received("worker");
    try {
      const runtime = await this.ensureStarted(address);
      if (this.removedReason !== null) {
        throw nodeError("NOT_MEMBER", this.removedReason, { retryable: false });
      }
      const value = await tracedBody(
        address,
        spannedNodeCall(
          this.otlp,
          address,
          { node: address.node, role: () => runtime.status().role, term: () => runtime.status().term },
          body,
        ),
      )(runtime);
      // A removed leader keeps leading for a moment to hand over; it stops once it is a follower.
      const after = runtime.status();
      if (after.removed && after.role !== "leader") {
        await this.markRemoved(runtime, `${address.node} is no longer a member of cluster ${address.cluster.name}`);
      } else {
        await this.scheduleAlarm(runtime);
      }
      return { ok: true, node: address.node, value };
    } catch (err) {
      const current = this.runtime;
      const broken = current !== null && (err instanceof RaftInvariantError || current.isBroken);
      // A broken runtime's own answers (e.g. "outcome unknown" for a write it logged) still go back as they are.
      if (err instanceof NodeFailure && (!broken || this.bugs.readyFailureAnsweredInternal !== true)) {
        if (broken) {
          await this.discardRuntime(current, err);
        } else if (current !== null && !current.isStopped) {
          await this.scheduleAlarm(current).catch(() => undefined);
        }
        return { ok: false, node: address.node, error: err.error };
      }
      if (broken) {
        await this.discardRuntime(current, err);
      }
      return {
        ok: false,
        node: address.node,
        error: { code: "INTERNAL", message: err instanceof Error ? err.message : String(err), retryable: false },
      };
    }
  }

  private async markRemoved(runtime: NodeRuntime, reason: string): Promise<void> {
    if (this.removedReason !== null) {
      return;
    }
    this.removedReason = reason;
    this.ctx.storage.kv.put(REMOVED_KEY, reason);
    runtime.log("warn", "decommissioned", { reason });
    await runtime.stop(reason);
    await this.ctx.storage.deleteAlarm();
    this.alarmAtMs = null;
  }

  private stubFor(cluster: ClusterConfig, member: MemberConfig): DurableObjectStub<ClusterNode> & PeerStub {
    const id = this.env.CLUSTER_NODE.idFromName(objectName({ cluster: cluster.name, node: member.name }));
    const stub =
      member.locationHint === undefined
        ? this.env.CLUSTER_NODE.get(id)
        : this.env.CLUSTER_NODE.get(id, { locationHint: member.locationHint as DurableObjectLocationHint });
    return stub as DurableObjectStub<ClusterNode> & PeerStub;
  }

  /** Makes a (new) member start so the leader's messages find it running; bounded by the RPC timeout. */
  private async startPeer(address: NodeAddress, member: MemberConfig): Promise<void> {
    // Best effort: the leader's own messages start the node anyway (it answers notStarted and gets started).
    try {
      const stub = this.stubFor(address.cluster, member);
      const answer = await withDeadline<NodeResult<NodeStatusReport>>(
        stub.start({ protocolVersion: PROTOCOL_VERSION, cluster: address.cluster, node: member.name }),
        PEER_CALL_TIMEOUT_MS,
      );
      if (!answer.ok) {
        this.runtime?.log("warn", "memberStartRefused", {
          peer: member.name,
          code: answer.error.code,
          error: answer.error.message,
        });
      }
    } catch (err) {
      this.runtime?.log("warn", "memberStartFailed", { peer: member.name, error: String(err) });
    }
  }

  private async notifyRemoved(address: NodeAddress, node: string): Promise<void> {
    try {
      await withDeadline<unknown>(
        this.stubFor(address.cluster, { name: node }).leave({
          protocolVersion: PROTOCOL_VERSION,
          cluster: address.cluster,
          node,
        }),
        PEER_CALL_TIMEOUT_MS,
      );
    } catch (err) {
      this.runtime?.log("warn", "leaveNotificationFailed", { peer: node, error: String(err) });
    }
  }

  private locationHintOf(node: string): string | null {
    return this.identity?.cluster.members.find((member) => member.name === node)?.locationHint ?? null;
  }

  /** Liveness probe used by tests and the worker's /livez. */
  ping(): { ok: true } {
    return { ok: true };
  }
}

/**
 * Whether the node has a reason to tick: it is a voter or learner, leads (a removed leader hands over first), was
 * removed (its next tick decommissions it), or hears from a leader (a member being added, before it has applied
 * its own admission). A node that no leader contacts and that never was a member has none.
 */
function mayTick(runtime: NodeRuntime): boolean {
  const status = runtime.status();
  const self = runtime.identity.node;
  const member = status.membership.voters.includes(self) || status.membership.learners.includes(self);
  return member || status.removed || status.role === "leader" || status.leader !== null;
}

/** Every wait a caller asks for is clamped: at least 1 ms, at most a minute. */
function boundedTimeout(timeoutMs: number): number {
  if (!Number.isFinite(timeoutMs)) {
    return 10_000;
  }
  return Math.min(60_000, Math.max(1, Math.floor(timeoutMs)));
}

/** Settles like `promise`, or rejects after `timeoutMs`; the timer is always cleared. */
function withDeadline<T>(promise: PromiseLike<unknown>, timeoutMs: number): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
  });
  // RPC stubs type their promises as unions; the caller names what the method returns.
  return Promise.race([Promise.resolve(promise) as Promise<T>, timeout]).finally(() => {
    if (timer !== undefined) {
      clearTimeout(timer);
    }
  });
}
