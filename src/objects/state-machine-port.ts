// What the node runtime needs from the replicated SQL state machine. The runtime is written against this port so
// that the Raft plumbing and the SQL semantics stay in separate files.
import type { SqlRequest, Statement, StatementResult } from "../shared/sql";
import type { CheckpointRecord, DivergedFlag } from "./monitor/types";
import type { SnapshotChunk, SnapshotId, SnapshotImage } from "./snapshot-types";

export type PrepareResult<T> =
  { readonly ok: true; readonly value: T } | { readonly ok: false; readonly error: string };

export type { SnapshotChunk, SnapshotId, SnapshotImage } from "./snapshot-types";

export interface StateMachinePort {
  appliedIndex(): number;
  schemaInfo(): { readonly version: number; readonly hash: string };
  /** Validates and rewrites a write request before it is proposed; a refusal means nothing is logged. */
  prepareWrite(request: SqlRequest, context: { readonly nowMs: number }): PrepareResult<string>;
  /** Validates read statements for the query path. */
  prepareRead(statements: readonly Statement[]): PrepareResult<readonly Statement[]>;
  /** The results of an already applied request id, if it is still remembered. */
  rememberedResults(requestId: string): readonly StatementResult[] | null;
  /** Why a request (not yet prepared) is refused because its id is remembered for a different request; else null. */
  reusedIdRefusal(request: SqlRequest): string | null;
  /** Applies one committed entry and advances the applied index atomically; null when it was applied before. */
  applyEntry(entry: {
    readonly index: number;
    readonly kind: "normal" | "noop" | "config";
    readonly data: string;
  }): readonly StatementResult[] | null;
  query(statements: readonly Statement[], options: { readonly transaction: boolean }): readonly StatementResult[];
  createSnapshotImage(): SnapshotImage;
  /** Stages one received chunk; false when it does not fit the staging bounds or arrives out of order. */
  stageSnapshotChunk(chunk: SnapshotChunk): boolean;
  /** True when every chunk of that snapshot is staged. */
  hasCompleteSnapshot(snapshot: SnapshotId): boolean;
  /**
   * Swaps the staged image in, in one transaction; returns the applied index it carries. `alongside` runs last in
   * that transaction, so that what it writes commits with the image or not at all.
   */
  installStagedSnapshot(snapshot: SnapshotId, options?: { readonly alongside?: () => void }): number;
  /** Throws DumpError past maxBytes (the dump is built in memory). */
  dumpSql(options?: { readonly maxBytes?: number }): string;
  /**
   * Repair (src/objects/monitor): swaps the staged image in even when this node applied as far or further, since its
   * own state diverged; the image must be at least at `minImageIndex`. Returns the applied index it carries.
   */
  installRepairImage(snapshot: SnapshotId, options: { readonly minImageIndex: number }): number;
  /** This node's latest consistency checkpoints (oldest first, bounded) and its DIVERGED flag, if set. */
  consistencyState(): { readonly records: readonly CheckpointRecord[]; readonly diverged: DivergedFlag | null };
}
