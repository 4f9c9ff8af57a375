// The request-dedup window in storage: the remembered requests (StateKeys.dedupById), their order by applied index
// (StateKeys.dedupByIndex, the id as value) and how many records and bytes the window holds, kept within
// maxDedupEntries and maxDedupBytes by forgetting the oldest first.
//
// Every replica remembers every write, so each KV operation here costs every node CPU on every write. Per write this
// writes the record and its index entry; the record count (StateKeys.dedupCount) only when it changes (a full window
// keeps it); and the window's byte total not in a key of its own but in the newest record (windowBytes), so that it
// costs no write. Once the window is full, forgetting one record reads it (its bytes) and deletes its two keys; the
// oldest index entries are listed a batch at a time, not once per write.
//
// Earlier versions kept the byte total under StateKeys.dedupBytes and wrote records without windowBytes: both are still
// read (a node restarted on this code after a deploy), and the first request remembered here deletes the old total, so
// that an earlier version started on this data again recomputes it from the records rather than trust a stale one.
// The index entries keep their format (the bare id) for the same reason.
import { StateKeys, type DedupRecord } from "../storage-keys";
import { utf8ByteLength } from "../sqlite/values";

/** A DedupRecord as this version writes it: the window's total bytes once it was remembered. */
export interface StoredDedupRecord extends DedupRecord {
  /** dedupWindowBytes right after this request was remembered (and the oldest forgotten); absent in older records. */
  readonly windowBytes?: number;
}

/** What one remembered request counts against maxDedupBytes: a pure function of the record, so replicas agree. */
export function dedupRecordBytes(id: string, record: DedupRecord): number {
  return utf8ByteLength(id) + (record.results === null ? 0 : utf8ByteLength(record.results)) + 32;
}

/** How many index entries one listing reads ahead for forgetting: bounds the memory and the wasted reads alike. */
const OLDEST_BATCH = 64;

interface WindowState {
  count: number;
  bytes: number;
  /** The key StateKeys.dedupBytes of an earlier version is stored (stale once a record carries windowBytes). */
  legacyBytesKey: boolean;
  /** The oldest index entries, oldest first, as listed; refilled when empty. Each still exists until forgotten here. */
  readonly oldest: Array<readonly [key: string, id: string]>;
}

/** The window's bytes from the records alone (the total an earlier version kept is gone after a snapshot install). */
function sumOfRecordBytes(kv: SyncKvStorage): number {
  let bytes = 0;
  for (const [, id] of kv.list<string>({ prefix: StateKeys.dedupIndexPrefix })) {
    const record = kv.get<DedupRecord>(StateKeys.dedupById(id));
    if (record !== undefined) {
      bytes += dedupRecordBytes(id, record);
    }
  }
  return bytes;
}

function newestRecord(kv: SyncKvStorage): StoredDedupRecord | undefined {
  for (const [, id] of kv.list<string>({ prefix: StateKeys.dedupIndexPrefix, reverse: true, limit: 1 })) {
    return kv.get<StoredDedupRecord>(StateKeys.dedupById(id));
  }
  return undefined;
}

/** The bytes the dedup window holds, as stored (see the top of this file for where the total lives). */
export function dedupWindowBytes(kv: SyncKvStorage): number {
  return readWindow(kv).bytes;
}

function readWindow(kv: SyncKvStorage): WindowState {
  const count = kv.get<number>(StateKeys.dedupCount) ?? 0;
  const legacyBytes = kv.get<number>(StateKeys.dedupBytes);
  const newestBytes = newestRecord(kv)?.windowBytes;
  const bytes = newestBytes ?? legacyBytes ?? sumOfRecordBytes(kv);
  return { count, bytes, legacyBytesKey: legacyBytes !== undefined, oldest: [] };
}

/**
 * The dedup window's bookkeeping of one state machine. The in-memory copy of the counts is only valid while storage
 * holds what it last read or wrote: forget() it when a transaction that wrote here rolls back, or when the state is
 * replaced (a snapshot install).
 */
export class DedupWindow {
  private state: WindowState | null = null;
  /** Bumped before every write, so that a rolled-back transaction can tell whether it undid one of them. */
  private writeCount = 0;

  constructor(
    private readonly kv: SyncKvStorage,
    private readonly bounds: { readonly maxEntries: number; readonly maxBytes: number },
  ) {}

  get writes(): number {
    return this.writeCount;
  }

  forget(): void {
    this.state = null;
  }

