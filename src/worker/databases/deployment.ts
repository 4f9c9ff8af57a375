// The databases of one deployment as the worker sees them: the system database holding the catalog, the runtime
// of each database, and, per isolate, a short-lived cache of catalog entries for the data routes.
import { DEFAULT_DATABASE, type ClusterConfig } from "../../objects/api";
import type { AppEnv } from "../config";
import { ApiError } from "../http/errors";
import { deploymentConfig, type Runtime } from "../runtime";
import { Catalog } from "./catalog";
import { databaseClusterConfig, systemClusterConfig } from "./lifecycle";
import type { DatabaseEntry } from "./schemas";

/** Databases (not DROPPED) one deployment may hold unless DHA_MAX_DATABASES says otherwise. */
export const DEFAULT_MAX_DATABASES = 100;
/** The most DHA_MAX_DATABASES may allow: the catalog lists at most 1000 entries. */
export const MAX_DATABASES_CEILING = 1000;
/** How long an isolate trusts a catalog entry it read for the data routes. */
export const CATALOG_CACHE_TTL_MS = 1_000;
const MAX_CACHED_ENTRIES = 1024;

export type ClusterRuntimeOf = (env: AppEnv, config: ClusterConfig) => Runtime;

export class Deployment {
  readonly config: ClusterConfig;

  constructor(
    private readonly env: AppEnv,
    private readonly clusterRuntime: ClusterRuntimeOf,
  ) {
    this.config = deploymentConfig(env);
  }

  get system(): Runtime {
    return this.clusterRuntime(this.env, systemClusterConfig(this.config));
  }

  get catalog(): Catalog {
    return new Catalog(this.system);
  }

  runtimeOf(entry: DatabaseEntry): Runtime {
    return this.clusterRuntime(this.env, databaseClusterConfig(this.config, entry));
  }

  /** DHA_MAX_DATABASES: databases not DROPPED; a malformed value is a 500 naming it, as other settings. */
  maxDatabases(): number {
    const raw = (this.env as AppEnv & { DHA_MAX_DATABASES?: string }).DHA_MAX_DATABASES?.trim();
    if (raw === undefined || raw === "") {
      return DEFAULT_MAX_DATABASES;
    }
    const value = /^[0-9]{1,4}$/.test(raw) ? Number(raw) : Number.NaN;
    if (!(value >= 0 && value <= MAX_DATABASES_CEILING)) {
      throw new ApiError(
        500,
        `DHA_MAX_DATABASES ${JSON.stringify(raw)} is not a whole number from 0 to ${MAX_DATABASES_CEILING}`,
        {
          code: "CONFIG",
        },
      );
    }
    return value;
  }
}

interface Cached {
  readonly entry: DatabaseEntry | null;
  readonly readAtMs: number;
}

/** Catalog entries read by this isolate's data routes, by deployment and database name. */
const recentEntries = new Map<string, Cached>();

/** Forgets what this isolate read of `name` (after a create or a drop from this isolate). */
export function forgetEntry(deployment: Deployment, name: string): void {
  recentEntries.delete(cacheKey(deployment, name));
}

/**
 * The runtime a data route of database `name` runs on: 404 when the name was never created, 410 once it is
 * dropped or being dropped. Entries are cached for CATALOG_CACHE_TTL_MS: a request another isolate let through in
 * that window still meets the nodes' own refusal (their lifecycle gate), so it is refused too.
 */
export async function resolveDatabase(
  deployment: Deployment,
  name: string,
  options: { now: () => number; deadlineAt: number; shape: "rqlite" | "plain" },
): Promise<Runtime> {
  const key = cacheKey(deployment, name);
  const nowMs = options.now();
  let cached = recentEntries.get(key);
  if (cached === undefined || nowMs - cached.readAtMs > CATALOG_CACHE_TTL_MS) {
    const entry = await deployment.catalog.get(name, { deadlineAt: options.deadlineAt, strong: false });
    cached = { entry, readAtMs: nowMs };
    if (recentEntries.size >= MAX_CACHED_ENTRIES) {
      recentEntries.clear();
    }
    recentEntries.set(key, cached);
  }
  const entry = cached.entry;
  if (entry === null) {
    throw new ApiError(404, `no database ${JSON.stringify(name)}: create it with PUT /api/v1/databases/${name}`, {
      code: "NO_DATABASE",
      shape: options.shape,
    });
  }
  if (entry.state === "DROPPING" || entry.state === "DROPPED") {
    throw new ApiError(410, `database ${JSON.stringify(name)} was dropped (${entry.state})`, {
      code: "DROPPED",
      shape: options.shape,
    });
  }
  return deployment.runtimeOf(entry);
}

function cacheKey(deployment: Deployment, name: string): string {
  return `${deployment.config.name}\u0000${name}`;
}

export { DEFAULT_DATABASE };
