// The nemesis: the fault schedule of the safety phase. At random moments it crashes nodes (cleanly or in the
// middle of a Ready), partitions the network (isolating the leader, halves, one way, overlapping majorities,
// random cuts), degrades paths, slows nodes down, changes membership and transfers leadership. Every fault it
// starts it also ends, and the liveness phase ends them all at once. Which kinds are enabled is itself drawn per
// seed (swarm testing), so that some seeds explore one kind of fault in depth.

import type { ConfigChange, Membership, NodeId, NodeStatus } from "../../src/replication/types.js";
import type { Cluster, SimNode, TornCrashPoint } from "./cluster.js";
import type { Network } from "./network.js";
import type { Prng } from "./prng.js";
import type { AcceptedProposal } from "./workload.js";

export interface FaultOptions {
  readonly crashes: boolean;
  readonly tornCrashes: boolean;
  readonly partitions: boolean;
  readonly pathFaults: boolean;
  readonly slowNodes: boolean;
  readonly membershipChanges: boolean;
  readonly transfers: boolean;
  /** Re-draw a node's tick rate (within the scenario's skew bound), the leader's by preference: its clock drifts. */
  readonly clockDrift: boolean;
  /** Mean time between two nemesis actions. */
  readonly meanIntervalMs: number;
  /** Chance that a crash or an isolation targets the leader rather than any node. */
  readonly leaderTargeting: number;
  readonly minDownMs: number;
  readonly maxDownMs: number;
  readonly minPartitionMs: number;
  readonly maxPartitionMs: number;
  /** Nodes down at once, at most. */
  readonly maxDownNodes: number;
  /** Members (voters + learners) at most, for membership changes. */
  readonly maxMembers: number;
  /** Bug hunting: chance that a node crashes right after persisting a vote (and sending it). */
  readonly crashAfterVote: number;
  /** Bug hunting: chance that a leader crashes right after persisting a higher commit index (before telling anyone). */
  readonly crashLeaderAfterCommit: number;
  /** Bug hunting: chance that a new leader crashes right after persisting its first entry (before sending it). */
  readonly crashLeaderAfterElection: number;
}

export type NemesisEvent =
  | { readonly kind: "act" }
  | { readonly kind: "healPartition"; readonly epoch: number }
  | { readonly kind: "clearPathFaults"; readonly epoch: number }
  | { readonly kind: "unslow"; readonly node: NodeId; readonly epoch: number };

export interface NemesisEnvironment {
  readonly cluster: Cluster;
  readonly network: Network;
  readonly random: Prng;
  nowMs(): number;
  trace(text: string): void;
  schedule(atMs: number, event: NemesisEvent): void;
  /** The node that leads with the highest term, as the nodes themselves report it. */
  leader(): SimNode | null;
  /** Creates and starts a node that will join as a learner; null when no more nodes may be created. */
  createJoiner(): SimNode | null;
  noteProposal(proposal: AcceptedProposal): void;
  afterInput(node: SimNode): void;
}

export class Nemesis {
  private partitionEpoch = 0;
  private pathFaultEpoch = 0;
  private readonly slowEpochs = new Map<NodeId, number>();
  private active = true;
  actions = 0;

  constructor(
    readonly options: FaultOptions,
    private readonly env: NemesisEnvironment,
    /** A node's tick period stays within baseTickMs * (1 +- maxTickSkew). */
    private readonly clock: { readonly baseTickMs: number; readonly maxTickSkew: number },
  ) {}

  /** The first action, at a random moment. */
  start(): void {
    this.env.schedule(this.env.nowMs() + this.nextIntervalMs(), { kind: "act" });
  }

  /** Liveness mode: no further faults; the caller heals what is in place. */
  stop(): void {
    this.active = false;
  }

