// NodeHost: what one in-memory instance of a node object does around its NodeRuntime, written once for the platform
// (ClusterNode) and the simulator (test/sim/host.ts): lazy start from storage, the ticks (an in-memory timer while the
// instance lives, the one alarm as the watchdog that brings back an evicted one), peers' envelopes, client calls with
// their failures translated, and dropping a runtime that failed so the next event reloads it from storage.
// Everything platform-specific comes in through NodeHostSeams. A stale instance (a newer one owns the object) is
// fenced by its storage: every access throws, its runtime breaks, and reloading fails, so it can neither act nor
// answer as the node.
import {
  PROTOCOL_VERSION,
  type BackupRequest,
  type BackupValue,
  type ClusterConfig,
  type ExecuteRequest,
  type ExecuteValue,
  type MemberConfig,
  type NodeAddress,
  type NodeError,
  type NodeResult,
  type NodeStatusReport,
  type QueryRequest,
  type QueryValue,
  type TransferRequest,
  type WaitForLeaderRequest,
} from "./api";
import { validateClusterConfig } from "./config";
import { MAX_BACKUP_DUMP_BYTES } from "../shared/sql-text/limits";
import { logEvent } from "./log";
import { RaftInvariantError } from "../replication/index";
import type { Message } from "../replication/types";
import { NodeFailure, nodeError } from "./node-failure";
import { NodeRuntime, type NodeIdentity, type PeerAnswer, type PeerStub } from "./node-runtime";
import type { SyncKv, SyncTransaction } from "./raft-storage";
import type { ShellBugs } from "./shell-bugs";
import type { StateMachinePort } from "./state-machine-port";
import { NodeKeys } from "./storage-keys";
import {
  failedRuntimeRetryMs,
  readmissionGraceMs,
  startRetryDelayMs,
  watchdogAlarmAtMs,
  watchdogRenewWithinMs,
} from "./timing";
import { validateEnvelope, type RaftEnvelope, type TransportClock } from "./transport/index";

/** From this many failed starts in a row on, each one's log line carries an alert. */
const START_FAILURES_ALERT = 5;
/** Timer wakes that may fail in a row before the in-memory timer stops re-arming itself (see onTickTimer). */
const MAX_TIMER_FAILURES_IN_A_ROW = 3;
/** A backup waits this long at most for the leader to confirm its read index and apply up to it. */
const BACKUP_TIMEOUT_MS = 10_000;

/** The dump limit a backup asked for, within the node's own (a malformed or missing one is the node's). */
function backupDumpLimit(asked: unknown): number {
  const valid = typeof asked === "number" && Number.isSafeInteger(asked) && asked > 0;
  return valid ? Math.min(asked, MAX_BACKUP_DUMP_BYTES) : MAX_BACKUP_DUMP_BYTES;
}

/**
 * Why a node stopped for good, and the applied index it stopped at. A configuration applied past `appliedIndex` that
 * lists the node again (a re-add) lifts it; null for a stop no configuration can lift (a halt).
 */
interface RemovalRecord {
  readonly reason: string;
  readonly appliedIndex: number | null;
}

/** A removed node that a later configuration lists again, catching up until it applies that configuration. */
interface Readmission {
  /** The applied index the node was removed at: only a proof beyond it counts. */
  readonly removedAtIndex: number;
  /** The proof that lifted the removal: once the node applied this far, it applied a configuration listing it. */
  readonly memberAsOf: number;
  lastProofAtMs: number;
}

/**
 * The last readmission, as persisted (NodeKeys.readmission) until the node is removed again: the removal it lifted
 * and the proof that lifted it (memberAsOf). A restart keeps both (see restoreReadmission).
 */
interface ReadmissionRecord {
  readonly removedAtIndex: number;
  readonly memberAsOf: number;
}

/** A peer's proof (an envelope's, or a leader's start's) that its configuration applied at `memberAsOf` lists us. */
interface MembershipProof {
  readonly from: string;
  readonly memberAsOf?: number;
}

/** The object's one alarm (ctx.storage.setAlarm / deleteAlarm on the platform). */
export interface AlarmScheduler {
  set(atMs: number): Promise<void>;
  delete(): Promise<void>;
}

