// Foreign keys: what the platform does (always enforced; PRAGMA foreign_keys ignored inside a transaction;
// defer_foreign_keys works there and outlives it), what the state machine makes of PRAGMA defer_foreign_keys in a
// transactional request (checked at the end, reset after), and loads, which defer their checks: the system's own
// backups of self- and mutually referencing tables load back in both formats, and so do sqlite3/rqlite-style dumps
// that create a child table before its parent.
import { describe, expect, it } from "vitest";
import type { StatementResult } from "../../src/shared/sql";
import { SqlStateMachine } from "../../src/objects/sql/index";
import { decodeSqlRequest, encodeSqlRequest } from "../../src/objects/sql/codec";
import { prepareWrite } from "../../src/objects/sql/validate";
import { loadSqlJs } from "../../src/worker/data/sqlite-wasm";
import { clusterFactory } from "./helpers/cluster";
import { inObject, newSqlObject, preparedEntry } from "./helpers/sql-objects";
import { RealHarness } from "./http-support";

const NOW_MS = Date.UTC(2026, 0, 1);
const newCluster = clusterFactory();

function rowsOf(storage: DurableObjectStorage, sql: string): unknown[][] {
  return [...storage.sql.exec(sql).raw()].map((row) => [...row]);
}

function errorOf(storage: DurableObjectStorage, sql: string): string | null {
  try {
    storage.sql.exec(sql).toArray();
    return null;
  } catch (error) {
    return (error as Error).message;
  }
}

describe("foreign keys on the platform (ctx.storage.sql)", () => {
  it("are on, and PRAGMA foreign_keys = OFF is ignored inside a transaction", async () => {
    const facts = await inObject(newSqlObject("fk", "platform-on"), (storage) => {
      const before = rowsOf(storage, "PRAGMA foreign_keys");
      const inside = storage.transactionSync(() => {
        storage.sql.exec("PRAGMA foreign_keys = OFF");
        return rowsOf(storage, "PRAGMA foreign_keys");
      });
      return { before, inside, after: rowsOf(storage, "PRAGMA foreign_keys") };
    });
    expect(facts).toEqual({ before: [[1]], inside: [[1]], after: [[1]] });
  });

  it("defer_foreign_keys works in transactionSync and stays set after it; CASCADE still fires at once", async () => {
    const facts = await inObject(newSqlObject("fk", "platform-defer"), (storage) => {
      storage.sql.exec("CREATE TABLE node (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES node(id))");
      storage.sql.exec("CREATE TABLE pa (id INTEGER PRIMARY KEY)");
      storage.sql.exec("CREATE TABLE ch (id INTEGER PRIMARY KEY, p INTEGER REFERENCES pa(id) ON DELETE CASCADE)");
      storage.sql.exec("INSERT INTO pa VALUES (1)");
      storage.sql.exec("INSERT INTO ch VALUES (1, 1)");
      const undeferred = errorOf(storage, "INSERT INTO node VALUES (1, 2)");
      const inside = storage.transactionSync(() => {
        storage.sql.exec("PRAGMA defer_foreign_keys = ON");
        storage.sql.exec("INSERT INTO node VALUES (1, 2)");
        const pending = rowsOf(storage, "PRAGMA foreign_key_check");
        storage.sql.exec("INSERT INTO node VALUES (2, NULL)");
        storage.sql.exec("DELETE FROM pa");
        const childrenLeft = rowsOf(storage, "SELECT count(*) FROM ch");
        storage.sql.exec("INSERT INTO pa VALUES (1)");
        // A row cannot name a table that does not exist yet, deferred or not.
        storage.sql.exec("CREATE TABLE early (id INTEGER PRIMARY KEY, p INTEGER REFERENCES late(id))");
        const noSuchTable = errorOf(storage, "INSERT INTO early VALUES (1, 1)");
        return { pending, childrenLeft, noSuchTable, resolved: rowsOf(storage, "PRAGMA foreign_key_check") };
      });
      const deferAfter = rowsOf(storage, "PRAGMA defer_foreign_keys");
      storage.sql.exec("PRAGMA defer_foreign_keys = OFF");
      return { undeferred, inside, deferAfter, rows: rowsOf(storage, "SELECT * FROM node ORDER BY id") };
    });
    expect(facts.undeferred).toMatch(/^FOREIGN KEY constraint failed/);
    expect(facts.inside).toEqual({
      pending: [["node", 1, "node", 0]],
      childrenLeft: [[0]],
      noSuchTable: expect.stringMatching(/^no such table: main\.late/) as unknown,
      resolved: [],
    });
    expect(facts.deferAfter).toEqual([[1]]);
    expect(facts.rows).toEqual([
      [1, 2],
      [2, null],
    ]);
  });

  it("turning defer_foreign_keys off forgets the violations it deferred (the commit then succeeds)", async () => {
    const stub = newSqlObject("fk", "platform-forget");
    const left = await inObject(stub, (storage) => {
      storage.sql.exec("CREATE TABLE node (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES node(id))");
      storage.transactionSync(() => {
        storage.sql.exec("PRAGMA defer_foreign_keys = ON");
        storage.sql.exec("INSERT INTO node VALUES (1, 99)");
        storage.sql.exec("PRAGMA defer_foreign_keys = OFF");
      });
      return rowsOf(storage, "PRAGMA foreign_key_check");
    });
    expect(left).toEqual([["node", 1, "node", 0]]);
    // The event's implicit commit went through: the orphan is stored. The state machine therefore checks before any
    // PRAGMA defer_foreign_keys = OFF, its own included.
    expect(await inObject(stub, (storage) => rowsOf(storage, "SELECT * FROM node"))).toEqual([[1, 99]]);
  });
});