  handle(event: NemesisEvent): void {
    switch (event.kind) {
      case "act":
        if (!this.active) return;
        this.act();
        this.env.schedule(this.env.nowMs() + this.nextIntervalMs(), { kind: "act" });
        return;
      case "healPartition":
        if (event.epoch !== this.partitionEpoch || this.env.network.blockedPathCount === 0) return;
        this.env.network.healPartitions();
        this.env.trace("nemesis: partition healed");
        return;
      case "clearPathFaults":
        if (event.epoch !== this.pathFaultEpoch) return;
        this.env.network.clearPathFaults();
        this.env.trace("nemesis: degraded paths restored");
        return;
      case "unslow": {
        if (this.slowEpochs.get(event.node) !== event.epoch) return;
        const node = this.env.cluster.nodes.get(event.node);
        if (node === undefined) return;
        node.readyDelayMs = 0;
        this.env.trace(`nemesis: ${node.id} handles its Readys promptly again`);
        if (node.up) this.env.afterInput(node);
        return;
      }
    }
  }

  private nextIntervalMs(): number {
    return this.env.random.between(1, 2 * this.options.meanIntervalMs);
  }

  private act(): void {
    const options = this.options;
    const candidates: (() => boolean)[] = [];
    if (options.crashes) candidates.push(() => this.crashSomeone(false));
    if (options.tornCrashes) candidates.push(() => this.crashSomeone(true));
    if (options.partitions) candidates.push(() => this.partition());
    if (options.pathFaults) candidates.push(() => this.degradePaths());
    if (options.slowNodes) candidates.push(() => this.slowSomeone());
    if (options.membershipChanges) candidates.push(() => this.changeMembership());
    if (options.transfers) candidates.push(() => this.transferLeadership());
    if (options.clockDrift && this.clock.maxTickSkew > 0) candidates.push(() => this.driftClock());
    if (candidates.length === 0) return;
    if (this.env.random.pick(candidates)()) this.actions += 1;
  }

  private upNodes(): SimNode[] {
    return [...this.env.cluster.nodes.values()].filter((node) => node.up);
  }

  private downCount(): number {
    return [...this.env.cluster.nodes.values()].filter((node) => !node.up).length;
  }

  private targetNode(): SimNode | null {
    const leader = this.env.leader();
    if (leader !== null && this.env.random.chance(this.options.leaderTargeting)) return leader;
    const up = this.upNodes();
    return up.length === 0 ? null : this.env.random.pick(up);
  }

  private crashSomeone(torn: boolean): boolean {
    if (this.downCount() >= this.options.maxDownNodes) return false;
    const node = this.targetNode();
    if (node === null) return false;
    if (torn) {
      const point: TornCrashPoint = this.env.random.pick(["afterPersist", "afterSend", "midApply"] as const);
      node.tornCrash = { point, applyCount: this.env.random.between(1, 4) };
      this.env.trace(`nemesis: ${node.id} will crash while handling a Ready (${point})`);
      return true;
    }
    this.env.cluster.crash(node, "nemesis");
    return true;
  }

  /** How long a crashed node stays down (safety phase). */
  drawDowntimeMs(): number {
    return this.env.random.between(this.options.minDownMs, this.options.maxDownMs);
  }

  /** Bug hunting (crashAfterVote): called when a node persisted a new vote. */
  maybeCrashAfterVote(node: SimNode): void {
    if (!this.active || this.options.crashAfterVote === 0) return;
    if (this.downCount() >= this.options.maxDownNodes) return;
    if (!this.env.random.chance(this.options.crashAfterVote)) return;
    node.tornCrash = { point: "afterSend", applyCount: 1 };
  }

  /** Bug hunting (crashLeaderAfterCommit): called when a leader persisted a higher commit index. */
  maybeCrashAfterCommit(node: SimNode): void {
    if (!this.active || this.options.crashLeaderAfterCommit === 0) return;
    if (this.downCount() >= this.options.maxDownNodes) return;
    if (!this.env.random.chance(this.options.crashLeaderAfterCommit)) return;
    node.tornCrash = { point: "afterPersist", applyCount: 1 };
  }

  /** Bug hunting (crashLeaderAfterElection): called when a node's Ready says it became leader. */
  maybeCrashAfterElection(node: SimNode): void {
    if (!this.active || this.options.crashLeaderAfterElection === 0) return;
    if (this.downCount() >= this.options.maxDownNodes) return;
    if (!this.env.random.chance(this.options.crashLeaderAfterElection)) return;
    node.tornCrash = { point: "afterPersist", applyCount: 1 };
  }

