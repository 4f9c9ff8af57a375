// The simulated network: one directed path per pair of nodes, each with its own latency, jitter, loss,
// duplication and reordering, plus partitions (any set of blocked directed paths). It only decides the fate of
// each message; the scheduler in run.ts carries the deliveries out.

import type { Message, NodeId } from "../../src/replication/types.js";
import type { Prng } from "./prng.js";

/** A message on the wire. An InstallSnapshot carries the state-machine image beside the core's message. */
export interface Envelope {
  readonly message: Message;
  readonly image: ReadonlyMap<string, string> | null;
  /** The sender's incarnation, so that transport reports never reach a later incarnation of the sender. */
  readonly senderIncarnation: number;
}

export interface NetworkProfile {
  readonly minLatencyMs: number;
  readonly maxLatencyMs: number;
  readonly maxJitterMs: number;
  readonly maxDropProbability: number;
  readonly maxDuplicateProbability: number;
  /** Chance that a message is held back long enough to overtake (be overtaken by) later ones. */
  readonly maxReorderProbability: number;
}

interface PathState {
  latencyMs: number;
  jitterMs: number;
  dropProbability: number;
  duplicateProbability: number;
  reorderProbability: number;
}

export type RouteDecision =
  | { readonly kind: "deliver"; readonly delaysMs: readonly number[] }
  | { readonly kind: "drop"; readonly reason: "partition" | "loss" };

export const HEALTHY_PROFILE: NetworkProfile = {
  minLatencyMs: 1,
  maxLatencyMs: 5,
  maxJitterMs: 2,
  maxDropProbability: 0,
  maxDuplicateProbability: 0,
  maxReorderProbability: 0,
};

/** Degradations the nemesis can put on one path for a while. */
export type PathFault =
  { readonly kind: "flaky"; readonly dropProbability: number } | { readonly kind: "slow"; readonly factor: number };

export class Network {
  private readonly paths = new Map<string, PathState>();
  private readonly pathFaults = new Map<string, PathFault>();
  private readonly blocked = new Set<string>();
  private profile: NetworkProfile;

  constructor(
    private readonly random: Prng,
    profile: NetworkProfile,
  ) {
    assertProfile(profile);
    this.profile = profile;
  }

  /** Decides what happens to one message sent now from `from` to `to`. */
  route(from: NodeId, to: NodeId): RouteDecision {
    const key = pathKey(from, to);
    if (this.blocked.has(key)) {
      return { kind: "drop", reason: "partition" };
    }
    const path = this.pathState(key);
    const fault = this.pathFaults.get(key);
    const dropProbability =
      fault?.kind === "flaky" ? Math.max(fault.dropProbability, path.dropProbability) : path.dropProbability;
    if (this.random.chance(dropProbability)) {
      return { kind: "drop", reason: "loss" };
    }
    const copies = this.random.chance(path.duplicateProbability) ? 2 : 1;
    const delaysMs: number[] = [];
    for (let copy = 0; copy < copies; copy += 1) {
      delaysMs.push(this.delayMs(path, fault));
    }
    return { kind: "deliver", delaysMs };
  }

  /** A message already in flight is lost if its path was cut after it left. */
  isConnected(from: NodeId, to: NodeId): boolean {
    return !this.blocked.has(pathKey(from, to));
  }

  block(from: NodeId, to: NodeId): void {
    if (from !== to) {
      this.blocked.add(pathKey(from, to));
    }
  }

  blockBothWays(left: NodeId, right: NodeId): void {
    this.block(left, right);
    this.block(right, left);
  }

  /** Cuts every path between the two groups (both directions). */
  separate(groupA: readonly NodeId[], groupB: readonly NodeId[]): void {
    for (const a of groupA) {
      for (const b of groupB) {
        this.blockBothWays(a, b);
      }
    }
  }

  healPartitions(): void {
    this.blocked.clear();
  }

  setPathFault(from: NodeId, to: NodeId, fault: PathFault): void {
    this.pathFaults.set(pathKey(from, to), fault);
  }

  clearPathFaults(): void {
    this.pathFaults.clear();
  }

  get blockedPathCount(): number {
    return this.blocked.size;
  }

  describePartitions(): string {
    return this.blocked.size === 0 ? "none" : [...this.blocked].sort().join(" ");
  }

  /** Liveness mode: no partitions, no degraded paths, and every path redrawn from a healthy profile. */
  heal(healthy: NetworkProfile): void {
    assertProfile(healthy);
    this.healPartitions();
    this.clearPathFaults();
    this.profile = healthy;
    this.paths.clear();
  }

  private pathState(key: string): PathState {
    const existing = this.paths.get(key);
    if (existing !== undefined) {
      return existing;
    }
    const profile = this.profile;
    const created: PathState = {
      latencyMs: this.random.between(profile.minLatencyMs, profile.maxLatencyMs),
      jitterMs: this.random.between(0, profile.maxJitterMs),
      dropProbability: (this.random.nextInt(1001) / 1000) * profile.maxDropProbability,
      duplicateProbability: (this.random.nextInt(1001) / 1000) * profile.maxDuplicateProbability,
      reorderProbability: (this.random.nextInt(1001) / 1000) * profile.maxReorderProbability,
    };
    this.paths.set(key, created);
    return created;
  }

  private delayMs(path: PathState, fault: PathFault | undefined): number {
    const factor = fault?.kind === "slow" ? fault.factor : 1;
    let delay = path.latencyMs * factor + this.random.between(0, path.jitterMs);
    if (this.random.chance(path.reorderProbability)) {
      delay += this.random.between(1, 4 * (path.latencyMs + path.jitterMs) * factor + 4);
    }
    return Math.max(1, Math.round(delay));
  }
}

function pathKey(from: NodeId, to: NodeId): string {
  return `${from}>${to}`;
}

function assertProfile(profile: NetworkProfile): void {
  const probabilities = [profile.maxDropProbability, profile.maxDuplicateProbability, profile.maxReorderProbability];
  if (probabilities.some((p) => !(p >= 0 && p <= 1))) {
    throw new RangeError("network probabilities are in [0, 1]");
  }
  if (!(profile.minLatencyMs >= 1 && profile.maxLatencyMs >= profile.minLatencyMs && profile.maxJitterMs >= 0)) {
    throw new RangeError(
      `bad latency range [${profile.minLatencyMs}, ${profile.maxLatencyMs}] jitter ${profile.maxJitterMs}`,
    );
  }
}
