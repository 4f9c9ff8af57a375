// Issue 11, simulator bug B: a storage error half-way through persisting a Ready left the new entries on disk without
// the hard state of their term, and the node then never loaded again ("hard state term below the last log term").
// RaftStorage writes a Ready in one transaction; the platform adapter rolls back SQL and KV together.
import { describe, expect, it } from "vitest";
import { RaftStorage, type SyncTransaction } from "../../src/objects/raft-storage";
import type { LogEntry } from "../../src/replication/types";
import { SqliteStorage } from "./platform/sqlite-storage";
import { openCountedRaftStorage } from "./raft-storage-fixture";

const ENTRY: LogEntry = { index: 1, term: 2, kind: "noop", data: "" };

/** Persists one entry of term 2 with its hard state in an event whose hard-state write fails; then loads again. */
function persistWithFailingHardState(transactionFor: (storage: SqliteStorage) => SyncTransaction) {
  const storage = new SqliteStorage();
  storage.observer = {
    beforeWrite: (key) => {
      if (key === "raft/hard") {
        throw new Error("injected storage failure at put raft/hard");
      }
    },
  };
  const raftStorage = new RaftStorage(storage.kv, transactionFor(storage));
  raftStorage.load(0);
  storage.beginImplicit();
  expect(() =>
    raftStorage.persist({ truncateFrom: null, entries: [ENTRY], hardState: { term: 2, vote: "n1", commit: 0 } }),
  ).toThrow(/injected storage failure/);
  // The event ends normally (it was not a crash): what the failed persist left behind is committed.
  storage.commitImplicit();
  storage.observer = null;
  return new RaftStorage(storage.kv, transactionFor(storage)).load(0);
}

describe("RaftStorage.persist under a storage error", () => {
  it("writes nothing of a Ready whose hard state could not be written: the node loads again", () => {
    const loaded = persistWithFailingHardState((storage) => (fn) => storage.transactionSync(fn));
    expect(loaded.entries).toEqual([]);
    expect(loaded.hardState.term).toBe(0);
  });

  it("with the old, non-atomic persist (bug switch persistNotAtomic) the entry outlives its hard state", () => {
    const loaded = persistWithFailingHardState(() => (fn) => fn());
    // What made the core refuse to load: an entry of term 2 beside a hard state of term 0.
    expect(loaded.entries.map((entry) => entry.term)).toEqual([2]);
    expect(loaded.hardState.term).toBe(0);
  });
});

describe("RaftStorage.persist's transactions (issue 11: CPU per write)", () => {
  it("writes a Ready of one put without a transaction, and one of more in a single transaction", () => {
    const { storage, raftStorage, transactions } = openCountedRaftStorage();
    raftStorage.persist({ truncateFrom: null, entries: [], hardState: { term: 2, vote: "n1", commit: 0 } });
    raftStorage.persist({ truncateFrom: null, entries: [ENTRY], hardState: null });
    expect(transactions()).toBe(0);
    const second: LogEntry = { index: 2, term: 2, kind: "noop", data: "" };
    raftStorage.persist({ truncateFrom: null, entries: [second], hardState: { term: 2, vote: "n1", commit: 1 } });
    expect(transactions()).toBe(1);
    raftStorage.persist({ truncateFrom: 2, entries: [], hardState: null });
    expect(transactions()).toBe(2);
    const loaded = new RaftStorage(storage.kv, (fn) => storage.transactionSync(fn)).load(0);
    expect(loaded.entries).toEqual([ENTRY]);
    expect(loaded.hardState).toEqual({ term: 2, vote: "n1", commit: 1 });
  });
});
