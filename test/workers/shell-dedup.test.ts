// Finding 5 of issue 9: the replicated dedup table (request id -> first results, carried in every snapshot) must not
// be filled by strong reads, and is bounded in bytes as well as in entries, identically on every replica.
import { runInDurableObject } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import type { ShellBugs } from "../../src/objects/shell-bugs";
import { encodeSqlRequest } from "../../src/objects/sql/codec";
import { dedupWindowBytes, SqlStateMachine } from "../../src/objects/sql/state-machine";
import { StateKeys } from "../../src/objects/storage-keys";
import { ScriptedNode, scriptedObject } from "./helpers/scripted-runtime";

async function dedupEntriesAfterStrongReads(bugs: ShellBugs): Promise<number> {
  const { stub, cluster } = scriptedObject("f5-strong");
  return runInDurableObject(stub, async (_instance, state) => {
    const node = new ScriptedNode(state, cluster, { prefix: "f5-strong", nodes: ["n1"], self: "n1", bugs });
    try {
      await node.electSelf([]);
      await node.runtime.execute({
        request: { id: "create", statements: [{ sql: "CREATE TABLE t (x INTEGER)" }], transaction: false },
        timeoutMs: 5_000,
      });
      for (let i = 0; i < 20; i++) {
        await node.runtime.query({
          statements: [{ sql: "SELECT count(*) FROM t" }],
          level: "strong",
          transaction: false,
          timeoutMs: 5_000,
        });
      }
      return state.storage.kv.get<number>(StateKeys.dedupCount) ?? 0;
    } finally {
      await node.runtime.stop("test finished");
    }
  });
}

describe("finding 5: the dedup table holds writes only, bounded in bytes", () => {
  it("finding 5: strong reads go through the log without being remembered", async () => {
    expect(await dedupEntriesAfterStrongReads({})).toBe(1);
  });
  it("finding 5: with strongReadsRemembered every strong read takes a dedup entry (the check can fail)", async () => {
    expect(await dedupEntriesAfterStrongReads({ strongReadsRemembered: true })).toBe(21);
  });

  it("finding 5: the window is bounded in bytes: the oldest results are forgotten first, the same way on every replica", async () => {
    const { stub } = scriptedObject("f5-bytes");
    await runInDurableObject(stub, async (_instance, state) => {
      const maxDedupBytes = 64 * 1024;
      const machine = new SqlStateMachine(state.storage, { maxDedupEntries: 10_000, maxDedupBytes });
      const apply = (index: number, id: string, sql: string): void => {
        machine.applyEntry({
          index,
          kind: "normal",
          data: encodeSqlRequest({ id, statements: [{ sql }], transaction: false }),
        });
      };
      apply(1, "setup", "CREATE TABLE big (v TEXT)");
      apply(2, "fill", `INSERT INTO big (v) VALUES ('${"x".repeat(4_000)}')`);
      // Each request returns a 4 KB row: about 16 of them fit in 64 KB.
      for (let i = 0; i < 40; i++) {
        apply(3 + i, `read-back-${i}`, "SELECT v FROM big");
      }
      const bytes = dedupWindowBytes(state.storage.kv);
      expect(bytes).toBeLessThanOrEqual(maxDedupBytes);
      expect(machine.rememberedResults("read-back-39")).not.toBeNull();
      expect(machine.rememberedResults("read-back-0")).toBeNull();
      const count = state.storage.kv.get<number>(StateKeys.dedupCount) ?? 0;
      expect(count).toBeGreaterThan(5);
      expect(count).toBeLessThan(42);
    });
  });
});
