// A storage error while applying an entry is not the statement's result: the apply stops, nothing of the entry
// remains, and applying it again (after the node reloads) gives what every other replica got. Found by simulator seed
// 304095: a failed KV write of the schema version during CREATE TABLE was recorded as the statement's error while the
// table stayed, so the node kept the empty schema's hash; every snapshot it sent then failed to install on the
// followers ("the restored schema hash ... differs from the snapshot's"), for good.
import { describe, expect, it } from "vitest";
import type { SqlRequest } from "../../src/shared/sql";
import { encodeSqlRequest } from "../../src/objects/sql/codec";
import { computeSchemaHash } from "../../src/objects/sqlite/catalog";
import { SnapshotInstaller } from "../../src/objects/sql/snapshot-install";
import { SqlStateMachine } from "../../src/objects/sql/state-machine";
import { isStatementResultError, StorageFailure } from "../../src/objects/sqlite/storage-failure";
import { SqliteStorage } from "./platform/sqlite-storage";

/** The adapter, with one storage operation that fails the way the simulator injects it (no SQLite code). */
function failingStorage(): { storage: DurableObjectStorage; failAt: (what: string | null) => void } {
  const inner = new SqliteStorage();
  let failing: string | null = null;
  const check = (what: string): void => {
    if (failing !== null && what.startsWith(failing)) {
      failing = null;
      throw new Error(`injected storage failure at ${what}`);
    }
  };
  const storage = {
    sql: {
      exec: (query: string, ...bindings: unknown[]) => {
        check(`sql ${query}`);
        return inner.sql.exec(query, ...bindings);
      },
      get databaseSize(): number {
        return inner.sql.databaseSize;
      },
    },
    kv: {
      get: <T>(key: string) => inner.kv.get<T>(key),
      put: <T>(key: string, value: T) => {
        check(`put ${key}`);
        inner.kv.put(key, value);
      },
      delete: (key: string) => {
        check(`delete ${key}`);
        return inner.kv.delete(key);
      },
      list: <T>(options?: Parameters<SqliteStorage["kv"]["list"]>[0]) => inner.kv.list<T>(options),
    },
    transactionSync: <T>(fn: () => T): T => inner.transactionSync(fn),
  };
  return {
    storage: storage as unknown as DurableObjectStorage,
    failAt: (what) => {
      failing = what;
    },
  };
}

function entry(index: number, id: string, sql: string): { index: number; kind: "normal"; data: string } {
  const request: SqlRequest = { id, transaction: false, statements: [{ sql }] };
  return { index, kind: "normal", data: encodeSqlRequest(request) };
}

const CREATE = "CREATE TABLE kv (k TEXT PRIMARY KEY, v TEXT NOT NULL)";

function tableNames(storage: DurableObjectStorage): string[] {
  return [...storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'kv'").raw()].map(
    ([name]) => String(name),
  );
}

/** Images `from`'s state and installs it on a fresh node; returns the receiver's applied index. */
function snapshotOnto(from: SqlStateMachine): number {
  const receiver = new SqliteStorage() as unknown as DurableObjectStorage;
  const image = from.createSnapshot();
  const installer = new SnapshotInstaller(receiver);
  const id = { snapshotIndex: image.appliedIndex, snapshotTerm: 1 };
  image.chunks.forEach((data, seq) => installer.receive({ ...id, seq, last: seq === image.chunks.length - 1, data }));
  return installer.finish(id).appliedIndex;
}