describe("PRAGMA defer_foreign_keys in a transactional request", () => {
  const SCHEMA = [
    { sql: "CREATE TABLE node (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES node(id))" },
    { sql: "CREATE TABLE pa (id INTEGER PRIMARY KEY)" },
    { sql: "CREATE TABLE ch (id INTEGER PRIMARY KEY, p INTEGER REFERENCES pa(id) ON DELETE CASCADE)" },
  ];

  /** Applies the schema, then each request as an entry, on a fresh object; reads `reads` afterwards. */
  async function outcomeOf(
    label: string,
    requests: readonly { readonly sql: readonly string[]; readonly transaction: boolean }[],
    reads: Readonly<Record<string, string>>,
  ): Promise<{ results: (StatementResult[] | undefined)[]; read: Record<string, unknown[][]> }> {
    return inObject(newSqlObject("fk", label), (storage) => {
      const machine = new SqlStateMachine(storage);
      machine.applyEntry({ index: 1, kind: "normal", data: preparedEntry([...SCHEMA], { nowMs: NOW_MS }) });
      const results = requests.map((request, i) => {
        const statements = request.sql.map((sql) => ({ sql }));
        const data = preparedEntry(statements, { transaction: request.transaction, nowMs: NOW_MS });
        return machine.applyEntry({ index: i + 2, kind: "normal", data })?.map(({ time: _time, ...rest }) => rest);
      });
      const read = Object.fromEntries(Object.entries(reads).map(([name, sql]) => [name, rowsOf(storage, sql)]));
      return { results, read };
    });
  }

  function deferred(...sql: string[]): { readonly sql: readonly string[]; readonly transaction: boolean } {
    return { transaction: true, sql: ["PRAGMA defer_foreign_keys = ON", ...sql] };
  }

  const NODE_READS = { rows: "SELECT * FROM node ORDER BY id", defer: "PRAGMA defer_foreign_keys" };

  it("checks keys at the end: rows in any order pass, and the setting does not outlive the request", async () => {
    const outcome = await outcomeOf(
      "request-defer",
      [
        deferred("INSERT INTO node VALUES (1, 2)", "INSERT INTO node VALUES (2, NULL)"),
        // The next request is not deferred: the same order fails at once.
        { transaction: true, sql: ["INSERT INTO node VALUES (3, 4)", "INSERT INTO node VALUES (4, NULL)"] },
      ],
      NODE_READS,
    );
    expect(outcome.results[0]?.map((r) => r.error)).toEqual([undefined, undefined, undefined]);
    expect(outcome.results[1]).toEqual([{ error: "FOREIGN KEY constraint failed" }]);
    expect(outcome.read).toEqual({
      rows: [
        [1, 2],
        [2, null],
      ],
      defer: [[0]],
    });
  });

  it("fails the whole request when rows still violate a key at its end, or when deferral is turned off", async () => {
    const outcome = await outcomeOf(
      "request-violation",
      [
        deferred("INSERT INTO node VALUES (1, NULL)", "INSERT INTO node VALUES (2, 9)"),
        deferred("INSERT INTO node VALUES (3, 8)", "PRAGMA defer_foreign_keys = OFF"),
      ],
      NODE_READS,
    );
    const [atEnd, turnedOff] = outcome.results;
    expect(atEnd?.slice(0, 2)).toEqual([{ rowsAffected: 0 }, { rowsAffected: 1, lastInsertId: 1 }]);
    expect(atEnd?.[2]?.error).toBe(
      "FOREIGN KEY constraint failed: with defer_foreign_keys the keys were checked at the end of the transaction, " +
        'and 1 row refers to rows that do not exist; the first is in "node" (rowid 2), referring to "node". ' +
        "Nothing was applied",
    );
    expect(turnedOff?.[2]?.error).toMatch(/^FOREIGN KEY constraint failed: .*"node" \(rowid 3\)/);
    expect(outcome.read).toEqual({ rows: [], defer: [[0]] });
  });

  it("does not hold back CASCADE: deleting a parent deletes its children at once", async () => {
    const outcome = await outcomeOf(
      "request-cascade",
      [
        { transaction: false, sql: ["INSERT INTO pa VALUES (1)", "INSERT INTO ch VALUES (1, 1)"] },
        deferred("DELETE FROM pa", "INSERT INTO pa VALUES (1)"),
      ],
      { children: "SELECT count(*) FROM ch" },
    );
    expect(outcome.results[1]?.map((r) => r.error)).toEqual([undefined, undefined, undefined]);
    expect(outcome.read).toEqual({ children: [[0]] });
  });
});

