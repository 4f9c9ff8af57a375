// Applying the monitor's entries, inside the transaction that applies the entry and advances the applied index
// (SqlStateMachine.applyEntry): a checkpoint stores this node's digests at that index; a verdict compares them with
// the majority's and, when they differ, marks this node DIVERGED. Both live under the state machine's KV prefix and
// are cleared whenever the node's state is replaced by a snapshot (snapshot-install.ts clears the prefix).
import { decodeMonitorCommand } from "./command";
import { computeCheckpoint, computeWholeCheckpoint, describeSlice } from "./digest";
import type { CheckpointRecord, DivergedFlag } from "./types";
import { StateKeys } from "../storage-keys";

export type { CheckpointRecord, DivergedFlag } from "./types";

/** Records kept per node: enough for the leader to hear of each one, bounded. */
export const RECORDS_KEPT = 4;

interface MonitorKv {
  get<T>(key: string): T | undefined;
  put<T>(key: string, value: T): void;
  delete(key: string): boolean;
  list<T>(options: { prefix: string }): Iterable<[string, T]>;
}

/** This node's records, oldest first (at most RECORDS_KEPT). */
export function readRecords(kv: MonitorKv): CheckpointRecord[] {
  return [...kv.list<CheckpointRecord>({ prefix: StateKeys.checkpointRecordPrefix })].map(([, record]) => record);
}

export function readDivergedFlag(kv: MonitorKv): DivergedFlag | null {
  return kv.get<DivergedFlag>(StateKeys.diverged) ?? null;
}

/** Applies one monitor entry at `index`. Throws (changing nothing: the caller's transaction rolls back) on garbage. */
export function applyMonitorEntry(
  storage: { readonly sql: SqlStorage; readonly kv: MonitorKv },
  data: string,
  index: number,
  nowMs: () => number,
): void {
  const command = decodeMonitorCommand(data);
  if (command.dha === "checkpoint") {
    const started = nowMs();
    const digest =
      command.whole === true
        ? computeWholeCheckpoint(storage.sql, readRecords(storage.kv).at(-1)?.next ?? { table: null, after: null })
        : computeCheckpoint(storage.sql, command);
    const record: CheckpointRecord = { index, ...digest, tookMs: nowMs() - started };
    storage.kv.put(StateKeys.checkpointRecord(index), record);
    const records = readRecords(storage.kv);
    for (const old of records.slice(0, Math.max(0, records.length - RECORDS_KEPT))) {
      storage.kv.delete(StateKeys.checkpointRecord(old.index));
    }
    return;
  }
  const own = storage.kv.get<CheckpointRecord>(StateKeys.checkpointRecord(command.index));
  if (own === undefined || readDivergedFlag(storage.kv) !== null) {
    // No record (this node's state was replaced since, or it skipped the checkpoint inside a snapshot): no opinion.
    return;
  }
  const schemaDiffers = own.schemaDigest !== command.schemaDigest;
  const rowsDiffer = own.rowsDigest !== command.rowsDigest;
  if (!schemaDiffers && !rowsDiffer) {
    return;
  }
  const flag: DivergedFlag = {
    checkpointIndex: command.index,
    verdictIndex: index,
    schemaDiffers,
    rowsDiffer,
    slice: describeSlice(own),
  };
  storage.kv.put(StateKeys.diverged, flag);
}