describe("a storage failure while applying stops the apply (seed 304095)", () => {
  it("a KV write failing during CREATE TABLE leaves nothing behind, and the retried apply matches a clean replica", () => {
    const { storage, failAt } = failingStorage();
    const machine = new SqlStateMachine(storage);
    expect(machine.applyEntry(entry(1, "a", "SELECT 1"))).toHaveLength(1);
    const emptyHash = machine.schemaInfo().hash;
    failAt("put sm/schema/version");
    expect(() => machine.applyEntry(entry(2, "b", CREATE))).toThrow(/injected storage failure at put sm\/schema/);
    expect(machine.appliedIndex()).toBe(1);
    expect(tableNames(storage)).toEqual([]);
    expect(machine.schemaInfo().hash).toBe(emptyHash);
    // The node reloads and applies the entry again: now as every other replica did.
    const results = machine.applyEntry(entry(2, "b", CREATE));
    expect(results).toEqual([expect.objectContaining({ rowsAffected: 0 })]);
    expect(results?.[0]?.error).toBeUndefined();
    expect(tableNames(storage)).toEqual(["kv"]);
    expect(machine.schemaInfo().hash).toBe(computeSchemaHash(storage.sql));
    expect(machine.schemaInfo().hash).not.toBe(emptyHash);
    // Its snapshots install elsewhere (before the fix, the stale hash failed every install).
    expect(snapshotOnto(machine)).toBe(2);
  });

  it("an SQL statement the storage fails (no SQLite code) stops the apply; no result is remembered", () => {
    const { storage, failAt } = failingStorage();
    const machine = new SqlStateMachine(storage);
    machine.applyEntry(entry(1, "a", CREATE));
    failAt("sql INSERT INTO kv");
    expect(() => machine.applyEntry(entry(2, "b", "INSERT INTO kv VALUES ('k', 'v')"))).toThrow(StorageFailure);
    expect(machine.appliedIndex()).toBe(1);
    expect(machine.rememberedRequest("b")).toBeNull();
    expect(machine.applyEntry(entry(2, "b", "INSERT INTO kv VALUES ('k', 'v')"))).toEqual([
      expect.objectContaining({ rowsAffected: 1 }),
    ]);
  });

  it("a failing write of the request's dedup record stops the apply too", () => {
    const { storage, failAt } = failingStorage();
    const machine = new SqlStateMachine(storage);
    machine.applyEntry(entry(1, "a", CREATE));
    failAt("put sm/dedup/");
    expect(() => machine.applyEntry(entry(2, "b", "INSERT INTO kv VALUES ('k', 'v')"))).toThrow(/injected storage/);
    expect(machine.appliedIndex()).toBe(1);
    expect([...storage.sql.exec("SELECT count(*) FROM kv").raw()]).toEqual([[0]]);
  });

  it("errors the statement's SQL decides stay its results (a constraint, a missing table, a syntax error)", () => {
    const { storage } = failingStorage();
    const machine = new SqlStateMachine(storage);
    machine.applyEntry(entry(1, "a", CREATE));
    machine.applyEntry(entry(2, "b", "INSERT INTO kv VALUES ('k', 'v')"));
    const results = [
      machine.applyEntry(entry(3, "c", "INSERT INTO kv VALUES ('k', 'w')")),
      machine.applyEntry(entry(4, "d", "INSERT INTO nosuch VALUES (1)")),
      machine.applyEntry(entry(5, "e", "INSERT INTO kv VALUES ('x', NULL)")),
    ].map((r) => r?.[0]?.error);
    expect(results).toEqual([
      "UNIQUE constraint failed: kv.k",
      "no such table: nosuch",
      "NOT NULL constraint failed: kv.v",
    ]);
    expect(machine.appliedIndex()).toBe(5);
  });
});

describe("isStatementResultError", () => {
  it("tells the statement's errors from the storage's by the platform's SQLite code", () => {
    const statement = [
      new Error("UNIQUE constraint failed: t.a: SQLITE_CONSTRAINT (extended: SQLITE_CONSTRAINT_PRIMARYKEY)"),
      new Error("no such table: nosuch: SQLITE_ERROR"),
      new Error('near "SELEC": syntax error at offset 0: SQLITE_ERROR'),
      new Error("datatype mismatch: SQLITE_MISMATCH"),
      new Error("string or blob too big: SQLITE_TOOBIG"),
      new Error("not authorized: SQLITE_AUTH"),
      new Error("SQL code did not contain a statement."),
      new Error("Wrong number of parameter bindings for SQL query."),
      new Error("To execute a transaction, please use the state.storage.transaction() or ... instead"),
      new TypeError("Cannot convert a BigInt value to a number"),
    ];
    const storage = [
      new Error("disk I/O error: SQLITE_IOERR (extended: SQLITE_IOERR_WRITE)"),
      new Error("database or disk is full: SQLITE_FULL"),
      new Error("out of memory: SQLITE_NOMEM"),
      new Error("database is locked: SQLITE_BUSY"),
      new Error("database disk image is malformed: SQLITE_CORRUPT"),
      new Error("interrupted: SQLITE_INTERRUPT"),
      new Error("Durable Object storage operation exceeded timeout which caused object to be reset."),
      new Error("injected storage failure at put sm/schema/version"),
      new StorageFailure("while testing", new Error("no such table: x: SQLITE_ERROR")),
      "a thrown string",
    ];
    expect(statement.filter((error) => !isStatementResultError(error)).map(String)).toEqual([]);
    expect(storage.filter((error) => isStatementResultError(error)).map(String)).toEqual([]);
  });
});