  private partition(): boolean {
    const random = this.env.random;
    const network = this.env.network;
    const nodes = this.upNodes().map((node) => node.id);
    if (nodes.length < 2) return false;
    network.healPartitions();
    const leader = this.env.leader()?.id ?? null;
    const kind = random.pick(["isolateLeader", "isolateOne", "halves", "oneWay", "bridge", "randomCuts"] as const);
    let description: string;
    switch (kind) {
      case "isolateLeader":
      case "isolateOne": {
        const victim = kind === "isolateLeader" && leader !== null ? leader : random.pick(nodes);
        network.separate([victim], nodes.filter((id) => id !== victim));
        description = `isolate ${victim}${victim === leader ? " (leader)" : ""}`;
        break;
      }
      case "halves": {
        const shuffled = random.shuffled(nodes);
        const cut = random.between(1, shuffled.length - 1);
        const left = shuffled.slice(0, cut);
        const right = shuffled.slice(cut);
        network.separate(left, right);
        description = `halves [${left.join(",")}] | [${right.join(",")}]`;
        break;
      }
      case "oneWay": {
        const victim = leader !== null && random.chance(this.options.leaderTargeting) ? leader : random.pick(nodes);
        const inbound = random.chance(0.5);
        for (const other of nodes) {
          if (other === victim) continue;
          if (inbound) network.block(other, victim);
          else network.block(victim, other);
        }
        description = inbound ? `${victim} hears no one (it can still send)` : `${victim} is heard by no one (it can still receive)`;
        break;
      }
      case "bridge": {
        if (nodes.length < 3) return false;
        const shuffled = random.shuffled(nodes);
        const bridge = shuffled[0] as NodeId;
        const rest = shuffled.slice(1);
        const cut = random.between(1, rest.length - 1);
        const left = rest.slice(0, cut);
        const right = rest.slice(cut);
        network.separate(left, right);
        description = `bridge ${bridge} connects [${left.join(",")}] and [${right.join(",")}], which cannot see each other`;
        break;
      }
      case "randomCuts": {
        const cuts: string[] = [];
        for (const from of nodes) {
          for (const to of nodes) {
            if (from !== to && random.chance(0.3)) {
              network.block(from, to);
              cuts.push(`${from}>${to}`);
            }
          }
        }
        description = `random cuts ${cuts.join(" ") || "(none)"}`;
        break;
      }
    }
    this.partitionEpoch += 1;
    const durationMs = random.between(this.options.minPartitionMs, this.options.maxPartitionMs);
    this.env.schedule(this.env.nowMs() + durationMs, { kind: "healPartition", epoch: this.partitionEpoch });
    this.env.trace(`nemesis: partition ${description} for ${durationMs}ms`);
    return true;
  }

  private degradePaths(): boolean {
    const random = this.env.random;
    const nodes = this.upNodes().map((node) => node.id);
    if (nodes.length < 2) return false;
    const count = random.between(1, 3);
    const described: string[] = [];
    for (let i = 0; i < count; i += 1) {
      const [from, to] = random.shuffled(nodes) as [NodeId, NodeId];
      if (random.chance(0.5)) {
        const dropProbability = random.between(30, 90) / 100;
        this.env.network.setPathFault(from, to, { kind: "flaky", dropProbability });
        described.push(`${from}>${to} drops ${Math.round(dropProbability * 100)}%`);
      } else {
        const factor = random.between(3, 20);
        this.env.network.setPathFault(from, to, { kind: "slow", factor });
        described.push(`${from}>${to} ${factor}x slower`);
      }
    }
    this.pathFaultEpoch += 1;
    const durationMs = random.between(this.options.minPartitionMs, this.options.maxPartitionMs);
    this.env.schedule(this.env.nowMs() + durationMs, { kind: "clearPathFaults", epoch: this.pathFaultEpoch });
    this.env.trace(`nemesis: degraded paths ${described.join(", ")} for ${durationMs}ms`);
    return true;
  }

