// The simulator's node:sqlite adapter against the fixture of platform behaviour that workerd also runs
// (test/workers/sim-sql-fixture.test.ts): both must agree, or the simulator proves a different program.
import { describe, expect, it } from "vitest";
import fixture from "./sql-fixture.json";
import { runFixture, type Fixture } from "./fixture-runner";
import { SqliteStorage } from "./sqlite-storage";

describe("node:sqlite adapter", () => {
  it("behaves like ctx.storage on every step of the fixture", () => {
    const { problems, steps } = runFixture(new SqliteStorage(), fixture as unknown as Fixture);
    expect(problems).toEqual([]);
    expect(steps).toBeGreaterThan(50);
  });

  it("the implicit transaction of an event: committed writes stay, a crash loses the uncommitted ones", () => {
    const storage = new SqliteStorage();
    storage.beginImplicit();
    storage.sql.exec("CREATE TABLE t(a)");
    storage.kv.put("k", 1);
    storage.commitImplicit();
    storage.beginImplicit();
    storage.sql.exec("INSERT INTO t VALUES (1)");
    storage.kv.put("k", 2);
    storage.transactionSync(() => storage.kv.put("j", 3));
    storage.rollbackImplicit();
    expect(storage.sql.exec("SELECT count(*) AS n FROM t").one()).toEqual({ n: 0 });
    expect(storage.kv.get("k")).toBe(1);
    expect(storage.kv.get("j")).toBeUndefined();
  });

  it("a cursor reads lazily: rows inserted after exec are not read, errors after the first rows surface late", () => {
    const storage = new SqliteStorage();
    storage.sql.exec("CREATE TABLE t(a INTEGER)");
    storage.sql.exec("INSERT INTO t VALUES (1), (2), (3), (-9223372036854775808)");
    const cursor = storage.sql.exec("SELECT abs(a) FROM t ORDER BY rowid");
    expect(cursor.rowsRead).toBe(1);
    const raw = cursor.raw();
    expect(raw.next().value).toEqual([1]);
    expect(raw.next().value).toEqual([2]);
    expect(() => raw.next()).toThrow(/integer overflow/);
  });
});
