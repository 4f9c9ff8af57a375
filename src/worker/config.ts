// Reads the cluster configuration and the HTTP layer's own settings from the worker's environment.
import type { ClusterConfig, MemberConfig } from "../objects/api";
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

/** Durable Object location hints the platform accepts. */
export const LOCATION_HINTS = ["wnam", "enam", "sam", "weur", "eeur", "apac", "oc", "afr", "me"] as const;
export type LocationHint = (typeof LOCATION_HINTS)[number];

/** Cluster and node names become part of object names (`${cluster}/${node}`): no slashes, commas or at-signs. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{0,62}$/;
const MAX_MEMBERS = 15;
/** The election timeout must span several heartbeats, or followers campaign between two heartbeats. */
const MIN_HEARTBEATS_PER_ELECTION_TIMEOUT = 3;

export class ConfigError extends Error {
  override readonly name = "ConfigError";
}

export function isValidNodeName(name: string): boolean {
  return NAME_PATTERN.test(name);
}

export function isLocationHint(value: string): value is LocationHint {
  return (LOCATION_HINTS as readonly string[]).includes(value);
}

type ClusterVars = Pick<Env, "CLUSTER_NAME" | "CLUSTER_NODES" | "HEARTBEAT_INTERVAL_MS" | "ELECTION_TIMEOUT_MS">;

/**
 * Parses CLUSTER_NAME, CLUSTER_NODES ("n1,n2@weur,n3"), HEARTBEAT_INTERVAL_MS and ELECTION_TIMEOUT_MS.
 * Throws a ConfigError naming the variable and what is wrong with it.
 */
export function parseClusterConfig(env: Partial<ClusterVars>): ClusterConfig {
  const name = requireVar(env, "CLUSTER_NAME").trim();
  if (!NAME_PATTERN.test(name)) {
    throw new ConfigError(
      `CLUSTER_NAME ${JSON.stringify(name)} is invalid: use 1-63 letters, digits, '-' or '_', starting with a letter or digit`,
    );
  }
  const members = parseMembers(requireVar(env, "CLUSTER_NODES"));
  const heartbeatIntervalMs = parsePositiveInteger(env, "HEARTBEAT_INTERVAL_MS");
  const electionTimeoutMs = parsePositiveInteger(env, "ELECTION_TIMEOUT_MS");
  if (electionTimeoutMs < heartbeatIntervalMs * MIN_HEARTBEATS_PER_ELECTION_TIMEOUT) {
    throw new ConfigError(
      `ELECTION_TIMEOUT_MS (${electionTimeoutMs}) must be at least ${MIN_HEARTBEATS_PER_ELECTION_TIMEOUT} heartbeats ` +
        `(HEARTBEAT_INTERVAL_MS is ${heartbeatIntervalMs})`,
    );
  }
  return { name, members, heartbeatIntervalMs, electionTimeoutMs };
}

function parseMembers(raw: string): MemberConfig[] {
  const entries = raw.split(",").map((entry) => entry.trim());
  if (entries.some((entry) => entry === "")) {
    throw new ConfigError(`CLUSTER_NODES ${JSON.stringify(raw)} has an empty entry: list names like "n1,n2@weur,n3"`);
  }
  if (entries.length > MAX_MEMBERS) {
    throw new ConfigError(`CLUSTER_NODES lists ${entries.length} nodes; at most ${MAX_MEMBERS} are supported`);
  }
  const members: MemberConfig[] = [];
  const seen = new Set<string>();
  for (const entry of entries) {
    const [nodeName = "", hint, ...rest] = entry.split("@");
    if (rest.length > 0 || !NAME_PATTERN.test(nodeName)) {
      throw new ConfigError(
        `CLUSTER_NODES entry ${JSON.stringify(entry)} is invalid: expected "name" or "name@hint", ` +
          `a name of 1-63 letters, digits, '-' or '_'`,
      );
    }
    if (seen.has(nodeName)) {
      throw new ConfigError(`CLUSTER_NODES names ${JSON.stringify(nodeName)} twice`);
    }
    seen.add(nodeName);
    if (hint === undefined) {
      members.push({ name: nodeName });
    } else if (isLocationHint(hint)) {
      members.push({ name: nodeName, locationHint: hint });
    } else {
      throw new ConfigError(
        `CLUSTER_NODES entry ${JSON.stringify(entry)} has an unknown location hint; use one of ${LOCATION_HINTS.join(", ")}`,
      );
    }
  }
  return members;
}

function requireVar(env: Partial<ClusterVars>, key: keyof ClusterVars): string {
  const value = env[key];
  if (typeof value !== "string" || value.trim() === "") {
    throw new ConfigError(`${key} is not set (see [vars] in wrangler.toml)`);
  }
  return value;
}

function parsePositiveInteger(env: Partial<ClusterVars>, key: keyof ClusterVars): number {
  const raw = requireVar(env, key).trim();
  if (!/^[0-9]+$/.test(raw)) {
    throw new ConfigError(`${key} ${JSON.stringify(raw)} is not a whole number of milliseconds`);
  }
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) {
    throw new ConfigError(`${key} must be a positive number of milliseconds, got ${raw}`);
  }
  return value;
}
