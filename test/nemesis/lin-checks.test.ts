// The per-level checks of the linearizability run, on hand-made histories: each must catch what its level forbids.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import {
  HISTORY_FORMAT,
  readHistoryFile,
  writeHistoryFile,
  type HistoryInput,
  type HistoryOperation,
  type HistoryOutput,
} from "./history-file";
import { checkRun } from "./lin-checks";
import { registerRowsOf } from "./lin-run";

let nextId = 0;
function op(
  client: number,
  call: number,
  ret: number | null,
  input: HistoryInput,
  output: HistoryOutput | null,
  extra: Partial<HistoryOperation> = {},
): HistoryOperation {
  return { id: nextId++, client, call, return: ret, input, output, unknown: ret === null, ...extra };
}

describe("checks of the linearizability run", () => {
  it("accepts a history that keeps every level's promise, and counts what it checked", () => {
    const w1 = op(1, 0, 10, { kind: "write", key: "k", value: "a" }, {}, { raftIndex: 5 });
    const history = [
      w1,
      op(
        1,
        11,
        12,
        { kind: "read", key: "k", level: "read-your-writes", minRaftIndex: 5, afterWrite: w1.id },
        { value: "a" },
      ),
      op(2, 13, 14, { kind: "read", key: "k", level: "linearizable" }, { value: "a" }),
      op(2, 15, 16, { kind: "read", key: "k", level: "weak" }, { value: "a" }),
      op(3, 17, 18, { kind: "backup" }, { values: { k: "a" } }),
      op(2, 19, 20, { kind: "write", key: "k", value: "b" }, null, { status: 503 }),
    ];
    const result = checkRun(history);
    expect(result.problems).toEqual([]);
    expect(result.verdict).toBe("linearizable");
    expect(result.checked).toMatchObject({ writes: 2, "read-your-writes": 1, linearizable: 1, weak: 1, backups: 1 });
  });

  it("catches a linearizable read that misses an acknowledged write", () => {
    const history = [
      op(1, 0, 10, { kind: "write", key: "k", value: "a" }, {}),
      op(2, 11, 12, { kind: "read", key: "k", level: "strong" }, { value: null }),
    ];
    expect(checkRun(history).verdict).toBe("not-linearizable");
  });

  it("takes a 503 write as not applied, so that a read of its value is caught", () => {
    const history = [
      op(1, 0, 10, { kind: "write", key: "k", value: "a" }, null, { status: 503 }),
      op(2, 11, 12, { kind: "read", key: "k", level: "linearizable" }, { value: "a" }),
    ];
    expect(checkRun(history).verdict).toBe("not-linearizable");
  });

  it("puts level-none reads into the linearizability check only when asked to", () => {
    const history = [
      op(1, 0, 10, { kind: "write", key: "k", value: "a" }, {}),
      op(2, 11, 12, { kind: "read", key: "k", level: "none" }, { value: null }),
    ];
    expect(checkRun(history).verdict).toBe("linearizable");
    expect(checkRun(history, { alsoLinearizable: ["none"] }).verdict).toBe("not-linearizable");
  });

  it("catches a weak read of a value no write sent", () => {
    const history = [
      op(1, 0, 10, { kind: "write", key: "k", value: "a" }, {}),
      op(2, 11, 12, { kind: "read", key: "k", level: "weak" }, { value: "zz" }),
    ];
    const result = checkRun(history);
    expect(result.verdict).toBe("not-linearizable");
    expect(result.problems[0]).toMatch(/read a value no write had sent/);
  });

  it("catches a read-your-writes read that sees an older value than the write it carries", () => {
    const old = op(2, 0, 5, { kind: "write", key: "k", value: "old" }, {});
    const mine = op(1, 6, 10, { kind: "write", key: "k", value: "mine" }, {}, { raftIndex: 9 });
    const history = [
      old,
      mine,
      op(
        1,
        11,
        12,
        { kind: "read", key: "k", level: "read-your-writes", minRaftIndex: 9, afterWrite: mine.id },
        { value: "old" },
      ),
    ];
    const result = checkRun(history);
    expect(result.verdict).toBe("not-linearizable");
    expect(result.problems[0]).toMatch(/acknowledged before #\d+ was sent/);
  });

  it("catches a backup that misses a write acknowledged before it started", () => {
    const history = [
      op(1, 0, 5, { kind: "write", key: "k", value: "a" }, {}),
      op(1, 6, 10, { kind: "write", key: "k", value: "b" }, {}),
      op(1, 11, 12, { kind: "write", key: "j", value: "c" }, {}),
      op(3, 13, 20, { kind: "backup" }, { values: { k: "a" } }),
    ];
    const result = checkRun(history);
    expect(result.verdict).toBe("not-linearizable");
    expect(result.problems).toHaveLength(2);
    expect(result.problems.join("\n")).toMatch(/holds k = a .* missing .*"value":"b"/);
    expect(result.problems.join("\n")).toMatch(/holds no j/);
  });

  it("reads the register rows out of a SQL dump", () => {
    const dump = `PRAGMA foreign_keys=OFF;\nBEGIN TRANSACTION;\nCREATE TABLE reg (k TEXT PRIMARY KEY, v TEXT);\nINSERT INTO reg VALUES('k0','c1-3');\nINSERT INTO "reg" VALUES('k''1','c2-9');\nCOMMIT;\n`;
    expect(registerRowsOf(dump)).toEqual({ k0: "c1-3", "k'1": "c2-9" });
  });

  it("writes a history file that reads back the same", () => {
    const dir = mkdtempSync(join(tmpdir(), "dha-history-"));
    try {
      const file = join(dir, "history.json");
      const operations = [op(1, 0.5, null, { kind: "write", key: "k", value: "a" }, null)];
      writeHistoryFile(file, {
        format: HISTORY_FORMAT,
        seed: 7,
        startedAt: "2026-11-30T00:00:00.000Z",
        model: "register-per-key",
        operations,
      });
      expect(readHistoryFile(file).operations).toEqual(operations);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