  /**
   * Remembers a request applied at `index` (above every remembered one) and forgets the oldest until both bounds hold
   * again; the request just remembered always stays. Runs inside the entry's transaction.
   */
  remember(id: string, record: DedupRecord): void {
    this.writeCount += 1;
    const state = (this.state ??= readWindow(this.kv));
    let count = state.count + 1;
    let bytes = state.bytes + dedupRecordBytes(id, record);
    while (count > 1 && (count > this.bounds.maxEntries || bytes > this.bounds.maxBytes)) {
      const oldest = this.takeOldest(state);
      if (oldest === undefined) {
        break;
      }
      const [key, oldId] = oldest;
      const old = this.kv.get<DedupRecord>(StateKeys.dedupById(oldId));
      if (old !== undefined) {
        bytes -= dedupRecordBytes(oldId, old);
      }
      this.kv.delete(key);
      this.kv.delete(StateKeys.dedupById(oldId));
      count -= 1;
    }
    const stored: StoredDedupRecord = { ...record, windowBytes: bytes };
    this.kv.put(StateKeys.dedupById(id), stored);
    this.kv.put(StateKeys.dedupByIndex(record.index), id);
    if (count !== state.count) {
      this.kv.put(StateKeys.dedupCount, count);
    }
    if (state.legacyBytesKey) {
      this.kv.delete(StateKeys.dedupBytes);
      state.legacyBytesKey = false;
    }
    state.count = count;
    state.bytes = bytes;
  }

  private takeOldest(state: WindowState): readonly [string, string] | undefined {
    if (state.oldest.length === 0) {
      state.oldest.push(...this.kv.list<string>({ prefix: StateKeys.dedupIndexPrefix, limit: OLDEST_BATCH }));
    }
    return state.oldest.shift();
  }
}

/**
 * Writes the records of a snapshot's window, oldest first (the order a snapshot lists them), with the running byte
 * total, as remember() leaves them. Returns the window's record count.
 *
 * The window it replaces (replacing()) mostly holds the same records: a follower behind by a few thousand writes
 * shares the rest of a 10,000-record window with the image, and writing two keys per record was most of an install's
 * time (about 1.2 of 1.5 s for an 8,000-record window beside 2.4 MiB of rows, in a profile in wrangler dev). A record
 * stored under the same index entry with the same fields, byte for byte, is kept as it is: its bytes are what the
 * loaded total counts, as on the leader (records kept statement timings before, which may differ between replicas:
 * such a record is rewritten as the image has it). windowBytes may differ, and only the newest record's is ever read
 * (dedupWindowBytes), so that one is written in any case. Keys of the old window the image does not hold are deleted
 * at the end. The window being replaced is compared as the install listed it (one scan), not read again key by key:
 * two reads per record were a third of an install's time (about 70 of 225 ms for a 10,000-record window beside
 * 25,000 rows, in a profile in wrangler dev).
 */
export class DedupWindowLoader {
  private count = 0;
  private bytes = 0;
  /**
   * Record and index keys of the window being replaced that the loaded window has not written or kept, with their
   * values as stored. At most the window's bounds (maxDedupEntries records of at most maxDedupBytes in all).
   */
  private readonly leftOver = new Map<string, unknown>();
  /** The newest record loaded, when it was kept rather than written: finish() writes it with the total. */
  private keptNewest: { readonly id: string; readonly stored: StoredDedupRecord } | null = null;

  constructor(private readonly kv: SyncKvStorage) {}

  /** The window stored as these entries (records and index entries, key and value) is the one being replaced. */
  replacing(entries: Iterable<readonly [key: string, value: unknown]>): void {
    for (const [key, value] of entries) {
      this.leftOver.set(key, value);
    }
  }

  add(id: string, record: DedupRecord): void {
    this.bytes += dedupRecordBytes(id, record);
    this.count += 1;
    const stored: StoredDedupRecord = { ...record, windowBytes: this.bytes };
    const recordKey = StateKeys.dedupById(id);
    const indexKey = StateKeys.dedupByIndex(record.index);
    const kept = this.isStored(recordKey, indexKey, { id, record });
    this.leftOver.delete(recordKey);
    this.leftOver.delete(indexKey);
    this.keptNewest = kept ? { id, stored } : null;
    if (!kept) {
      this.kv.put(recordKey, stored);
      this.kv.put(indexKey, id);
    }
  }

  finish(): void {
    if (this.keptNewest !== null) {
      this.kv.put(StateKeys.dedupById(this.keptNewest.id), this.keptNewest.stored);
    }
    for (const key of this.leftOver.keys()) {
      this.kv.delete(key);
    }
    this.leftOver.clear();
    this.kv.put(StateKeys.dedupCount, this.count);
  }

  /** Whether the window being replaced holds this record, with the same fields, under the same index entry. */
  private isStored(
    recordKey: string,
    indexKey: string,
    loaded: { readonly id: string; readonly record: DedupRecord },
  ): boolean {
    if (!this.leftOver.has(recordKey) || !this.leftOver.has(indexKey)) {
      return false;
    }
    const existing = this.leftOver.get(recordKey) as StoredDedupRecord | undefined;
    const record = loaded.record;
    return (
      typeof existing === "object" &&
      existing !== null &&
      existing.index === record.index &&
      existing.results === record.results &&
      existing.count === record.count &&
      existing.fingerprint === record.fingerprint &&
      this.leftOver.get(indexKey) === loaded.id
    );
  }
}
