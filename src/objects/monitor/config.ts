// The consistency monitor's settings (README "Consistency monitor"): how often the leader proposes a checkpoint,
// how much of the database one checkpoint digests, and whether a diverged replica is repaired by itself.
// Part of the cluster configuration (ClusterConfig.consistency), so every node of a cluster runs with the same.

export interface ConsistencyConfig {
  /** False turns the monitor off: no checkpoint is proposed (checkpoints already in the log still apply). */
  readonly enabled: boolean;
  /** A checkpoint after this many applied entries since the last one... */
  readonly everyEntries: number;
  /** ...or after this long, whichever comes first. */
  readonly everyMs: number;
  /** Most rows one checkpoint digests (besides the schema). */
  readonly sliceRows: number;
  /** Most bytes (of encoded values) one checkpoint digests; the row that crosses the bound is the last. */
  readonly sliceBytes: number;
  /** "auto": the leader replaces a diverged replica's state with its own at once; "manual": an admin does. */
  readonly repair: "auto" | "manual";
}

export const DEFAULT_CONSISTENCY: ConsistencyConfig = {
  enabled: true,
  everyEntries: 1_000,
  everyMs: 5 * 60_000,
  sliceRows: 1_000,
  sliceBytes: 1024 * 1024,
  repair: "auto",
};

export const CONSISTENCY_LIMITS = {
  minEveryEntries: 2,
  maxEveryEntries: 10_000_000,
  minEveryMs: 100,
  maxEveryMs: 24 * 60 * 60_000,
  minSliceRows: 1,
  maxSliceRows: 100_000,
  minSliceBytes: 1024,
  maxSliceBytes: 64 * 1024 * 1024,
} as const;

/** What a cluster configuration may say; unset fields take DEFAULT_CONSISTENCY's. */
export type ConsistencySettings = Partial<ConsistencyConfig>;

function checkInteger(name: string, value: number | undefined, bounds: { min: number; max: number }): void {
  if (value === undefined) {
    return;
  }
  if (!Number.isSafeInteger(value) || value < bounds.min || value > bounds.max) {
    throw new Error(
      `cluster configuration: consistency.${name} must be an integer from ${bounds.min} to ${bounds.max}, got ${String(value)}`,
    );
  }
}

/** Throws a clear error for settings the monitor cannot run with. */
export function validateConsistencySettings(settings: ConsistencySettings | undefined): void {
  if (settings === undefined) {
    return;
  }
  if (typeof settings !== "object" || settings === null || Array.isArray(settings)) {
    throw new Error("cluster configuration: consistency must be an object");
  }
  const known = ["enabled", "everyEntries", "everyMs", "sliceRows", "sliceBytes", "repair"];
  for (const key of Object.keys(settings)) {
    if (!known.includes(key)) {
      throw new Error(`cluster configuration: consistency has an unknown field "${key}" (known: ${known.join(", ")})`);
    }
  }
  if (settings.enabled !== undefined && typeof settings.enabled !== "boolean") {
    throw new Error("cluster configuration: consistency.enabled must be a boolean");
  }
  if (settings.repair !== undefined && settings.repair !== "auto" && settings.repair !== "manual") {
    throw new Error(
      `cluster configuration: consistency.repair must be "auto" or "manual", got ${String(settings.repair)}`,
    );
  }
  const L = CONSISTENCY_LIMITS;
  checkInteger("everyEntries", settings.everyEntries, { min: L.minEveryEntries, max: L.maxEveryEntries });
  checkInteger("everyMs", settings.everyMs, { min: L.minEveryMs, max: L.maxEveryMs });
  checkInteger("sliceRows", settings.sliceRows, { min: L.minSliceRows, max: L.maxSliceRows });
  checkInteger("sliceBytes", settings.sliceBytes, { min: L.minSliceBytes, max: L.maxSliceBytes });
}

/** The settings in force: the configured ones over the defaults. */
export function resolveConsistency(settings: ConsistencySettings | undefined): ConsistencyConfig {
  return { ...DEFAULT_CONSISTENCY, ...(settings ?? {}) };
}
