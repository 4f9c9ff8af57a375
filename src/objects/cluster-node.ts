// ClusterNode: one Raft node of one cluster, as a Durable Object. This file adapts the platform to NodeHost (lazy
// start, the one alarm, receive, discarding a failed runtime: node-host.ts, shared with the simulator) and adds
// the RPC methods, metrics, events and tracing. The Raft plumbing lives in NodeRuntime, the SQL in ./sql.
import { DurableObject } from "cloudflare:workers";
import {
  PROTOCOL_VERSION,
  type BackupRequest,
  type BackupValue,
  type ClusterConfig,
  type ClusterNodeRpc,
  type ExecuteRequest,
  type ExecuteValue,
  type LeaveValue,
  type MemberChangeRequest,
  type MemberConfig,
  type MembershipValue,
  type NodeAddress,
  type NodeResult,
  type NodeStatusReport,
  type QueryRequest,
  type QueryValue,
  type RepairOutcome,
  type RepairRequest,
  type TransferRequest,
  type WaitForLeaderRequest,
} from "./api";
import { objectName, validateMember } from "./config";
import type { Bindings } from "./env";
import { NodeLifecycle, type DropRequest, type DropValue, type LifecycleHost } from "./lifecycle/drop";
import { logEvent, setLogLevel } from "./log";
import { NodeFailure, nodeError } from "./node-failure";
import type { NodeRuntime, PeerAnswer, PeerStub } from "./node-runtime";
import type { Message } from "../replication/types";
import { boundedTimeout, NodeHost, type ReceiveRefusal } from "./node-host";
import { withDeadline } from "./deadline";
import { membershipProof } from "./runtime/peers";
import {
  FOLLOW_UP_ANSWER_SLACK_MS,
  followUpDeadlineAtMs,
  followUpFinished,
  LEAVE_NOTICE_RETRY,
  leaveNoticeOutcome,
  PEER_CALL_TIMEOUT_MS,
  retryFollowUp,
  settleBy,
  type AttemptOutcome,
  type FailedFollowUp,
  type FollowUpReport,
  type PendingFollowUp,
  type RetriedOutcome,
} from "./member-follow-ups";
import { createStateMachine, stateMachineOptionsFromEnv } from "./sql/port";
import { parseShellBugs, type ShellBugs } from "./shell-bugs";
import { TestHookKeys } from "./storage-keys";
import { NodeCounters, nodeMetricsReport, type NodeMetricsReport } from "./metrics-counters";
import { NodeEventLog, registerEventLog, type EventsRequest, type EventsValue } from "./events";
import { logTracedAppends, runWithTrace, spanForIncoming, tracedBody } from "./trace";
import { otlpExporterFromEnv, type OtlpSpanExporter } from "./otlp-export";
import { spannedAppend, spannedNodeCall } from "./otlp-spans";
import {
  assertFaultsEnabled,
  CoalescedClock,
  faultsEnabled,
  parseFaultRules,
  type FaultRules,
} from "./transport/index";

/** The deployment's bindings and variables, with this object as the node namespace's class. */
export type Env = Bindings<ClusterNode>;

