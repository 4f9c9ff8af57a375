// The replica status machine the leader keeps per peer (JOINING -> ONLINE -> LAGGING/RECONNECTING -> OFFLINE, as
// /api/v1/cluster/health reports it). The status is derived from observations (contact, lag, reported failures) and moved along an explicit
// table of transitions; a move the table does not allow is a bug and throws.
import { invariant } from "./assert.js";
import type { ReplicaStatus } from "./types.js";

/** Allowed transitions; `INITIAL` is the state before the leader assigned any status. */
export const REPLICA_STATUS_TRANSITIONS: Readonly<Record<ReplicaStatus | "INITIAL", readonly ReplicaStatus[]>> = {
  INITIAL: ["JOINING"],
  // Not caught up yet: it either catches up, or loses contact.
  JOINING: ["ONLINE", "RECONNECTING", "OFFLINE"],
  ONLINE: ["LAGGING", "RECONNECTING", "OFFLINE"],
  LAGGING: ["ONLINE", "RECONNECTING", "OFFLINE"],
  // Contact came back: where it stands depends on whether it ever caught up, and on its lag.
  RECONNECTING: ["JOINING", "ONLINE", "LAGGING", "OFFLINE"],
  OFFLINE: ["JOINING", "ONLINE", "LAGGING", "RECONNECTING"],
};

export function isValidReplicaStatusTransition(from: ReplicaStatus | null, to: ReplicaStatus): boolean {
  return REPLICA_STATUS_TRANSITIONS[from ?? "INITIAL"].includes(to);
}

/** Throws RaftInvariantError for a transition the table does not allow (a self-transition is not a transition). */
export function assertReplicaStatusTransition(peer: string, from: ReplicaStatus | null, to: ReplicaStatus): void {
  invariant(
    isValidReplicaStatusTransition(from, to),
    () => `replica ${peer}: invalid status transition ${from ?? "INITIAL"} -> ${to}`,
  );
}

export interface ReplicaObservation {
  readonly caughtUpOnce: boolean;
  readonly lagEntries: number;
  readonly ticksSinceContact: number;
  readonly unreachable: boolean;
}

export interface ReplicaThresholds {
  readonly laggingThresholdEntries: number;
  readonly offlineAfterTicks: number;
}

/** The status the observations call for; the first matching rule wins. */
export function targetReplicaStatus(observation: ReplicaObservation, thresholds: ReplicaThresholds): ReplicaStatus {
  if (observation.ticksSinceContact >= thresholds.offlineAfterTicks) {
    return "OFFLINE";
  }
  if (observation.unreachable) {
    return "RECONNECTING";
  }
  if (!observation.caughtUpOnce) {
    return "JOINING";
  }
  return observation.lagEntries > thresholds.laggingThresholdEntries ? "LAGGING" : "ONLINE";
}

/** True when the transition brings a replica back from a contact problem (counted as a reconnection). */
export function isReconnection(from: ReplicaStatus | null, to: ReplicaStatus): boolean {
  return (from === "RECONNECTING" || from === "OFFLINE") && to !== "RECONNECTING" && to !== "OFFLINE";
}