/** What a host needs from where it runs. */
export interface NodeHostSeams {
  /** The object's synchronous key-value store (identity, removal, incarnation; the runtime's Raft state). */
  readonly kv: SyncKv;
  /** Makes a group of KV writes atomic (transactionSync on the platform): the runtime persists each Ready in one. */
  readonly transaction: SyncTransaction;
  /** A state machine over the object's SQL storage, built for each runtime. */
  readonly stateMachine: () => StateMachinePort;
  readonly clock: TransportClock;
  readonly alarm: AlarmScheduler;
  /** A seed for a new runtime's random source. */
  readonly randomSeed: () => number;
  /** A new storage incarnation id (random on the platform), written once with the node's first state. */
  readonly newIncarnation: () => string;
  readonly peerStub: (cluster: ClusterConfig, member: MemberConfig) => PeerStub;
  readonly faultsEnabled: boolean;
  /** Shell bug switches for the next runtime (none in production). */
  readonly bugs: () => ShellBugs;
  /** Runs `fn` with no other event of the object interleaved (blockConcurrencyWhile on the platform). */
  readonly exclusive: (fn: () => Promise<void>) => Promise<void>;
  /**
   * True for an error that ends the instance itself (the simulator's crash): it is passed through untouched, never
   * answered or handled as a failure of the runtime.
   */
  readonly isInstanceAbort?: (err: unknown) => boolean;
  /** Called right before a runtime is created, with its identity: the event feed must be in place for its nodeStarted. */
  readonly onRuntimeStarting?: (identity: NodeIdentity) => void;
  /** Called at the start of every wake (the tick timer's or the alarm's): the platform flushes its spans then. */
  readonly onWake?: () => void;
  /** Called after each event that leaves a runtime in place (before its alarm is set). */
  readonly afterEvent?: (runtime: NodeRuntime) => void;
  /** Called when a runtime (or starting one) failed and was dropped. */
  readonly onDiscard?: (err: unknown) => void;
  /** Wraps the body of every client call (the platform traces them). */
  readonly wrapCall?: <T>(
    address: NodeAddress,
    body: (runtime: NodeRuntime) => Promise<T>,
  ) => (runtime: NodeRuntime) => Promise<T>;
}

/** A refusal of `receive`: an answer ({ ok: false }), never an exception. */
export type ReceiveRefusal = { ok: false; notStarted?: boolean; error: { code: string; message: string } };

export class NodeHost {
  private runtime: NodeRuntime | null = null;
  private identityValue: NodeIdentity | null = null;
  private removal: RemovalRecord | null = null;
  private readmission: Readmission | null = null;
  /**
   * The highest applied index at which a peer's configuration listed this node, as its envelopes (and a leader's
   * start) proved (memberAsOf): a removal before it was undone by a later re-add (see isRemovalUndone). Seen by this
   * instance, and restored from the last readmission after a restart (NodeKeys.readmission).
   */
  private memberProofIndex = 0;
  /** When the alarm (the watchdog) is set for, as this instance set it; null when it may not be set. */
  private alarmAtMs: number | null = null;
  /** The in-memory timer that drives the ticks while this instance lives; null when none is armed. */
  private tickTimer: { readonly atMs: number; readonly cancel: () => void } | null = null;
  /** Ticking by the alarm alone, without the in-memory timer (a test's eviction: see tickByAlarmOnly). */
  private alarmOnly = false;
  /** The switches the current runtime runs with (empty in production). */
  private bugs: ShellBugs = {};
  /** Whether this instance deleted any alarm left on a node that may not tick (see scheduleWake). */
  private strayAlarmCleared = false;
  /** Failed starts in a row (reset by a start that succeeds): the retry backs off with them. */
  private startFailuresInARow = 0;
  /** Timer wakes that failed in a row; the timer stops re-arming itself after MAX_TIMER_FAILURES_IN_A_ROW. */
  private timerFailuresInARow = 0;

  constructor(private readonly seams: NodeHostSeams) {}

  /** The running runtime, if any (not loaded by this call). */
  get current(): NodeRuntime | null {
    return this.runtime;
  }

  get identity(): NodeIdentity | null {
    return this.identityValue;
  }

