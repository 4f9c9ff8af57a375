// Reads the cluster configuration and the HTTP layer's own settings from the worker's environment. The worker only
// parses the variables; what a valid cluster is (names, hints, limits, timing) is the objects' rule, checked by
// validateClusterConfig and validateMember from src/objects/config.ts, so that the worker and the nodes never
// disagree on what they accept.
import { validateClusterConfig, validateMember, type ClusterConfig, type MemberConfig } from "../objects/api";
import type { Env } from "./env";

/** Variables the HTTP layer reads beyond the cluster configuration (see .dev.vars.example and the README). */
export interface ApiVars {
  /** Secret. JSON object mapping each bearer token to its roles, e.g. {"tok": ["read", "write", "admin"]}. */
  DHA_TOKENS: string;
  /** Optional. Comma-separated origins allowed to call the API from a browser (CORS); unset means no CORS. */
  DHA_CORS_ORIGINS: string;
}

/** The environment the app runs with: the lead's Env plus the HTTP layer's optional variables. */
export type AppEnv = Env & Partial<ApiVars>;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

/** Why `member` cannot join a cluster (the objects' rule), or null when it can. */
export function memberProblem(member: MemberConfig): string | null {
  try {
    validateMember(member);
    return null;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

type ClusterVars = Pick<Env, "CLUSTER_NAME" | "CLUSTER_NODES" | "HEARTBEAT_INTERVAL_MS" | "ELECTION_TIMEOUT_MS"> &
  ConsistencyVars;

/** The consistency monitor's variables (README "Consistency monitor"); each one unset or empty keeps its default. */
export interface ConsistencyVars {
  readonly DHA_CONSISTENCY_CHECKS?: string;
  readonly DHA_CHECKPOINT_EVERY_ENTRIES?: string;
  readonly DHA_CHECKPOINT_EVERY_MS?: string;
  readonly DHA_CHECKPOINT_ROWS?: string;
  readonly DHA_CHECKPOINT_BYTES?: string;
  readonly DHA_CONSISTENCY_REPAIR?: string;
}

const CLUSTER_VARS =
  "CLUSTER_NAME, CLUSTER_NODES, HEARTBEAT_INTERVAL_MS, ELECTION_TIMEOUT_MS and the DHA_CONSISTENCY_* / DHA_CHECKPOINT_* variables";

/**
 * Parses CLUSTER_NAME, CLUSTER_NODES ("n1,n2@weur,n3"), HEARTBEAT_INTERVAL_MS and ELECTION_TIMEOUT_MS, then checks
 * the result with the objects' validateClusterConfig. Throws a ConfigError naming the variable and what is wrong.
 */
export function parseClusterConfig(env: Partial<ClusterVars>): ClusterConfig {
  const config: ClusterConfig = {
    name: requireVar(env, "CLUSTER_NAME").trim(),
    members: parseMembers(requireVar(env, "CLUSTER_NODES")),
    heartbeatIntervalMs: parseWholeMs(env, "HEARTBEAT_INTERVAL_MS"),
    electionTimeoutMs: parseWholeMs(env, "ELECTION_TIMEOUT_MS"),
    ...consistencyFromVars(env),
  };
  try {
    validateClusterConfig(config);
  } catch (error) {
    throw new ConfigError(`${error instanceof Error ? error.message : String(error)} (set by ${CLUSTER_VARS})`);
  }
  return config;
}

function optionalVar(env: ConsistencyVars, key: keyof ConsistencyVars): string | undefined {
  const value = env[key];
  return typeof value === "string" && value.trim() !== "" ? value.trim() : undefined;
}

function optionalWhole(env: ConsistencyVars, key: keyof ConsistencyVars): number | undefined {
  const raw = optionalVar(env, key);
  if (raw === undefined) {
    return undefined;
  }
  if (!/^[0-9]{1,12}$/.test(raw)) {
    throw new ConfigError(`${key} ${JSON.stringify(raw)} is not a whole number`);
  }
  return Number(raw);
}

/** The monitor's settings from DHA_CONSISTENCY_* and DHA_CHECKPOINT_*; the objects check their ranges. */
function consistencyFromVars(env: ConsistencyVars): Pick<ClusterConfig, "consistency"> {
  const checks = optionalVar(env, "DHA_CONSISTENCY_CHECKS");
  if (checks !== undefined && checks !== "on" && checks !== "off") {
    throw new ConfigError(`DHA_CONSISTENCY_CHECKS ${JSON.stringify(checks)} must be "on" or "off"`);
  }
  const repair = optionalVar(env, "DHA_CONSISTENCY_REPAIR");
  if (repair !== undefined && repair !== "auto" && repair !== "manual") {
    throw new ConfigError(`DHA_CONSISTENCY_REPAIR ${JSON.stringify(repair)} must be "auto" or "manual"`);
  }
  const everyEntries = optionalWhole(env, "DHA_CHECKPOINT_EVERY_ENTRIES");
  const everyMs = optionalWhole(env, "DHA_CHECKPOINT_EVERY_MS");
  const sliceRows = optionalWhole(env, "DHA_CHECKPOINT_ROWS");
  const sliceBytes = optionalWhole(env, "DHA_CHECKPOINT_BYTES");
  const consistency = {
    ...(checks === undefined ? {} : { enabled: checks === "on" }),
    ...(repair === undefined ? {} : { repair: repair as "auto" | "manual" }),
    ...(everyEntries === undefined ? {} : { everyEntries }),
    ...(everyMs === undefined ? {} : { everyMs }),
    ...(sliceRows === undefined ? {} : { sliceRows }),
    ...(sliceBytes === undefined ? {} : { sliceBytes }),
  };
  return Object.keys(consistency).length === 0 ? {} : { consistency };
}

/** "n1,n2@weur,n3": names, each optionally with a location hint; the names themselves are checked by the objects. */
function parseMembers(raw: string): MemberConfig[] {
  const entries = raw.split(",").map((entry) => entry.trim());
  if (entries.some((entry) => entry === "")) {
    throw new ConfigError(`CLUSTER_NODES ${JSON.stringify(raw)} has an empty entry: list names like "n1,n2@weur,n3"`);
  }
  return entries.map((entry) => {
    const [name = "", hint, ...rest] = entry.split("@");
    if (rest.length > 0) {
      throw new ConfigError(`CLUSTER_NODES entry ${JSON.stringify(entry)} is invalid: expected "name" or "name@hint"`);
    }
    const member: MemberConfig = hint === undefined ? { name } : { name, locationHint: hint };
    const problem = memberProblem(member);
    if (problem !== null) {
      throw new ConfigError(`CLUSTER_NODES entry ${JSON.stringify(entry)} is invalid: ${problem}`);
    }
    return member;
  });
}

function requireVar(env: Partial<ClusterVars>, key: keyof ClusterVars): string {
  const value = env[key];
  if (typeof value !== "string" || value.trim() === "") {
    throw new ConfigError(`${key} is not set (see [vars] in wrangler.toml)`);
  }
  return value;
}

function parseWholeMs(env: Partial<ClusterVars>, key: keyof ClusterVars): number {
  const raw = requireVar(env, key).trim();
  if (!/^[0-9]{1,9}$/.test(raw)) {
    throw new ConfigError(`${key} ${JSON.stringify(raw)} is not a whole number of milliseconds`);
  }
  return Number(raw);
}
