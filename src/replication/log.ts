// The in-memory Raft log after the latest snapshot, plus the bookkeeping of what the shell has been handed and has
// persisted (etcd's log.go + log_unstable.go in one place).
import { invariant } from "./assert.js";
import type { LogEntry, SnapshotMeta } from "./types.js";

export interface TermAtIndex {
  readonly index: number;
  readonly term: number;
}

export class RaftLog {
  private snapshotMeta: SnapshotMeta;
  /** entries[i] has index snapshotMeta.index + 1 + i. */
  private entries: LogEntry[];
  /** Last index the shell has persisted (acknowledged through advance()). */
  private persistedIndex: number;
  /** Last index handed to the shell in a Ready (persisted, or being persisted). */
  private handedOutIndex: number;
  /** Entries at or after this index must be deleted from storage by the next Ready. */
  private truncateFromIndex: number | null = null;
  /** A snapshot received from the leader that the next Ready must install. */
  private snapshotToInstall: SnapshotMeta | null = null;

  constructor(snapshot: SnapshotMeta, entries: readonly LogEntry[]) {
    this.snapshotMeta = snapshot;
    this.entries = [];
    for (const entry of entries) {
      this.appendOne(entry);
    }
    this.persistedIndex = this.lastIndex();
    this.handedOutIndex = this.lastIndex();
  }

  snapshot(): SnapshotMeta {
    return this.snapshotMeta;
  }

  firstIndex(): number {
    return this.snapshotMeta.index + 1;
  }

  lastIndex(): number {
    return this.snapshotMeta.index + this.entries.length;
  }

  lastTerm(): number {
    const last = this.entries[this.entries.length - 1];
    return last === undefined ? this.snapshotMeta.term : last.term;
  }

  /** The term of `index`, or undefined when it was compacted away or is beyond the last index. */
  term(index: number): number | undefined {
    if (index === this.snapshotMeta.index) {
      return this.snapshotMeta.term;
    }
    return this.entryAt(index)?.term;
  }

  entryAt(index: number): LogEntry | undefined {
    if (index <= this.snapshotMeta.index) {
      return undefined;
    }
    return this.entries[index - this.snapshotMeta.index - 1];
  }

  matchTerm(index: number, term: number): boolean {
    return this.term(index) === term;
  }

  /**
   * Acknowledged by the shell through advance(): persisted, or held by a leader's driver until its next write (types.ts,
   * `interface Ready`, step 2). What a leader counts as its own match index.
   */
  persisted(): number {
    return this.persistedIndex;
  }

  /** Leader append: entries continue the log and never go back in term. */
  append(entries: readonly LogEntry[]): void {
    for (const entry of entries) {
      this.appendOne(entry);
    }
  }

  /**
   * The index of the first entry of `entries` that is not in the log with the same term (a conflict, or simply new),
   * or 0 when the log already holds all of them. Entries are contiguous.
   */
  findConflict(entries: readonly LogEntry[]): number {
    for (const entry of entries) {
      if (entry.index <= this.snapshotMeta.index) {
        continue;
      } // covered by the snapshot, hence committed and equal
      if (!this.matchTerm(entry.index, entry.term)) {
        return entry.index;
      }
    }
    return 0;
  }

  /**
   * Follower append: drops our entries from the first of `entries` on, then appends. Entries already handed to the
   * shell that are dropped are reported as `truncateFrom` in the next Ready.
   */
  truncateAndAppend(entries: readonly LogEntry[]): void {
    const first = entries[0];
    if (first === undefined) {
      return;
    }
    invariant(
      first.index > this.snapshotMeta.index,
      `truncateAndAppend: index ${first.index} is inside the snapshot (${this.snapshotMeta.index})`,
    );
    invariant(
      first.index <= this.lastIndex() + 1,
      `truncateAndAppend: index ${first.index} leaves a gap after ${this.lastIndex()}`,
    );
    if (first.index <= this.lastIndex()) {
      this.entries.length = first.index - this.snapshotMeta.index - 1;
      if (first.index <= this.handedOutIndex) {
        this.truncateFromIndex = Math.min(this.truncateFromIndex ?? first.index, first.index);
        this.handedOutIndex = first.index - 1;
      }
      this.persistedIndex = Math.min(this.persistedIndex, first.index - 1);
    }
    for (const entry of entries) {
      this.appendOne(entry);
    }
  }

