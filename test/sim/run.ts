// One seed, start to finish, on the real node: every simulated node is a SimHost running the real NodeRuntime and
// the real SQL state machine (on node:sqlite), driven by simulated time, a simulated network and the seed.
//
// How an event runs: the scheduler pops the earliest event; if it belongs to a node, it runs as one event of that
// Durable Object: inside the platform's implicit storage transaction, with the microtasks it releases drained
// (setImmediate), its outgoing RPCs and answers held back until it ends (the output gate), then committed and the
// held messages released onto the network. A node that crashes inside the event loses the event's writes and
// messages, as on the platform. Nothing reads a clock or Math.random: the seed alone decides everything, so a seed
// replays exactly.
//
// Phases: safety (N events under the nemesis, invariants checked after every event), then liveness as TigerBeetle
// does it (a random majority is healed, the rest stay down or cut off, and the majority must commit a new write
// and apply it everywhere within a bounded number of ticks), then the clients' history is checked.

import { checkLinearizability, registerModel } from "../lincheck/index.js";
import type { ClusterConfig, NodeResult } from "../../src/objects/api.js";
import { addLogObserver, setLogLevel } from "../../src/objects/log.js";
import type { ConsistencySettings } from "../../src/objects/monitor/config.js";
import type { PeerStub } from "../../src/objects/node-runtime.js";
import type { ShellBugs } from "../../src/objects/shell-bugs.js";
import { decodeSqlRequest } from "../../src/objects/sql/codec.js";
import type { LogEntry, NodeId, NodeStatus } from "../../src/replication/types.js";
import { Checkers, type NodeView, type Violation } from "./checkers.js";
import { Nemesis, type FaultKind, type FaultOptions, type NemesisEnvironment, type NemesisEvent } from "./faults.js";
import { SimCrash, SimHost, type HarnessBugs, type HostEnvironment, type Instance } from "./host.js";
import { HEALTHY_PROFILE, Network, type NetworkProfile } from "./network.js";
import { Prng, assertValidSeed } from "./prng.js";
import { Scheduler } from "./scheduler.js";
import { DEFAULT_TRACE_TAIL_LINES, Trace } from "./trace.js";
import { readDivergedFlag } from "../../src/objects/monitor/records.js";
import { KV_TABLE_DDL, Workload, type WorkloadOptions } from "./workload.js";
import { SimWorker } from "./worker.js";
import type { NodeHost } from "../../src/objects/node-host.js";
import { PROTOCOL_VERSION } from "../../src/objects/api.js";
import type { RouterBugs } from "../../src/worker/routing/router-bugs.js";

export const DEFAULT_SAFETY_STEPS = 3_000;
export const DEFAULT_LINCHECK_MAX_STEPS = 2_000_000;
const MAX_PENDING_EVENTS = 200_000;
const CLUSTER_NAME = "sim";
/** Marks an RPC answer that is an exception thrown by the remote method. */
const THROWN = "__simThrown";

export interface Scenario {
  readonly nodes: number;
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
  readonly snapshotThresholdEntries: number;
  readonly network: NetworkProfile;
  /** One-way latency between a client (the worker) and a node. */
  readonly clientLatencyMs: { readonly min: number; readonly max: number };
  readonly faults: FaultOptions;
  readonly workload: WorkloadOptions;
  readonly safetySteps: number;
  /**
   * Simulated ms the healed majority has to commit and apply a new write: some election timeouts, plus the
   * runtime's own fixed waits a lost message can cost (a snapshot chunk's 5 s timeout, twice).
   */
  readonly livenessBudgetMs: number;
  /** The consistency monitor's settings (derived from the timing, not drawn: older seeds keep their draws). */
  readonly consistency: ConsistencySettings;
}

export interface SimOptions {
  readonly seed: number;
  readonly steps?: number;
  /** Shell bugs to put back (src/objects/shell-bugs.ts). */
  readonly bugs?: ShellBugs;
  /** Bugs planted in the simulated storage (host.ts), to show the checkers bite. */
  readonly harnessBugs?: HarnessBugs;
  /** Router bugs to put back (src/worker/routing/router-bugs.ts). */
  readonly routerBugs?: RouterBugs;
  readonly adjustScenario?: (scenario: Scenario, random: Prng) => Scenario;
  readonly traceTailLines?: number;
  readonly onTraceLine?: (line: string) => void;
  readonly lincheckMaxSteps?: number;
  /** False: no liveness phase (directed safety hunts, where a planted bug may also stall the cluster). */
  readonly liveness?: boolean;
  /** False: the consistency monitor is off (by default it checkpoints often, and any mismatch is a violation). */
  readonly monitor?: boolean;
  /**
   * After the safety phase, heal everything and corrupt one node's database outside Raft (a table only it has): the
   * consistency monitor must report it within a bounded time (clusters of 3 nodes or more; see plantDivergence).
   */
  readonly plantDivergence?: boolean;
  /**
   * After the safety phase, heal everything, write one row through Raft and, once it is acknowledged, change it on
   * the leader outside Raft: the leader must be found out and repaired, and no other node may ever hold the changed
   * value (a snapshot image of the leader's state must not spread it) nor be repaired itself.
   */
  readonly plantLeaderRow?: boolean;
  /**
   * The request-dedup window's bound on every node (maxDedupEntries; default 10,000, which no seed fills): a small one
   * makes every node forget remembered requests, through crashes, rollbacks and snapshot installs, under the checks
   * of the window's in-memory index.
   */
  readonly maxDedupEntries?: number;
  /**
   * Directed scenarios: sees every peer RPC when it leaves its sender ("sent": before the network decides its fate,
   * so the hook may still cut or heal its path) and when it reaches its addressee ("delivered": before it is handled).
   */
  readonly onPeerRpc?: (rpc: PeerRpc, run: DirectedRun) => void;
}

/** One peer RPC as onPeerRpc sees it; the envelope is what the sender's runtime handed its stub. */
export interface PeerRpc {
  readonly stage: "sent" | "delivered";
  readonly atMs: number;
  readonly from: NodeId;
  readonly to: NodeId;
  readonly envelope: unknown;
}

/** What a directed scenario may see and do while the run goes on. */
export interface DirectedRun {
  readonly network: Network;
  nowMs(): number;
  leader(): NodeId | null;
  /** The node's status after its last event (null while down or discarded). */
  status(node: NodeId): NodeStatus | null;
  /** The last index of the node's log in its storage, as written so far (in the event under way too). */
  persistedLastIndex(node: NodeId): number;
  /** Every event of the node is handled up to `lateByMs` late (drawn per event) until `untilMs`. */
  slowDown(node: NodeId, options: { lateByMs: number; untilMs: number }): void;
}

/**
 * plantLeaderRow: the row written (in a table of its own: the checkers compare the kv table after every apply), its
 * acknowledged value and the planted one.
 */
const PLANTED_TABLE = "planted_rows";
const PLANTED_KEY = "planted-row";
const PLANTED_ACKNOWLEDGED = "acknowledged";
const PLANTED_CORRUPT = "changed-outside-raft";

export type PlantOutcome = "reported" | "replaced" | "missed" | "not applicable" | "repaired" | "undecided";

export interface LincheckSummary {
  readonly verdict: "linearizable" | "not-linearizable" | "unknown";
  readonly operations: number;
  readonly partitions: number;
  readonly steps: number;
  readonly detail: string | null;
}

export interface SimResult {
  readonly seed: number;
  readonly violations: readonly Violation[];
  readonly traceTail: readonly string[];
  readonly traceHash: string;
  readonly steps: number;
  readonly safetySteps: number;
  readonly livenessSteps: number;
  readonly simulatedMs: number;
  readonly livenessMs: number | null;
  readonly scenario: string;
  readonly stats: {
    readonly faults: Readonly<Record<FaultKind, number>>;
    readonly messagesDelivered: number;
    readonly messagesDropped: number;
    readonly answersLost: number;
    readonly duplicatesDelivered: number;
    readonly runtimeDiscards: number;
    readonly elections: number;
    /**
     * Election rounds: pre-campaigns, campaigns and campaigns won. A campaign not won lost to a split vote, a
     * partition, a crash or a newer term; compare the counts over the same seeds.
     */
    readonly campaigns: { readonly preCampaigns: number; readonly campaigns: number; readonly won: number };
    /** Simulated ms from the start to the first leader (null when none was elected). */
    readonly firstLeaderAtMs: number | null;
    readonly committedEntries: number;
    readonly checkpointsApplied: number;
    readonly plantOutcome: PlantOutcome | null;
    readonly operations: number;
    readonly acknowledged: number;
    readonly readsByLevel: Readonly<
      Record<"linearizable" | "strong" | "weak" | "weakFromLeader" | "none" | "readYourWrites" | "backup", number>
    >;
    readonly clientRetriesSameId: number;
    readonly checkerRuns: number;
  };
  readonly lincheck: LincheckSummary | null;
}