describe("loads defer foreign key checks to their end", () => {
  const SELF_AND_MUTUAL = [
    "CREATE TABLE node (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES node(id))",
    "INSERT INTO node VALUES (2, NULL)",
    "INSERT INTO node VALUES (1, 2)",
    "CREATE TABLE a (id INTEGER PRIMARY KEY, b_id INTEGER REFERENCES b(id))",
    "CREATE TABLE b (id INTEGER PRIMARY KEY, a_id INTEGER REFERENCES a(id))",
    "INSERT INTO a VALUES (1, NULL)",
    "INSERT INTO b VALUES (1, 1)",
    "UPDATE a SET b_id = 1 WHERE id = 1",
  ];
  const CONTENTS =
    "SELECT 'node', id, parent FROM node UNION ALL SELECT 'a', id, b_id FROM a UNION ALL SELECT 'b', id, a_id FROM b";

  async function send(h: RealHarness, path: string, body: unknown): Promise<{ status: number; text: string }> {
    return typeof body === "string" || body instanceof Uint8Array
      ? h.send("POST", path, { body, headers: { "Content-Type": "application/octet-stream" } })
      : h.send("POST", path, { json: body });
  }

  async function contents(h: RealHarness): Promise<unknown> {
    const read = await send(h, "/db/query?level=strong", [CONTENTS]);
    expect(read.status, read.text).toBe(200);
    return (JSON.parse(read.text) as { results: { values?: unknown[][] }[] }).results[0]?.values;
  }

  it.each(["?fmt=sql", ""])(
    "a backup (%s) of self- and mutually referencing tables loads into an empty database",
    async (fmt) => {
      const source = new RealHarness(newCluster({ prefix: `fk-source${fmt.length}`, nodes: 1 }));
      const written = await send(source, "/db/execute", SELF_AND_MUTUAL);
      expect(written.text).not.toContain("error");
      const backup = await source.request("GET", `/db/backup${fmt}`);
      expect(backup.status).toBe(200);
      const body = fmt === "" ? new Uint8Array(await backup.arrayBuffer()) : await backup.text();
      if (typeof body === "string") {
        // Row 1 of node (which refers to row 2) is written first: only a deferred check accepts it.
        expect(body.indexOf('INSERT INTO "node" VALUES(1,2)')).toBeLessThan(
          body.indexOf('INSERT INTO "node" VALUES(2'),
        );
      }
      const target = new RealHarness(newCluster({ prefix: `fk-target${fmt.length}`, nodes: 1 }));
      const loaded = await send(target, "/db/load", body);
      expect(loaded.status, loaded.text).toBe(200);
      expect(loaded.text).not.toContain("error");
      expect(await contents(target)).toEqual(await contents(source));
    },
  );

  it("loads a dump in sqlite3's order (child table and its rows before the parent), and refuses orphans", async () => {
    const h = new RealHarness(newCluster({ prefix: "fk-sqlite3", nodes: 1 }));
    const dump = (extraRow: string): string =>
      [
        "PRAGMA foreign_keys=OFF;",
        "BEGIN TRANSACTION;",
        "CREATE TABLE child (id INTEGER PRIMARY KEY, par_id INTEGER REFERENCES par(id) ON DELETE CASCADE);",
        "INSERT INTO child VALUES(1,1);",
        extraRow,
        "CREATE TABLE par (id INTEGER PRIMARY KEY);",
        "INSERT INTO par VALUES(1);",
        "COMMIT;",
      ].join("\n");
    const orphan = await send(h, "/db/load", dump("INSERT INTO child VALUES(2,7);"));
    expect(orphan.status, orphan.text).toBe(200);
    const results = (JSON.parse(orphan.text) as { results: { error?: string }[] }).results;
    expect(results.at(-1)?.error).toMatch(/^FOREIGN KEY constraint failed: .*"child" \(rowid 2\), referring to "par"/);
    const tables = await send(h, "/db/query", ["SELECT count(*) FROM sqlite_master"]);
    expect(JSON.parse(tables.text)).toMatchObject({ results: [{ values: [[0]] }] });

    const loaded = await send(h, "/db/load", dump(""));
    expect(loaded.status, loaded.text).toBe(200);
    expect(loaded.text).not.toContain("error");
    const read = await send(h, "/db/query?level=strong", [
      "SELECT child.id, par.id FROM child JOIN par ON par.id = par_id",
    ]);
    expect(JSON.parse(read.text)).toMatchObject({ results: [{ values: [[1, 1]] }] });
  });

  it("loads a file SQLite wrote with foreign keys off, tables in either order", async () => {
    const sqlJs = await loadSqlJs();
    const db = new sqlJs.Database();
    let file: Uint8Array;
    try {
      db.exec(
        [
          "CREATE TABLE child (id INTEGER PRIMARY KEY, par_id INTEGER REFERENCES par(id));",
          "CREATE TABLE par (id INTEGER PRIMARY KEY, first_child INTEGER REFERENCES child(id));",
          "INSERT INTO child VALUES (1, 1); INSERT INTO par VALUES (1, 1);",
        ].join("\n"),
      );
      file = db.export();
    } finally {
      db.close();
    }
    const h = new RealHarness(newCluster({ prefix: "fk-file", nodes: 1 }));
    const loaded = await send(h, "/db/load", file);
    expect(loaded.status, loaded.text).toBe(200);
    expect(loaded.text).not.toContain("error");
    const read = await send(h, "/db/query?level=strong", ["SELECT * FROM child JOIN par"]);
    expect(JSON.parse(read.text)).toMatchObject({ results: [{ values: [[1, 1, 1, 1]] }] });
  });
});

