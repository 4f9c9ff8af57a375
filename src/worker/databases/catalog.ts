// The catalog of databases: one table in the deployment's system database (a Raft group of its own, created on
// first use), so that losing a location loses no database definitions. Every change is one conditional write
// through the log; concurrent admin requests cannot both win (the leader applies them one after the other).
import type { SqlValue, Statement, StatementResult } from "../../shared/sql";
import { executeStatements, queryStatements } from "../data/service";
import { ApiError } from "../http/errors";
import { failureError } from "../http/respond";
import type { Runtime } from "../runtime";
import { databaseOptionsSchema, type DatabaseEntry, type DatabaseOptions, type DatabaseState } from "./schemas";
import { newRequestId } from "../data/request-ids";

const TABLE = "databases";
const COLUMNS = "name, state, generation, options, created_at, updated_at, reason";
const CREATE_TABLE = `CREATE TABLE IF NOT EXISTS ${TABLE} (
  name TEXT PRIMARY KEY,
  state TEXT NOT NULL CHECK (state IN ('CREATING', 'ONLINE', 'DROPPING', 'DROPPED')),
  generation INTEGER NOT NULL,
  options TEXT NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  reason TEXT
)`;
/** A deployment lists at most this many catalog rows (dropped names included) in one answer. */
export const MAX_LISTED_DATABASES = 1000;

/** System runtimes whose catalog table this isolate has already made sure of. */
const tablesReady = new WeakSet<Runtime>();

export class Catalog {
  constructor(private readonly system: Runtime) {}

  /** The entry of `name`, or null when it was never created. `strong` reads through the log (admin paths). */
  async get(name: string, options: { deadlineAt: number; strong: boolean }): Promise<DatabaseEntry | null> {
    const rows = await this.read(
      { sql: `SELECT ${COLUMNS} FROM ${TABLE} WHERE name = ?`, params: [name] },
      options.deadlineAt,
      options.strong,
    );
    return rows.length === 0 ? null : entryOf(rows[0] as readonly SqlValue[]);
  }

  /**
   * Every database that is not DROPPED (at most DHA_MAX_DATABASES, itself at most MAX_LISTED_DATABASES), then
   * dropped names up to MAX_LISTED_DATABASES rows in all, by name. Dropped names stay as rows without bound: a plain
   * first-rows-by-name would let them push live databases out of the list.
   */
  async list(deadlineAt: number): Promise<DatabaseEntry[]> {
    const rows = await this.read(
      {
        sql: `SELECT ${COLUMNS} FROM ${TABLE} ORDER BY state = 'DROPPED', name LIMIT ?`,
        params: [MAX_LISTED_DATABASES],
      },
      deadlineAt,
      true,
    );
    return rows.map(entryOf).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  }

  /**
   * Creates `name` in state CREATING (generation 1, or the next one after a drop), only if fewer than `limit`
   * databases are not DROPPED and the name is new or DROPPED. False when nothing changed (the caller reads why).
   */
  async insertCreating(options: {
    name: string;
    options: DatabaseOptions;
    atMs: number;
    limit: number;
    deadlineAt: number;
  }): Promise<boolean> {
    const at = new Date(options.atMs).toISOString();
    const result = await this.write(
      {
        sql: `INSERT INTO ${TABLE} (name, state, generation, options, created_at, updated_at, reason)
SELECT ?, 'CREATING', 1, ?, ?, ?, 'created' WHERE (SELECT count(*) FROM ${TABLE} WHERE state <> 'DROPPED') < ?
ON CONFLICT (name) DO UPDATE SET state = 'CREATING', generation = generation + 1, options = excluded.options,
created_at = excluded.created_at, updated_at = excluded.updated_at, reason = 'created again after a drop'
WHERE state = 'DROPPED'`,
        params: [options.name, JSON.stringify(options.options), at, at, options.limit],
      },
      options.deadlineAt,
    );
    return (result.rowsAffected ?? 0) > 0;
  }

  /** Moves one generation of a database from one of `from` to `to`; false when it was not in such a state. */
  async transition(options: {
    entry: DatabaseEntry;
    from: readonly DatabaseState[];
    to: DatabaseState;
    reason: string;
    atMs: number;
    deadlineAt: number;
  }): Promise<boolean> {
    const result = await this.write(
      {
        sql: `UPDATE ${TABLE} SET state = ?, updated_at = ?, reason = ? WHERE name = ? AND generation = ? AND state IN (${options.from.map(() => "?").join(", ")})`,
        params: [
          options.to,
          new Date(options.atMs).toISOString(),
          options.reason,
          options.entry.name,
          options.entry.generation,
          ...options.from,
        ],
      },
      options.deadlineAt,
    );
    return (result.rowsAffected ?? 0) > 0;
  }

  private async ensureTable(deadlineAt: number): Promise<void> {
    if (tablesReady.has(this.system)) {
      return;
    }
    await this.write({ sql: CREATE_TABLE }, deadlineAt, { ensured: true });
    tablesReady.add(this.system);
  }

  private async write(
    statement: Statement,
    deadlineAt: number,
    options: { ensured?: boolean } = {},
  ): Promise<StatementResult> {
    if (options.ensured !== true) {
      await this.ensureTable(deadlineAt);
    }
    const outcome = await executeStatements(this.system, {
      statements: [statement],
      transaction: true,
      requestId: `catalog-${newRequestId()}`,
      deadlineAt,
    });
    return resultOf(outcome);
  }

  private async read(statement: Statement, deadlineAt: number, strong: boolean): Promise<readonly SqlValue[][]> {
    await this.ensureTable(deadlineAt);
    const outcome = await queryStatements(this.system, {
      statements: [statement],
      level: strong ? "strong" : "weak",
      transaction: false,
      deadlineAt,
    });
    return (resultOf(outcome).rows ?? []) as SqlValue[][];
  }
}

function resultOf(
  outcome: Awaited<ReturnType<typeof executeStatements>> | Awaited<ReturnType<typeof queryStatements>>,
): StatementResult {
  if (!outcome.ok) {
    const failure = failureError(outcome, "plain");
    throw new ApiError(failure.status, `the catalog of databases is unavailable: ${failure.message}`, failure.options);
  }
  const result = outcome.value.results[0];
  if (result === undefined || result.error !== undefined) {
    throw new ApiError(500, `the catalog of databases refused a statement: ${result?.error ?? "no result"}`, {
      code: "CATALOG",
    });
  }
  return result;
}

function entryOf(row: readonly SqlValue[]): DatabaseEntry {
  const [name, state, generation, options, createdAt, updatedAt, reason] = row;
  return {
    name: String(name),
    state: String(state) as DatabaseState,
    generation: Number(generation),
    options: databaseOptionsSchema.parse(JSON.parse(String(options))),
    createdAt: String(createdAt),
    updatedAt: String(updatedAt),
    reason: reason === null || reason === undefined ? null : String(reason),
  };
}
