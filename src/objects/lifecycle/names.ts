// Databases of one deployment: each is its own Raft group, whose cluster name is derived from the deployment (the
// CLUSTER_NAME of wrangler.toml), the database name and its generation. Node object ids derive from the cluster
// name (config.ts, objectName), so every database, and every re-creation of a dropped one, gets objects of its own:
// a dropped generation's tombstoned objects are never reused.

/** The reserved database that holds the catalog of databases (its own Raft group, created on first use). */
export const SYSTEM_DATABASE = "_system";
/** The database of wrangler.toml: served at /db/... as before, and as /databases/default/... */
export const DEFAULT_DATABASE = "default";
/** The system database is created once and never dropped. */
export const SYSTEM_GENERATION = 1;

export const DATABASE_NAME_LIMITS = { maxLength: 48, maxGeneration: 999_999_999 } as const;

const DATABASE_NAME_PATTERN = /^[a-z0-9][a-z0-9_-]{0,47}$/;
/** deployment ":" database ":" generation; a deployment name (config.ts) never contains ':'. */
const DATABASE_CLUSTER_PATTERN =
  /^([A-Za-z0-9][A-Za-z0-9_.-]{0,63}):(_system|[a-z0-9][a-z0-9_-]{0,47}):([1-9][0-9]{0,8})$/;

/** Why `name` cannot be a user database's name, or null when it can. */
export function databaseNameProblem(name: string): string | null {
  if (name === DEFAULT_DATABASE) {
    return `database name "${DEFAULT_DATABASE}" is reserved for the database of wrangler.toml`;
  }
  if (!DATABASE_NAME_PATTERN.test(name)) {
    return `database name ${JSON.stringify(name.slice(0, 64))} is invalid: use 1 to ${DATABASE_NAME_LIMITS.maxLength} lowercase letters, digits, '-' or '_', starting with a letter or digit`;
  }
  return null;
}

export interface DatabaseClusterName {
  readonly deployment: string;
  readonly database: string;
  readonly generation: number;
}

/** The cluster name of one generation of a database. */
export function databaseClusterName(options: DatabaseClusterName): string {
  const { deployment, database, generation } = options;
  if (!Number.isInteger(generation) || generation < 1 || generation > DATABASE_NAME_LIMITS.maxGeneration) {
    throw new Error(`database generation must be an integer from 1 to ${DATABASE_NAME_LIMITS.maxGeneration}`);
  }
  const name = `${deployment}:${database}:${generation}`;
  if (parseDatabaseClusterName(name) === null) {
    throw new Error(`no database cluster name can be made of ${JSON.stringify({ deployment, database })}`);
  }
  return name;
}

/** The parts of a database cluster name, or null when `cluster` is not one (e.g. the default database's name). */
export function parseDatabaseClusterName(cluster: string): DatabaseClusterName | null {
  const match = DATABASE_CLUSTER_PATTERN.exec(cluster);
  if (match === null) {
    return null;
  }
  return { deployment: match[1] as string, database: match[2] as string, generation: Number(match[3]) };
}