describe("PRAGMAs of foreign keys over HTTP", () => {
  it("reads foreign_keys as 1, refuses turning it off, and takes defer_foreign_keys only with ?transaction", async () => {
    const h = new RealHarness(newCluster({ prefix: "fk-http", nodes: 1 }));
    const read = await h.send("POST", "/db/query", { json: ["PRAGMA foreign_keys"] });
    expect(JSON.parse(read.text)).toMatchObject({ results: [{ columns: ["foreign_keys"], values: [[1]] }] });
    const off = await h.send("POST", "/db/execute", { json: ["PRAGMA foreign_keys = OFF"] });
    expect(off.status).toBe(400);
    expect(off.text).toMatch(/foreign keys are always enforced on this platform/);
    const bare = await h.send("POST", "/db/execute", { json: ["PRAGMA defer_foreign_keys = ON"] });
    expect(bare.status).toBe(400);
    expect(bare.text).toMatch(/only allowed in a request with \?transaction/);
    const deferred = await h.send("POST", "/db/execute?transaction", {
      json: [
        "CREATE TABLE node (id INTEGER PRIMARY KEY, parent INTEGER REFERENCES node(id))",
        "PRAGMA defer_foreign_keys = true",
        "INSERT INTO node VALUES (1, 2)",
        "INSERT INTO node VALUES (2, 1)",
      ],
    });
    expect(deferred.status, deferred.text).toBe(200);
    expect(deferred.text).not.toContain("error");
  });
});

describe("entries that defer foreign keys during a rolling deploy", () => {
  const context = { nowMs: Date.UTC(2026, 0, 1), randomBytes: (length: number) => new Uint8Array(length) };

  it("are marked, so that a node of an earlier version stops at them rather than refuse the pragma and diverge", () => {
    const prepared = prepareWrite(
      {
        id: "load-1",
        transaction: true,
        statements: [{ sql: "PRAGMA defer_foreign_keys = ON" }, { sql: "CREATE TABLE p (id INTEGER PRIMARY KEY)" }],
      },
      context,
    );
    if (!prepared.ok) {
      throw new Error(prepared.error);
    }
    expect(prepared.request.defersForeignKeys).toBe(true);
    const encoded = encodeSqlRequest(prepared.request);
    expect(JSON.parse(encoded)).toMatchObject({ defersForeignKeys: true });
    expect(decodeSqlRequest(encoded).defersForeignKeys).toBe(true);
    // An earlier decoder knew no such field, and a decoder refuses every field it does not know: the entry cannot
    // apply there (the node stops and restarts until upgraded), so no replica refuses what the others apply.
    expect(() => decodeSqlRequest(encoded.replace('"defersForeignKeys"', '"aFieldOfALaterVersion"'))).toThrow(
      /unexpected field/,
    );
    const plain = prepareWrite({ id: "w-1", transaction: true, statements: [{ sql: "SELECT 1" }] }, context);
    expect(plain.ok && plain.request.defersForeignKeys).toBeUndefined();
  });
});
