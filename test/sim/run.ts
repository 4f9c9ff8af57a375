// One seed, start to finish: draw a scenario from the seed, run the safety phase (N steps under the nemesis, every
// invariant checked after every step), heal every fault and run the liveness phase (a leader, every proposal
// committed or refused, every member converged, within a bounded number of ticks), then check the clients'
// history for linearizability. Nothing here reads a clock or Math.random: the seed alone decides everything.

import { checkLinearizability, registerModel } from "../lincheck/index.js";
import type { LogEntry, Membership, Message, NodeId, RaftConfig, Ready, SnapshotMeta } from "../../src/replication/types.js";
import { Checkers, stateDigest, type Violation } from "./checkers.js";
import { Cluster, type ShellHooks, type SimBugs, type SimNode } from "./cluster.js";
import { Nemesis, type FaultOptions, type NemesisEnvironment, type NemesisEvent } from "./faults.js";
import { HEALTHY_PROFILE, Network, type Envelope, type NetworkProfile } from "./network.js";
import { Prng, assertValidSeed } from "./prng.js";
import { Scheduler } from "./scheduler.js";
import { DEFAULT_TRACE_TAIL_LINES, Trace, describeEvent, describeMessage } from "./trace.js";
import { Workload, type AcceptedProposal, type ApplyResult, type WorkloadEnvironment, type WorkloadOptions } from "./workload.js";

export const DEFAULT_SAFETY_STEPS = 20_000;
/** Search iterations for the linearizability check of one seed; beyond it the verdict is "unknown". */
export const DEFAULT_LINCHECK_MAX_STEPS = 2_000_000;
const MAX_PENDING_EVENTS = 100_000;
const MAX_MESSAGES_IN_FLIGHT = 20_000;
const MAX_READY_BATCHES_PER_INPUT = 64;
const MAX_BARRIERS = 400;
const MAX_NODE_IDS = 12;

export interface Scenario {
  readonly nodes: number;
  readonly raft: Omit<RaftConfig, "id" | "random">;
  readonly baseTickMs: number;
  /** Each node's tick period is baseTickMs * (1 + u), u uniform in [-maxTickSkew, +maxTickSkew]. */
  readonly maxTickSkew: number;
  readonly network: NetworkProfile;
  readonly faults: FaultOptions;
  readonly workload: Omit<WorkloadOptions, "localReadsOnBelievedLeader">;
  readonly safetySteps: number;
  /** Ticks (of the base period) the healed cluster has to converge. */
  readonly livenessBudgetTicks: number;
}

export interface SimOptions {
  readonly seed: number;
  /** Steps of the safety phase (default: the scenario's, DEFAULT_SAFETY_STEPS). */
  readonly steps?: number;
  readonly bugs?: SimBugs;
  /** Directed scenarios: adjust what the seed drew (bug-hunting tests tune the faults this way). */
  readonly adjustScenario?: (scenario: Scenario, random: Prng) => Scenario;
  readonly traceTailLines?: number;
  /** Every trace line as it happens (--verbose). */
  readonly onTraceLine?: (line: string) => void;
  readonly lincheckMaxSteps?: number;
}

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
  /** Simulated ms from healing to convergence; null when it did not converge (or was not reached). */
  readonly livenessMs: number | null;
  readonly scenario: string;
  readonly stats: {
    readonly faults: number;
    readonly crashes: number;
    readonly messagesDelivered: number;
    readonly messagesDropped: number;
    readonly elections: number;
    readonly snapshotsInstalled: number;
    readonly committedEntries: number;
    readonly operations: number;
    readonly acknowledged: number;
    readonly uncheckedReads: number;
    readonly checkerRuns: number;
  };
  readonly lincheck: LincheckSummary | null;
}

type SimEvent =
  | { readonly kind: "tick"; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: "deliver"; readonly to: NodeId; readonly envelope: Envelope }
  | { readonly kind: "ready"; readonly node: NodeId; readonly incarnation: number }
  | { readonly kind: "restart"; readonly node: NodeId }
  | { readonly kind: "crash"; readonly node: NodeId; readonly why: string }
  | { readonly kind: "report"; readonly node: NodeId; readonly incarnation: number; readonly peer: NodeId; readonly snapshotOk: boolean | null }
  | { readonly kind: "client"; readonly clientId: number }
  | { readonly kind: "nemesis"; readonly event: NemesisEvent }
  | { readonly kind: "drive" };

// ---------------------------------------------------------------------------------------------------------------
// Scenarios.

