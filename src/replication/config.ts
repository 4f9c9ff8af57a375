// Validation of RaftConfig and the defaults of its optional knobs.
import type { RaftConfig } from "./types.js";

/** Thrown by validateRaftConfig; the message lists every problem found. */
export class RaftConfigError extends Error {
  constructor(readonly problems: readonly string[]) {
    super(`invalid Raft configuration: ${problems.join("; ")}`);
    this.name = "RaftConfigError";
  }
}

/** RaftConfig with every optional knob resolved to a number. */
export interface ResolvedRaftConfig extends RaftConfig {
  readonly maxApplyEntriesPerReady: number;
  readonly maxPendingReads: number;
  readonly readTimeoutTicks: number;
  readonly leaseSafetyMarginTicks: number;
  readonly snapshotRetryTicks: number;
  readonly commitPreviousTermByCounting: boolean;
  readonly requireReplicaReady: boolean;
}

export const DEFAULT_MAX_APPLY_ENTRIES_PER_READY = 256;
export const DEFAULT_MAX_PENDING_READS = 1024;

/** Throws RaftConfigError listing every problem of `config`. */
export function validateRaftConfig(config: RaftConfig): void {
  const problems: string[] = [];
  const requireInteger = (name: string, value: unknown, min: number): void => {
    if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
      problems.push(`${name} must be an integer >= ${min}, got ${String(value)}`);
    }
  };
  const optionalInteger = (name: string, value: unknown, min: number): void => {
    if (value !== undefined) {
      requireInteger(name, value, min);
    }
  };

  if (typeof config !== "object" || config === null) {
    throw new RaftConfigError(["the configuration must be an object"]);
  }
  if (typeof config.id !== "string" || config.id.length === 0) {
    problems.push(`id must be a non-empty string, got ${JSON.stringify(config.id)}`);
  }
  requireInteger("electionTimeoutTicks", config.electionTimeoutTicks, 2);
  requireInteger("heartbeatIntervalTicks", config.heartbeatIntervalTicks, 1);
  if (
    Number.isSafeInteger(config.electionTimeoutTicks) &&
    Number.isSafeInteger(config.heartbeatIntervalTicks) &&
    config.heartbeatIntervalTicks >= config.electionTimeoutTicks
  ) {
    problems.push(
      `heartbeatIntervalTicks (${config.heartbeatIntervalTicks}) must be below electionTimeoutTicks (${config.electionTimeoutTicks}), or followers time out between heartbeats`,
    );
  }
  if (typeof config.checkQuorum !== "boolean") {
    problems.push("checkQuorum must be a boolean");
  }
  if (typeof config.leaseRead !== "boolean") {
    problems.push("leaseRead must be a boolean");
  }
  if (config.leaseRead === true && config.checkQuorum !== true) {
    problems.push(
      "leaseRead requires checkQuorum: without it a deposed leader could keep serving reads from its lease",
    );
  }
  requireInteger("maxInflightMessages", config.maxInflightMessages, 1);
  requireInteger("maxMessageBytes", config.maxMessageBytes, 1);
  requireInteger("maxPendingProposals", config.maxPendingProposals, 1);
  requireInteger("snapshotThresholdEntries", config.snapshotThresholdEntries, 1);
  requireInteger("laggingThresholdEntries", config.laggingThresholdEntries, 0);
  requireInteger("offlineAfterTicks", config.offlineAfterTicks, 1);
  if (typeof config.random !== "object" || config.random === null || typeof config.random.nextInt !== "function") {
    problems.push("random must be a RandomSource (an object with nextInt(maxExclusive))");
  }
  optionalInteger("maxApplyEntriesPerReady", config.maxApplyEntriesPerReady, 1);
  optionalInteger("maxPendingReads", config.maxPendingReads, 1);
  optionalInteger("readTimeoutTicks", config.readTimeoutTicks, 1);
  optionalInteger("leaseSafetyMarginTicks", config.leaseSafetyMarginTicks, 0);
  if (
    config.leaseSafetyMarginTicks !== undefined &&
    Number.isSafeInteger(config.electionTimeoutTicks) &&
    config.leaseSafetyMarginTicks >= config.electionTimeoutTicks
  ) {
    problems.push(
      `leaseSafetyMarginTicks (${config.leaseSafetyMarginTicks}) must be below electionTimeoutTicks (${config.electionTimeoutTicks}), or the lease is empty`,
    );
  }
  optionalInteger("snapshotRetryTicks", config.snapshotRetryTicks, 1);
  if (
    config.unsafeTestingFaults !== undefined &&
    (typeof config.unsafeTestingFaults !== "object" || config.unsafeTestingFaults === null)
  ) {
    problems.push("unsafeTestingFaults must be an object when set");
  }
  if (problems.length > 0) {
    throw new RaftConfigError(problems);
  }
}

/** Validates `config` and fills in the defaults of the optional knobs. */
export function resolveRaftConfig(config: RaftConfig): ResolvedRaftConfig {
  validateRaftConfig(config);
  return {
    ...config,
    maxApplyEntriesPerReady: config.maxApplyEntriesPerReady ?? DEFAULT_MAX_APPLY_ENTRIES_PER_READY,
    maxPendingReads: config.maxPendingReads ?? DEFAULT_MAX_PENDING_READS,
    readTimeoutTicks: config.readTimeoutTicks ?? 4 * config.electionTimeoutTicks,
    leaseSafetyMarginTicks: config.leaseSafetyMarginTicks ?? Math.ceil(config.electionTimeoutTicks / 5),
    snapshotRetryTicks: config.snapshotRetryTicks ?? 20 * config.electionTimeoutTicks,
    commitPreviousTermByCounting: config.unsafeTestingFaults?.commitPreviousTermByCounting === true,
    requireReplicaReady: config.requireReplicaReady === true,
  };
}
