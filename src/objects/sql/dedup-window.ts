// The request-dedup window in storage: the remembered requests (StateKeys.dedupById), their order by applied index
// (StateKeys.dedupByIndex, the id as value) and how many records and bytes the window holds, kept within
// maxDedupEntries and maxDedupBytes by forgetting the oldest first.
//
// Every replica remembers every write, so each KV operation here costs every node CPU on every write. Per write this
// writes the record and its index entry; the record count (StateKeys.dedupCount) only when it changes (a full window
// keeps it); and the window's byte total not in a key of its own but in the newest record (windowBytes), so that it
// costs no write. Once the window is full, forgetting one record deletes its two keys.
//
// The window's index entries (at most maxDedupEntries ids) are also kept in memory, listed once when first needed:
// a write whose id the window does not hold (nearly all) is told so without reading storage, and forgetting the oldest
// takes its key from memory, and its bytes too when this process remembered it. That saved three of the seven reads
// and writes of window keys a write cost the leader, and two of the six on each follower. The copy is only valid while
// storage holds what it last read or wrote: see DedupWindow.forget().
//
// Earlier versions kept the byte total under StateKeys.dedupBytes and wrote records without windowBytes: both are still
// read (a node restarted on this code after a deploy), and the first request remembered here deletes the old total, so
// that an earlier version started on this data again recomputes it from the records rather than trust a stale one.
// The index entries keep their format (the bare id) for the same reason, and storage is laid out as before.
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

/** One remembered request as the window keeps it in memory. */
interface Member {
  readonly id: string;
  /** The index it was applied at: its index entry is StateKeys.dedupByIndex(index). */
  readonly index: number;
  /** dedupRecordBytes of its record; null when it was listed from storage and not read since. */
  readonly bytes: number | null;
}

/** The applied index an index entry's key names. */
function indexOfKey(key: string): number {
  const index = Number(key.slice(StateKeys.dedupIndexPrefix.length));
  if (!Number.isSafeInteger(index) || StateKeys.dedupByIndex(index) !== key) {
    throw new Error(`dedup window: ${JSON.stringify(key)} is not an index entry's key`);
  }
  return index;
}

/** A Members queue compacts (drops the taken entries from its array) once this many were taken and half are gone. */
const COMPACT_AFTER_TAKEN = 1_024;

/**
 * The window's index entries in memory, oldest first. An id is counted, not just marked: storage laid out by an older
 * or faulty writer might list one id under two index entries, and each must still be forgotten in its turn. A queue
 * over an array rather than a Map's first entry: a Map keeps deleted entries in its table until it is rehashed, and
 * finding its first live entry walked over all of them (5% of an apply's time in a profile).
 */
class Members {
  /**
   * Oldest first (by applied index, the order the index entries' keys sort); those before `head` were taken and their
   * slots cleared, so that a forgotten id is not kept until the array is compacted (at a full window, only after as
   * many again were forgotten: up to twice the ids README states).
   */
  private entries: (Member | undefined)[] = [];
  private head = 0;
  private readonly idCounts = new Map<string, number>();

  static listed(kv: SyncKvStorage): Members {
    const members = new Members();
    for (const [key, id] of kv.list<string>({ prefix: StateKeys.dedupIndexPrefix })) {
      members.add({ id, index: indexOfKey(key), bytes: null });
    }
    return members;
  }

  has(id: string): boolean {
    return this.idCounts.has(id);
  }

  /** What is held, oldest first, as [index entry key, id]: the form storage lists them in (for checks). */
  held(): Array<readonly [key: string, id: string]> {
    return this.entries
      .slice(this.head)
      .filter((member) => member !== undefined)
      .map((member) => [StateKeys.dedupByIndex(member.index), member.id] as const);
  }

  /** Adds a request applied at a higher index than every one held. */
  add(member: Member): void {
    const newest = this.entries.length > this.head ? this.entries[this.entries.length - 1] : undefined;
    if (newest !== undefined && newest.index >= member.index) {
      throw new Error(`dedup window: index ${member.index} is not above the newest remembered one, ${newest.index}`);
    }
    this.entries.push(member);
    this.idCounts.set(member.id, (this.idCounts.get(member.id) ?? 0) + 1);
  }