  private slowSomeone(): boolean {
    const node = this.targetNode();
    if (node === null) return false;
    const random = this.env.random;
    node.readyDelayMs = random.between(2, 8) * node.tickPeriodMs;
    const epoch = (this.slowEpochs.get(node.id) ?? 0) + 1;
    this.slowEpochs.set(node.id, epoch);
    const durationMs = random.between(this.options.minPartitionMs, this.options.maxPartitionMs);
    this.env.schedule(this.env.nowMs() + durationMs, { kind: "unslow", node: node.id, epoch });
    this.env.trace(`nemesis: ${node.id} handles its Readys ${node.readyDelayMs}ms late for ${durationMs}ms`);
    return true;
  }

  private changeMembership(): boolean {
    const leader = this.env.leader();
    const core = leader?.core ?? null;
    if (leader === null || core === null) return false;
    const status = leader.lastStatus;
    if (status === null) return false;
    const change = this.chooseChange(status);
    if (change === null) return false;
    const result = this.env.cluster.guard(leader, "proposeConfigChange", () => core.proposeConfigChange(change));
    if (result === null) return false;
    if (!result.ok) {
      this.env.trace(`nemesis: ${leader.id} refused ${change.kind} ${change.node}: ${result.error.code}`);
      this.env.afterInput(leader);
      return false;
    }
    const what = `${change.kind} ${change.node}`;
    if (change.kind === "addLearner") this.env.cluster.node(change.node).joinProposed = true;
    this.env.noteProposal({ index: result.index, term: result.term, node: leader.id, what, acceptedAtMs: this.env.nowMs() });
    this.env.trace(`nemesis: ${leader.id} proposes ${what} at ${result.index}:${result.term}`);
    this.env.afterInput(leader);
    return true;
  }

  private chooseChange(status: NodeStatus): ConfigChange | null {
    const random = this.env.random;
    const membership: Membership = status.membership;
    const members = membership.voters.length + membership.learners.length;
    const caughtUp = status.replicas.filter((replica) => replica.isLearner && replica.status === "ONLINE");
    if (caughtUp.length > 0 && random.chance(0.7)) return { kind: "promote", node: random.pick(caughtUp).id };
    if (members < this.options.maxMembers && random.chance(0.5)) {
      const joiner = this.env.createJoiner();
      if (joiner !== null) return { kind: "addLearner", node: joiner.id };
    }
    if (membership.learners.length > 0 && random.chance(0.3)) return { kind: "remove", node: random.pick(membership.learners) };
    if (membership.voters.length > 1) return { kind: "remove", node: random.pick(membership.voters) };
    return null;
  }

  private transferLeadership(): boolean {
    const leader = this.env.leader();
    const core = leader?.core ?? null;
    if (leader === null || core === null || leader.lastStatus === null) return false;
    const others = leader.lastStatus.membership.voters.filter((id) => id !== leader.id);
    if (others.length === 0) return false;
    const useStepDown = this.env.random.chance(0.3);
    const target = this.env.random.pick(others);
    const result = this.env.cluster.guard(leader, "transferLeadership", () => (useStepDown ? core.stepDown() : core.transferLeadership(target)));
    this.env.trace(`nemesis: ${leader.id} ${useStepDown ? "steps down" : `transfers leadership to ${target}`}: ${result === null ? "threw" : result.ok ? "started" : result.error.code}`);
    this.env.afterInput(leader);
    return result?.ok === true;
  }

  private driftClock(): boolean {
    const node = this.targetNode();
    if (node === null) return false;
    const skewPermille = Math.round(this.clock.maxTickSkew * 1000);
    const before = node.tickPeriodMs;
    node.tickPeriodMs = Math.max(1, Math.round(this.clock.baseTickMs * (1 + this.env.random.between(-skewPermille, skewPermille) / 1000)));
    this.env.trace(`nemesis: ${node.id}'s clock now ticks every ${node.tickPeriodMs}ms (was ${before}ms)`);
    return true;
  }

  /** Liveness mode: lifts every fault the nemesis put in place (partitions and paths are the network's heal()). */
  healNodes(): void {
    for (const node of this.env.cluster.nodes.values()) {
      node.readyDelayMs = 0;
      node.tornCrash = null;
    }
    this.slowEpochs.clear();
  }
}
