// The nemesis: the fault schedule of the safety phase. At random moments it crashes nodes (between events, or at a
// chosen storage operation inside one: the platform then loses that event's uncommitted writes), fails one storage
// operation or one state-machine apply (the runtime breaks and the object reloads it), leaves a stale instance
// running beside a restarted one, partitions the network and degrades paths, and delivers alarms twice or late.
// Which kinds are enabled is drawn per seed (swarm testing), so that some seeds explore one kind in depth.

import type { NodeId } from "../../src/replication/types.js";
import type { Network } from "./network.js";
import type { Prng } from "./prng.js";

export interface FaultOptions {
  readonly crashes: boolean;
  /** Crash at a storage operation inside an event (between two steps of a Ready). */
  readonly crashesInsideEvents: boolean;
  readonly storageErrors: boolean;
  /**
   * Storage errors also on KV deletes. Off by default (not yet shown safe everywhere). KV puts can fail anywhere, the
   * Raft log's and hard state's among them: a Ready, a compaction and a snapshot's log reset are each written in one
   * transaction (before, a failed write half-way left a log that no longer loaded). `npm run sim --
   * --storage-errors-everywhere`.
   */
  readonly storageErrorsEverywhere: boolean;
  readonly stateMachineErrors: boolean;
  /** A crashed instance keeps running, fenced, beside the restarted one. */
  readonly staleInstances: boolean;
  /** A node loses its storage and comes back empty (never while another wiped node is still catching up). */
  readonly storageWipes: boolean;
  /**
   * Wipes also where some committed entries live on the wiped node and a minority of the others (not drawn; the
   * finding-9 hunt sets it). Safety must hold (a wiped node votes only once its census concluded and, where a log
   * exists, a leader caught it up); progress is not promised, so such runs have no liveness phase.
   */
  readonly storageWipesAnywhere?: boolean;
  readonly partitions: boolean;
  readonly pathFaults: boolean;
  /** Alarms delivered twice, or late. */
  readonly alarmFaults: boolean;
  /** The admin step-down: the leader hands leadership to another node (TimeoutNow). */
  readonly transfers: boolean;
  /** A node runs late for a while: every event of its object (timers, alarm, RPCs, calls) is handled later. */
  readonly slowNodes: boolean;
  readonly meanIntervalMs: number;
  readonly leaderTargeting: number;
  readonly minDownMs: number;
  readonly maxDownMs: number;
  readonly minPartitionMs: number;
  readonly maxPartitionMs: number;
  readonly maxDownNodes: number;
}

export type FaultKind =
  | "crash"
  | "crashInsideEvent"
  | "storageError"
  | "stateMachineError"
  | "staleInstance"
  | "storageWipe"
  | "partition"
  | "pathFault"
  | "alarmFault"
  | "transfer"
  | "slowNode";

export type NemesisEvent =
  | { readonly kind: "act" }
  | { readonly kind: "healPartition"; readonly epoch: number }
  | { readonly kind: "clearPathFaults"; readonly epoch: number };

/** What the nemesis may do to the simulation. */
export interface NemesisEnvironment {
  readonly network: Network;
  readonly random: Prng;
  nowMs(): number;
  trace(text: string): void;
  schedule(atMs: number, event: NemesisEvent): void;
  leader(): NodeId | null;
  upNodes(): NodeId[];
  downCount(): number;
  crash(node: NodeId, options: { keepStale: boolean }): void;
  /** The node's storage is lost: it crashes and comes back empty. */
  wipe(node: NodeId): void;
  /** Whether wiping `node` now leaves every committed entry on a majority of the others (so that it is survivable). */
  mayWipe(node: NodeId): boolean;
  /** Asks the leader to step down (an admin leadership transfer). */
  transfer(leader: NodeId): void;
  /** Every event of the node is handled up to `lateByMs` late until `untilMs`. */
  slowDown(node: NodeId, options: { lateByMs: number; untilMs: number }): void;
  /** Arms a fault for the node's next storage operations: crash or fail at the `afterOps`-th one. */
  armStorageFault(node: NodeId, fault: { kind: "crash" | "error"; afterOps: number }): void;
  armApplyFault(node: NodeId): void;
  /** From now on, alarms of this node fire twice or late, for a while. */
  disturbAlarms(node: NodeId, options: { duplicate: boolean; lateByMs: number; untilMs: number }): void;
}

