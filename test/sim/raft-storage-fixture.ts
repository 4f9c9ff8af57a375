// A RaftStorage on the simulator's SQLite storage that counts the transactions it opens (raft-storage-atomic.test.ts,
// leader-holds-entries.test.ts).
import { RaftStorage } from "../../src/objects/raft-storage";
import { SqliteStorage } from "./platform/sqlite-storage";

export interface CountedRaftStorage {
  readonly storage: SqliteStorage;
  readonly raftStorage: RaftStorage;
  /** Transactions opened so far. */
  transactions(): number;
}

export function openCountedRaftStorage(): CountedRaftStorage {
  const storage = new SqliteStorage();
  let transactions = 0;
  const raftStorage = new RaftStorage(storage.kv, (fn) => {
    transactions += 1;
    return storage.transactionSync(fn);
  });
  raftStorage.load(0);
  return { storage, raftStorage, transactions: () => transactions };
}
