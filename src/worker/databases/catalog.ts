// The catalog of databases: one table in the deployment's system database (a Raft group of its own, created on
// first use), so that losing a location loses no database definitions. Every change is one conditional write
// through the log; concurrent admin requests cannot both win (the leader applies them one after the other).
import type { SqlValue, Statement, StatementResult } from "../../shared/sql";
import { executeStatements, queryStatements } from "../data/service";
import { ApiError } from "../http/errors";
import { failureError } from "../http/respond";
import { RESEND_ADVICE } from "../routing/failure";
import type { Runtime } from "../runtime";
import {
  databaseOptionsSchema,
  MAX_ADDED_NODES,
  type DatabaseEntry,
  type DatabaseOptions,
  type DatabaseState,
} from "./schemas";
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
/**
 * The node names added at run time to each generation of a database (beyond its configured members), each recorded
 * before the addition is sent to the database's leader: a member removed later keeps its storage, and the drop
 * reaches it through this record. The rows of a generation go once it is DROPPED (every recorded node wiped).
 */
const NODES_TABLE = "database_nodes";
const CREATE_NODES_TABLE = `CREATE TABLE IF NOT EXISTS ${NODES_TABLE} (
  name TEXT NOT NULL,
  generation INTEGER NOT NULL,
  node TEXT NOT NULL,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY (name, generation, node)
)`;
/** A deployment lists at most this many catalog rows (dropped names included) in one answer. */
export const MAX_LISTED_DATABASES = 1000;

/** Why recordNode wrote nothing: the generation is no longer live, or its record is full. */
export type RecordRefusal = "DROPPED" | "FULL";

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
    const [result] = await this.write(
      [
        {
          sql: `INSERT INTO ${TABLE} (name, state, generation, options, created_at, updated_at, reason)
SELECT ?, 'CREATING', 1, ?, ?, ?, 'created' WHERE (SELECT count(*) FROM ${TABLE} WHERE state <> 'DROPPED') < ?
ON CONFLICT (name) DO UPDATE SET state = 'CREATING', generation = generation + 1, options = excluded.options,
created_at = excluded.created_at, updated_at = excluded.updated_at, reason = 'created again after a drop'
WHERE state = 'DROPPED'`,
          params: [options.name, JSON.stringify(options.options), at, at, options.limit],
        },
      ],
      options.deadlineAt,
    );
    return (result?.rowsAffected ?? 0) > 0;
  }

  /**
   * Moves one generation of a database from one of `from` to `to`; false when it was not in such a state. Once a
   * generation is DROPPED, its recorded nodes (all wiped) are forgotten with those of earlier generations.
   */
  async transition(options: {
    entry: DatabaseEntry;
    from: readonly DatabaseState[];
    to: DatabaseState;
    reason: string;
    atMs: number;
    deadlineAt: number;
  }): Promise<boolean> {
    const { name, generation } = options.entry;
    const forgetNodes = options.to === "DROPPED" ? [forgetNodesStatement(options.entry)] : [];
    const [result] = await this.write(
      [
        {
          sql: `UPDATE ${TABLE} SET state = ?, updated_at = ?, reason = ? WHERE name = ? AND generation = ? AND state IN (${options.from.map(() => "?").join(", ")})`,
          params: [options.to, new Date(options.atMs).toISOString(), options.reason, name, generation, ...options.from],
        },
        ...forgetNodes,
      ],
      options.deadlineAt,
    );
    return (result?.rowsAffected ?? 0) > 0;
  }

  /**
   * Records `node` as added at run time to this generation of `name`, only while the generation is CREATING or
   * ONLINE and its record holds fewer than MAX_ADDED_NODES other names. Null when it is recorded (now or before),
   * else why not. Once DROPPING is committed nothing more is recorded, so a drop that reads the record after it
   * reads all of it.
   */
  async recordNode(options: {
    name: string;
    generation: number;
    node: string;
    atMs: number;
    deadlineAt: number;
  }): Promise<RecordRefusal | null> {
    const { name, generation, node } = options;
    const [inserted] = await this.write(
      [
        {
          sql: `INSERT INTO ${NODES_TABLE} (name, generation, node, recorded_at) SELECT ?, ?, ?, ?
WHERE EXISTS (SELECT 1 FROM ${TABLE} WHERE name = ? AND generation = ? AND state IN ('CREATING', 'ONLINE'))
AND (SELECT count(*) FROM ${NODES_TABLE} WHERE name = ? AND generation = ?) < ?
ON CONFLICT (name, generation, node) DO NOTHING`,
          params: [
            name,
            generation,
            node,
            new Date(options.atMs).toISOString(),
            name,
            generation,
            name,
            generation,
            MAX_ADDED_NODES,
          ],
        },
      ],
      options.deadlineAt,
    );
    if ((inserted?.rowsAffected ?? 0) > 0) {
      return null;
    }
    // Nothing inserted: recorded before, or refused. Read through the log which.
    const [row] = await this.read(
      {
        sql: `SELECT
(SELECT count(*) FROM ${TABLE} WHERE name = ? AND generation = ? AND state IN ('CREATING', 'ONLINE')),
(SELECT count(*) FROM ${NODES_TABLE} WHERE name = ? AND generation = ? AND node = ?)`,
        params: [name, generation, name, generation, node],
      },
      options.deadlineAt,
      true,
    );
    const [live, recorded] = (row ?? []).map(Number);
    if (live !== 1) {
      return "DROPPED";
    }
    return recorded === 1 ? null : "FULL";
  }

  /**
   * Forgets the recorded nodes of a DROPPED generation (and earlier ones), once a drop wiped them all: one that a
   * worker of an earlier version dropped kept its record (lifecycle.ts, wipeLeftBehind). Nothing once the name was
   * created again.
   */
  async forgetNodes(entry: DatabaseEntry, deadlineAt: number): Promise<void> {
    await this.write([forgetNodesStatement(entry)], deadlineAt);
  }

  /** The node names recorded as added at run time to this generation of a database (at most MAX_ADDED_NODES). */
  async recordedNodes(entry: DatabaseEntry, deadlineAt: number): Promise<string[]> {
    const rows = await this.read(
      {
        sql: `SELECT node FROM ${NODES_TABLE} WHERE name = ? AND generation = ? ORDER BY node LIMIT ?`,
        params: [entry.name, entry.generation, MAX_ADDED_NODES],
      },
      deadlineAt,
      true,
    );
    return rows.map((row) => String(row[0]));
  }

  private async ensureTable(deadlineAt: number): Promise<void> {
    if (tablesReady.has(this.system)) {
      return;
    }
    await this.write([{ sql: CREATE_TABLE }, { sql: CREATE_NODES_TABLE }], deadlineAt, { ensured: true });
    tablesReady.add(this.system);
  }

  /** Writes `statements` in one transaction; their results, in order. */
  private async write(
    statements: readonly Statement[],
    deadlineAt: number,
    options: { ensured?: boolean } = {},
  ): Promise<StatementResult[]> {
    if (options.ensured !== true) {
      await this.ensureTable(deadlineAt);
    }
    const outcome = await executeStatements(this.system, {
      statements: [...statements],
      transaction: true,
      requestId: `catalog-${newRequestId()}`,
      deadlineAt,
    });
    return resultsOf(outcome, statements.length);
  }

  private async read(statement: Statement, deadlineAt: number, strong: boolean): Promise<readonly SqlValue[][]> {
    await this.ensureTable(deadlineAt);
    const outcome = await queryStatements(this.system, {
      statements: [statement],
      level: strong ? "strong" : "weak",
      transaction: false,
      deadlineAt,
    });
    return (resultsOf(outcome)[0]?.rows ?? []) as SqlValue[][];
  }
}

