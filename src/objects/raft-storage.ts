// Durable Raft state of one node, kept through the synchronous KV API: it lives in a platform-reserved table that
// user SQL cannot reach (SQLITE_AUTH), so no statement of a client can corrupt the log or the vote.
import type { HardState, LogEntry, PersistedState, Ready, SnapshotMeta } from "../replication/types";
import { RaftKeys } from "./storage-keys";

/** The synchronous key-value store this needs: the platform's ctx.storage.kv, or the simulator's. */
export interface SyncKv {
  get<T = unknown>(key: string): T | undefined;
  put<T>(key: string, value: T): void;
  delete(key: string): boolean;
  list<T = unknown>(options?: { readonly prefix?: string; readonly limit?: number }): Iterable<[string, T]>;
}

/** Runs `fn` so that all of its writes happen or none do (ctx.storage.transactionSync on the platform). */
export type SyncTransaction = <T>(fn: () => T) => T;

/**
 * At most this many entries wait to be written with the next write (see hold). They are the core's own log entries
 * (no copy), so this bounds how large that delayed write grows, not memory.
 */
export const MAX_HELD_ENTRIES = 256;

/** Reads and writes the Raft hard state, log and snapshot metadata of one node. */
export class RaftStorage {
  /** Index of the last entry on disk (or of the snapshot when the log is empty). */
  private lastIndex = 0;
  private firstIndex = 1;
  /** A leader's new entries not written yet (hold), in order, continuing from lastIndex. */
  private held: LogEntry[] = [];

  constructor(
    private readonly kv: SyncKv,
    private readonly transaction: SyncTransaction,
    /** Test only (ShellBugs.heldEntriesWrittenOnTicksOnly): other writes leave the held entries where they are. */
    private readonly bugs: { readonly heldWrittenOnTicksOnly?: boolean } = {},
  ) {}

  /** Loads everything the core needs to restart; `applied` comes from the state machine. */
  load(applied: number): PersistedState {
    const hardState = this.kv.get<HardState>(RaftKeys.hardState) ?? { term: 0, vote: null, commit: 0 };
    const snapshot = this.kv.get<SnapshotMeta>(RaftKeys.snapshot) ?? null;
    const entries: LogEntry[] = [];
    for (const [, entry] of this.kv.list<LogEntry>({ prefix: RaftKeys.logPrefix })) {
      entries.push(entry);
    }
    const snapshotIndex = snapshot?.index ?? 0;
    assertContiguous(entries, snapshotIndex);
    this.firstIndex = snapshotIndex + 1;
    this.lastIndex = entries.length > 0 ? entries[entries.length - 1]!.index : snapshotIndex;
    // The state machine may be ahead of the log after installing a snapshot image taken later than the snapshot
    // metadata says; the core then re-delivers entries the state machine already holds, and applying skips them.
    const clampedApplied = Math.max(snapshotIndex, Math.min(applied, hardState.commit, this.lastIndex));
    return { hardState, snapshot, entries, applied: clampedApplied };
  }

  /**
   * Step 2 of a Ready: truncate, append, write the hard state, in one transaction. A storage error half-way must not
   * leave entries of a new term beside the old hard state (the node could not load again), nor a truncation
   * without the entries that replace it.
   */
  persist(ready: Pick<Ready, "truncateFrom" | "entries" | "hardState">): void {
    this.writeHeldFirst();
    const puts = ready.entries.length + (ready.hardState === null ? 0 : 1);
    if (ready.truncateFrom === null && puts === 0) {
      return;
    }
    const before = { firstIndex: this.firstIndex, lastIndex: this.lastIndex };
    try {
      if (ready.truncateFrom === null && puts === 1) {
        // One put is atomic by itself; a transaction around it would only cost its savepoint (a Ready that only
        // advances the commit index, or appends one entry, is most of them at low load).
        this.write(ready);
      } else {
        this.transaction(() => this.write(ready));
      }
    } catch (error) {
      // Nothing was written: the indexes this object tracks go back with the storage.
      this.firstIndex = before.firstIndex;
      this.lastIndex = before.lastIndex;
      throw error;
    }
  }