  /**
   * Entries [fromIndex, toIndex], stopping before the payload bytes exceed maxBytes (but always at least one entry).
   * Null when fromIndex was compacted away.
   */
  slice(range: { readonly fromIndex: number; readonly toIndex: number; readonly maxBytes: number }): LogEntry[] | null {
    if (range.fromIndex <= this.snapshotMeta.index) {
      return null;
    }
    const toIndex = Math.min(range.toIndex, this.lastIndex());
    const result: LogEntry[] = [];
    let bytes = 0;
    for (let index = range.fromIndex; index <= toIndex; index++) {
      const entry = this.entryAt(index);
      invariant(entry !== undefined, `slice: entry ${index} missing`);
      bytes += entry.data.length;
      if (result.length > 0 && bytes > range.maxBytes) {
        break;
      }
      result.push(entry);
    }
    return result;
  }

  /**
   * Fast back-off (etcd findConflictByTerm): the largest index <= `index` whose term is <= `term`, with its term.
   * When that search runs into the compacted prefix it stops there with term 0 ("unknown").
   */
  findConflictByTerm(index: number, term: number): TermAtIndex {
    for (let candidate = Math.min(index, this.lastIndex()); candidate > 0; candidate--) {
      const ourTerm = this.term(candidate);
      if (ourTerm === undefined) {
        return { index: candidate, term: 0 };
      }
      if (ourTerm <= term) {
        return { index: candidate, term: ourTerm };
      }
    }
    return { index: 0, term: 0 };
  }

  /** Is a log ending at (lastIndex, lastTerm) at least as up to date as ours? */
  isUpToDate(lastIndex: number, lastTerm: number): boolean {
    return lastTerm > this.lastTerm() || (lastTerm === this.lastTerm() && lastIndex >= this.lastIndex());
  }

  // --- Hand-out and persistence ------------------------------------------------------------------------------

  hasWorkForReady(): boolean {
    return this.snapshotToInstall !== null || this.truncateFromIndex !== null || this.lastIndex() > this.handedOutIndex;
  }

  takeSnapshotToInstall(): SnapshotMeta | null {
    const snapshot = this.snapshotToInstall;
    this.snapshotToInstall = null;
    return snapshot;
  }

  takeTruncateFrom(): number | null {
    const index = this.truncateFromIndex;
    this.truncateFromIndex = null;
    return index;
  }

  /** Entries not yet handed to the shell; they count as handed out from now on. */
  takeEntriesToPersist(): LogEntry[] {
    const from = Math.max(this.handedOutIndex + 1, this.firstIndex());
    const entries = this.entries.slice(from - this.snapshotMeta.index - 1);
    this.handedOutIndex = this.lastIndex();
    return entries;
  }

  /**
   * The shell persisted the entries of the last Ready, up to `index`. Only one Ready is out at a time, so whatever is
   * still handed out at or below `index` is exactly what it wrote (a truncation since then lowered handedOutIndex).
   */
  persistedTo(index: number): void {
    this.persistedIndex = Math.max(this.persistedIndex, Math.min(index, this.handedOutIndex));
  }

  /** Replaces the whole log with a snapshot received from the leader; the next Ready installs it. */
  restore(snapshot: SnapshotMeta): void {
    invariant(
      snapshot.index > this.snapshotMeta.index && !this.matchTerm(snapshot.index, snapshot.term),
      `restore: snapshot ${snapshot.index}:${snapshot.term} is not ahead of the log (snapshot ${this.snapshotMeta.index}, last ${this.lastIndex()})`,
    );
    this.snapshotMeta = snapshot;
    this.entries = [];
    this.snapshotToInstall = snapshot;
    this.truncateFromIndex = null;
    this.persistedIndex = snapshot.index;
    this.handedOutIndex = snapshot.index;
  }

  /** Our own snapshot at `snapshot.index` was recorded by the shell: drop the entries it covers. */
  compactTo(snapshot: SnapshotMeta): void {
    if (snapshot.index <= this.snapshotMeta.index) {
      return;
    }
    invariant(
      snapshot.index <= this.persistedIndex,
      `compactTo(${snapshot.index}): beyond the persisted index ${this.persistedIndex}`,
    );
    invariant(
      this.matchTerm(snapshot.index, snapshot.term),
      `compactTo(${snapshot.index}): term ${snapshot.term} differs from the log's ${String(this.term(snapshot.index))}`,
    );
    this.entries = this.entries.slice(snapshot.index - this.snapshotMeta.index);
    this.snapshotMeta = snapshot;
  }

  private appendOne(entry: LogEntry): void {
    const expected = this.lastIndex() + 1;
    invariant(entry.index === expected, `log append: index ${entry.index} is not contiguous (expected ${expected})`);
    invariant(
      entry.term >= this.lastTerm(),
      `log append: term ${entry.term} at index ${entry.index} is below the previous term ${this.lastTerm()}`,
    );
    this.entries.push(entry);
  }
}