export class Nemesis {
  private partitionEpoch = 0;
  private pathFaultEpoch = 0;
  private active = true;
  readonly counts: Record<FaultKind, number> = {
    crash: 0,
    crashInsideEvent: 0,
    storageError: 0,
    stateMachineError: 0,
    staleInstance: 0,
    storageWipe: 0,
    partition: 0,
    pathFault: 0,
    alarmFault: 0,
    transfer: 0,
    slowNode: 0,
  };

  constructor(
    readonly options: FaultOptions,
    private readonly env: NemesisEnvironment,
  ) {}

  get actions(): number {
    return Object.values(this.counts).reduce((sum, count) => sum + count, 0);
  }

  start(): void {
    this.env.schedule(this.env.nowMs() + this.nextIntervalMs(), { kind: "act" });
  }

  stop(): void {
    this.active = false;
  }

  handle(event: NemesisEvent): void {
    switch (event.kind) {
      case "act":
        if (!this.active) {
          return;
        }
        this.act();
        this.env.schedule(this.env.nowMs() + this.nextIntervalMs(), { kind: "act" });
        return;
      case "healPartition":
        if (!this.active || event.epoch !== this.partitionEpoch || this.env.network.blockedPathCount === 0) {
          return;
        }
        this.env.network.healPartitions();
        this.env.trace("nemesis: partition healed");
        return;
      case "clearPathFaults":
        if (!this.active || event.epoch !== this.pathFaultEpoch) {
          return;
        }
        this.env.network.clearPathFaults();
        this.env.trace("nemesis: degraded paths restored");
        return;
    }
  }

  private nextIntervalMs(): number {
    return this.env.random.between(1, 2 * this.options.meanIntervalMs);
  }

  private act(): void {
    const options = this.options;
    const candidates: [FaultKind, () => boolean][] = [];
    if (options.crashes) {
      candidates.push(["crash", () => this.crashSomeone(false)]);
    }
    if (options.staleInstances) {
      candidates.push(["staleInstance", () => this.crashSomeone(true)]);
    }
    if (options.storageWipes) {
      candidates.push(["storageWipe", () => this.wipeSomeone()]);
    }
    if (options.crashesInsideEvents) {
      candidates.push(["crashInsideEvent", () => this.armStorage("crash")]);
    }
    if (options.storageErrors) {
      candidates.push(["storageError", () => this.armStorage("error")]);
    }
    if (options.stateMachineErrors) {
      candidates.push(["stateMachineError", () => this.armApply()]);
    }
    if (options.partitions) {
      candidates.push(["partition", () => this.partition()]);
    }
    if (options.pathFaults) {
      candidates.push(["pathFault", () => this.degradePaths()]);
    }
    if (options.alarmFaults) {
      candidates.push(["alarmFault", () => this.disturbAlarms()]);
    }
    if (options.transfers) {
      candidates.push(["transfer", () => this.transferLeadership()]);
    }
    if (options.slowNodes) {
      candidates.push(["slowNode", () => this.slowSomeone()]);
    }
    if (candidates.length === 0) {
      return;
    }
    const [kind, run] = this.env.random.pick(candidates);
    if (run()) {
      this.counts[kind] += 1;
    }
  }

  private targetNode(): NodeId | null {
    const leader = this.env.leader();
    if (leader !== null && this.env.random.chance(this.options.leaderTargeting)) {
      return leader;
    }
    const up = this.env.upNodes();
    return up.length === 0 ? null : this.env.random.pick(up);
  }

  private crashSomeone(keepStale: boolean): boolean {
    if (this.env.downCount() >= this.options.maxDownNodes) {
      return false;
    }
    const node = this.targetNode();
    if (node === null) {
      return false;
    }
    this.env.crash(node, { keepStale });
    return true;
  }

  /** Only where the others keep every committed entry on a majority (see mayWipe); at most three wipes per seed. */
  private wipeSomeone(): boolean {
    if (this.counts.storageWipe >= 3) {
      return false;
    }
    const node = this.targetNode();
    if (node === null || !this.env.mayWipe(node)) {
      return false;
    }
    this.env.wipe(node);
    return true;
  }