export class ClusterNode extends DurableObject<Env> implements ClusterNodeRpc {
  private readonly host: NodeHost;
  /** Dropping the database: the gate every worker call passes, and the tombstone (lifecycle/drop.ts). */
  private readonly lifecycle: NodeLifecycle;
  /** In-memory counters for GET /metrics (reset when the instance restarts). */
  private readonly counters = new NodeCounters(() => Date.now());
  /** Recent elections, leader changes, breaker and replica transitions... for GET /api/v1/cluster/events. */
  private readonly events = new NodeEventLog(
    () => Date.now(),
    () => this.host.current?.status().commit ?? null,
  );
  /** OTLP span export (otlp-spans.ts); null unless DHA_OTLP_ENDPOINT is set. */
  private readonly otlp: OtlpSpanExporter | null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    setLogLevel(env.DHA_LOG_LEVEL);
    this.otlp = otlpExporterFromEnv(env as Env & { DHA_OTLP_ENDPOINT?: string; DHA_OTLP_HEADERS?: string }, {
      "dha.component": "node",
      "dha.cluster": env.CLUSTER_NAME,
    });
    this.lifecycle = new NodeLifecycle(this.lifecycleHost(), {
      now: () => Date.now(),
      sleep: (ms) => new Promise((resolve) => setTimeout(resolve, ms)),
    });
    const faults = faultsEnabled(env);
    this.host = new NodeHost({
      kv: ctx.storage.kv,
      transaction: (fn) => ctx.storage.transactionSync(fn),
      stateMachine: () => createStateMachine(ctx.storage, stateMachineOptionsFromEnv(env)),
      // Its own: a timer runs in the context of the object that set it.
      clock: new CoalescedClock(),
      alarm: { set: (atMs) => ctx.storage.setAlarm(atMs), delete: () => ctx.storage.deleteAlarm() },
      randomSeed: () => crypto.getRandomValues(new Uint32Array(1))[0] ?? 1,
      newIncarnation: () => crypto.randomUUID(),
      peerStub: (cluster, member) => this.counters.instrumentPeer(member.name, this.stubFor(cluster, member)),
      faultsEnabled: faults,
      // Test only (set through testSetBugs when test configuration enabled faults); empty in production.
      bugs: () => (faults ? (ctx.storage.kv.get<ShellBugs>(TestHookKeys.shellBugs) ?? {}) : {}),
      exclusive: (fn) => ctx.blockConcurrencyWhile(fn),
      onRuntimeStarting: (identity) =>
        registerEventLog({ cluster: identity.cluster.name, node: identity.node }, this.events),
      // The spans of recent calls go out in one batch on every tick (bounded; never awaited; see otlp-spans.ts).
      onWake: () => void this.otlp?.flush(),
      afterEvent: (runtime) => this.counters.observeLeader(runtime.status().leader),
      wrapCall: (address, body) => this.traced(address, body),
    });
    // A node evicted while it was a member must come back by itself: its alarm brings it back, and so does any
    // call. Loading is lazy and retried on the next call if it fails, never wedged.
    void ctx.blockConcurrencyWhile(async () => {
      try {
        await this.host.loadRuntime();
      } catch (err) {
        logEvent("error", { cluster: "?", node: "?", term: 0 }, "startFailed", { error: String(err) });
      }
    });
  }

  // -------------------------------------------------------------------------------------------------------------
  // RPC: worker-facing

  /**
   * Starts the node. A leader starting a member it added passes `memberAsOf` (its applied index, its applied
   * configuration listing the member): a member that still holds an earlier removal is re-admitted by it
   * (NodeHost.start). Any other caller (the worker, a peer finding the node not started) passes none.
   */
  async start(request: NodeAddress & { readonly memberAsOf?: unknown }): Promise<NodeResult<NodeStatusReport>> {
    this.counters.received("worker");
    const memberAsOf = safeIndex(request.memberAsOf);
    const proof = memberAsOf === undefined ? {} : { proof: { from: "a leader's start", memberAsOf } };
    return this.gated(request, "start", () =>
      this.host.start(request, { locationHint: this.locationHintOf(request.node), ...proof }),
    );
  }

  async status(address: NodeAddress): Promise<NodeResult<NodeStatusReport>> {
    this.counters.received("worker");
    return this.gated(address, "status", () => this.host.status(address, this.locationHintOf(address.node)));
  }

  async execute(request: ExecuteRequest): Promise<NodeResult<ExecuteValue>> {
    const asLeader = this.host.current?.status().role === "leader";
    return this.counters.trackWrite({ asLeader }, () => {
      this.counters.received("worker");
      return this.gated(request, "execute", () => this.host.execute(request));
    });
  }

  async query(request: QueryRequest): Promise<NodeResult<QueryValue>> {
    return this.counters.trackRead(request.level, () => {
      this.counters.received("worker");
      return this.gated(request, "query", () => this.host.query(request));
    });
  }

  async waitForLeader(request: WaitForLeaderRequest): Promise<NodeResult<{ leader: string; term: number }>> {
    this.counters.received("worker");
    return this.gated(request, "waitForLeader", () => this.host.waitForLeader(request));
  }

  async transferLeadership(request: TransferRequest): Promise<NodeResult<{ leader: string; term: number }>> {
    this.counters.received("worker");
    return this.gated(request, "transferLeadership", () => this.host.transferLeadership(request));
  }

  async addMember(request: MemberChangeRequest): Promise<NodeResult<MembershipValue>> {
    return this.handle(request, async (runtime) => {
      const timeoutMs = boundedTimeout(request.timeoutMs);
      const deadlineAtMs = Date.now() + timeoutMs;
      try {
        validateMember(request.member);
      } catch (err) {
        throw nodeError("INVALID_REQUEST", err instanceof Error ? err.message : String(err), { retryable: false });
      }
      const { membership } = await runtime.changeMembership({
        change: { kind: "addLearner", node: request.member.name },
        ...(request.member.locationHint === undefined ? {} : { locationHint: request.member.locationHint }),
        timeoutMs,
      });
      // Reach the new node now so it starts and the leader can replicate to it; committed, so answered by the deadline.
      const followUps = await this.startMember(
        request,
        request.member,
        followUpDeadlineAtMs({ deadlineAtMs, timeoutMs }),
      );
      return membershipValue(membership, followUps);
    });
  }

  async removeMember(request: MemberChangeRequest): Promise<NodeResult<MembershipValue>> {
    return this.handle(request, async (runtime) => {
      const timeoutMs = boundedTimeout(request.timeoutMs);
      const deadlineAtMs = Date.now() + timeoutMs;
      if (request.member.name === runtime.identity.node) {
        // Before the leader hands leadership over (a follower's membership may be stale: the leader checks); the
        // new leader checks again right before its proposal.
        if (runtime.status().role === "leader") {
          refuseRemovingLastConfigured(runtime.status().membership, request);
        }
        return this.removeSelf(request, runtime, deadlineAtMs);
      }
      const { membership, index } = await runtime.changeMembership({
        change: { kind: "remove", node: request.member.name },
        check: () => refuseRemovingLastConfigured(runtime.status().membership, request),
        timeoutMs,
      });
      const followUps = await this.notifyRemoved(
        request,
        { node: request.member.name, removedAtIndex: index },
        followUpDeadlineAtMs({ deadlineAtMs, timeoutMs }),
      );
      return membershipValue(membership, followUps);
    });
  }

  /** Decommissioning the leader: hand leadership over first, then let the new leader remove us, by the deadline. */
  private async removeSelf(
    request: MemberChangeRequest,
    runtime: NodeRuntime,
    deadlineAtMs: number,
  ): Promise<MembershipValue> {
    const moved = await runtime.transferLeadership({
      timeoutMs: Math.max(1, Math.floor((deadlineAtMs - Date.now()) / 2)),
    });
    const remainingMs = Math.max(1, deadlineAtMs - Date.now());
    const stub = this.stubFor(request.cluster, { name: moved.leader });
    // The new leader answers before we stop listening: ticks on a loaded machine come late (FOLLOW_UP_ANSWER_SLACK_MS).
    const forwardedMs = Math.max(
      1,
      remainingMs - Math.max(request.cluster.heartbeatIntervalMs, FOLLOW_UP_ANSWER_SLACK_MS),
    );
    const answer = await withDeadline(
      // RPC stubs type their promises as unions; the method returns this.
      stub.removeMember({ ...request, node: moved.leader, timeoutMs: forwardedMs }) as Promise<
        NodeResult<MembershipValue>
      >,
      { timeoutMs: remainingMs, what: `forward the removal to ${moved.leader}` },
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

  /** Leader only: replaces a member's state with the leader's (the consistency monitor's repair). */
  async repairMember(request: RepairRequest): Promise<NodeResult<RepairOutcome>> {
    return this.handle(request, (runtime) =>
      runtime.repairMember({ node: request.member, timeoutMs: boundedTimeout(request.timeoutMs) }),
    );
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

  async backup(request: BackupRequest): Promise<NodeResult<BackupValue>> {
    this.counters.received("worker");
    return this.gated(request, "backup", () => this.host.backup(request));
  }

  /** One phase of dropping this node's database; never starts a node that was not running. */
  async drop(request: DropRequest): Promise<NodeResult<DropValue>> {
    if (request.protocolVersion !== PROTOCOL_VERSION) {
      return {
        ok: false,
        node: request.node,
        error: {
          code: "PROTOCOL",
          message: `unknown protocol version ${String(request.protocolVersion)}`,
          retryable: false,
        },
      };
    }
    // Load a node that was started before (and evicted), so that its membership is known and it can be stopped. A
    // node that fails every start (storage it cannot read) is still dropped: the wipe needs nothing it failed to load,
    // and its members are known to the others.
    try {
      await this.host.loadRuntime();
    } catch (error) {
      logEvent("warn", { cluster: request.cluster.name, node: request.node, term: 0 }, "dropWithoutRuntime", {
        phase: request.phase,
        error: String(error),
      });
    }
    const identity = this.host.identity;
    if (identity !== null && identity.cluster.name !== request.cluster.name) {
      return {
        ok: false,
        node: request.node,
        error: {
          code: "INVALID_REQUEST",
          message: `this object is not a node of ${request.cluster.name}`,
          retryable: false,
        },
      };
    }
    return { ok: true, node: request.node, value: await this.lifecycle.drop(request) };
  }

  // -------------------------------------------------------------------------------------------------------------
  // RPC: node-to-node

  /** Raft messages from a peer. A refusal is an answer ({ ok: false }), never an exception. */
  async receive(envelope: unknown, traceparent?: unknown): Promise<PeerAnswer | ReceiveRefusal> {
    this.counters.received("peer");
    if (this.lifecycle.tombstoned !== null) {
      return { ok: false, error: { code: "DROPPED", message: this.lifecycle.tombstoned.reason } };
    }
    return this.host.receive(envelope, (runtime, checked) => {
      const counted = this.counters.watchEnvelope(checked, () => runtime.peerReport().appliedIndex);
      let replies: readonly Message[] = [];
      runWithTrace(
        spanForIncoming(traceparent),
        spannedAppend(
          this.otlp,
          { traceparent, envelope: checked, node: runtime.identity.node, term: () => runtime.status().term },
          () => {
            logTracedAppends(checked, (level, fields) => runtime.log(level, "appendReceived", fields));
            replies = runtime.receiveEnvelope(checked);
          },
        ),
      );
      counted();
      return replies;
    });
  }

  /**
   * Called by the leader once this node's removal is applied (`removedAtIndex`: the removal's config entry; older
   * leaders pass their applied index after it, older still nothing): it stops and says so. A notice of a removal that
   * a later configuration listing this node undid (it was added back while the notice was retried or in flight) is
   * stale and ignored (NodeHost.isRemovalUndone), and answered `removed: false` so that the leader logs it as such.
   */
  async leave(request: NodeAddress & { readonly removedAtIndex?: unknown }): Promise<NodeResult<LeaveValue>> {
    return this.handle(request, async (runtime) => {
      const removedAtIndex = safeIndex(request.removedAtIndex);
      if (this.host.isRemovalUndone(runtime, removedAtIndex)) {
        runtime.log("info", "staleLeaveIgnored", { removedAtIndex: removedAtIndex ?? null });
        return { removed: false };
      }
      await this.host.decommission(runtime, `${request.node} was removed from cluster ${request.cluster.name}`, {
        ...(removedAtIndex === undefined ? {} : { removedAtIndex }),
      });
      return { removed: true };
    });
  }

  /** Test-only: network fault rules for messages this node sends. Refused unless test configuration enabled it. */
  async setFaults(rules: unknown): Promise<void> {
    assertFaultsEnabled(this.env);
    const parsed: FaultRules = parseFaultRules(rules);
    this.ctx.storage.kv.put(TestHookKeys.faultRules, parsed);
    this.host.current?.faultRulesChanged();
  }

  /**
   * Test-only: stops this node for good (alarm cleared, waiting requests failed, every later call refused), so a
   * finished test leaves no cluster ticking in the background. Refused unless test configuration enabled faults.
   */
  async testHalt(): Promise<void> {
    assertFaultsEnabled(this.env);
    await this.host.halt("halted by the test harness");
  }

  /**
   * Test-only: puts back bugs of the shell (shell-bugs.ts) for this node's next runtime (call before start, or crash
   * the node after). Refused unless test configuration enabled faults; production never sets any.
   */
  async testSetBugs(bugs: unknown): Promise<void> {
    assertFaultsEnabled(this.env);
    this.ctx.storage.kv.put(TestHookKeys.shellBugs, parseShellBugs(bugs));
  }

  /**
   * Test-only: runs SQL statements straight on this node's database, outside Raft (no log entry, no other node sees
   * them), to plant the divergence the consistency monitor must find. Refused unless test configuration enabled faults.
   */
  async testCorruptOutsideRaft(statements: unknown): Promise<void> {
    assertFaultsEnabled(this.env);
    if (!Array.isArray(statements) || !statements.every((statement) => typeof statement === "string")) {
      throw new Error("testCorruptOutsideRaft: expected an array of SQL strings");
    }
    for (const statement of statements as string[]) {
      this.ctx.storage.sql.exec(statement);
    }
  }

  /**
   * Test-only: the node ticks by its alarm alone from now on (no timer pending), so that the test pool can evict it
   * (its eviction waits for pending work to drain). Refused unless test configuration enabled faults.
   */
  async testBeforeEviction(): Promise<void> {
    assertFaultsEnabled(this.env);
    await this.host.tickByAlarmOnly();
  }

  /** Test-only: crashes this object (in-memory state lost, storage kept); its alarm or the next call restarts it. */
  async testCrash(): Promise<void> {
    assertFaultsEnabled(this.env);
    this.ctx.abort("crash injected by the test harness");
  }

  // -------------------------------------------------------------------------------------------------------------
  // The one alarm, the watchdog of the in-memory timer that ticks the node (node-host.ts): every timer of the core
  // (election, heartbeat, retries, probes) is a tick.

  override async alarm(): Promise<void> {
    this.counters.alarmWakeup();
    if (this.lifecycle.tombstoned !== null) {
      // A late alarm of a dropped database: it must not bring the object back.
      await this.ctx.storage.deleteAlarm();
      return;
    }
    await this.host.alarm();
  }

  /** Runs one RPC through the host (start if needed, failures translated, alarm kept set), traced. */
  private async handle<T>(address: NodeAddress, body: (runtime: NodeRuntime) => Promise<T>): Promise<NodeResult<T>> {
    this.counters.received("worker");
    return this.gated(address, "request", () => this.host.handle(address, body));
  }

  /**
   * Every worker call holds a lease of the lifecycle gate while it runs: refused once the database is dropped or
   * being dropped, and answered DROPPED if a drop broke the lease before it finished.
   */
  private async gated<T>(
    address: NodeAddress,
    operation: string,
    call: () => Promise<NodeResult<T>>,
  ): Promise<NodeResult<T>> {
    const admitted = this.lifecycle.admit(address.cluster?.name ?? "?", operation);
    if (!admitted.ok) {
      return { ok: false, node: address.node, error: admitted.error };
    }
    try {
      const result = await call();
      const refused = admitted.lease.broken ? this.lifecycle.refusal(address.cluster.name) : null;
      return refused === null ? result : { ok: false, node: address.node, error: refused };
    } finally {
      admitted.lease.release();
    }
  }

  private lifecycleHost(): LifecycleHost {
    const storage = this.ctx.storage;
    return {
      kv: storage.kv,
      deleteAll: () => storage.deleteAll(),
      deleteAlarm: () => storage.deleteAlarm(),
      members: () => {
        const membership = this.host.current?.status().membership;
        return membership === undefined ? [] : [...membership.voters, ...membership.learners];
      },
      busy: () => (this.host.current?.snapshotStreamsInFlight() ?? []).map((peer) => `snapshot to ${peer}`),
      stopRuntime: (reason) => this.host.halt(reason),
      log: (level, event, fields) =>
        logEvent(
          level,
          { cluster: this.host.identity?.cluster.name ?? "?", node: this.host.identity?.node ?? "?", term: 0 },
          event,
          fields,
        ),
    };
  }

  /** Every client call runs inside its trace context and OTLP span. */
  private traced<T>(
    address: NodeAddress,
    body: (runtime: NodeRuntime) => Promise<T>,
  ): (runtime: NodeRuntime) => Promise<T> {
    return (runtime) =>
      tracedBody(
        address,
        spannedNodeCall(
          this.otlp,
          address,
          { node: address.node, role: () => runtime.status().role, term: () => runtime.status().term },
          body,
        ),
      )(runtime);
  }

  private stubFor(cluster: ClusterConfig, member: MemberConfig): DurableObjectStub<ClusterNode> & PeerStub {
    const id = this.env.CLUSTER_NODE.idFromName(objectName({ cluster: cluster.name, node: member.name }));
    const stub =
      member.locationHint === undefined
        ? this.env.CLUSTER_NODE.get(id)
        : this.env.CLUSTER_NODE.get(id, { locationHint: member.locationHint as DurableObjectLocationHint });
    return stub as DurableObjectStub<ClusterNode> & PeerStub;
  }

  /**
   * Makes a new member start so the leader's messages find it running. Waited for until the request's deadline at
   * most: if the member has not answered by then, the call goes on (bounded), and the leader's own replication starts
   * the member anyway (a node that is not started answers notStarted and its caller starts it, runtime/peers.ts). A
   * call that failed or was refused by then is not made again: the answer names it as failed, not pending. (A member
   * re-added under its name is re-admitted by the start, which carries this leader's proof; one of an earlier version
   * refuses it NOT_MEMBER, and is re-admitted by this leader's next message, which carries the same proof.)
   */
  private async startMember(address: NodeAddress, member: MemberConfig, deadlineAtMs: number): Promise<FollowUpReport> {
    const node = member.name;
    const starting = this.startPeer(address, member);
    const outcome = await settleBy(starting, { deadlineAtMs, nowMs: Date.now(), what: `start ${node}` });
    if (outcome === true) {
      return {};
    }
    if (outcome === "pending") {
      const detail =
        `${node} had not answered its start by the deadline; the start goes on, and the leader starts it ` +
        "on its next contact";
      this.followUpPending(
        { action: "start", node, detail },
        starting.then((started) => (started === true ? true : started.error)),
      );
      return { pending: [{ action: "start", node, detail }] };
    }
    const failed: FailedFollowUp = {
      action: "start",
      node,
      error: outcome.error,
      detail:
        `the start is not made again; the leader starts ${node} on its next contact (and re-admits it then if it ` +
        "still holds an earlier removal)",
    };
    this.host.current?.log("error", "memberFollowUpFailed", { action: "start", peer: node, outcome: outcome.error });
    return { failed: [failed] };
  }

  /**
   * One bounded start call, with this leader's proof that its applied configuration lists the member (memberAsOf):
   * true once the member started, what failed or why it refused if not; never rejects.
   */
  private async startPeer(address: NodeAddress, member: MemberConfig): Promise<true | { readonly error: string }> {
    try {
      const stub = this.stubFor(address.cluster, member);
      const memberAsOf = this.memberAsOf(member.name);
      const answer = await withDeadline(
        stub.start({
          protocolVersion: PROTOCOL_VERSION,
          cluster: address.cluster,
          node: member.name,
          ...(memberAsOf === undefined ? {} : { memberAsOf }),
        }) as Promise<NodeResult<NodeStatusReport>>,
        { timeoutMs: PEER_CALL_TIMEOUT_MS, what: `start ${member.name}` },
      );
      if (!answer.ok) {
        this.host.current?.log("warn", "memberStartRefused", {
          peer: member.name,
          code: answer.error.code,
          error: answer.error.message,
        });
        return { error: `${answer.error.code}: ${answer.error.message}` };
      }
      return true;
    } catch (err) {
      this.host.current?.log("warn", "memberStartFailed", { peer: member.name, error: String(err) });
      return { error: String(err) };
    }
  }

  /**
   * Tells a removed member to stop, waiting for the first notice until the request's deadline at most. Nothing else
   * tells it (the leader no longer replicates to it), so a notice that has not got through goes on after the answer,
   * retried, bounded (LEAVE_NOTICE_RETRY), until the member answers or is a member again. Only the first attempt is
   * waited for: a removed node that fails at once (the usual reason to remove it) does not hold the answer back.
   */
  private async notifyRemoved(
    address: NodeAddress,
    removed: { readonly node: string; readonly removedAtIndex: number },
    deadlineAtMs: number,
  ): Promise<FollowUpReport> {
    const node = removed.node;
    const first = this.sendLeave(address, removed);
    const outcome = await settleBy(first, { deadlineAtMs, nowMs: Date.now(), what: `tell ${node} to leave` });
    if (outcome === true || outcome === "stale") {
      return {};
    }
    const notifying: Promise<RetriedOutcome> = first.then((answered) => {
      if (answered !== false) {
        return answered === "stale" ? "stale" : "delivered";
      }
      return retryFollowUp(() => this.sendLeave(address, removed), {
        attempts: LEAVE_NOTICE_RETRY.attempts - 1,
        firstBackoffMs: 2 * LEAVE_NOTICE_RETRY.firstBackoffMs,
        startAfterMs: LEAVE_NOTICE_RETRY.firstBackoffMs,
        moot: () => this.isMemberAgain(node),
      });
    });
    const detail =
      `${node} has not been told to stop yet; ${this.host.identity?.node ?? "the leader"} keeps telling it ` +
      `(up to ${LEAVE_NOTICE_RETRY.attempts} attempts in all); until then it runs on outside the cluster`;
    this.followUpPending({ action: "leave", node, detail }, notifying);
    return { pending: [{ action: "leave", node, detail }] };
  }

  /**
   * One bounded leave notice: true once the removed member answered that it stopped (or already had), "stale" if it
   * ignored the notice as a member again, false if it was not delivered.
   */
  private async sendLeave(
    address: NodeAddress,
    removed: { readonly node: string; readonly removedAtIndex: number },
  ): Promise<AttemptOutcome> {
    const node = removed.node;
    try {
      const answer = await withDeadline(
        this.stubFor(address.cluster, { name: node }).leave({
          protocolVersion: PROTOCOL_VERSION,
          cluster: address.cluster,
          node,
          removedAtIndex: removed.removedAtIndex,
        }) as Promise<NodeResult<LeaveValue>>,
        { timeoutMs: PEER_CALL_TIMEOUT_MS, what: `tell ${node} it was removed` },
      );
      return leaveNoticeOutcome(answer);
    } catch (err) {
      this.host.current?.log("warn", "leaveNotificationFailed", { peer: node, error: String(err) });
      return false;
    }
  }

  /** Whether this node's applied configuration lists `node` again (added back after its removal). */
  private isMemberAgain(node: string): boolean {
    return this.memberAsOf(node) !== undefined;
  }

  /**
   * This node's applied index if its applied configuration lists `node`: the proof a removed node needs to be
   * re-admitted (as runtime/peers.ts stamps it on envelopes, RaftEnvelope.memberAsOf).
   */
  private memberAsOf(node: string): number | undefined {
    const status = this.host.current?.status();
    return status === undefined ? undefined : membershipProof(status, node);
  }

  /** Logs a follow-up the answer left pending, and how it ends. */
  private followUpPending(pending: PendingFollowUp, finishing: Promise<unknown>): void {
    // `peer`, not `node`: the log line's own `node` field names this node.
    this.host.current?.log("warn", "memberFollowUpPending", {
      action: pending.action,
      peer: pending.node,
      detail: pending.detail,
    });
    void finishing.then((outcome) => {
      // "stale": the member ignored a leave notice, being a member again; a finished follow-up, not a failure.
      const finished = followUpFinished(outcome);
      this.host.current?.log(finished ? "info" : "error", finished ? "memberFollowUpDone" : "memberFollowUpFailed", {
        action: pending.action,
        peer: pending.node,
        outcome: String(outcome),
      });
    });
  }

  private locationHintOf(node: string): string | null {
    return this.host.identity?.cluster.members.find((member) => member.name === node)?.locationHint ?? null;
  }

  /** Liveness probe used by tests and the worker's /livez. */
  ping(): { ok: true } {
    return { ok: true };
  }
}

/** A log index passed in a call from another node, if it is one (a negative one counts as 0). */
function safeIndex(value: unknown): number | undefined {
  return typeof value === "number" && Number.isSafeInteger(value) ? Math.max(0, value) : undefined;
}

/** The membership after a change, with what of it was still under way, or failed, when it was answered (if any). */
function membershipValue(membership: MembershipValue, followUps: FollowUpReport): MembershipValue {
  return {
    voters: membership.voters,
    learners: membership.learners,
    ...(followUps.pending === undefined ? {} : { pending: followUps.pending }),
    ...(followUps.failed === undefined ? {} : { failed: followUps.failed }),
  };
}

/**
 * The worker finds a cluster only through its configured nodes (CLUSTER_NODES, or the database's nodes in the
 * catalog): a removal that leaves none of them a member (voter or learner) would leave the cluster running where no
 * request can reach it, for good. Checked by the leader right before it proposes (one change is in flight at a time).
 */
function refuseRemovingLastConfigured(
  membership: { readonly voters: readonly string[]; readonly learners: readonly string[] },
  request: MemberChangeRequest,
): void {
  const configured = request.cluster.members.map((member) => member.name);
  const remaining = [...membership.voters, ...membership.learners].filter((name) => name !== request.member.name);
  if (remaining.some((name) => configured.includes(name))) {
    return;
  }
  throw nodeError(
    "INVALID_REQUEST",
    `removing ${request.member.name} would leave none of the configured nodes (${configured.join(", ")}) a member, and ` +
      `requests reach the cluster only through them: add one of them back first`,
    { retryable: false },
  );
}