function weighted<T>(random: Prng, choices: readonly (readonly [T, number])[]): T {
  const total = choices.reduce((sum, [, weight]) => sum + weight, 0);
  let roll = random.nextInt(total);
  for (const [value, weight] of choices) {
    if (roll < weight) return value;
    roll -= weight;
  }
  throw new Error("unreachable: weights exhausted");
}

/** Everything about a seed's world, drawn from the seed (swarm testing: fault kinds are switched on or off too). */
export function drawScenario(random: Prng): Scenario {
  const nodes = weighted(random, [[1, 4], [2, 5], [3, 30], [4, 10], [5, 30], [6, 6], [7, 15]] as const);
  const electionTimeoutTicks = random.between(5, 15);
  const checkQuorum = random.chance(0.8);
  const leaseRead = checkQuorum && random.chance(0.4);
  const raft: Scenario["raft"] = {
    electionTimeoutTicks,
    heartbeatIntervalTicks: random.between(1, Math.max(1, Math.floor(electionTimeoutTicks / 3))),
    checkQuorum,
    leaseRead,
    maxInflightMessages: random.between(1, 8),
    maxMessageBytes: random.pick([64, 256, 1024, 65536]),
    maxPendingProposals: random.between(4, 64),
    snapshotThresholdEntries: random.pick([3, 5, 10, 30, 100]),
    laggingThresholdEntries: random.between(2, 50),
    offlineAfterTicks: random.between(electionTimeoutTicks, 4 * electionTimeoutTicks),
  };
  const baseTickMs = 20;
  // Lease reads tolerate drift up to their safety margin (a fifth of the election timeout by default).
  const maxTickSkew = leaseRead ? random.pick([0, 0.05]) : random.pick([0, 0.05, 0.1, 0.2]);
  const on = (probability: number): boolean => random.chance(probability);
  const faults: FaultOptions = {
    crashes: on(0.6),
    tornCrashes: on(0.4),
    partitions: on(0.7),
    pathFaults: on(0.5),
    slowNodes: on(0.4),
    membershipChanges: on(0.4),
    transfers: on(0.4),
    clockDrift: on(0.3),
    meanIntervalMs: random.between(50, 600),
    leaderTargeting: random.pick([0.2, 0.5, 0.8]),
    minDownMs: 20,
    maxDownMs: random.between(100, 2000),
    minPartitionMs: 20,
    maxPartitionMs: random.between(100, 3000),
    maxDownNodes: random.between(1, nodes),
    maxMembers: 7,
    crashAfterVote: 0,
    crashLeaderAfterCommit: 0,
    crashLeaderAfterElection: 0,
  };
  const network: NetworkProfile = {
    minLatencyMs: 1,
    maxLatencyMs: random.between(2, 12),
    maxJitterMs: random.between(0, 6),
    maxDropProbability: random.pick([0, 0, 0.01, 0.05, 0.15]),
    maxDuplicateProbability: random.pick([0, 0.02, 0.1]),
    maxReorderProbability: random.pick([0, 0.05, 0.2]),
  };
  const workload: Scenario["workload"] = {
    clients: random.between(1, 5),
    keys: random.between(1, 4),
    timeoutMs: random.between(200, 1500),
    maxThinkMs: random.between(10, 200),
    mix: {
      write: random.between(1, 10),
      cas: random.between(0, 6),
      linearizableRead: random.between(1, 10),
      strongRead: random.between(0, 3),
      weakRead: random.between(0, 2),
      noneRead: random.between(0, 2),
    },
    maxAttempts: 5,
    roamProbability: random.pick([0, 0.1, 0.5]),
  };
  return {
    nodes,
    raft,
    baseTickMs,
    maxTickSkew,
    network,
    faults,
    workload,
    safetySteps: DEFAULT_SAFETY_STEPS,
    livenessBudgetTicks: 60 * electionTimeoutTicks + 600,
  };
}

