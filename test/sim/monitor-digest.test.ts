// The consistency monitor's digests on the node:sqlite adapter (the simulator's platform): the same database gives
// the same digests, any difference in rows or schema gives different ones, and a sweep covers every table.
import { describe, expect, it } from "vitest";
import { SqliteStorage } from "./platform/sqlite-storage";
import { createStateMachine } from "../../src/objects/sql/port";
import { encodeMonitorCommand } from "../../src/objects/monitor/command";
import { encodeSqlRequest } from "../../src/objects/sql/codec";

function machine(): { storage: SqliteStorage; sm: ReturnType<typeof createStateMachine>; next: () => number } {
  const storage = new SqliteStorage();
  const sm = createStateMachine(storage as unknown as DurableObjectStorage);
  let index = 0;
  return { storage, sm, next: () => ++index };
}

function write(target: ReturnType<typeof machine>, sql: string): void {
  const index = target.next();
  target.sm.applyEntry({
    index,
    kind: "normal",
    data: encodeSqlRequest({ id: `w${index}`, transaction: false, statements: [{ sql }] }),
  });
}

function checkpoint(target: ReturnType<typeof machine>, table: string | null = null) {
  const index = target.next();
  target.sm.applyEntry({
    index,
    kind: "normal",
    data: encodeMonitorCommand({ dha: "checkpoint", table, after: null, maxRows: 100, maxBytes: 1 << 20 }),
  });
  const record = target.sm.consistencyState().records.at(-1)!;
  expect(record.index).toBe(index);
  return record;
}

describe("checkpoint digests (node:sqlite)", () => {
  it("agree on equal databases and differ on a changed row", () => {
    const a = machine();
    const b = machine();
    for (const target of [a, b]) {
      write(target, "CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)");
      write(target, "INSERT INTO t VALUES (1, 'x'), (2, 'y'), (9007199254740993, 'big')");
    }
    const ra = checkpoint(a);
    const rb = checkpoint(b);
    expect(ra.rowsDigest).toBe(rb.rowsDigest);
    expect(ra.schemaDigest).toBe(rb.schemaDigest);
    expect(ra.rows).toBe(3);
    b.storage.sql.exec("UPDATE t SET v = 'z' WHERE id = 2");
    expect(checkpoint(a).rowsDigest).not.toBe(checkpoint(b).rowsDigest);
  });
});