  private slowSomeone(): boolean {
    const node = this.targetNode();
    if (node === null) {
      return false;
    }
    const random = this.env.random;
    const lateByMs = random.between(5, 150);
    const untilMs = this.env.nowMs() + random.between(this.options.minPartitionMs, this.options.maxPartitionMs);
    this.env.slowDown(node, { lateByMs, untilMs });
    this.env.trace(`nemesis: ${node} runs up to ${lateByMs}ms late until ${untilMs}ms`);
    return true;
  }

  private transferLeadership(): boolean {
    const leader = this.env.leader();
    if (leader === null) {
      return false;
    }
    this.env.transfer(leader);
    this.env.trace(`nemesis: ${leader} is asked to hand leadership over`);
    return true;
  }

  drawDowntimeMs(): number {
    return this.env.random.between(this.options.minDownMs, this.options.maxDownMs);
  }

  private armStorage(kind: "crash" | "error"): boolean {
    if (kind === "crash" && this.env.downCount() >= this.options.maxDownNodes) {
      return false;
    }
    const node = this.targetNode();
    if (node === null) {
      return false;
    }
    const afterOps = this.env.random.between(1, 12);
    this.env.armStorageFault(node, { kind, afterOps });
    this.env.trace(
      `nemesis: ${node} will ${kind === "crash" ? "crash" : "fail"} at its ${afterOps}th storage operation from now`,
    );
    return true;
  }

  private armApply(): boolean {
    const node = this.targetNode();
    if (node === null) {
      return false;
    }
    this.env.armApplyFault(node);
    this.env.trace(`nemesis: ${node}'s state machine will throw on its next apply`);
    return true;
  }

  private disturbAlarms(): boolean {
    const node = this.targetNode();
    if (node === null) {
      return false;
    }
    const random = this.env.random;
    const duplicate = random.chance(0.5);
    const lateByMs = random.chance(0.5) ? random.between(1, 200) : 0;
    const untilMs = this.env.nowMs() + random.between(this.options.minPartitionMs, this.options.maxPartitionMs);
    this.env.disturbAlarms(node, { duplicate, lateByMs, untilMs });
    this.env.trace(
      `nemesis: ${node}'s alarms fire ${duplicate ? "twice" : "once"}${lateByMs > 0 ? `, up to ${lateByMs}ms late` : ""}, until ${untilMs}ms`,
    );
    return true;
  }

  private partition(): boolean {
    const random = this.env.random;
    const network = this.env.network;
    const nodes = this.env.upNodes();
    if (nodes.length < 2) {
      return false;
    }
    network.healPartitions();
    const leader = this.env.leader();
    const kind = random.pick(["isolateLeader", "isolateOne", "halves", "oneWay", "randomCuts"] as const);
    let description: string;
    switch (kind) {
      case "isolateLeader":
      case "isolateOne": {
        const victim = kind === "isolateLeader" && leader !== null ? leader : random.pick(nodes);
        network.separate(
          [victim],
          nodes.filter((id) => id !== victim),
        );
        description = `isolate ${victim}${victim === leader ? " (leader)" : ""}`;
        break;
      }
      case "halves": {
        const shuffled = random.shuffled(nodes);
        const cut = random.between(1, shuffled.length - 1);
        network.separate(shuffled.slice(0, cut), shuffled.slice(cut));
        description = `halves [${shuffled.slice(0, cut).join(",")}] | [${shuffled.slice(cut).join(",")}]`;
        break;
      }
      case "oneWay": {
        const victim = leader !== null && random.chance(this.options.leaderTargeting) ? leader : random.pick(nodes);
        const inbound = random.chance(0.5);
        for (const other of nodes) {
          if (other === victim) {
            continue;
          }
          if (inbound) {
            network.block(other, victim);
          } else {
            network.block(victim, other);
          }
        }
        description = inbound ? `${victim} hears no one` : `${victim} is heard by no one`;
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
    const nodes = this.env.upNodes();
    if (nodes.length < 2) {
      return false;
    }
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
}