export function describeScenario(scenario: Scenario): string {
  const raft = scenario.raft;
  const faults = scenario.faults;
  const enabled = (["crashes", "tornCrashes", "partitions", "pathFaults", "slowNodes", "membershipChanges", "transfers", "clockDrift"] as const).filter((kind) => faults[kind]);
  const net = scenario.network;
  return [
    `nodes ${scenario.nodes}, election ${raft.electionTimeoutTicks} ticks, heartbeat ${raft.heartbeatIntervalTicks}, checkQuorum ${raft.checkQuorum}, leaseRead ${raft.leaseRead}`,
    `inflight ${raft.maxInflightMessages}, msg bytes ${raft.maxMessageBytes}, pending ${raft.maxPendingProposals}, snapshot every ${raft.snapshotThresholdEntries}, tick ${scenario.baseTickMs}ms skew ${scenario.maxTickSkew}`,
    `network latency ${net.minLatencyMs}-${net.maxLatencyMs}ms jitter ${net.maxJitterMs} drop ${net.maxDropProbability} dup ${net.maxDuplicateProbability} reorder ${net.maxReorderProbability}`,
    `faults [${enabled.join(" ")}] every ~${faults.meanIntervalMs}ms, max down ${faults.maxDownNodes}`,
    `clients ${scenario.workload.clients}, keys ${scenario.workload.keys}, timeout ${scenario.workload.timeoutMs}ms, safety steps ${scenario.safetySteps}`,
  ].join("\n");
}

// ---------------------------------------------------------------------------------------------------------------
// The simulation.

class Simulation implements ShellHooks, WorkloadEnvironment {
  readonly scheduler = new Scheduler<SimEvent>(MAX_PENDING_EVENTS);
  readonly log: Trace;
  readonly checkers: Checkers;
  readonly cluster: Cluster;
  readonly network: Network;
  readonly random: Prng;
  readonly workload: Workload;
  readonly nemesis: Nemesis;
  private readonly nodeRandom: Prng;
  private readonly skewRandom: Prng;
  private readonly bugs: SimBugs;
  private phase: "safety" | "liveness" = "safety";
  private membership: Membership;
  private membershipIndex = 0;
  private nextJoinerNumber: number;
  private messagesInFlight = 0;
  private barriers = 0;
  private barrierNumber = 0;
  stats = { crashes: 0, delivered: 0, dropped: 0, elections: 0, snapshotsInstalled: 0 };

  constructor(
    readonly seed: number,
    readonly scenario: Scenario,
    streams: { network: Prng; nemesis: Prng; workload: Prng; nodes: Prng; skew: Prng },
    options: SimOptions,
  ) {
    this.bugs = options.bugs ?? {};
    this.log = new Trace(options.traceTailLines ?? DEFAULT_TRACE_TAIL_LINES, options.onTraceLine ?? null);
    this.checkers = new Checkers(() => this.scheduler.nowMs);
    this.random = streams.workload;
    this.nodeRandom = streams.nodes;
    this.skewRandom = streams.skew;
    this.network = new Network(streams.network, scenario.network);
    this.cluster = new Cluster({ config: scenario.raft, bugs: this.bugs }, streams.nodes, this);
    this.workload = new Workload({ ...scenario.workload, localReadsOnBelievedLeader: this.bugs.localReadsOnBelievedLeader === true }, this);
    this.nemesis = new Nemesis(scenario.faults, this.nemesisEnvironment(streams.nemesis), scenario);
    const voters = Array.from({ length: scenario.nodes }, (_, i) => `n${i + 1}`);
    this.membership = { voters, learners: [] };
    this.nextJoinerNumber = scenario.nodes + 1;
    for (const id of voters) {
      const period = this.drawTickPeriodMs();
      this.cluster.addNode(id, this.membership, period);
    }
  }

  private nemesisEnvironment(random: Prng): NemesisEnvironment {
    return {
      cluster: this.cluster,
      network: this.network,
      random,
      nowMs: () => this.nowMs(),
      trace: (text) => this.traceLine(text),
      schedule: (atMs, event) => this.schedule(atMs, { kind: "nemesis", event }),
      leader: () => this.leader(),
      createJoiner: () => this.createJoiner(),
      noteProposal: (proposal) => this.noteProposal(proposal),
      afterInput: (node) => this.afterInput(node),
    };
  }

  private drawTickPeriodMs(): number {
    const skew = this.scenario.maxTickSkew;
    const permille = this.skewRandom.between(Math.round(-skew * 1000), Math.round(skew * 1000));
    return Math.max(1, Math.round(this.scenario.baseTickMs * (1 + permille / 1000)));
  }

  nowMs(): number {
    return this.scheduler.nowMs;
  }

  traceLine(text: string): void {
    this.log.record(this.nowMs(), text);
  }

  trace(text: string): void {
    this.traceLine(text);
  }

  mixIntoTrace(text: string): void {
    this.log.mix(text);
  }

