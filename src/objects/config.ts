// From the cluster configuration (milliseconds, names) to what the pure core needs (ticks, ids).
import type { RaftConfig, RandomSource } from "../replication/types";
import type { ClusterConfig, MemberConfig } from "./cluster-types";
import { parseDatabaseClusterName } from "./lifecycle/names";
import { validateConsistencySettings } from "./monitor/config";
import { electionTimeoutTicks, MIN_ELECTION_TICKS, offlineAfterTicks } from "./timing";

/** Bounds on the configuration a cluster accepts; outside them timing or storage would misbehave. */
export const CONFIG_LIMITS = {
  minHeartbeatIntervalMs: 10,
  maxHeartbeatIntervalMs: 10_000,
  minElectionTicks: MIN_ELECTION_TICKS,
  maxElectionTimeoutMs: 120_000,
  maxMembers: 9,
  maxNameLength: 64,
} as const;

export const DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES = 1000;

const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_.-]*$/;
const LOCATION_HINTS = new Set(["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me"]);

/** The Durable Object name of a node: ids derive from it. */
export function objectName(options: { cluster: string; node: string }): string {
  return `${options.cluster}/${options.node}`;
}

/** Throws a clear error for anything a cluster cannot run with. */
export function validateClusterConfig(config: ClusterConfig): void {
  // A database of the deployment (lifecycle/names.ts) has a derived name; anything else is a plain name.
  if (typeof config.name !== "string" || parseDatabaseClusterName(config.name) === null) {
    validateName("cluster name", config.name);
  }
  if (config.members.length === 0) {
    throw new Error("cluster configuration: at least one member is required");
  }
  if (config.members.length > CONFIG_LIMITS.maxMembers) {
    throw new Error(`cluster configuration: at most ${CONFIG_LIMITS.maxMembers} members, got ${config.members.length}`);
  }
  const seen = new Set<string>();
  for (const member of config.members) {
    validateMember(member);
    if (seen.has(member.name)) {
      throw new Error(`cluster configuration: member "${member.name}" is listed twice`);
    }
    seen.add(member.name);
  }
  const { heartbeatIntervalMs, electionTimeoutMs } = config;
  if (
    !Number.isInteger(heartbeatIntervalMs) ||
    heartbeatIntervalMs < CONFIG_LIMITS.minHeartbeatIntervalMs ||
    heartbeatIntervalMs > CONFIG_LIMITS.maxHeartbeatIntervalMs
  ) {
    throw new Error(
      `cluster configuration: heartbeat interval must be an integer from ${CONFIG_LIMITS.minHeartbeatIntervalMs} to ${CONFIG_LIMITS.maxHeartbeatIntervalMs} ms, got ${heartbeatIntervalMs}`,
    );
  }
  if (
    !Number.isInteger(electionTimeoutMs) ||
    electionTimeoutMs < heartbeatIntervalMs * CONFIG_LIMITS.minElectionTicks ||
    electionTimeoutMs > CONFIG_LIMITS.maxElectionTimeoutMs
  ) {
    throw new Error(
      `cluster configuration: election timeout must be an integer of at least ${CONFIG_LIMITS.minElectionTicks} heartbeat intervals (${heartbeatIntervalMs * CONFIG_LIMITS.minElectionTicks} ms) and at most ${CONFIG_LIMITS.maxElectionTimeoutMs} ms, got ${electionTimeoutMs}`,
    );
  }
  const threshold = config.snapshotThresholdEntries;
  if (threshold !== undefined && (!Number.isInteger(threshold) || threshold < 2 || threshold > 1_000_000)) {
    throw new Error(
      `cluster configuration: snapshotThresholdEntries must be an integer from 2 to 1000000, got ${threshold}`,
    );
  }
  validateConsistencySettings(config.consistency);
}

export function validateMember(member: MemberConfig): void {
  validateName("member name", member.name);
  if (member.locationHint !== undefined && !LOCATION_HINTS.has(member.locationHint)) {
    throw new Error(
      `member "${member.name}": unknown location hint "${member.locationHint}" (one of ${[...LOCATION_HINTS].join(", ")})`,
    );
  }
}

function validateName(what: string, name: string): void {
  if (
    typeof name !== "string" ||
    name.length === 0 ||
    name.length > CONFIG_LIMITS.maxNameLength ||
    !NAME_PATTERN.test(name)
  ) {
    throw new Error(
      `${what} "${String(name)}" is invalid: use 1 to ${CONFIG_LIMITS.maxNameLength} letters, digits, '_', '.' or '-', starting with a letter or digit`,
    );
  }
}

export function raftConfigFor(options: { config: ClusterConfig; node: string; random: RandomSource }): RaftConfig {
  return {
    id: options.node,
    electionTimeoutTicks: electionTimeoutTicks(options.config),
    heartbeatIntervalTicks: 1,
    checkQuorum: true,
    leaseRead: false,
    maxInflightMessages: 64,
    maxMessageBytes: 1024 * 1024,
    maxPendingProposals: 1024,
    snapshotThresholdEntries: options.config.snapshotThresholdEntries ?? DEFAULT_SNAPSHOT_THRESHOLD_ENTRIES,
    laggingThresholdEntries: 100,
    offlineAfterTicks: offlineAfterTicks(options.config),
    // JOINING -> ONLINE waits for the replica's schema hash to equal the leader's, not only for its log.
    requireReplicaReady: true,
    random: options.random,
  };
}
