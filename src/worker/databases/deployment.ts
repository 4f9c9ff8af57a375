// The databases of one deployment as the worker sees them: the system database holding the catalog, the runtime
// of each database, and, per isolate, a short-lived cache of catalog entries for the data routes.
import { DEFAULT_DATABASE, sleep, type ClusterConfig } from "../../objects/api";
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
/**
 * While another request of this isolate reads an entry again, an older one that routes to nodes (one resolveDatabase
 * lets through) is still used, up to this age: if the database was dropped meanwhile, its nodes refuse. An older
 * "never created" or "dropped" is not: the name may have been created again, and a 404 or 410 would be wrong; those
 * requests wait for the read.
 */
export const CATALOG_STALE_WHILE_READING_MS = 10_000;
/**
 * A read in flight for longer than this is taken over by the next request that needs the entry (one a second at
 * most): its request may have been cancelled mid-read, and the others should not wait out their deadlines on it.
 */
export const CATALOG_READ_TAKEOVER_MS = 1_000;
/** How often such a request looks again: first soon, then less often (many may wait at once). */
const CATALOG_READ_POLL_FIRST_MS = 5;
const CATALOG_READ_POLL_MAX_MS = 50;
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
interface ReadInFlight {
  readonly startedAtMs: number;
  /** The reading request's deadline: past it, the read is lost in any case. */
  readonly deadlineAtMs: number;
}

/**
 * Reads of the catalog in flight in this isolate, by the same key: a burst of requests to one database makes one
 * read, not one each (a burst of 1,500 writes made 1,500 reads at once, and the catalog's leader lost its quorum
 * under them, failing every named database). The others wait for its entry by polling the cache: a promise of one
 * request is not awaited by another (the platform ties each to the request that made it).
 */
const readsInFlight = new Map<string, ReadInFlight>();

/**
 * Forgets what this isolate read of `name` (after a create or a drop from this isolate), and any read of it still in
 * flight, which may have begun before the change: its answer is not kept, and no request waits for it.
 */
export function forgetEntry(deployment: Deployment, name: string): void {
  const key = cacheKey(deployment, name);
  recentEntries.delete(key);
  readsInFlight.delete(key);
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
  const entry = (await cachedEntry(deployment, name, options)).entry;
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

/**
 * The entry of `name` as this isolate last read it, read again when older than CATALOG_CACHE_TTL_MS. Only one request
 * at a time reads it: the others use the older entry meanwhile when it routes to nodes (up to
 * CATALOG_STALE_WHILE_READING_MS) or else wait for that read to end (by their deadline); one of them takes over a read
 * that has run CATALOG_READ_TAKEOVER_MS.
 */
async function cachedEntry(
  deployment: Deployment,
  name: string,
  options: { now: () => number; deadlineAt: number },
): Promise<Cached> {
  const key = cacheKey(deployment, name);
  let pollMs = CATALOG_READ_POLL_FIRST_MS;
  for (;;) {
    const nowMs = options.now();
    const cached = recentEntries.get(key);
    if (cached !== undefined && nowMs - cached.readAtMs <= CATALOG_CACHE_TTL_MS) {
      return cached;
    }
    const inFlight = readsInFlight.get(key);
    const reading =
      inFlight !== undefined &&
      nowMs < inFlight.deadlineAtMs &&
      nowMs - inFlight.startedAtMs < CATALOG_READ_TAKEOVER_MS;
    if (!reading) {
      return readEntry(deployment, name, { key, ...options });
    }
    if (
      cached !== undefined &&
      routesToNodes(cached.entry) &&
      nowMs - cached.readAtMs <= CATALOG_STALE_WHILE_READING_MS
    ) {
      return cached;
    }
    if (nowMs >= options.deadlineAt) {
      return readEntry(deployment, name, { key, ...options });
    }
    await sleep(Math.min(pollMs, options.deadlineAt - nowMs));
    pollMs = Math.min(pollMs * 2, CATALOG_READ_POLL_MAX_MS);
  }
}

async function readEntry(
  deployment: Deployment,
  name: string,
  options: { key: string; now: () => number; deadlineAt: number },
): Promise<Cached> {
  const startedAtMs = options.now();
  const read: ReadInFlight = { startedAtMs, deadlineAtMs: options.deadlineAt };
  if (readsInFlight.size >= MAX_CACHED_ENTRIES) {
    readsInFlight.clear();
  }
  readsInFlight.set(options.key, read);
  try {
    const entry = await deployment.catalog.get(name, { deadlineAt: options.deadlineAt, strong: false });
    const cached = { entry, readAtMs: startedAtMs };
    // Kept only while this read is still the one in flight: forgetEntry (a create or drop here) let it go.
    if (readsInFlight.get(options.key) === read) {
      if (recentEntries.size >= MAX_CACHED_ENTRIES) {
        recentEntries.clear();
      }
      recentEntries.set(options.key, cached);
    }
    return cached;
  } finally {
    if (readsInFlight.get(options.key) === read) {
      readsInFlight.delete(options.key);
    }
  }
}

function routesToNodes(entry: DatabaseEntry | null): boolean {
  return entry !== null && entry.state !== "DROPPING" && entry.state !== "DROPPED";
}

function cacheKey(deployment: Deployment, name: string): string {
  return `${deployment.config.name}\u0000${name}`;
}

export { DEFAULT_DATABASE };