type SimEvent =
  | { readonly kind: "timer"; readonly node: NodeId; readonly instance: Instance; readonly id: number }
  | { readonly kind: "alarm"; readonly node: NodeId; readonly seq: number; readonly extra: boolean }
  | {
      readonly kind: "rpc";
      readonly from: NodeId;
      readonly to: NodeId;
      readonly callId: number;
      readonly envelope: unknown;
      readonly copy: number;
    }
  | { readonly kind: "rpcAnswer"; readonly to: NodeId; readonly callId: number; readonly answer: unknown }
  | { readonly kind: "clientCall"; readonly node: NodeId; readonly callId: number }
  | {
      readonly kind: "clientAnswer";
      readonly callId: number;
      readonly answer: { readonly value: unknown; readonly servedByLeader: boolean } | { readonly thrown: string };
    }
  | { readonly kind: "workerTimer"; readonly id: number }
  | { readonly kind: "client"; readonly clientId: number }
  | { readonly kind: "nemesis"; readonly event: NemesisEvent }
  | { readonly kind: "restart"; readonly node: NodeId }
  | { readonly kind: "probe" }
  | { readonly kind: "transfer"; readonly node: NodeId };

type Outgoing =
  | {
      readonly kind: "rpc";
      readonly from: NodeId;
      readonly to: NodeId;
      readonly callId: number;
      readonly envelope: unknown;
    }
  | {
      readonly kind: "rpcAnswer";
      readonly from: NodeId;
      readonly to: NodeId;
      readonly callId: number;
      readonly answer: unknown;
    }
  | {
      readonly kind: "clientAnswer";
      readonly callId: number;
      readonly answer: { readonly value: unknown; readonly servedByLeader: boolean };
    };

interface Turn {
  readonly host: SimHost;
  readonly instance: Instance | null;
  readonly outbox: Outgoing[];
  /** Checker records of what happened in the event: kept only if it commits. */
  readonly observations: (() => void)[];
  crashed: boolean;
}

interface PendingCall {
  readonly resolve: (answer: unknown) => void;
  readonly reject: (error: Error) => void;
  readonly instance: Instance;
  readonly from: NodeId;
}

/** A worker's RPC to a node, from the call until its answer (or failure) is back at the worker. */
interface ClientCallState {
  readonly to: NodeId;
  readonly invoke: (node: NodeHost) => Promise<NodeResult<unknown>>;
  readonly resolve: (answer: { answer: NodeResult<unknown>; servedByLeader: boolean }) => void;
  readonly reject: (error: Error) => void;
  /** The instance running it, once it arrived. */
  instance: Instance | null;
}

// ---------------------------------------------------------------------------------------------------------------
// Scenarios.

function weighted<T>(random: Prng, choices: readonly (readonly [T, number])[]): T {
  const total = choices.reduce((sum, [, weight]) => sum + weight, 0);
  let roll = random.nextInt(total);
  for (const [value, weight] of choices) {
    if (roll < weight) {
      return value;
    }
    roll -= weight;
  }
  throw new Error("unreachable: weights exhausted");
}

export function drawScenario(random: Prng): Scenario {
  const nodes = weighted(random, [
    [1, 3],
    [2, 4],
    [3, 45],
    [4, 8],
    [5, 30],
  ] as const);
  const heartbeatIntervalMs = random.between(10, 30);
  const electionTimeoutMs = heartbeatIntervalMs * random.between(5, 12);
  const on = (probability: number): boolean => random.chance(probability);
  const faults: FaultOptions = {
    crashes: on(0.6),
    crashesInsideEvents: on(0.5),
    storageErrors: on(0.4),
    storageErrorsEverywhere: false,
    stateMachineErrors: on(0.3),
    staleInstances: on(0.3),
    // Drawn last (below), so that adding it left every other draw of older seeds as it was.
    storageWipes: false,
    partitions: on(0.6),
    pathFaults: on(0.4),
    alarmFaults: on(0.4),
    transfers: on(0.4),
    slowNodes: on(0.3),
    meanIntervalMs: random.between(50, 500),
    leaderTargeting: random.pick([0.2, 0.5, 0.8]),
    minDownMs: 10,
    maxDownMs: random.between(50, 1500),
    minPartitionMs: 20,
    maxPartitionMs: random.between(100, 2000),
    maxDownNodes: random.between(1, nodes),
  };
  const network: NetworkProfile = {
    minLatencyMs: 1,
    maxLatencyMs: random.between(2, 10),
    maxJitterMs: random.between(0, 5),
    maxDropProbability: random.pick([0, 0, 0.01, 0.05, 0.15]),
    maxDuplicateProbability: random.pick([0, 0.02, 0.1]),
    maxReorderProbability: random.pick([0, 0.05, 0.2]),
  };
  const workload: WorkloadOptions = {
    clients: random.between(1, 4),
    keys: random.between(1, 3),
    timeoutMs: random.pick([electionTimeoutMs, 2 * electionTimeoutMs, 5 * electionTimeoutMs]),
    maxThinkMs: random.between(5, 100),
    mix: {
      write: random.between(1, 10),
      cas: random.between(0, 5),
      linearizableRead: random.between(1, 10),
      strongRead: random.between(0, 3),
      weakRead: random.between(0, 3),
      noneRead: random.between(0, 2),
      readYourWrites: random.between(0, 3),
      backup: random.between(0, 1),
    },
    maxAttempts: random.between(3, 8),
    retryBackoffMs: Math.max(1, Math.round(electionTimeoutMs / random.between(2, 8))),
    roamProbability: random.pick([0, 0.1, 0.5]),
  };
  const scenario: Scenario = {
    nodes,
    heartbeatIntervalMs,
    electionTimeoutMs,
    snapshotThresholdEntries: random.pick([3, 5, 10, 30, 1000]),
    network,
    clientLatencyMs: { min: 1, max: random.between(1, 5) },
    faults,
    workload,
    safetySteps: DEFAULT_SAFETY_STEPS,
    livenessBudgetMs: 20 * electionTimeoutMs + 10_000,
    // Checkpoints far more often than in production, slices of two rows: many sweeps per seed.
    consistency: { everyEntries: 6, everyMs: Math.max(100, 4 * electionTimeoutMs), sliceRows: 2, sliceBytes: 1024 },
  };
  // A wiped node starts on voting probation and asks every member what it persisted (src/objects/runtime/census.ts).
  return { ...scenario, faults: { ...faults, storageWipes: on(0.3) } };
}

export function describeScenario(scenario: Scenario): string {
  const faults = scenario.faults;
  const kinds = (
    [
      "crashes",
      "crashesInsideEvents",
      "storageErrors",
      "stateMachineErrors",
      "staleInstances",
      "storageWipes",
      "partitions",
      "pathFaults",
      "alarmFaults",
      "transfers",
      "slowNodes",
    ] as const
  ).filter((kind) => faults[kind]);
  const net = scenario.network;
  const work = scenario.workload;
  return [
    `nodes ${scenario.nodes}, heartbeat ${scenario.heartbeatIntervalMs}ms, election ${scenario.electionTimeoutMs}ms, snapshot every ${scenario.snapshotThresholdEntries}`,
    `network latency ${net.minLatencyMs}-${net.maxLatencyMs}ms jitter ${net.maxJitterMs} drop ${net.maxDropProbability} dup ${net.maxDuplicateProbability} reorder ${net.maxReorderProbability}`,
    `faults [${kinds.join(" ")}] every ~${faults.meanIntervalMs}ms, max down ${faults.maxDownNodes}`,
    `clients ${work.clients}, keys ${work.keys}, timeout ${work.timeoutMs}ms, attempts ${work.maxAttempts}, safety steps ${scenario.safetySteps}`,
  ].join("\n");
}