/** Deletes the records of `entry`'s generation and earlier ones, only while that generation is DROPPED. */
function forgetNodesStatement(entry: DatabaseEntry): Statement {
  return {
    sql: `DELETE FROM ${NODES_TABLE} WHERE name = ? AND generation <= ?
AND EXISTS (SELECT 1 FROM ${TABLE} WHERE name = ? AND generation = ? AND state = 'DROPPED')`,
    params: [entry.name, entry.generation, entry.name, entry.generation],
  };
}

/** The result of every statement sent; a 500 when one was refused or is missing, a 503/504 when none ran. */
function resultsOf(
  outcome: Awaited<ReturnType<typeof executeStatements>> | Awaited<ReturnType<typeof queryStatements>>,
  expected = 1,
): StatementResult[] {
  if (!outcome.ok) {
    const failure = failureError(outcome, "plain");
    // The catalog's request id means nothing to the client, whose admin call is idempotent: it repeats the call.
    const message = outcome.outcomeUnknown
      ? `the catalog of databases did not confirm a change in time, which may still apply: repeat the request (${failure.message.replace(`: ${RESEND_ADVICE}`, "")})`
      : `the catalog of databases is unavailable: ${failure.message}`;
    throw new ApiError(failure.status, message, failure.options);
  }
  const results = outcome.value.results;
  const refused = results.find((result) => result.error !== undefined);
  if (results.length < expected || refused !== undefined) {
    throw new ApiError(500, `the catalog of databases refused a statement: ${refused?.error ?? "no result"}`, {
      code: "CATALOG",
    });
  }
  return [...results];
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