  /**
   * A leader's new entries, kept in memory to be written with the next write of this object instead of on their own
   * (NodeRuntime.persistReady says when): every other write below writes them first, in order, and so does
   * writeHeld; entry() serves them meanwhile. Returns false, holding nothing, when `entries` would not fit under
   * MAX_HELD_ENTRIES: the caller persists instead.
   */
  hold(entries: readonly LogEntry[]): boolean {
    if (this.held.length + entries.length > MAX_HELD_ENTRIES) {
      return false;
    }
    let expected = this.lastIndex + this.held.length + 1;
    for (const entry of entries) {
      if (entry.index !== expected) {
        throw new Error(`raft storage: holding index ${entry.index}, expected ${expected}`);
      }
      expected++;
    }
    this.held.push(...entries);
    return true;
  }

  /** How many entries wait in memory (hold). */
  get heldCount(): number {
    return this.held.length;
  }

  private writeHeldFirst(): void {
    if (this.bugs.heldWrittenOnTicksOnly !== true) {
      this.writeHeld();
    }
  }

  /** Writes the entries held in memory (hold), atomically; a no-op when none are. */
  writeHeld(): void {
    if (this.held.length === 0) {
      return;
    }
    const entries = this.held;
    this.held = [];
    const before = this.lastIndex;
    try {
      const ready = { truncateFrom: null, entries, hardState: null };
      if (entries.length === 1) {
        this.write(ready);
      } else {
        this.transaction(() => this.write(ready));
      }
    } catch (error) {
      this.lastIndex = before;
      this.held = entries;
      throw error;
    }
  }

  private write(ready: Pick<Ready, "truncateFrom" | "entries" | "hardState">): void {
    if (ready.truncateFrom !== null) {
      this.truncateFrom(ready.truncateFrom);
    }
    for (const entry of ready.entries) {
      if (entry.index !== this.lastIndex + 1) {
        throw new Error(`raft storage: appending index ${entry.index} after last index ${this.lastIndex}`);
      }
      this.kv.put(RaftKeys.log(entry.index), entry);
      this.lastIndex = entry.index;
    }
    if (ready.hardState !== null) {
      this.kv.put(RaftKeys.hardState, ready.hardState);
    }
  }

  /**
   * Records a snapshot received from the leader: the log restarts right after it. In one transaction (NodeRuntime
   * runs it inside the state machine's install of the image, so that both commit or neither does).
   */
  installSnapshot(meta: SnapshotMeta): void {
    this.writeHeldFirst();
    this.transaction(() => {
      this.deleteRange({ fromIndex: this.firstIndex, toIndex: this.lastIndex });
      this.kv.put(RaftKeys.snapshot, meta);
    });
    this.firstIndex = meta.index + 1;
    this.lastIndex = meta.index;
  }

  /** Records our own snapshot at `meta.index` and drops the log up to it, in one transaction (a log with a hole no longer loads). */
  compact(meta: SnapshotMeta): void {
    this.writeHeldFirst();
    this.transaction(() => {
      this.kv.put(RaftKeys.snapshot, meta);
      this.deleteRange({ fromIndex: this.firstIndex, toIndex: Math.min(meta.index, this.lastIndex) });
    });
    this.firstIndex = meta.index + 1;
    if (this.lastIndex < meta.index) {
      this.lastIndex = meta.index;
    }
  }

  entry(index: number): LogEntry | undefined {
    const held = this.held[index - this.lastIndex - 1];
    return held !== undefined && index > this.lastIndex ? held : this.kv.get<LogEntry>(RaftKeys.log(index));
  }

  snapshot(): SnapshotMeta | null {
    return this.kv.get<SnapshotMeta>(RaftKeys.snapshot) ?? null;
  }

  private truncateFrom(index: number): void {
    this.deleteRange({ fromIndex: index, toIndex: this.lastIndex });
    this.lastIndex = Math.max(this.firstIndex - 1, index - 1);
  }

  private deleteRange(range: { fromIndex: number; toIndex: number }): void {
    for (let index = range.fromIndex; index <= range.toIndex; index++) {
      this.kv.delete(RaftKeys.log(index));
    }
  }
}

function assertContiguous(entries: readonly LogEntry[], snapshotIndex: number): void {
  let expected = snapshotIndex + 1;
  for (const entry of entries) {
    if (entry.index !== expected) {
      throw new Error(`raft storage: log is not contiguous: found index ${entry.index}, expected ${expected}`);
    }
    expected++;
  }
}