function drain(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

// ---------------------------------------------------------------------------------------------------------------

class Simulation implements HostEnvironment {
  readonly scheduler = new Scheduler<SimEvent>(MAX_PENDING_EVENTS);
  readonly trace: Trace;
  readonly checkers: Checkers;
  readonly network: Network;
  readonly hosts = new Map<NodeId, SimHost>();
  readonly workload: Workload;
  readonly worker: SimWorker;
  readonly nemesis: Nemesis;
  readonly bugs: ShellBugs;
  readonly harnessBugs: HarnessBugs;
  readonly maxDedupEntries: number | undefined;
  private readonly views = new Map<NodeId, NodeView>();
  private readonly random: Prng;
  private readonly nodeRandom: Prng;
  private readonly cluster: ClusterConfig;
  private turn: Turn | null = null;
  private nextTimerId = 1;
  private readonly timers = new Map<number, () => void>();
  private nextCallId = 1;
  private readonly pendingCalls = new Map<number, PendingCall>();
  private readonly clientCalls = new Map<number, ClientCallState>();
  private readonly workerTimers = new Map<number, () => void>();
  private readonly alarms = new Map<
    NodeId,
    { atMs: number | null; seq: number; disturbed: { duplicate: boolean; lateByMs: number; untilMs: number } | null }
  >();
  private readonly storageFaults = new Map<NodeId, { kind: "crash" | "error"; afterOps: number }>();
  private readonly applyFaults = new Set<NodeId>();
  /** Nodes running late (slowNodes): how late, and until when. */
  private readonly slowNodes = new Map<NodeId, { lateByMs: number; untilMs: number }>();
  private readonly onPeerRpc: SimOptions["onPeerRpc"];
  phase: "safety" | "liveness" = "safety";
  /** Consistency checkpoints applied, summed over the nodes (each compared by the leader). */
  checkpointsApplied = 0;
  /** plantDivergence: what became of the plant (reported, replaced by a snapshot before a checkpoint, missed). */
  plantOutcome: PlantOutcome | null = null;
  healed: NodeId[] = [];
  /** False when too many nodes lost their storage for any majority to make progress. */
  livenessPromised = true;
  probe: { attempt: number; inFlight: boolean; index: number | null; sentAtMs: number } = {
    attempt: 0,
    inFlight: false,
    index: null,
    sentAtMs: 0,
  };
  stats = { delivered: 0, dropped: 0, answersLost: 0, duplicates: 0, elections: 0 };
  /** Election rounds as the nodes log them: pre-campaigns, campaigns (a real vote) and campaigns won. */
  campaigns = { preCampaigns: 0, campaigns: 0, won: 0 };
  firstLeaderAtMs: number | null = null;

  constructor(
    readonly seed: number,
    readonly scenario: Scenario,
    streams: { network: Prng; nemesis: Prng; workload: Prng; nodes: Prng },
    options: SimOptions,
  ) {
    this.bugs = options.bugs ?? {};
    this.onPeerRpc = options.onPeerRpc;
    this.harnessBugs = options.harnessBugs ?? {};
    this.maxDedupEntries = options.maxDedupEntries;
    this.trace = new Trace(options.traceTailLines ?? DEFAULT_TRACE_TAIL_LINES, options.onTraceLine ?? null);
    this.checkers = new Checkers(() => this.scheduler.nowMs);
    this.random = streams.workload;
    this.nodeRandom = streams.nodes;
    this.network = new Network(streams.network, scenario.network);
    const names = Array.from({ length: scenario.nodes }, (_, i) => `n${i + 1}`);
    this.cluster = {
      name: CLUSTER_NAME,
      members: names.map((name) => ({ name })),
      heartbeatIntervalMs: scenario.heartbeatIntervalMs,
      electionTimeoutMs: scenario.electionTimeoutMs,
      snapshotThresholdEntries: scenario.snapshotThresholdEntries,
      consistency: options.monitor === false ? { enabled: false } : scenario.consistency,
    };
    for (const name of names) {
      const host = new SimHost(name, { cluster: this.cluster, node: name }, this);
      this.hosts.set(name, host);
      this.views.set(name, viewOf(host));
      this.alarms.set(name, { atMs: null, seq: 0, disturbed: null });
    }
    this.worker = new SimWorker({
      config: this.cluster,
      random: this.random,
      nowMs: () => this.nowMs(),
      timer: (fn, delayMs) => this.workerTimer(fn, delayMs),
      callNode: (clientId, to, invoke) => this.callNode(clientId, to, invoke),
      bugs: options.routerBugs ?? {},
    });
    this.workload = new Workload(scenario.workload, {
      random: this.random,
      nowMs: () => this.nowMs(),
      trace: (text) => this.traceLine(text),
      mixIntoTrace: (text) => this.trace.mix(text),
      wakeClient: (clientId, atMs) => this.schedule(Math.max(atMs, this.nowMs()), { kind: "client", clientId }),
      route: (clientId, request, deadlineAt) => this.worker.route(clientId, request, deadlineAt),
      forgetLeader: () => this.worker.forgetLeader(),
    });
    this.nemesis = new Nemesis(scenario.faults, this.nemesisEnvironment(streams.nemesis));
  }

  nowMs(): number {
    return this.scheduler.nowMs;
  }

  traceLine(text: string): void {
    this.trace.record(this.nowMs(), text);
  }

  private schedule(atMs: number, event: SimEvent): void {
    if (!this.scheduler.schedule(atMs, event)) {
      this.checkers.fail("simulator bound", `the event queue is full (${MAX_PENDING_EVENTS} events)`);
    }
  }

  /** Extra delay for an event of `node` while it runs late. */
  private lateness(node: NodeId): number {
    const slow = this.slowNodes.get(node);
    if (slow === undefined || slow.untilMs <= this.nowMs() || this.phase === "liveness") {
      return 0;
    }
    return this.random.between(0, slow.lateByMs);
  }

  private host(id: NodeId): SimHost {
    const host = this.hosts.get(id);
    if (host === undefined) {
      throw new Error(`unknown node ${id}`);
    }
    return host;
  }

  // -------------------------------------------------------------------------------------------------------------
  // HostEnvironment: what the nodes' seams reach.

  scheduleTimer(host: SimHost, instance: Instance, fn: () => void, delayMs: number): () => void {
    const id = this.nextTimerId;
    this.nextTimerId += 1;
    this.timers.set(id, fn);
    this.schedule(this.nowMs() + Math.max(0, Math.ceil(delayMs)) + this.lateness(host.id), {
      kind: "timer",
      node: host.id,
      instance,
      id,
    });
    return () => {
      this.timers.delete(id);
    };
  }

  peerStub(host: SimHost, instance: Instance, to: string): PeerStub {
    return {
      receive: (envelope) =>
        new Promise<unknown>((resolve, reject) => {
          const turn = this.turn;
          if (turn === null || turn.host !== host || !instance.alive) {
            return;
          } // a dead instance sends nothing
          const callId = this.nextCallId;
          this.nextCallId += 1;
          this.pendingCalls.set(callId, { resolve, reject, instance, from: host.id });
          turn.outbox.push({ kind: "rpc", from: host.id, to, callId, envelope });
        }),
      // Every simulated node is started with the cluster: a start call only confirms it.
      start: () => Promise.resolve({ ok: true }),
    };
  }

  inCrashedEvent(host: SimHost): boolean {
    return this.turn?.host === host && this.turn.crashed;
  }

  beforeStorageOperation(host: SimHost, instance: Instance, what: string, kind: "put" | "delete" | "sql"): void {
    const fault = this.storageFaults.get(host.id);
    if (fault === undefined || instance !== host.instance || this.turn?.host !== host) {
      return;
    }
    // Unless asked for (see faults.ts, storageErrorsEverywhere), no errors on KV deletes.
    if (fault.kind === "error" && kind === "delete" && !this.scenario.faults.storageErrorsEverywhere) {
      return;
    }
    fault.afterOps -= 1;
    if (fault.afterOps > 0) {
      return;
    }
    this.storageFaults.delete(host.id);
    if (fault.kind === "crash") {
      this.traceLine(`${host.id} CRASHES inside an event, at ${what}`);
      this.crashHost(host, { keepStale: false });
      return;
    }
    this.traceLine(`${host.id}: storage FAILS at ${what}`);
    throw new Error(`injected storage failure at ${what}`);
  }

  beforeApply(host: SimHost, instance: Instance, entry: LogEntry): void {
    if (!this.applyFaults.has(host.id) || instance !== host.instance) {
      return;
    }
    this.applyFaults.delete(host.id);
    this.traceLine(`${host.id}: state machine THROWS applying ${entry.index}`);
    throw new Error(`injected state machine failure applying entry ${entry.index}`);
  }

  observeApplied(host: SimHost, entry: LogEntry, applied: boolean): void {
    if (this.turn?.crashed === true) {
      return;
    }
    this.trace.mix(`${host.id} apply ${entry.index}/${entry.term}`);
    if (applied && entry.data.startsWith('{"dha":"checkpoint"')) {
      this.checkpointsApplied += 1;
    }
    this.record(this.checkers.captureApplied(this.view(host), entry, applied));
  }

  observeSnapshotInstalled(
    host: SimHost,
    snapshot: { readonly index: number; readonly term: number; readonly appliedIndex: number },
  ): void {
    if (this.turn?.crashed === true) {
      return;
    }
    this.traceLine(
      `${host.id} installs snapshot ${snapshot.index}/${snapshot.term} (image at ${snapshot.appliedIndex})`,
    );
    this.record(this.checkers.captureSnapshotInstalled(this.view(host), snapshot));
  }

  /** Keeps a checker record until the current event commits (at once outside an event). */
  private record(observation: () => void): void {
    if (this.turn === null) {
      observation();
    } else {
      this.turn.observations.push(observation);
    }
  }

  observeStateMachineDefect(host: SimHost, problem: string): void {
    this.checkers.fail("state machine", `${host.id}: ${problem}`);
  }

  observeLogDelete(host: SimHost, index: number): void {
    const status = host.instance?.runtime?.status();
    if (status === undefined || status.role !== "leader") {
      return;
    }
    const snapshotIndex = host.log.snapshot?.meta.index ?? 0;
    if (index > snapshotIndex) {
      this.checkers.fail(
        "leader append-only",
        `${host.id}, leader of term ${status.term}, deletes its log entry ${index} (snapshot at ${snapshotIndex})`,
      );
    }
  }

  note(text: string): void {
    this.traceLine(text);
  }

  seedFor(_host: SimHost, _incarnation: number): number {
    return this.nodeRandom.nextUint32();
  }

  private view(host: SimHost): NodeView {
    return this.views.get(host.id) as NodeView;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Events of one node.

  /** Runs `body` as one event of `host`'s object (see the header): implicit transaction, drained, output gated. */
  private async runTurn(host: SimHost, instance: Instance | null, body: () => void | Promise<unknown>): Promise<void> {
    const turn: Turn = { host, instance, outbox: [], observations: [], crashed: false };
    this.turn = turn;
    host.storage.beginImplicit();
    const failures: unknown[] = [];
    try {
      const result = body();
      if (result instanceof Promise) {
        result.catch((error: unknown) => failures.push(error));
      }
    } catch (error) {
      failures.push(error);
    }
    await drain();
    this.turn = null;
    if (!turn.crashed) {
      for (const error of failures) {
        this.checkers.fail(
          "host threw",
          `${host.id}: ${error instanceof Error ? `${error.message}\n${error.stack ?? ""}` : String(error)}`,
        );
      }
    }
    if (turn.crashed) {
      host.storage.rollbackImplicit();
      host.log.reload(host.storage.kv);
      return;
    }
    host.storage.commitImplicit();
    for (const record of turn.observations) {
      record();
    }
    for (const outgoing of turn.outbox) {
      this.release(outgoing);
    }
    this.afterTurn(host);
  }

  private afterTurn(host: SimHost): void {
    host.reapStale();
    const view = this.view(host);
    this.checkers.checkPersistedLog(view, host.log.touchedFromIndex);
    host.log.touchedFromIndex = null;
    this.checkers.noteCommitIndex(view);
    const runtime = host.instance?.alive === true ? host.instance.runtime : null;
    if (runtime === null || host.down) {
      // A discarded runtime: the object's alarm brings it back from storage.
      host.lastStatus = null;
      return;
    }
    if (runtime.isStopped) {
      return;
    }
    const status = runtime.status();
    // A node on voting probation (new or wiped storage) counts as lost until its probation ended.
    host.wiped = status.votingProbation;
    const wasLeader = host.lastStatus?.role === "leader" && host.lastStatus.term === status.term;
    host.lastStatus = status;
    this.checkers.observeStatus(view, status);
    if (status.role === "leader" && !wasLeader) {
      this.stats.elections += 1;
      this.firstLeaderAtMs ??= this.nowMs();
      this.traceLine(`${host.id} LEADER t${status.term} (commit ${status.commit}, last ${status.lastIndex})`);
    }
  }

  /** The object's one alarm (setAlarm replaces it, deleteAlarm drops it), possibly late or repeated under faults. */
  setAlarm(host: SimHost, wakeAtMs: number | null): void {
    const alarm = this.alarms.get(host.id);
    if (alarm === undefined) {
      return;
    }
    alarm.seq += 1;
    if (wakeAtMs === null) {
      alarm.atMs = null;
      return;
    }
    const now = this.nowMs();
    alarm.atMs = Math.max(wakeAtMs, now + 1);
    const disturbed = alarm.disturbed !== null && alarm.disturbed.untilMs > now ? alarm.disturbed : null;
    const late =
      (disturbed !== null && disturbed.lateByMs > 0 ? this.random.between(0, disturbed.lateByMs) : 0) +
      this.lateness(host.id);
    this.schedule(alarm.atMs + late, { kind: "alarm", node: host.id, seq: alarm.seq, extra: false });
    if (disturbed?.duplicate === true) {
      this.schedule(alarm.atMs + late + this.random.between(0, 5), {
        kind: "alarm",
        node: host.id,
        seq: alarm.seq,
        extra: true,
      });
    }
  }

  private release(outgoing: Outgoing): void {
    switch (outgoing.kind) {
      case "rpc": {
        this.observePeerRpc("sent", outgoing);
        const decision = this.network.route(outgoing.from, outgoing.to);
        if (decision.kind === "drop") {
          this.stats.dropped += 1;
          return;
        }
        decision.delaysMs.forEach((delayMs, copy) => {
          this.schedule(this.nowMs() + delayMs + this.lateness(outgoing.to), {
            kind: "rpc",
            from: outgoing.from,
            to: outgoing.to,
            callId: outgoing.callId,
            envelope: outgoing.envelope,
            copy,
          });
        });
        return;
      }
      case "rpcAnswer": {
        const decision = this.network.route(outgoing.from, outgoing.to);
        if (decision.kind === "drop") {
          this.stats.answersLost += 1;
          return;
        }
        this.schedule(this.nowMs() + (decision.delaysMs[0] ?? 1) + this.lateness(outgoing.to), {
          kind: "rpcAnswer",
          to: outgoing.to,
          callId: outgoing.callId,
          answer: outgoing.answer,
        });
        return;
      }
      case "clientAnswer":
        this.answerClient(outgoing.callId, outgoing.answer);
        return;
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // The worker's side: its RPCs to nodes and its timers.

  /** Carries one RPC of the worker to node `to` (client latency each way); see WorkerEnvironment.callNode. */
  private callNode<T>(
    clientId: number,
    to: NodeId,
    invoke: (node: NodeHost) => Promise<NodeResult<T>>,
  ): Promise<{ answer: NodeResult<T>; servedByLeader: boolean }> {
    return new Promise((resolve, reject) => {
      const callId = this.nextCallId;
      this.nextCallId += 1;
      this.clientCalls.set(callId, {
        to,
        invoke: invoke as ClientCallState["invoke"],
        resolve: resolve as ClientCallState["resolve"],
        reject,
        instance: null,
      });
      this.trace.mix(`client ${clientId} call ${callId} -> ${to}`);
      this.schedule(this.nowMs() + this.clientLatency() + this.lateness(to), { kind: "clientCall", node: to, callId });
    });
  }

  private observePeerRpc(
    stage: PeerRpc["stage"],
    rpc: { readonly from: NodeId; readonly to: NodeId; readonly envelope: unknown },
  ): void {
    this.onPeerRpc?.(
      { stage, atMs: this.nowMs(), from: rpc.from, to: rpc.to, envelope: rpc.envelope },
      {
        network: this.network,
        nowMs: () => this.nowMs(),
        leader: () => this.leader(),
        status: (node) => this.host(node).lastStatus,
        persistedLastIndex: (node) => this.host(node).log.lastIndex(),
        slowDown: (node, options) => this.slowNodes.set(node, options),
      },
    );
  }

  private clientLatency(): number {
    return this.random.between(this.scenario.clientLatencyMs.min, this.scenario.clientLatencyMs.max);
  }

  /** An answer (or the failure of the call) travels back to the worker. */
  private answerClient(callId: number, answer: Extract<SimEvent, { kind: "clientAnswer" }>["answer"]): void {
    this.schedule(this.nowMs() + this.clientLatency(), { kind: "clientAnswer", callId, answer });
  }

  private workerTimer(fn: () => void, delayMs: number): () => void {
    const id = this.nextTimerId;
    this.nextTimerId += 1;
    this.workerTimers.set(id, fn);
    this.schedule(this.nowMs() + Math.max(0, Math.ceil(delayMs)), { kind: "workerTimer", id });
    return () => {
      this.workerTimers.delete(id);
    };
  }

  /** The worker's side of an event: its promise continuations run now, at this simulated time. */
  private async onWorkerEvent(run: () => void): Promise<void> {
    run();
    await drain();
  }

  private onClientAnswer(event: Extract<SimEvent, { kind: "clientAnswer" }>): void {
    const call = this.clientCalls.get(event.callId);
    if (call === undefined) {
      return;
    }
    this.clientCalls.delete(event.callId);
    const answer = event.answer;
    if ("thrown" in answer) {
      call.reject(new Error(answer.thrown));
      return;
    }
    call.resolve({ answer: answer.value as NodeResult<unknown>, servedByLeader: answer.servedByLeader });
  }

  /** Calls in flight on an instance that crashed fail, as an RPC to a Durable Object that was reset does. */
  private failCallsOn(instance: Instance): void {
    for (const [callId, call] of this.clientCalls) {
      if (call.instance === instance) {
        call.instance = null;
        this.answerClient(callId, { thrown: `node ${call.to} was reset while the call was in flight` });
      }
    }
  }

  private crashHost(host: SimHost, options: { keepStale: boolean }): void {
    if (this.turn?.host === host) {
      this.turn.crashed = true;
    }
    const instance = host.instance;
    host.crash(options);
    if (instance !== null && !instance.alive) {
      this.failCallsOn(instance);
    }
    this.storageFaults.delete(host.id);
    this.applyFaults.delete(host.id);
    this.checkers.forgetNode(this.view(host));
    const downMs = this.phase === "safety" ? this.nemesis.drawDowntimeMs() : 1;
    if (this.phase === "safety" || this.healed.includes(host.id)) {
      this.schedule(this.nowMs() + downMs, { kind: "restart", node: host.id });
    }
    this.traceLine(
      `${host.id} is down for ${downMs}ms${options.keepStale ? " (its old instance keeps running, fenced)" : ""}`,
    );
  }

  /** Runs one event; false when none is left. */
  async step(): Promise<boolean> {
    const event = this.scheduler.pop();
    if (event === null) {
      return false;
    }
    switch (event.kind) {
      case "timer":
        await this.onTimer(event);
        break;
      case "alarm":
        await this.onAlarm(event);
        break;
      case "rpc":
        await this.onRpc(event);
        break;
      case "rpcAnswer":
        await this.onRpcAnswer(event);
        break;
      case "clientCall":
        await this.onClientCall(event);
        break;
      case "clientAnswer":
        await this.onWorkerEvent(() => this.onClientAnswer(event));
        break;
      case "workerTimer":
        await this.onWorkerEvent(() => {
          const fn = this.workerTimers.get(event.id);
          this.workerTimers.delete(event.id);
          fn?.();
        });
        break;
      case "client":
        await this.onWorkerEvent(() => this.workload.resume(event.clientId));
        break;
      case "nemesis":
        this.nemesis.handle(event.event);
        break;
      case "restart":
        await this.onRestart(event.node);
        break;
      case "probe":
        await this.onWorkerEvent(() => this.sendProbe());
        break;
      case "transfer":
        await this.onTransfer(event.node);
        break;
    }
    return true;
  }

  private async onTimer(event: Extract<SimEvent, { kind: "timer" }>): Promise<void> {
    const fn = this.timers.get(event.id);
    this.timers.delete(event.id);
    if (fn === undefined || !event.instance.alive) {
      return;
    }
    await this.runTurn(this.host(event.node), event.instance, fn);
  }

  private async onAlarm(event: Extract<SimEvent, { kind: "alarm" }>): Promise<void> {
    const host = this.host(event.node);
    const alarm = this.alarms.get(host.id);
    if (alarm === undefined || host.down || (alarm.seq !== event.seq && !event.extra)) {
      return;
    }
    if (!event.extra) {
      alarm.atMs = null;
    }
    await this.runTurn(host, host.instance, () => host.alarm());
  }

  /** A peer's envelope arrives; the answer (or the exception the RPC method threw) goes back through the network. */
  private async onRpc(event: Extract<SimEvent, { kind: "rpc" }>): Promise<void> {
    const host = this.host(event.to);
    if (host.down) {
      return;
    }
    if (event.copy > 0) {
      this.stats.duplicates += 1;
    }
    this.stats.delivered += 1;
    this.observePeerRpc("delivered", event);
    await this.runTurn(host, host.instance, async () => {
      let answer: unknown;
      try {
        answer = await host.receive(event.envelope);
      } catch (error) {
        if (error instanceof SimCrash) {
          return;
        }
        // An exception out of the RPC method reaches the caller as a rejected call.
        answer = { [THROWN]: error instanceof Error ? error.message : String(error) };
      }
      this.turn?.outbox.push({ kind: "rpcAnswer", from: host.id, to: event.from, callId: event.callId, answer });
    });
  }

  private async onRpcAnswer(event: Extract<SimEvent, { kind: "rpcAnswer" }>): Promise<void> {
    const pending = this.pendingCalls.get(event.callId);
    if (pending === undefined) {
      return;
    }
    this.pendingCalls.delete(event.callId);
    if (!pending.instance.alive) {
      return;
    }
    const answer = event.answer;
    const thrown =
      typeof answer === "object" && answer !== null && THROWN in answer
        ? String((answer as Record<string, unknown>)[THROWN])
        : null;
    await this.runTurn(this.host(event.to), pending.instance, () =>
      thrown === null ? pending.resolve(answer) : pending.reject(new Error(thrown)),
    );
  }

  /** A worker's call reaches a node; its answer leaves with whichever later event of that node settles it. */
  private async onClientCall(event: Extract<SimEvent, { kind: "clientCall" }>): Promise<void> {
    const call = this.clientCalls.get(event.callId);
    if (call === undefined) {
      return;
    }
    const host = this.host(event.node);
    const instance = host.instance;
    if (host.down || instance === null) {
      this.answerClient(event.callId, { thrown: `node ${host.id} is down` });
      return;
    }
    call.instance = instance;
    await this.runTurn(host, instance, () => {
      void call.invoke(instance.node).then(
        (answer) => {
          // Lost with a crashed or dead instance (whose calls fail: failCallsOn).
          const current = this.turn;
          if (current === null || current.host !== host || current.crashed || !instance.alive) {
            return;
          }
          call.instance = null;
          current.outbox.push({
            kind: "clientAnswer",
            callId: event.callId,
            answer: { value: answer, servedByLeader: this.leadsHighestTerm(host) },
          });
        },
        (error: unknown) => {
          if (!(error instanceof SimCrash)) {
            this.checkers.fail("host threw", `${host.id} client call: ${String(error)}`);
          }
        },
      );
    });
  }

  private async onRestart(node: NodeId): Promise<void> {
    const host = this.host(node);
    // A restart planned during the safety phase does not bring back a node the liveness phase keeps down.
    if (!host.down || (this.phase === "liveness" && !this.healed.includes(host.id))) {
      return;
    }
    this.traceLine(`${host.id} restarts from storage`);
    await this.runTurn(host, null, () => host.restart());
  }

  private async onTransfer(node: NodeId): Promise<void> {
    const host = this.host(node);
    if (host.down) {
      return;
    }
    await this.runTurn(host, host.instance, () => {
      void host.transferLeadership(this.scenario.electionTimeoutMs * 3).catch(() => undefined);
    });
  }

  start(): void {
    this.traceLine(`seed ${this.seed}: ${describeScenario(this.scenario).replaceAll("\n", "; ")}`);
    for (const host of this.hosts.values()) {
      this.schedule(this.nodeRandom.between(0, this.scenario.heartbeatIntervalMs), { kind: "restart", node: host.id });
    }
    for (const host of this.hosts.values()) {
      host.down = true;
    }
    for (const clientId of this.workload.clientIds) {
      this.schedule(this.random.between(0, 50), { kind: "client", clientId });
    }
    this.nemesis.start();
  }

  // -------------------------------------------------------------------------------------------------------------
  // The nemesis' reach.

  private nemesisEnvironment(random: Prng): NemesisEnvironment {
    return {
      network: this.network,
      random,
      nowMs: () => this.nowMs(),
      trace: (text) => this.traceLine(text),
      schedule: (atMs, event) => this.schedule(atMs, { kind: "nemesis", event }),
      leader: () => this.leader(),
      upNodes: () => [...this.hosts.values()].filter((host) => !host.down).map((host) => host.id),
      downCount: () => [...this.hosts.values()].filter((host) => host.down).length,
      // Storage lost on a majority at once is beyond what any consensus protocol survives: one wiped node at a time.
      slowDown: (node, options) => this.slowNodes.set(node, options),
      transfer: (node) => this.schedule(this.nowMs() + this.random.between(1, 5), { kind: "transfer", node }),
      mayWipe: (node) => this.mayWipe(node),
      crash: (node, options) => {
        const host = this.host(node);
        if (host.down) {
          return;
        }
        this.traceLine(`nemesis: ${node} CRASHES`);
        this.crashHost(host, options);
      },
      wipe: (node) => {
        const host = this.host(node);
        if (host.down) {
          return;
        }
        this.traceLine(`nemesis: ${node}'s storage is WIPED (it comes back empty)`);
        this.crashHost(host, { keepStale: false });
        host.wipeStorage();
        this.checkers.forgetOwnCandidacies(node);
      },
      armStorageFault: (node, fault) => this.storageFaults.set(node, { ...fault }),
      armApplyFault: (node) => this.applyFaults.add(node),
      disturbAlarms: (node, options) => {
        const alarm = this.alarms.get(node);
        if (alarm !== undefined) {
          alarm.disturbed = options;
        }
      },
    };
  }

  /**
   * Storage lost where committed entries live only on a majority that includes the lost node is beyond what any
   * consensus protocol survives (nothing tells the survivors the entries ever existed). So a node is wiped only
   * when every node is up, none is still catching up from an earlier wipe, and a majority of the cluster besides
   * it holds every committed entry.
   */
  private mayWipe(node: NodeId): boolean {
    const hosts = [...this.hosts.values()];
    if (hosts.some((host) => host.down || host.wiped)) {
      return false;
    }
    if (this.scenario.faults.storageWipesAnywhere === true) {
      return true;
    }
    const majority = Math.floor(hosts.length / 2) + 1;
    const committed = Math.max(...hosts.map((host) => host.log.hardState.commit));
    const holders = hosts.filter(
      (host) => host.id !== node && host.log.lastIndex() >= committed && host.log.hardState.commit >= committed,
    );
    return holders.length >= majority;
  }

  /** Whether `host`'s current runtime leads, in a term no other node has gone past. */
  private leadsHighestTerm(host: SimHost): boolean {
    const status = host.instance?.alive === true ? host.instance.runtime?.status() : undefined;
    if (status === undefined || status.role !== "leader") {
      return false;
    }
    for (const other of this.hosts.values()) {
      const seen = other === host ? status.term : Math.max(other.lastStatus?.term ?? 0, other.log.hardState.term);
      if (seen > status.term) {
        return false;
      }
    }
    return true;
  }

  leader(): NodeId | null {
    let best: SimHost | null = null;
    for (const host of this.hosts.values()) {
      const status = host.lastStatus;
      if (host.down || status === null || status.role !== "leader") {
        continue;
      }
      if (best === null || (best.lastStatus?.term ?? 0) < status.term) {
        best = host;
      }
    }
    return best?.id ?? null;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Liveness.

  /** The end of the safety phase: no more faults, a healthy network. */
  private stopFaults(): void {
    this.phase = "liveness";
    this.nemesis.stop();
    this.storageFaults.clear();
    this.applyFaults.clear();
    for (const alarm of this.alarms.values()) {
      alarm.disturbed = null;
    }
    this.network.heal(HEALTHY_PROFILE);
  }

  /**
   * plantDivergence: stops every fault, restarts every node and heals the network, then creates a table on one node
   * only, outside Raft. Returns the node, or null when the cluster is too small for a majority to out-vote it.
   */
  healAllAndPlant(): NodeId | null {
    const ids = this.healAll();
    if (ids.length < 3) {
      return null;
    }
    const target = ids[0]!;
    this.host(target).storage.sql.exec("CREATE TABLE planted_divergence (x)");
    this.traceLine(`plant: ${target} gets a table outside Raft`);
    return target;
  }

  /** Stops every fault, restarts every node and heals the network; returns the nodes, sorted. */
  healAll(): NodeId[] {
    this.stopFaults();
    for (const host of this.hosts.values()) {
      if (host.down) {
        this.schedule(this.nowMs() + 1, { kind: "restart", node: host.id });
      }
    }
    const ids = [...this.hosts.keys()].sort();
    this.healed = ids;
    this.schedule(this.nowMs() + this.scenario.heartbeatIntervalMs, { kind: "probe" });
    return ids;
  }

  /** plantLeaderRow: writes the planted row through `to` (the leader); true once it is acknowledged. */
  writePlantedRow(to: NodeId, requestId: string): Promise<boolean> {
    const request = {
      id: requestId,
      transaction: false,
      statements: [
        { sql: `CREATE TABLE IF NOT EXISTS ${PLANTED_TABLE} (k TEXT PRIMARY KEY, v TEXT NOT NULL)` },
        {
          sql: `INSERT INTO ${PLANTED_TABLE} (k, v) VALUES (?, ?) ON CONFLICT (k) DO UPDATE SET v = excluded.v`,
          params: [PLANTED_KEY, PLANTED_ACKNOWLEDGED],
        },
      ],
    };
    const address = { protocolVersion: PROTOCOL_VERSION, cluster: this.cluster, node: to };
    const timeoutMs = 4 * this.scenario.electionTimeoutMs;
    return this.callNode(0, to, (node) => node.execute({ ...address, request, timeoutMs })).then(
      ({ answer }) => answer.ok && answer.value.results.every((result) => !("error" in result)),
      () => false,
    );
  }

  /** plantLeaderRow: the planted row's value on every node (undefined where it has none yet). */
  plantedRowValues(): Map<NodeId, string | undefined> {
    return new Map([...this.hosts.values()].map((host) => [host.id, this.plantedRowOn(host)]));
  }

  private plantedRowOn(host: SimHost): string | undefined {
    try {
      const rows = [...host.storage.sql.exec(`SELECT v FROM ${PLANTED_TABLE} WHERE k = ?`, PLANTED_KEY).raw()];
      return rows.length === 0 ? undefined : String(rows[0]?.[0]);
    } catch {
      return undefined;
    }
  }

  /** plantLeaderRow: changes the acknowledged row on `node` outside Raft; false when it does not hold it yet. */
  corruptPlantedRow(node: NodeId): boolean {
    const host = this.host(node);
    if (this.plantedRowOn(host) !== PLANTED_ACKNOWLEDGED) {
      return false;
    }
    host.storage.sql.exec(`UPDATE ${PLANTED_TABLE} SET v = ? WHERE k = ?`, PLANTED_CORRUPT, PLANTED_KEY);
    this.traceLine(`plant: the leader ${node} gets row ${PLANTED_KEY} changed outside Raft`);
    return true;
  }

  /** Whether `node`'s monitor holds its own state DIVERGED (it then serves no reads). */
  flaggedDiverged(node: NodeId): boolean {
    return readDivergedFlag(this.host(node).storage.kv) !== null;
  }

  /** Whether the table planted on `node` is still there (a snapshot install replaces it with the leader's state). */
  plantSurvives(node: NodeId): boolean {
    const rows = [
      ...this.host(node).storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'planted_divergence'").raw(),
    ];
    return rows.length > 0;
  }

  /** Heals a random majority (restarted, connected, no faults); the rest stay down or cut off. */
  enterLiveness(): void {
    this.stopFaults();
    this.workload.stopNewOperations();
    const ids = [...this.hosts.keys()];
    const majority = Math.floor(ids.length / 2) + 1;
    // A node that lost its storage, or whose census never concluded, counts as lost for liveness (it may not vote
    // until every member answered its census and, where a log exists, a leader caught it up):
    // the healed majority is drawn from the others; when they are too few, no progress can be promised.
    const intact = this.random.shuffled(ids.filter((id) => !this.host(id).wiped));
    const wiped = ids.filter((id) => this.host(id).wiped);
    this.livenessPromised = intact.length >= majority;
    const shuffled = [...intact, ...this.random.shuffled(wiped)];
    this.healed = shuffled.slice(0, majority).sort();
    const rest = shuffled.slice(majority);
    for (const id of rest) {
      const host = this.host(id);
      if (host.down || this.random.chance(0.5)) {
        if (!host.down) {
          this.crashHost(host, { keepStale: false });
        }
        this.traceLine(`liveness: ${id} stays down`);
      } else {
        this.network.separate(
          [id],
          ids.filter((other) => other !== id),
        );
        this.traceLine(`liveness: ${id} stays cut off`);
      }
    }
    for (const id of this.healed) {
      const host = this.host(id);
      if (host.down) {
        this.schedule(this.nowMs() + 1, { kind: "restart", node: id });
      }
    }
    this.traceLine(
      `=== liveness: healed [${this.healed.join(",")}], the rest [${rest.join(",")}] stay down or cut off${this.livenessPromised ? "" : "; too many wiped nodes: no progress promised"} ===`,
    );
    this.schedule(this.nowMs() + this.scenario.heartbeatIntervalMs, { kind: "probe" });
  }

  /** A new write through the healed majority, resent (same request id) until one node acknowledges it. */
  private sendProbe(): void {
    if (this.probe.index !== null) {
      return;
    }
    const retryMs = this.scenario.electionTimeoutMs * 3;
    if (this.probe.inFlight && this.nowMs() - this.probe.sentAtMs < retryMs) {
      this.schedule(this.nowMs() + this.scenario.heartbeatIntervalMs, { kind: "probe" });
      return;
    }
    const leader = this.leader();
    const target = leader !== null && this.healed.includes(leader) ? leader : this.random.pick(this.healed);
    this.probe.attempt += 1;
    this.probe.inFlight = true;
    this.probe.sentAtMs = this.nowMs();
    const request = {
      id: "liveness-probe",
      transaction: false,
      statements: [
        { sql: KV_TABLE_DDL },
        { sql: "INSERT INTO kv (k, v) VALUES ('probe', 'done') ON CONFLICT (k) DO UPDATE SET v = excluded.v" },
      ],
    };
    const address = { protocolVersion: PROTOCOL_VERSION, cluster: this.cluster, node: target };
    void this.callNode(0, target, (node) => node.execute({ ...address, request, timeoutMs: retryMs })).then(
      ({ answer }) => this.onProbeAnswer(answer),
      () => {
        this.probe.inFlight = false;
      },
    );
    this.schedule(this.nowMs() + this.scenario.heartbeatIntervalMs, { kind: "probe" });
  }

  private onProbeAnswer(answer: NodeResult<{ readonly raftIndex: number }>): void {
    this.probe.inFlight = false;
    if (answer.ok) {
      this.probe.index = answer.value.raftIndex;
      this.traceLine(`liveness: probe write acknowledged at index ${answer.value.raftIndex} by ${answer.node}`);
    }
  }

  /** Null once the healed majority committed the probe and every healed node applied it. */
  livenessGap(): string | null {
    if (this.probe.index === null) {
      return `the probe write is not acknowledged (leader: ${this.leader() ?? "none"})`;
    }
    for (const id of this.healed) {
      const status = this.host(id).lastStatus;
      if (status === null) {
        return `${id} is not running`;
      }
      if (status.applied < this.probe.index) {
        return `${id} applied ${status.applied}, not yet the probe at ${this.probe.index}`;
      }
    }
    if (this.workload.inFlight > 0) {
      return `${this.workload.inFlight} client operations still waiting`;
    }
    return null;
  }

  describeNodes(): string {
    return [...this.hosts.values()]
      .map((host) => {
        const status = host.lastStatus;
        const log = host.log;
        const runtime = host.instance?.runtime ?? null;
        const alarm = this.alarms.get(host.id)?.atMs ?? null;
        const stored = `store: term ${log.hardState.term} vote ${log.hardState.vote ?? "-"} commit ${log.hardState.commit} last ${log.lastIndex()}; runtime ${runtime === null ? "none" : runtime.isBroken ? "BROKEN" : runtime.isStopped ? "STOPPED" : "running"}, alarm ${alarm === null ? "none" : `at ${alarm}ms`}`;
        if (host.down || status === null) {
          return `    ${host.id}: ${host.down ? "down" : "not running"}; ${stored}`;
        }
        return `    ${host.id}: ${status.role} t${status.term} leader ${status.leader ?? "-"} commit ${status.commit} applied ${status.applied} last ${status.lastIndex}; ${stored}`;
      })
      .join("\n");
  }
}

function viewOf(host: SimHost): NodeView {
  return {
    id: host.id,
    get incarnation(): number {
      return host.incarnation;
    },
    store: {
      get hardState() {
        return host.log.hardState;
      },
      get snapshot() {
        return host.log.snapshot;
      },
      get entries() {
        return host.log.entries;
      },
      get kv() {
        return host.readKvTable();
      },
    },
    lastIndex: () => host.log.lastIndex(),
    entryAt: (index) => host.log.entryAt(index),
    termAt: (index) => {
      const snapshot = host.log.snapshot?.meta;
      if (snapshot !== undefined && snapshot.index === index) {
        return snapshot.term;
      }
      return host.log.entryAt(index)?.term ?? null;
    },
  };
}

/** The request ids an entry carries (a normal entry is one SQL request). */
function entryIds(content: string): string[] {
  const separator = content.indexOf("|");
  if (content.slice(0, separator) !== "normal") {
    return [];
  }
  try {
    return [decodeSqlRequest(content.slice(separator + 1)).id];
  } catch {
    return [];
  }
}

/** The runtime's structured log lines are muted while a seed runs: the trace says what matters. */
function muteRuntimeLogs<T>(run: () => Promise<T>): Promise<T> {
  // SIM_RUNTIME_LOGS=debug|info|warn|error prints them (debugging a seed).
  const wanted = process.env["SIM_RUNTIME_LOGS"];
  if (wanted !== undefined && wanted !== "") {
    setLogLevel(wanted);
    return run();
  }
  setLogLevel("error");
  const original = { log: console.log, warn: console.warn, error: console.error };
  const filter =
    (write: (...args: unknown[]) => void) =>
    (...args: unknown[]): void => {
      if (typeof args[0] === "string" && args[0].startsWith('{"level":')) {
        return;
      }
      write(...args);
    };
  console.log = filter(original.log);
  console.warn = filter(original.warn);
  console.error = filter(original.error);
  return run().finally(() => {
    console.log = original.log;
    console.warn = original.warn;
    console.error = original.error;
  });
}

/**
 * plantLeaderRow (see SimOptions): heals everything, writes the planted row through the leader until it is
 * acknowledged, changes it on the leader outside Raft, then runs until every node holds the acknowledged value and
 * none is flagged DIVERGED. Fails the seed when another node ever holds the changed value, when a node other than
 * the leader is repaired (its healthy state replaced), or when the change outlives the deadline while no alert said
 * that no majority could decide (3 nodes with one lagging: the leader and the healthy node then hold each other in
 * check, no image goes out and an operator must decide). Returns the steps it took.
 */
async function runLeaderRowPlant(
  sim: Simulation,
  scenario: Scenario,
  events: { readonly alerts: readonly string[]; readonly repairs: readonly string[] },
): Promise<number> {
  const violations = sim.checkers.violations;
  const ids = sim.healAll();
  if (ids.length < 3) {
    sim.plantOutcome = "not applicable";
    return 0;
  }
  let steps = 0;
  const stepOnce = async (): Promise<boolean> => {
    steps += 1;
    return sim.step();
  };
  const writeDeadlineMs = sim.nowMs() + 40 * scenario.electionTimeoutMs + 10_000;
  let acknowledged = false;
  let writing = false;
  let attempt = 0;
  while (!acknowledged && violations.length === 0 && sim.nowMs() <= writeDeadlineMs) {
    const leader = sim.leader();
    if (!writing && leader !== null) {
      writing = true;
      attempt += 1;
      void sim.writePlantedRow(leader, `plant-row-${attempt}`).then((ok) => {
        writing = false;
        acknowledged ||= ok;
      });
    }
    if (!(await stepOnce())) {
      break;
    }
  }
  let target: NodeId | null = null;
  while (acknowledged && target === null && violations.length === 0 && sim.nowMs() <= writeDeadlineMs) {
    const leader = sim.leader();
    if (leader !== null && sim.corruptPlantedRow(leader)) {
      target = leader;
    } else if (!(await stepOnce())) {
      break;
    }
  }
  if (target === null) {
    if (violations.length === 0) {
      sim.checkers.fail(
        "consistency monitor",
        `the planted row was not written and planted in time (${attempt} tries)`,
      );
    }
    return steps;
  }
  const planted = target;
  const spreadTo = (): NodeId[] =>
    [...sim.plantedRowValues()].filter(([id, value]) => id !== planted && value === PLANTED_CORRUPT).map(([id]) => id);
  const converged = (): boolean =>
    [...sim.plantedRowValues().values()].every((value) => value === PLANTED_ACKNOWLEDGED) &&
    ids.every((id) => !sim.flaggedDiverged(id));
  const deadlineMs = sim.nowMs() + 80 * scenario.electionTimeoutMs + 30_000;
  // A tie (no majority either way): once reported, the cluster must stay writable through its majority for a while
  // (ten election timeouts) while nothing spreads; then an operator would decide, and the seed ends.
  let undecided: { readonly atMs: number; readonly acknowledged: number } | null = null;
  const tieWatchMs = 10 * scenario.electionTimeoutMs;
  while (violations.length === 0 && sim.nowMs() <= deadlineMs && !converged()) {
    if (undecided === null && events.alerts.includes("null")) {
      undecided = { atMs: sim.nowMs(), acknowledged: sim.workload.acknowledged.length };
    }
    if (undecided !== null && sim.nowMs() >= undecided.atMs + tieWatchMs) {
      break;
    }
    const spread = spreadTo();
    const wronglyRepaired = events.repairs.filter((node) => node !== planted);
    if (spread.length > 0 || wronglyRepaired.length > 0) {
      sim.checkers.fail(
        "consistency monitor",
        `the row changed on the leader ${planted} outside Raft reached ${spread.join(", ") || "no other node"}` +
          ` and ${wronglyRepaired.join(", ") || "no other node"} was repaired: the acknowledged value was overwritten\n` +
          sim.describeNodes(),
      );
      break;
    }
    if (!(await stepOnce())) {
      break;
    }
  }
  if (violations.length > 0) {
    return steps;
  }
  if (converged()) {
    sim.plantOutcome = events.repairs.includes(planted) ? "repaired" : "replaced";
  } else if (undecided !== null) {
    sim.plantOutcome = "undecided";
    if (sim.workload.acknowledged.length <= undecided.acknowledged) {
      sim.checkers.fail(
        "consistency monitor",
        `after the undecided alert no write was acknowledged for ${tieWatchMs} ms: the majority must stay writable\n` +
          sim.describeNodes(),
      );
    }
  } else {
    sim.plantOutcome = "missed";
    sim.checkers.fail(
      "consistency monitor",
      `the row changed on the leader ${planted} was neither repaired nor reported undecided in time: ` +
        `${JSON.stringify(Object.fromEntries(sim.plantedRowValues()))}\n${sim.describeNodes()}`,
    );
  }
  return steps;
}

/** Runs one seed to the end (or to its first violation). */
export function runSeed(options: SimOptions): Promise<SimResult> {
  return muteRuntimeLogs(() => runSeedUnmuted(options));
}

async function runSeedUnmuted(options: SimOptions): Promise<SimResult> {
  assertValidSeed(options.seed);
  const root = new Prng(options.seed);
  const scenarioRandom = root.fork();
  const streams = { network: root.fork(), nemesis: root.fork(), workload: root.fork(), nodes: root.fork() };
  let scenario = drawScenario(scenarioRandom);
  if (options.adjustScenario !== undefined) {
    scenario = options.adjustScenario(scenario, scenarioRandom);
  }
  if (options.steps !== undefined) {
    scenario = { ...scenario, safetySteps: options.steps };
  }
  const sim = new Simulation(options.seed, scenario, streams, options);
  const alerts: string[] = [];
  const repairs: string[] = [];
  const stopObserving = addLogObserver((_level, context, event, fields) => {
    if (context.cluster !== CLUSTER_NAME) {
      return;
    }
    if (event === "becamePreCandidate") {
      sim.campaigns.preCampaigns += 1;
    } else if (event === "becameCandidate") {
      sim.campaigns.campaigns += 1;
    } else if (event === "becameLeader") {
      sim.campaigns.won += 1;
    }
    if (event === "repairInstalled") {
      repairs.push(context.node);
    }
    if (event === "consistencyAlert" || event === "nodeDiverged") {
      const who = event === "consistencyAlert" ? String(fields["replica"]) : context.node;
      alerts.push(who);
      if (options.plantDivergence !== true && options.plantLeaderRow !== true) {
        sim.checkers.fail("consistency monitor", `${context.node} reported ${event}: ${JSON.stringify(fields)}`);
      }
    }
  });
  try {
    return await runPhases(sim, scenario, options, { alerts, repairs });
  } finally {
    stopObserving();
  }
}

async function runPhases(
  sim: Simulation,
  scenario: Scenario,
  options: SimOptions,
  monitorEvents: { readonly alerts: readonly string[]; readonly repairs: readonly string[] },
): Promise<SimResult> {
  const alerts = monitorEvents.alerts;
  const violations = sim.checkers.violations;
  const workloadViolations = (): void => {
    for (const violation of sim.workload.violations.splice(0)) {
      sim.checkers.fail(violation.kind, violation.detail);
    }
  };
  sim.start();
  let safetySteps = 0;
  while (safetySteps < scenario.safetySteps && violations.length === 0 && (await sim.step())) {
    safetySteps += 1;
    workloadViolations();
  }

  let livenessSteps = 0;
  let livenessMs: number | null = null;
  if (violations.length === 0 && options.plantDivergence === true) {
    const target = sim.healAllAndPlant();
    // A checkpoint every 4 election timeouts: a few of them, plus time to restart and elect.
    const deadlineMs = sim.nowMs() + 40 * scenario.electionTimeoutMs + 10_000;
    // Any report counts: when the planted node leads, the snapshots it sends can carry the plant to a lagging node
    // before the first checkpoint, and the majority then holds the plant (the consistent node is the one reported).
    // A snapshot installed on the planted node replaces its state, plant and all: nothing is left to report then.
    while (
      target !== null &&
      violations.length === 0 &&
      alerts.length === 0 &&
      sim.plantSurvives(target) &&
      sim.nowMs() <= deadlineMs
    ) {
      if (!(await sim.step())) {
        break;
      }
      livenessSteps += 1;
    }
    sim.plantOutcome = target === null ? "not applicable" : alerts.length > 0 ? "reported" : "replaced";
    if (target !== null && alerts.length === 0 && sim.plantSurvives(target)) {
      sim.plantOutcome = "missed";
      sim.checkers.fail(
        "consistency monitor",
        `the table planted on ${target} was not reported\n${sim.describeNodes()}`,
      );
    }
  }
  if (violations.length === 0 && options.plantLeaderRow === true) {
    livenessSteps += await runLeaderRowPlant(sim, scenario, monitorEvents);
  }
  if (
    violations.length === 0 &&
    options.liveness !== false &&
    options.plantDivergence !== true &&
    options.plantLeaderRow !== true
  ) {
    sim.enterLiveness();
    const healedAtMs = sim.nowMs();
    const deadlineMs = healedAtMs + scenario.livenessBudgetMs;
    let gap: string | null = "not checked yet";
    while (violations.length === 0 && sim.nowMs() <= deadlineMs) {
      if (livenessSteps % 8 === 0) {
        gap = sim.livenessGap();
        if (gap === null) {
          break;
        }
      }
      if (!(await sim.step())) {
        break;
      }
      livenessSteps += 1;
      workloadViolations();
    }
    if (gap !== null && violations.length === 0) {
      gap = sim.livenessGap();
    }
    if (gap === null) {
      livenessMs = sim.nowMs() - healedAtMs;
    } else if (violations.length === 0 && sim.livenessPromised) {
      sim.checkers.fail(
        "liveness",
        `no progress ${scenario.livenessBudgetMs}ms after healing a majority: ${gap}\n${sim.describeNodes()}`,
      );
    }
  }

  let lincheck: LincheckSummary | null = null;
  if (violations.length === 0) {
    sim.checkers.checkAcknowledged(sim.workload.acknowledged, entryIds);
    sim.checkers.checkReadYourWrites(sim.workload.readYourWrites, sim.workload.writerOf, entryIds);
    const history = sim.workload.linearizableHistory();
    const result = checkLinearizability(registerModel, history, {
      maxSteps: options.lincheckMaxSteps ?? DEFAULT_LINCHECK_MAX_STEPS,
    });
    lincheck = {
      verdict: result.verdict,
      operations: result.operations,
      partitions: result.partitions,
      steps: result.steps ?? 0,
      detail: result.detail ?? null,
    };
    if (result.verdict === "not-linearizable") {
      sim.checkers.fail("linearizability", result.detail ?? "the history is not linearizable");
    }
    sim.traceLine(`linearizability: ${result.verdict} (${result.operations} operations, ${result.partitions} keys)`);
  }
  for (const violation of violations) {
    sim.traceLine(`VIOLATION ${violation.kind}: ${violation.detail}`);
  }

  return {
    seed: options.seed,
    violations: violations.slice(),
    traceTail: sim.trace.tail(),
    traceHash: sim.trace.hash(),
    steps: safetySteps + livenessSteps,
    safetySteps,
    livenessSteps,
    simulatedMs: sim.nowMs(),
    livenessMs,
    scenario: describeScenario(scenario),
    stats: {
      faults: { ...sim.nemesis.counts },
      messagesDelivered: sim.stats.delivered,
      messagesDropped: sim.stats.dropped,
      answersLost: sim.stats.answersLost,
      duplicatesDelivered: sim.stats.duplicates,
      runtimeDiscards: [...sim.hosts.values()].reduce((sum, host) => sum + host.discards, 0),
      elections: sim.stats.elections,
      campaigns: { ...sim.campaigns },
      firstLeaderAtMs: sim.firstLeaderAtMs,
      committedEntries: sim.checkers.committedCount,
      checkpointsApplied: sim.checkpointsApplied,
      plantOutcome: sim.plantOutcome,
      operations: sim.workload.history.length,
      acknowledged: sim.workload.acknowledged.length,
      readsByLevel: { ...sim.workload.readsByLevel },
      clientRetriesSameId: sim.workload.retriesSameId,
      checkerRuns: sim.checkers.checksRun,
    },
    lincheck,
  };
}

/** A failing seed, for a human: what broke, the scenario, the last events, and how to replay it exactly. */
export function formatFailure(result: SimResult, replay: string): string {
  return [
    `seed ${result.seed} FAILED: ${result.violations.length} violation(s)`,
    ...result.violations.map((violation) => `  ${violation.kind} at ${violation.atMs}ms: ${violation.detail}`),
    "scenario:",
    ...result.scenario.split("\n").map((line) => `  ${line}`),
    `last ${result.traceTail.length} trace lines:`,
    ...result.traceTail.map((line) => `  ${line}`),
    `replay: ${replay}`,
  ].join("\n");
}
