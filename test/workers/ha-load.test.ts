// HA scenario 12 (issue #6): concurrent writers through every node: 1,000 transactions of 50 rows each, identical on
// every node. Clients enter at every node over HTTP (the worker's leader hint is reset to the client's node before
// each request, so a follower's NOT_LEADER is followed every time) and retry with the same Idempotency-Key.
import { describe, expect, it } from "vitest";
import type { Statement } from "../../src/shared/sql";
import { clusterFactory } from "./helpers/cluster";
import {
  expectConvergedAndComplete,
  expectOnlyFailoverErrors,
  httpHarness,
  HttpWriter,
  Ledger,
  Load,
  openScenario,
} from "./helpers/ha";

const newCluster = clusterFactory();

const TRANSACTIONS = 1_000;
const ROWS_PER_TRANSACTION = 50;
const CLIENTS_PER_NODE = 4;

/** 49 bulk rows and the ledger row: 50 rows, all or nothing. */
function bulkTransaction(key: string, value: string): { statements: Statement[]; transaction: boolean } {
  const statements: Statement[] = [];
  for (let n = 0; n < ROWS_PER_TRANSACTION - 1; n++) {
    statements.push({
      sql: "INSERT INTO bulk (tx, n, payload) VALUES (?, ?, ?)",
      params: [key, n, `${key}/${n}/${value}`],
    });
  }
  statements.push(Ledger.insert(key, value));
  return { statements, transaction: true };
}

describe("HA scenario 12: concurrent writers through every node", () => {
  it(`scenario 12: ${TRANSACTIONS} transactions of ${ROWS_PER_TRANSACTION} rows from clients at every node, identical on every node`, async () => {
    const { random, cluster, ledger } = await openScenario(newCluster, {
      scenario: "scenario 12",
      cluster: { prefix: "ha12-bulk", nodes: 3 },
      schema: [
        "CREATE TABLE bulk (id INTEGER PRIMARY KEY, tx TEXT NOT NULL, n INTEGER NOT NULL, payload TEXT NOT NULL)",
      ],
    });
    const startedAt = Date.now();
    const load = new Load({
      cluster,
      ledger,
      random,
      prefix: "s12",
      clients: CLIENTS_PER_NODE * cluster.names.length,
      totalWrites: TRANSACTIONS,
      thinkMs: 1,
      writeDeadlineMs: 30_000,
      request: bulkTransaction,
      writerFor: (client, options) =>
        new HttpWriter(httpHarness(cluster, { seed: options.random.nextUint32() }), {
          cluster: cluster.config.name,
          random: options.random,
          errors: options.errors,
          firstNode: cluster.names[client % cluster.names.length]!,
        }),
    }).start();
    await load.finished();
    const writeMs = Date.now() - startedAt;
    const report = await load.stop();
    expect(report.failures).toEqual([]);
    expect(ledger.count("acked")).toBe(TRANSACTIONS);

    await expectConvergedAndComplete(cluster, ledger, { timeoutMs: 60_000 });
    // Every transaction whole on every node: 49 bulk rows each, no partial one, nothing else.
    for (const node of cluster.names) {
      const perTransaction = await cluster.queryLocal(
        node,
        "SELECT count(*), min(c), max(c), count(DISTINCT c) FROM (SELECT tx, count(*) AS c FROM bulk GROUP BY tx)",
      );
      expect(perTransaction.rows, node).toEqual([
        [TRANSACTIONS, ROWS_PER_TRANSACTION - 1, ROWS_PER_TRANSACTION - 1, 1],
      ]);
      const rows = await cluster.queryLocal(node, "SELECT (SELECT count(*) FROM bulk) + (SELECT count(*) FROM ledger)");
      expect(rows.rows).toEqual([[TRANSACTIONS * ROWS_PER_TRANSACTION]]);
    }
    console.log(
      `[ha] scenario 12: ${TRANSACTIONS} transactions x ${ROWS_PER_TRANSACTION} rows by ${CLIENTS_PER_NODE * cluster.names.length} HTTP clients in ${writeMs} ms (${Math.round((TRANSACTIONS * 1000) / writeMs)} tx/s), converged in ${Date.now() - startedAt - writeMs} ms; errors ${expectOnlyFailoverErrors(report.errors)}`,
    );
  }, 180_000);
});