  /** The oldest member, removed from memory; undefined when the window is empty. */
  takeOldest(): Member | undefined {
    const oldest = this.entries[this.head];
    if (oldest === undefined) {
      return undefined;
    }
    this.entries[this.head] = undefined;
    this.head += 1;
    if (this.head >= COMPACT_AFTER_TAKEN && this.head * 2 >= this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
    const count = this.idCounts.get(oldest.id) ?? 0;
    if (count <= 1) {
      this.idCounts.delete(oldest.id);
    } else {
      this.idCounts.set(oldest.id, count - 1);
    }
    return oldest;
  }
}

interface WindowState {
  count: number;
  bytes: number;
  /** The key StateKeys.dedupBytes of an earlier version is stored (stale once a record carries windowBytes). */
  legacyBytesKey: boolean;
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
  return { count, bytes, legacyBytesKey: legacyBytes !== undefined };
}

export interface DedupWindowOptions {
  readonly maxEntries: number;
  readonly maxBytes: number;
  /**
   * Checks the in-memory index against storage on every lookup and every remember, and calls this with what differs
   * before throwing (the simulator, which fails the seed, and tests; the checks cost the reads the index saves).
   */
  readonly checkAgainstStorage?: (problem: string) => void;
}

/**
 * The dedup window's bookkeeping of one state machine. The in-memory copies (counts and index entries) are only valid
 * while storage holds what they last read or wrote: forget() them when a transaction that wrote here rolls back, or
 * when the state is replaced (a snapshot install). Only this class writes the window's keys, apart from the snapshot
 * installer.
 */
export class DedupWindow {
  private state: WindowState | null = null;
  private members: Members | null = null;
  /** Bumped before every write, so that a rolled-back transaction can tell whether it undid one of them. */
  private writeCount = 0;

  constructor(
    private readonly kv: SyncKvStorage,
    private readonly options: DedupWindowOptions,
  ) {}

  get writes(): number {
    return this.writeCount;
  }

  forget(): void {
    this.state = null;
    this.members = null;
  }

  /** The record remembered under `id`, read from storage only when the window holds the id. */
  record(id: string): DedupRecord | undefined {
    const held = this.loadedMembers().has(id);
    const record = held ? this.kv.get<DedupRecord>(StateKeys.dedupById(id)) : undefined;
    if (this.options.checkAgainstStorage !== undefined) {
      const stored = this.kv.get<DedupRecord>(StateKeys.dedupById(id));
      if (held !== (stored !== undefined)) {
        this.mismatch(
          `request ${JSON.stringify(id)} is ${held ? "" : "not "}remembered in memory but ${stored === undefined ? "not " : ""}in storage`,
        );
      }
    }
    return record;
  }

  /**
   * Remembers a request applied at `index` (above every remembered one) and forgets the oldest until both bounds hold
   * again; the request just remembered always stays. Runs inside the entry's transaction.
   */
  remember(id: string, record: DedupRecord): void {
    this.writeCount += 1;
    const state = (this.state ??= readWindow(this.kv));
    const members = this.loadedMembers();
    if (this.options.checkAgainstStorage !== undefined) {
      this.checkHeldAsStored(members);
    }
    const recordBytes = dedupRecordBytes(id, record);
    let count = state.count + 1;
    let bytes = state.bytes + recordBytes;
    while (count > 1 && (count > this.options.maxEntries || bytes > this.options.maxBytes)) {
      const old = members.takeOldest();
      if (old === undefined) {
        break;
      }
      bytes -= old.bytes ?? this.storedRecordBytes(old.id);
      this.kv.delete(StateKeys.dedupByIndex(old.index));
      this.kv.delete(StateKeys.dedupById(old.id));
      count -= 1;
    }
    const stored: StoredDedupRecord = { ...record, windowBytes: bytes };
    this.kv.put(StateKeys.dedupById(id), stored);
    this.kv.put(StateKeys.dedupByIndex(record.index), id);
    members.add({ id, index: record.index, bytes: recordBytes });
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

  private checkHeldAsStored(members: Members): void {
    const stored = JSON.stringify([...this.kv.list<string>({ prefix: StateKeys.dedupIndexPrefix })]);
    const held = JSON.stringify(members.held());
    if (stored !== held) {
      this.mismatch(`the index in memory (${held}) is not the one in storage (${stored})`);
    }
  }

  private mismatch(problem: string): never {
    this.options.checkAgainstStorage?.(problem);
    throw new Error(`dedup window: ${problem}`);
  }

  private loadedMembers(): Members {
    return (this.members ??= Members.listed(this.kv));
  }

  /** What a listed record counts against the bytes bound (0 when its record is missing, as the total never held it). */
  private storedRecordBytes(id: string): number {
    const record = this.kv.get<DedupRecord>(StateKeys.dedupById(id));
    return record === undefined ? 0 : dedupRecordBytes(id, record);
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