  private schedule(atMs: number, event: SimEvent): boolean {
    const ok = this.scheduler.schedule(atMs, event);
    if (!ok) this.checkers.fail("simulator bound", `the event queue is full (${MAX_PENDING_EVENTS} events)`);
    return ok;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Running.

  start(): void {
    this.traceLine(`seed ${this.seed}: ${describeScenario(this.scenario).replaceAll("\n", "; ")}`);
    for (const node of this.cluster.nodes.values()) this.startNode(node, this.nodeRandom.between(0, node.tickPeriodMs - 1));
    for (const clientId of this.workload.clientIds) this.schedule(this.nowMs() + this.random.between(0, 50), { kind: "client", clientId });
    this.nemesis.start();
  }

  private startNode(node: SimNode, firstTickInMs: number): void {
    this.cluster.start(node);
    if (!node.up) return;
    this.traceLine(`${node.id} starts (incarnation ${node.incarnation}, tick every ${node.tickPeriodMs}ms, log ${node.store.snapshot?.meta.index ?? 0}+${node.store.entries.length}, term ${node.store.hardState.term})`);
    this.schedule(this.nowMs() + firstTickInMs, { kind: "tick", node: node.id, incarnation: node.incarnation });
    this.afterInput(node);
  }

  /** Runs one event; returns false when there was none. */
  step(): boolean {
    const event = this.scheduler.pop();
    if (event === null) return false;
    switch (event.kind) {
      case "tick":
        this.handleTick(event.node, event.incarnation);
        break;
      case "deliver":
        this.handleDelivery(event.to, event.envelope);
        break;
      case "ready": {
        const node = this.cluster.node(event.node);
        if (node.incarnation !== event.incarnation || !node.up) break;
        node.readyHandlingScheduled = false;
        this.observeNode(node);
        this.cluster.handleReadies(node, MAX_READY_BATCHES_PER_INPUT);
        this.observeNode(node);
        break;
      }
      case "restart": {
        const node = this.cluster.node(event.node);
        if (!node.up) this.startNode(node, this.nodeRandom.between(1, node.tickPeriodMs));
        break;
      }
      case "crash": {
        const node = this.cluster.node(event.node);
        if (node.up) this.cluster.crash(node, event.why);
        break;
      }
      case "report":
        this.handleReport(event);
        break;
      case "client":
        this.workload.runClient(event.clientId);
        break;
      case "nemesis":
        this.nemesis.handle(event.event);
        break;
      case "drive":
        this.drive();
        break;
    }
    return true;
  }

  private handleTick(id: NodeId, incarnation: number): void {
    const node = this.cluster.node(id);
    const core = node.core;
    if (core === null || node.incarnation !== incarnation) return;
    this.schedule(this.nowMs() + node.tickPeriodMs, { kind: "tick", node: id, incarnation });
    this.cluster.guard(node, "tick", () => core.tick());
    this.log.mix(`tick ${id}`);
    this.afterInput(node);
  }

  private handleDelivery(to: NodeId, envelope: Envelope): void {
    this.messagesInFlight -= 1;
    const message = envelope.message;
    const node = this.cluster.nodes.get(to);
    if (node === undefined || !node.up) {
      this.dropped(envelope, "down");
      return;
    }
    if (!this.network.isConnected(message.from, to)) {
      this.dropped(envelope, "partition");
      return;
    }
    this.stats.delivered += 1;
    this.traceLine(describeMessage(message));
    const core = node.core;
    if (core === null) return;
    if (message.type === "snapshot" && envelope.image !== null) this.cluster.holdImage(node, message.snapshot, envelope.image);
    this.cluster.guard(node, "step", () => core.step(message));
    if (message.type === "snapshot") this.reportLater(message.from, envelope.senderIncarnation, to, true);
    this.afterInput(node);
  }

  private dropped(envelope: Envelope, why: "down" | "partition" | "loss" | "overload"): void {
    this.stats.dropped += 1;
    const message = envelope.message;
    this.log.mix(`drop ${message.from}>${message.to} ${message.type} ${why}`);
    if (message.type === "snapshot") this.reportLater(message.from, envelope.senderIncarnation, message.to, false);
    // A transport that retries and gives up tells the core; not every loss is noticed.
    else if (why !== "loss" && this.random.chance(0.3)) this.reportLater(message.from, envelope.senderIncarnation, message.to, null);
  }

  private reportLater(node: NodeId, incarnation: number, peer: NodeId, snapshotOk: boolean | null): void {
    this.schedule(this.nowMs() + this.random.between(1, 10), { kind: "report", node, incarnation, peer, snapshotOk });
  }

  private handleReport(event: { node: NodeId; incarnation: number; peer: NodeId; snapshotOk: boolean | null }): void {
    const node = this.cluster.nodes.get(event.node);
    const core = node?.core ?? null;
    if (node === undefined || core === null || node.incarnation !== event.incarnation) return;
    if (event.snapshotOk === null) {
      this.log.mix(`unreachable ${event.node} ${event.peer}`);
      this.cluster.guard(node, "reportUnreachable", () => core.reportUnreachable(event.peer));
    } else {
      this.traceLine(`${node.id} snapshot to ${event.peer} ${event.snapshotOk ? "delivered" : "lost"}`);
      this.cluster.guard(node, "reportSnapshotResult", () => core.reportSnapshotResult(event.peer, event.snapshotOk === true));
    }
    this.afterInput(node);
  }

  /** After any input to a node: observe its status, then handle its Readys now (or later, if it is slow). */
  afterInput(node: SimNode): void {
    if (!node.up) return;
    this.observeNode(node);
    if (!node.up) return;
    if (node.readyDelayMs > 0) {
      if (!node.readyHandlingScheduled) {
        node.readyHandlingScheduled = true;
        this.schedule(this.nowMs() + node.readyDelayMs, { kind: "ready", node: node.id, incarnation: node.incarnation });
      }
      return;
    }
    this.cluster.handleReadies(node, MAX_READY_BATCHES_PER_INPUT);
    this.observeNode(node);
  }

  private observeNode(node: SimNode): void {
    const core = node.core;
    if (core === null) return;
    const status = this.cluster.guard(node, "status", () => core.status());
    if (status === null) return;
    node.lastStatus = status;
    this.checkers.observeStatus(node, status);
  }

  leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const node of this.cluster.nodes.values()) {
      const status = node.lastStatus;
      if (!node.up || status === null || status.role !== "leader") continue;
      if (best === null || (best.lastStatus?.term ?? 0) < status.term) best = node;
    }
    return best;
  }

  liveMembers(): SimNode[] {
    return [...this.cluster.nodes.values()].filter((node) => node.up);
  }

  wakeClient(clientId: number, atMs: number): void {
    this.schedule(Math.max(atMs, this.nowMs()), { kind: "client", clientId });
  }

  private createJoiner(): SimNode | null {
    // Reuse a joiner that was never added (its addLearner was refused or lost) before creating another.
    for (const node of this.cluster.nodes.values()) {
      if (node.bootstrap === null && !node.joinProposed) return node;
    }
    if (this.nextJoinerNumber > MAX_NODE_IDS) return null;
    const id = `n${this.nextJoinerNumber}`;
    this.nextJoinerNumber += 1;
    const node = this.cluster.addNode(id, null, this.drawTickPeriodMs());
    this.startNode(node, this.nodeRandom.between(0, node.tickPeriodMs - 1));
    return node;
  }

  private noteProposal(proposal: AcceptedProposal): void {
    this.workload.noteProposal(proposal);
  }

  // -------------------------------------------------------------------------------------------------------------
  // ShellHooks.

  send(node: SimNode, message: Message, image: ReadonlyMap<string, string> | null): void {
    const envelope: Envelope = { message, image, senderIncarnation: node.incarnation };
    const decision = this.network.route(message.from, message.to);
    if (decision.kind === "drop") {
      this.dropped(envelope, decision.reason);
      return;
    }
    for (const delayMs of decision.delaysMs) {
      if (this.messagesInFlight >= MAX_MESSAGES_IN_FLIGHT) {
        this.dropped(envelope, "overload");
        continue;
      }
      if (this.schedule(this.nowMs() + delayMs, { kind: "deliver", to: message.to, envelope })) this.messagesInFlight += 1;
    }
  }

  onReady(node: SimNode, ready: Ready): void {
    for (const event of ready.events) {
      this.traceLine(`${node.id} ${describeEvent(event)}`);
      if (event.kind === "becameLeader") {
        this.stats.elections += 1;
        this.nemesis.maybeCrashAfterElection(node);
      }
    }
    this.checkers.observeEvents(node, ready.events, node.lastStatus);
    if (ready.truncateFrom !== null) this.traceLine(`${node.id} truncates its log from ${ready.truncateFrom}`);
    const status = node.lastStatus;
    const leaderTerm = status !== null && status.role === "leader" ? status.term : null;
    const shape = { truncateFrom: ready.truncateFrom, firstNewIndex: ready.entries[0]?.index ?? null, installsSnapshot: ready.snapshot !== null };
    this.checkers.checkLeaderAppendOnly(node, leaderTerm, shape, node.lastIndex());
  }

  onSnapshotInstalled(node: SimNode, meta: SnapshotMeta): void {
    this.stats.snapshotsInstalled += 1;
    this.traceLine(`${node.id} installs snapshot ${meta.index}/${meta.term}`);
    this.checkers.observeSnapshotInstalled(node, meta);
  }

  onPersisted(node: SimNode, ready: Ready, touchedFromIndex: number | null, previousCommit: number): void {
    const first = ready.entries[0];
    const last = ready.entries[ready.entries.length - 1];
    if (first !== undefined && last !== undefined) this.log.mix(`${node.id} persist ${first.index}..${last.index}`);
    const hardState = ready.hardState;
    if (hardState !== null) this.log.mix(`${node.id} hs ${hardState.term} ${hardState.vote ?? "-"} ${hardState.commit}`);
    this.checkers.checkPersistedLog(node, touchedFromIndex);
    this.checkers.noteCommitIndex(node);
    if (hardState !== null && hardState.vote !== null) this.nemesis.maybeCrashAfterVote(node);
    if (hardState !== null && hardState.commit > previousCommit && node.lastStatus?.role === "leader") this.nemesis.maybeCrashAfterCommit(node);
  }

  onApplied(node: SimNode, entry: LogEntry, result: ApplyResult): void {
    this.log.mix(`${node.id} apply ${entry.index}/${entry.term}`);
    if (result.kind === "invalid") this.checkers.fail("state machine", `${node.id}: ${result.reason}`);
    if (result.kind === "config" && entry.index > this.membershipIndex) {
      this.membership = result.membership;
      this.membershipIndex = entry.index;
      this.traceLine(`committed membership at ${entry.index}: voters [${result.membership.voters.join(",")}] learners [${result.membership.learners.join(",")}]`);
    }
    this.checkers.observeApplied(node, entry);
    this.workload.onApplied(node, entry, result);
  }

  onCompacted(node: SimNode, meta: SnapshotMeta): void {
    this.log.mix(`${node.id} compact ${meta.index}`);
    this.checkers.observeCompacted(node, meta);
  }

  onReadServed(node: SimNode, context: string, value: string | null, index: number): void {
    this.log.mix(`${node.id} read ${context} at ${index} = ${value ?? "null"}`);
    this.workload.onReadServed(node, context, value);
  }

  onReadFailed(node: SimNode, context: string, reason: string): void {
    this.workload.onReadFailed(node, context, reason);
  }

  onCrashed(node: SimNode, why: string): void {
    this.stats.crashes += 1;
    this.traceLine(`${node.id} CRASHES (${why})`);
    this.workload.onCrashed(node);
    this.checkers.forgetNode(node);
    const downMs = this.phase === "safety" ? this.nemesis.drawDowntimeMs() : 1;
    this.schedule(this.nowMs() + downMs, { kind: "restart", node: node.id });
  }

  onIgnoredTruncation(node: SimNode, fromIndex: number): void {
    this.traceLine(`${node.id}'s store IGNORES truncation from ${fromIndex} (bug: keeps the conflicting suffix)`);
    this.schedule(this.nowMs() + this.random.between(1, 20), { kind: "crash", node: node.id, why: "restart to reload the corrupted log" });
  }

  violation(kind: string, detail: string): void {
    this.checkers.fail(kind, detail);
  }

  // -------------------------------------------------------------------------------------------------------------
  // Liveness.

  /** Heals every fault: no partitions, healthy paths, every node up and prompt, no more nemesis. */
  enterLiveness(): void {
    this.phase = "liveness";
    this.nemesis.stop();
    this.nemesis.healNodes();
    this.network.heal(HEALTHY_PROFILE);
    this.workload.stopNewOperations();
    this.traceLine("=== liveness: every fault healed ===");
    for (const node of this.cluster.nodes.values()) {
      if (!node.up) this.startNode(node, this.nodeRandom.between(1, node.tickPeriodMs));
      else if (node.up) this.afterInput(node);
    }
    this.schedule(this.nowMs() + this.scenario.baseTickMs, { kind: "drive" });
  }

  /** Pushes the log past every unresolved proposal with barrier writes, so each ends committed or overwritten. */
  private drive(): void {
    this.schedule(this.nowMs() + this.scenario.baseTickMs, { kind: "drive" });
    const leader = this.leader();
    const core = leader?.core ?? null;
    if (leader === null || core === null || leader.lastStatus === null) return;
    const unresolved = this.workload.unresolvedProposals();
    if (unresolved.length === 0) return;
    const highest = Math.max(...unresolved.map((proposal) => proposal.index));
    let lastIndex = leader.lastStatus.lastIndex;
    while (lastIndex < highest && this.barriers < MAX_BARRIERS) {
      this.barrierNumber += 1;
      const data = JSON.stringify({ op: "write", key: "barrier", value: `b${this.barrierNumber}`, clientId: 0, opId: -this.barrierNumber });
      const result = this.cluster.guard(leader, "propose", () => core.propose(data));
      if (result === null || !result.ok) break;
      this.barriers += 1;
      lastIndex = result.index;
      this.workload.noteProposal({ index: result.index, term: result.term, node: leader.id, what: `barrier ${this.barrierNumber}`, acceptedAtMs: this.nowMs() });
      this.traceLine(`liveness: ${leader.id} proposes barrier ${this.barrierNumber} at ${result.index}:${result.term}`);
    }
    this.afterInput(leader);
  }

  /** One line per node: what it says about itself, and what its store holds. */
  describeNodes(): string {
    const lines = [`    committed membership (index ${this.membershipIndex}): voters [${this.membership.voters.join(",")}] learners [${this.membership.learners.join(",")}]`];
    for (const node of this.cluster.nodes.values()) {
      const status = node.lastStatus;
      const store = node.store;
      const stored = `store: term ${store.hardState.term} vote ${store.hardState.vote ?? "-"} commit ${store.hardState.commit} snapshot ${store.snapshot?.meta.index ?? "-"} last ${node.lastIndex()} applied ${store.applied}`;
      if (!node.up || status === null) {
        lines.push(`    ${node.id}: down; ${stored}`);
        continue;
      }
      const membership = `voters [${status.membership.voters.join(",")}] learners [${status.membership.learners.join(",")}]`;
      lines.push(`    ${node.id}: ${status.role} t${status.term} leader ${status.leader ?? "-"} vote ${status.vote ?? "-"} commit ${status.commit} applied ${status.applied} last ${status.lastIndex} ${membership}${status.removed ? " REMOVED" : ""}; ${stored}`);
      for (const replica of status.replicas) {
        lines.push(`      ${replica.id}${replica.isLearner ? " (learner)" : ""}: ${replica.status} ${replica.progress} match ${replica.matchIndex} next ${replica.nextIndex} contact ${replica.ticksSinceContact} ticks ago, failures ${replica.consecutiveFailures}`);
      }
    }
    return lines.join("\n");
  }

  /** Null when the cluster converged; otherwise what is still missing. */
  convergenceGap(): string | null {
    const members = [...this.membership.voters, ...this.membership.learners];
    const missing = members.filter((id) => !(this.cluster.nodes.get(id)?.up ?? false));
    if (missing.length > 0) return `members not up: ${missing.join(",")}`;
    const leader = this.leader();
    if (leader === null || leader.lastStatus === null) return "no leader";
    const status = leader.lastStatus;
    if (!this.membership.voters.includes(leader.id)) return `the leader ${leader.id} is not a voter of the committed membership`;
    for (const id of members) {
      const member = this.cluster.node(id).lastStatus;
      if (member === null || member.term !== status.term || member.leader !== leader.id) {
        return `${id} does not follow ${leader.id} in term ${status.term} (it is ${member?.role ?? "?"} in term ${member?.term ?? "?"}, leader ${member?.leader ?? "none"})`;
      }
    }
    const unresolved = this.workload.unresolvedProposals();
    if (unresolved.length > 0) {
      const first = unresolved[0] as AcceptedProposal;
      return `${unresolved.length} proposals neither committed nor refused, e.g. ${first.what} at ${first.index}:${first.term} (leader ${leader.id} commit ${status.commit}, last ${status.lastIndex})`;
    }
    if (status.commit < status.lastIndex) return `the leader has uncommitted entries (${status.commit} < ${status.lastIndex})`;
    const digest = stateDigest(leader.store.kv);
    for (const id of members) {
      const member = this.cluster.node(id);
      if (member.store.applied !== status.commit) return `${id} applied ${member.store.applied}, the leader committed ${status.commit}`;
      if (stateDigest(member.store.kv) !== digest) return `${id}'s state machine differs from the leader's at ${status.commit}`;
    }
    if (this.workload.inFlight > 0) return `${this.workload.inFlight} client operations still waiting`;
    if (status.transferee !== null) return `a leadership transfer to ${status.transferee} is still in progress`;
    return null;
  }
}