  get isRemoved(): boolean {
    return this.removal !== null;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Entry points

  /**
   * The one alarm, the watchdog: it wakes an instance that lost its in-memory timer (an evicted object comes back
   * by it), and does what the timer would have done. Every timer of the core (election, heartbeat, retries, probes)
   * is a tick.
   */
  async alarm(): Promise<void> {
    this.alarmAtMs = null;
    await this.wake();
  }

  /** The in-memory timer fired: the same wake as the alarm's. A failure is logged and retried, never thrown. */
  private onTickTimer(): void {
    this.tickTimer = null;
    void this.wake().then(
      () => {
        this.timerFailuresInARow = 0;
      },
      (err: unknown) => {
        if (this.seams.isInstanceAbort?.(err) === true) {
          return;
        }
        this.timerFailuresInARow++;
        const identity = this.identityValue;
        const retryInMs = failedRuntimeRetryMs(identity?.cluster);
        // A stale instance (a newer one owns the object) fails every storage access, and a pending timer keeps an
        // object from being evicted: re-arming for good would keep it alive, failing, forever. After a few failures
        // the timer stops; the alarm (the watchdog, owned by the current instance), a peer's message or a client's
        // call wakes the node again, and each of those arms the timer anew.
        const retrying = this.timerFailuresInARow < MAX_TIMER_FAILURES_IN_A_ROW;
        logEvent(
          "error",
          { cluster: identity?.cluster.name ?? "?", node: identity?.node ?? "?", term: 0 },
          "tickFailed",
          {
            error: String(err),
            failuresInARow: this.timerFailuresInARow,
            ...(retrying ? { retryInMs } : { timerStopped: true }),
          },
        );
        if (retrying) {
          // The alarm may not be set (setting it is what failed): the timer tries again soon.
          this.armTickTimer(this.seams.clock.now() + retryInMs);
        }
      },
    );
  }

  /** A tick: load the runtime if needed, catch its clock up with real time, and schedule the next wake. */
  private async wake(): Promise<void> {
    this.seams.onWake?.();
    let runtime: NodeRuntime | null;
    try {
      runtime = await this.loadRuntime();
    } catch (err) {
      this.rethrowAbort(err);
      // Starting failed (a storage error): try again later rather than leave the node without an alarm, backing off
      // (an error that repeats on every start, e.g. a full database, must not reload the node every tick).
      this.seams.onDiscard?.(err);
      this.startFailuresInARow++;
      const retryInMs = startRetryDelayMs(this.identityValue?.cluster, this.startFailuresInARow);
      logEvent("error", { cluster: this.identityValue?.cluster.name ?? "?", node: "?", term: 0 }, "startFailed", {
        error: String(err),
        failuresInARow: this.startFailuresInARow,
        retryInMs,
        ...(this.startFailuresInARow >= START_FAILURES_ALERT
          ? { alert: "the node fails to start again and again" }
          : {}),
      });
      await this.armRetry(retryInMs);
      return;
    }
    this.startFailuresInARow = 0;
    if (runtime === null || runtime.isStopped) {
      return;
    }
    try {
      // A stale instance that still holds its runtime fails here, on its first storage access, before its core ticks:
      // otherwise a stale leader's timer would go on heartbeating and keep its followers from ever electing anew.
      this.seams.kv.get(NodeKeys.identity);
      runtime.advanceClock();
      if (this.mustDecommission(runtime)) {
        await this.decommission(
          runtime,
          `${runtime.identity.node} is no longer a member of cluster ${runtime.identity.cluster.name}`,
        );
        return;
      }
    } catch (err) {
      this.rethrowAbort(err);
      await this.discardRuntime(runtime, err);
      // Come back soon from storage rather than keep running in a state the core refused.
      await this.armRetry(failedRuntimeRetryMs(this.identityValue?.cluster));
      return;
    }
    await this.scheduleWake(runtime);
  }

  /**
   * Raft messages from a peer. A refusal is an answer ({ ok: false }), never an exception. `deliver` steps the
   * validated envelope into the runtime (the platform wraps it in its tracing and counters).
   */
  async receive(
    envelope: unknown,
    deliver: (runtime: NodeRuntime, envelope: RaftEnvelope) => readonly Message[] = (runtime, checked) =>
      runtime.receiveEnvelope(checked),
  ): Promise<PeerAnswer | ReceiveRefusal> {
    const runtime = await this.loadRuntime();
    if (runtime === null || this.identityValue === null) {
      return {
        ok: false,
        notStarted: true,
        error: { code: "UNAVAILABLE", message: "this node has not been started yet" },
      };
    }
    const checked = validateEnvelope(envelope, {
      cluster: this.identityValue.cluster.name,
      node: this.identityValue.node,
    });
    if (!checked.ok) {
      return { ok: false, error: checked.error };
    }
    const receiving = (await this.readmittedBy(runtime, checked.envelope)) ?? runtime;
    if (this.removal !== null) {
      return { ok: false, error: { code: "UNAVAILABLE", message: this.removal.reason } };
    }
    return this.deliverTo(receiving, checked.envelope, deliver);
  }

  private async deliverTo(
    runtime: NodeRuntime,
    envelope: RaftEnvelope,
    deliver: (runtime: NodeRuntime, envelope: RaftEnvelope) => readonly Message[],
  ): Promise<PeerAnswer | ReceiveRefusal> {
    let replies: readonly Message[];
    try {
      replies = deliver(runtime, envelope);
    } catch (err) {
      this.rethrowAbort(err);
      if (err instanceof RaftInvariantError || runtime.isBroken) {
        await this.discardRuntime(runtime, err);
      }
      return { ok: false, error: { code: "UNAVAILABLE", message: err instanceof Error ? err.message : String(err) } };
    }
    await this.scheduleWake(runtime);
    const report = runtime.peerReportFor(envelope);
    return {
      ok: true,
      ...(report === undefined ? {} : { report }),
      ...(replies.length === 0 ? {} : { replies }),
    };
  }

  // The worker-facing calls (ClusterNodeRpc), as the platform's object and the simulator's both answer them.

  status(address: NodeAddress, locationHint: string | null): Promise<NodeResult<NodeStatusReport>> {
    return this.handle(address, async (runtime) => runtime.statusReport({ locationHint }));
  }

  /**
   * Starts the node (harmless when it runs) and answers its status. A leader starting a member it added passes its
   * proof that its applied configuration lists the node (`memberAsOf`, as on its envelopes): a node that still holds
   * an earlier removal is re-admitted by the start itself, as the leader's next envelope would re-admit it, instead
   * of refusing it NOT_MEMBER.
   */
  async start(
    address: NodeAddress,
    options: { readonly locationHint: string | null; readonly proof?: MembershipProof },
  ): Promise<NodeResult<NodeStatusReport>> {
    if (options.proof?.memberAsOf !== undefined) {
      const runtime = await this.ensureStarted(address).catch((err: unknown) => {
        // A start that fails here (a wrong address, storage) fails again below, and is answered there.
        this.rethrowAbort(err);
        return null;
      });
      if (runtime !== null) {
        await this.readmittedBy(runtime, options.proof);
      }
    }
    return this.status(address, options.locationHint);
  }

  execute(request: ExecuteRequest): Promise<NodeResult<ExecuteValue>> {
    return this.handle(request, (runtime) =>
      runtime.execute({ request: request.request, timeoutMs: boundedTimeout(request.timeoutMs) }),
    );
  }

  query(request: QueryRequest): Promise<NodeResult<QueryValue>> {
    return this.handle(request, (runtime) =>
      runtime.query({
        statements: request.statements,
        level: request.level,
        ...(request.freshnessMs === undefined ? {} : { freshnessMs: request.freshnessMs }),
        ...(request.minAppliedIndex === undefined ? {} : { minAppliedIndex: request.minAppliedIndex }),
        ...(request.minAppliedWaitMs === undefined
          ? {}
          : { minAppliedWaitMs: boundedTimeout(request.minAppliedWaitMs) }),
        transaction: request.transaction,
        timeoutMs: boundedTimeout(request.timeoutMs),
      }),
    );
  }

  waitForLeader(request: WaitForLeaderRequest): Promise<NodeResult<{ leader: string; term: number }>> {
    return this.handle(request, (runtime) => runtime.waitForLeader(boundedTimeout(request.timeoutMs)));
  }

  transferLeadership(request: TransferRequest): Promise<NodeResult<{ leader: string; term: number }>> {
    return this.handle(request, (runtime) =>
      runtime.transferLeadership({
        ...(request.to === undefined ? {} : { to: request.to }),
        timeoutMs: boundedTimeout(request.timeoutMs),
      }),
    );
  }

  backup(request: BackupRequest): Promise<NodeResult<BackupValue>> {
    return this.handle(request, (runtime) =>
      runtime.backup({
        timeoutMs: BACKUP_TIMEOUT_MS,
        maxDumpBytes: backupDumpLimit(request.maxDumpBytes),
        // A worker that names no limit is of a version that reads only an inline dump.
        mayStream: request.maxDumpBytes !== undefined,
      }),
    );
  }

  /** Runs one client call: start if needed, run, translate failures into NodeResult errors, keep the alarm set. */
  async handle<T>(address: NodeAddress, body: (runtime: NodeRuntime) => Promise<T>): Promise<NodeResult<T>> {
    try {
      const runtime = await this.startForCall(address);
      if (this.removal !== null) {
        throw nodeError("NOT_MEMBER", this.removal.reason, { retryable: false });
      }
      const value = await (this.seams.wrapCall?.(address, body) ?? body)(runtime);
      // A removed leader keeps leading for a moment to hand over; it stops once it is a follower.
      if (this.mustDecommission(runtime)) {
        await this.decommission(runtime, `${address.node} is no longer a member of cluster ${address.cluster.name}`);
      } else {
        await this.scheduleWake(runtime);
      }
      return { ok: true, node: address.node, value };
    } catch (err) {
      this.rethrowAbort(err);
      return { ok: false, node: address.node, error: await this.failureOf(err) };
    }
  }

  /**
   * ensureStarted, for a client call. A start that fails on storage (loading the node, replaying its log) ran
   * nothing of the call: answered as a node that is restarting (retryable: the router asks again, here or
   * elsewhere), not as the node's internal error; the next call or the alarm starts it again.
   */
  private async startForCall(address: NodeAddress): Promise<NodeRuntime> {
    try {
      return await this.ensureStarted(address);
    } catch (err) {
      this.rethrowAbort(err);
      if (err instanceof NodeFailure) {
        throw err;
      }
      const cause = err instanceof Error ? err.message : String(err);
      logEvent("error", { cluster: address.cluster.name, node: address.node, term: 0 }, "startFailed", {
        error: String(err),
        duringCall: true,
      });
      throw nodeError("NO_LEADER", `${address.node} failed to start (${cause}); retry shortly`, {
        leader: null,
        retryable: true,
      });
    }
  }

  /**
   * Stops this node for good (alarm cleared, waiting requests failed, every later call refused), whether or not it
   * runs now; the reason survives restarts.
   */
  async halt(reason: string): Promise<void> {
    this.seams.kv.put(NodeKeys.removed, { reason, appliedIndex: null } satisfies RemovalRecord);
    // A node that fails every start has nothing running to stop: halting it (before a drop wipes it) must not fail.
    const runtime = await this.loadRuntime().catch(() => null);
    if (runtime !== null) {
      await this.decommission(runtime, reason, { liftable: false });
    }
    this.cancelTickTimer();
    await this.seams.alarm.delete();
  }

  /** First contact: validate the address, persist the identity, start. Harmless when already started. */
  async ensureStarted(address: NodeAddress): Promise<NodeRuntime> {
    if (address.protocolVersion !== PROTOCOL_VERSION) {
      throw nodeError(
        "PROTOCOL",
        `the caller speaks protocol version ${String(address.protocolVersion)}; this node speaks ${PROTOCOL_VERSION}`,
        { retryable: false },
      );
    }
    const loaded = await this.loadRuntime();
    if (loaded !== null) {
      const identity = this.identityValue;
      if (identity !== null && (identity.cluster.name !== address.cluster.name || identity.node !== address.node)) {
        throw nodeError(
          "INVALID_REQUEST",
          `this object is node ${identity.node} of cluster ${identity.cluster.name}, not ${address.node} of ${address.cluster.name}`,
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
    await this.seams.exclusive(async () => {
      if (this.runtime !== null) {
        started = this.runtime;
        return;
      }
      this.seams.kv.put(NodeKeys.identity, identity);
      started = await this.startRuntime(identity);
    });
    if (started === null) {
      throw nodeError("INTERNAL", "the node failed to start", { retryable: true });
    }
    return started;
  }

  /** Loads the runtime from storage if this node was started before; null if it never was. */
  async loadRuntime(): Promise<NodeRuntime | null> {
    const current = this.runtime;
    if (current !== null && current.isBroken && this.bugs.brokenRuntimeKeepsServing !== true) {
      // It broke in a callback no request awaited: drop it (synchronously, so no other event can use it) and reload.
      this.dropRuntime(current, new Error("the runtime broke in a background callback"));
      void current.stop("the node hit an internal error and is restarting from storage").catch(() => undefined);
    } else if (current !== null) {
      return current;
    }
    const identity = this.seams.kv.get<NodeIdentity>(NodeKeys.identity);
    if (identity === undefined) {
      return null;
    }
    return this.startRuntime(identity);
  }

  /**
   * Test only: from now on this instance ticks by its alarm alone, set for each next deadline, and keeps no timer
   * pending (commit notices go out at once rather than wait for the next message). The test pool's eviction waits
   * for the object's pending work to drain, and the in-memory timer is always pending: a test that evicts a node calls
   * this first, and the node runs on until the eviction as before.
   */
  async tickByAlarmOnly(): Promise<void> {
    this.alarmOnly = true;
    this.cancelTickTimer();
    const runtime = this.runtime;
    if (runtime !== null) {
      runtime.sendCommitNoticesAtOnce();
      await this.scheduleWake(runtime);
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Lifecycle

  private async startRuntime(identity: NodeIdentity): Promise<NodeRuntime> {
    this.identityValue = identity;
    this.bugs = this.seams.bugs();
    this.seams.onRuntimeStarting?.(identity);
    const runtime = new NodeRuntime({
      identity,
      bugs: this.bugs,
      kv: this.seams.kv,
      transaction: this.seams.transaction,
      stateMachine: this.seams.stateMachine(),
      peerStub: (member) => this.seams.peerStub(identity.cluster, member),
      faultsEnabled: this.seams.faultsEnabled,
      clock: this.seams.clock,
      seed: this.seams.randomSeed(),
      incarnation: this.incarnation(),
    });
    this.runtime = runtime;
    if (this.alarmOnly) {
      runtime.sendCommitNoticesAtOnce();
    }
    this.removal = readRemoval(this.seams.kv, runtime);
    if (this.removal !== null) {
      await runtime.stop(this.removal.reason);
      await this.seams.alarm.delete();
      return runtime;
    }
    this.restoreReadmission(runtime);
    await this.scheduleWake(runtime);
    return runtime;
  }

  /**
   * The last readmission, after the object restarted: its proof keeps stale leave notices of the lifted removal
   * ignored (isRemovalUndone) whatever the node applied since. While the node has not applied up to the proof, it is
   * still catching up: the readmission's grace comes back too, or the node would stop at its first tick, as removed by
   * the configuration it applied (the one before the re-add), until the leader's next message.
   */
  private restoreReadmission(runtime: NodeRuntime): void {
    const stored = this.seams.kv.get<ReadmissionRecord>(NodeKeys.readmission);
    if (stored === undefined) {
      return;
    }
    this.memberProofIndex = Math.max(this.memberProofIndex, stored.memberAsOf);
    if (this.readmission === null && runtime.status().applied < stored.memberAsOf) {
      this.readmission = { ...stored, lastProofAtMs: this.seams.clock.now() };
      runtime.log("info", "readmissionRestored", { ...stored });
    }
  }

  /** A random id written with the node's first state: a peer that sees it change knows the storage was wiped. */
  private incarnation(): string {
    const existing = this.seams.kv.get<string>(NodeKeys.incarnation);
    if (existing !== undefined) {
      return existing;
    }
    const created = this.seams.newIncarnation();
    this.seams.kv.put(NodeKeys.incarnation, created);
    return created;
  }

  /** What a failed call answers; a runtime that broke doing it is discarded. */
  private async failureOf(err: unknown): Promise<NodeError> {
    const current = this.runtime;
    const broken = current !== null && (err instanceof RaftInvariantError || current.isBroken);
    // A broken runtime's own answers (e.g. "outcome unknown" for a write it logged) still go back as they are.
    if (err instanceof NodeFailure && (!broken || this.bugs.readyFailureAnsweredInternal !== true)) {
      if (broken) {
        await this.discardRuntime(current, err);
      } else if (current !== null && !current.isStopped) {
        await this.scheduleWake(current).catch(() => undefined);
      }
      return err.error;
    }
    if (broken) {
      await this.discardRuntime(current, err);
    }
    return { code: "INTERNAL", message: err instanceof Error ? err.message : String(err), retryable: false };
  }

  /**
   * Something unexpected failed inside the runtime (an assertion of the core, a storage error): stopping is better
   * than running in a wrong state. Drop the in-memory node; the next event reloads it from storage.
   */
  private async discardRuntime(runtime: NodeRuntime, err: unknown): Promise<void> {
    this.dropRuntime(runtime, err);
    await runtime.stop("the node hit an internal error and is restarting from storage");
  }

  private dropRuntime(runtime: NodeRuntime, err: unknown): void {
    runtime.log("error", "runtimeDiscarded", {
      error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    });
    if (this.runtime === runtime) {
      this.runtime = null;
    }
    this.alarmAtMs = null;
    this.seams.onDiscard?.(err);
  }

  /**
   * The node was removed (or halted): it stops and refuses every later call with `reason`, until a configuration
   * applied past the index it stopped at lists it again (see readmittedBy); a halt (`liftable: false`) is for good.
   * `removedAtIndex` is the remover's applied index when it is known (the leader's notice may arrive before this
   * node applied its own removal).
   */
  async decommission(
    runtime: NodeRuntime,
    reason: string,
    options: { readonly liftable?: boolean; readonly removedAtIndex?: number } = {},
  ): Promise<void> {
    if (this.removal !== null) {
      return;
    }
    const appliedIndex =
      options.liftable === false ? null : Math.max(runtime.status().applied, options.removedAtIndex ?? 0);
    const removal: RemovalRecord = { reason, appliedIndex };
    // Persisted first: if the write throws, the node keeps running as before rather than refuse calls un-ticked.
    this.seams.kv.put(NodeKeys.removed, removal);
    this.removal = removal;
    this.endReadmission();
    runtime.log("warn", "decommissioned", { reason, appliedIndex });
    await runtime.stop(reason);
    this.cancelTickTimer();
    await this.seams.alarm.delete();
    this.alarmAtMs = null;
  }

  /**
   * Whether this node's removal at `removedAtIndex` (a leave notice's) was undone by a later configuration that lists
   * it again: one it applied, or one a peer's envelope proved while it catches up after a re-add. Such a notice is
   * stale (retried, or in flight, since before the re-add). A notice without the index (older senders) is not.
   */
  isRemovalUndone(runtime: NodeRuntime, removedAtIndex: number | undefined): boolean {
    if (removedAtIndex === undefined) {
      return false;
    }
    const status = runtime.status();
    // Applied at or past the removal, and listed by the configuration applied: a re-add came after it. (Not `removed`
    // alone: a node restarted from a snapshot taken at its removal is not flagged removed, nor listed.)
    const self = runtime.identity.node;
    const listed = status.membership.voters.includes(self) || status.membership.learners.includes(self);
    const appliedReadd = !status.removed && listed && status.applied >= removedAtIndex;
    return appliedReadd || this.memberProofIndex > removedAtIndex;
  }

  /**
   * Whether a removed node's runtime must stop now: its applied configuration no longer lists it, it does not lead
   * (a removed leader hands over first), and it is not catching up after a re-admission whose leader still calls.
   */
  private mustDecommission(runtime: NodeRuntime): boolean {
    const status = runtime.status();
    if (!status.removed) {
      // Listed, but maybe by the configuration before the removal (a node stopped by the leader's notice had not
      // applied its removal): the readmission ends once the node applied up to the proof, past the removal too.
      if (this.readmission !== null && status.applied >= this.readmission.memberAsOf) {
        runtime.log("info", "readmissionApplied", { appliedIndex: status.applied });
        this.readmission = null;
      }
      return false;
    }
    if (status.role === "leader") {
      return false;
    }
    const readmission = this.readmission;
    const graceMs = readmissionGraceMs(runtime.identity.cluster);
    return readmission === null || this.seams.clock.now() - readmission.lastProofAtMs > graceMs;
  }

  /** A new removal supersedes the last readmission, persisted or not. */
  private endReadmission(): void {
    this.readmission = null;
    this.seams.kv.delete(NodeKeys.readmission);
  }

  /**
   * A removed node accepts envelopes again once a sender proves that a configuration applied after its removal lists
   * it (RaftEnvelope.memberAsOf beyond the applied index it stopped at): the removal is lifted and a new runtime
   * starts from storage, returned to take the envelope. A message sent before the removal carries no such proof (its
   * sender had applied less than the removal), so it cannot revive the node. Also refreshes the proof of a node
   * catching up after a re-admission. Null when nothing changed.
   *
   * The readmission is persisted in place of the removal record (NodeKeys.readmission), rather than every proof seen
   * (memberProofIndex): memberAsOf is the sender's applied index, new on nearly every envelope, and persisting it
   * would add a KV write to the write path; the proof that lifted the removal is the one a stale notice of that
   * removal must lose against after a restart (a notice names the removal's index, at most the index the node stopped
   * at). Not derived from the log instead: a configuration entry that lists the node is no proof until applied.
   */
  private async readmittedBy(stopped: NodeRuntime, from: MembershipProof): Promise<NodeRuntime | null> {
    const proof = from.memberAsOf;
    this.memberProofIndex = Math.max(this.memberProofIndex, proof ?? 0);
    const readmission = this.readmission;
    if (proof !== undefined && readmission !== null && proof > readmission.removedAtIndex) {
      readmission.lastProofAtMs = this.seams.clock.now();
    }
    const removal = this.removal;
    const identity = this.identityValue;
    if (
      removal === null ||
      removal.appliedIndex === null ||
      proof === undefined ||
      proof <= removal.appliedIndex ||
      identity === null
    ) {
      return null;
    }
    stopped.log("warn", "readmitted", { by: from.from, memberAsOf: proof, removedAtIndex: removal.appliedIndex });
    // The readmission first: a restart between the two writes finds the node still removed (the next proof lifts it).
    this.seams.kv.put(NodeKeys.readmission, {
      removedAtIndex: removal.appliedIndex,
      memberAsOf: proof,
    } satisfies ReadmissionRecord);
    this.seams.kv.delete(NodeKeys.removed);
    this.removal = null;
    this.readmission = {
      removedAtIndex: removal.appliedIndex,
      memberAsOf: proof,
      lastProofAtMs: this.seams.clock.now(),
    };
    this.runtime = null;
    return this.startRuntime(identity);
  }

  // -------------------------------------------------------------------------------------------------------------
  // The ticks: the in-memory timer, and the alarm as its watchdog

  /** Sets the alarm `delayMs` from now, recorded like any other (scheduleWake compares with it). */
  private async armRetry(delayMs: number): Promise<void> {
    const atMs = this.seams.clock.now() + Math.max(1, delayMs);
    this.alarmAtMs = atMs;
    try {
      await this.seams.alarm.set(atMs);
    } catch (err) {
      this.alarmAtMs = null;
      throw err;
    }
  }

  /**
   * Arms the next wake: the in-memory timer at the runtime's next deadline (see NodeRuntime.nextWakeAtMs), and the
   * alarm as a watchdog well after it (watchdogAlarmAtMs). The timer is what ticks the node while this instance
   * lives; the alarm is set again only once it comes within watchdogRenewWithinMs, or when the node's next deadline
   * moved earlier than it allows, so that it seldom fires (every firing is a billed request) and is seldom set.
   */
  private async scheduleWake(runtime: NodeRuntime): Promise<void> {
    this.seams.afterEvent?.(runtime);
    if (runtime.isStopped) {
      return;
    }
    if (!mayTick(runtime)) {
      // Never a member (reached by a name no membership lists): it must not tick, and be billed, forever. A leader
      // adding it makes it a member with its first entries, and the next scheduling arms the timer and the alarm. An
      // alarm left from before (this instance has not cleared one yet) is deleted, once.
      this.cancelTickTimer();
      if (this.alarmAtMs !== null || !this.strayAlarmCleared) {
        this.alarmAtMs = null;
        this.strayAlarmCleared = true;
        await this.seams.alarm.delete();
      }
      return;
    }
    const nowMs = this.seams.clock.now();
    // Never at the current instant: an alarm in the past fires at once, again and again.
    const wakeAtMs = Math.max(runtime.nextWakeAtMs(), nowMs + 1);
    const timing = runtime.identity.cluster;
    let setAtMs: number;
    if (this.alarmOnly) {
      // The alarm does the timer's work: set again only when the next deadline moved earlier, or once it fired.
      setAtMs = wakeAtMs;
      if (this.alarmAtMs !== null && this.alarmAtMs <= setAtMs) {
        return;
      }
    } else {
      this.armTickTimer(wakeAtMs);
      setAtMs = watchdogAlarmAtMs(timing, { nowMs, nextWakeAtMs: wakeAtMs });
      const alarmAtMs = this.alarmAtMs;
      if (alarmAtMs !== null && alarmAtMs <= setAtMs && alarmAtMs - nowMs >= watchdogRenewWithinMs(timing)) {
        return;
      }
    }
    this.alarmAtMs = setAtMs;
    try {
      await this.seams.alarm.set(setAtMs);
    } catch (err) {
      // Not set: the next event must try again rather than trust an alarm that does not exist.
      this.alarmAtMs = null;
      throw err;
    }
  }

  /** Arms the in-memory timer for `atMs`, unless it is armed for that time or an earlier one (it re-arms then). */
  private armTickTimer(atMs: number): void {
    const armed = this.tickTimer;
    if (armed !== null && armed.atMs <= atMs) {
      return;
    }
    armed?.cancel();
    const cancel = this.seams.clock.schedule(() => this.onTickTimer(), Math.max(0, atMs - this.seams.clock.now()));
    this.tickTimer = { atMs, cancel };
  }

  private cancelTickTimer(): void {
    this.tickTimer?.cancel();
    this.tickTimer = null;
  }

  private rethrowAbort(err: unknown): void {
    if (this.seams.isInstanceAbort?.(err) === true) {
      throw err;
    }
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
export function boundedTimeout(timeoutMs: number): number {
  if (!Number.isFinite(timeoutMs)) {
    return 10_000;
  }
  return Math.min(60_000, Math.max(1, Math.floor(timeoutMs)));
}

/**
 * The persisted removal, if any. Older code stored only the reason: the node then stopped at the applied index its
 * stopped runtime still holds (a stopped runtime never persists again).
 */
function readRemoval(kv: SyncKv, runtime: NodeRuntime): RemovalRecord | null {
  const stored = kv.get<RemovalRecord | string>(NodeKeys.removed);
  if (stored === undefined) {
    return null;
  }
  return typeof stored === "string" ? { reason: stored, appliedIndex: runtime.status().applied } : stored;
}

/** Records which node an object is, as the first start does (the simulator seeds its objects' storage with it). */
export function writeIdentity(kv: SyncKv, identity: NodeIdentity): void {
  kv.put(NodeKeys.identity, identity);
}