// ---------------------------------------------------------------------------------------------------------------

/** Runs one seed to the end (or to its first violation). */
export function runSeed(options: SimOptions): SimResult {
  assertValidSeed(options.seed);
  const root = new Prng(options.seed);
  const scenarioRandom = root.fork();
  const streams = { network: root.fork(), nemesis: root.fork(), workload: root.fork(), nodes: root.fork(), skew: root.fork() };
  let scenario = drawScenario(scenarioRandom);
  if (options.adjustScenario !== undefined) scenario = options.adjustScenario(scenario, scenarioRandom);
  if (options.steps !== undefined) scenario = { ...scenario, safetySteps: options.steps };
  const sim = new Simulation(options.seed, scenario, streams, options);
  const violations = sim.checkers.violations;

  sim.start();
  let safetySteps = 0;
  while (safetySteps < scenario.safetySteps && violations.length === 0 && sim.step()) safetySteps += 1;

  let livenessSteps = 0;
  let livenessMs: number | null = null;
  if (violations.length === 0) {
    sim.enterLiveness();
    const healedAtMs = sim.nowMs();
    const deadlineMs = healedAtMs + scenario.livenessBudgetTicks * scenario.baseTickMs;
    let gap: string | null = "not checked yet";
    while (violations.length === 0 && sim.nowMs() <= deadlineMs) {
      if (livenessSteps % 16 === 0) {
        gap = sim.convergenceGap();
        if (gap === null) break;
      }
      if (!sim.step()) break;
      livenessSteps += 1;
    }
    if (gap === null) livenessMs = sim.nowMs() - healedAtMs;
    else if (violations.length === 0) {
      gap = sim.convergenceGap();
      if (gap === null) livenessMs = sim.nowMs() - healedAtMs;
      else sim.checkers.fail("liveness", `not converged ${scenario.livenessBudgetTicks} ticks after healing: ${gap}\n${sim.describeNodes()}`);
    }
  }

  let lincheck: LincheckSummary | null = null;
  if (violations.length === 0) {
    sim.workload.settleIndeterminate();
    sim.checkers.checkAcknowledged(sim.workload.acknowledged);
    sim.workload.checkUncheckedReads((kind, detail) => sim.checkers.fail(kind, detail));
    const history = sim.workload.linearizableHistory();
    const result = checkLinearizability(registerModel, history, { maxSteps: options.lincheckMaxSteps ?? DEFAULT_LINCHECK_MAX_STEPS });
    lincheck = { verdict: result.verdict, operations: result.operations, partitions: result.partitions, steps: result.steps ?? 0, detail: result.detail ?? null };
    if (result.verdict === "not-linearizable") sim.checkers.fail("linearizability", result.detail ?? "the history is not linearizable");
    sim.traceLine(`linearizability: ${result.verdict} (${result.operations} operations, ${result.partitions} keys)`);
  }
  for (const violation of violations) sim.traceLine(`VIOLATION ${violation.kind}: ${violation.detail}`);

  return {
    seed: options.seed,
    violations: violations.slice(),
    traceTail: sim.log.tail(),
    traceHash: sim.log.hash(),
    steps: safetySteps + livenessSteps,
    safetySteps,
    livenessSteps,
    simulatedMs: sim.nowMs(),
    livenessMs,
    scenario: describeScenario(scenario),
    stats: {
      faults: sim.nemesis.actions,
      crashes: sim.stats.crashes,
      messagesDelivered: sim.stats.delivered,
      messagesDropped: sim.stats.dropped,
      elections: sim.stats.elections,
      snapshotsInstalled: sim.stats.snapshotsInstalled,
      committedEntries: sim.checkers.committedCount,
      operations: sim.workload.history.length,
      acknowledged: sim.workload.acknowledged.length,
      uncheckedReads: sim.workload.uncheckedReads.length,
      checkerRuns: sim.checkers.checksRun,
    },
    lincheck,
  };
}

/** A failing seed, for a human: what broke, the scenario, the last events, and how to replay it exactly. */
export function formatFailure(result: SimResult, replay: string): string {
  const lines = [
    `seed ${result.seed} FAILED: ${result.violations.length} violation(s)`,
    ...result.violations.map((violation) => `  ${violation.kind} at ${violation.atMs}ms: ${violation.detail}`),
    "scenario:",
    ...result.scenario.split("\n").map((line) => `  ${line}`),
    `last ${result.traceTail.length} trace lines:`,
    ...result.traceTail.map((line) => `  ${line}`),
    `replay: ${replay}`,
  ];
  return lines.join("\n");
}
