// The consistency monitor's data as it crosses RPC and appears in status reports: plain data, no platform types.

/** One value of a row key, typed: ["i", decimal], ["r", number], ["t", text], ["b", hex] or ["n"]. */
export type KeyPart =
  readonly ["i", string] | readonly ["r", number] | readonly ["t", string] | readonly ["b", string] | readonly ["n"];
/** A row's position: its rowid (["i", ...]) or its primary key's values, in key order. */
export type SliceKey = readonly KeyPart[];

/** What a node computed for one checkpoint. */
export interface CheckpointDigest {
  /** SHA-256 (hex) of the user schema, as in schemaInfo(), computed afresh from sqlite_master. */
  readonly schemaDigest: string;
  /** SHA-256 (hex) of the slice: the table, the start key, then every row (key and values) in order. */
  readonly rowsDigest: string;
  readonly table: string | null;
  readonly after: SliceKey | null;
  /** The key of the last row digested; null when none was. */
  readonly end: SliceKey | null;
  readonly rows: number;
  /** True when the slice reached the end of the table. */
  readonly complete: boolean;
  /** Where the sweep goes on: the next slice this node would ask for. */
  readonly next: { readonly table: string | null; readonly after: SliceKey | null };
  /** Why no row was read, when the table is missing or cannot be read. */
  readonly note?: string;
  /** An image checkpoint: every row of every table was digested (table, after and end are null). */
  readonly whole?: true;
}

export interface CheckpointRecord extends CheckpointDigest {
  readonly index: number;
  /** Milliseconds computing the digests took on this node (not compared). */
  readonly tookMs: number;
}

/** Why this node holds that its state differs from the majority's. */
export interface DivergedFlag {
  readonly checkpointIndex: number;
  /** The index of the verdict entry that found it. */
  readonly verdictIndex: number;
  readonly schemaDiffers: boolean;
  readonly rowsDiffer: boolean;
  /** The rows this node digested at the checkpoint (README: the alert names them). */
  readonly slice: string;
}

/** One checkpoint as a node reports it to the leader: its record without the sweep's position, note and timing. */
export type CheckpointSummary = Pick<
  CheckpointRecord,
  "index" | "schemaDigest" | "rowsDigest" | "table" | "after" | "end" | "rows" | "complete" | "whole"
>;

/** What a node adds to its answers to the leader (PeerReport.consistency). */
export interface PeerConsistencyReport {
  /** Its latest checkpoints, newest last (at most REPORTED_CHECKPOINTS). */
  readonly checkpoints: readonly CheckpointSummary[];
  readonly diverged: DivergedFlag | null;
  /**
   * The last index its log no longer holds (compacted into its snapshot): a repair image must be at least this
   * recent, since the node replays its own log after the image. Absent from nodes of older versions.
   */
  readonly compactedThrough?: number;
}

export type ReplicaConsistencyStatus = "UNCHECKED" | "CONSISTENT" | "DIVERGED" | "REPAIRING";

/** The leader's view of one replica (ReplicaReport.consistency). */
export interface ReplicaConsistency {
  readonly status: ReplicaConsistencyStatus;
  /** The last checkpoint at which the replica's digests were compared with the majority's. */
  readonly checkedIndex: number | null;
  /** The checkpoint at which it was found to differ, while DIVERGED or REPAIRING. */
  readonly divergedAtIndex: number | null;
  /** What differs (schema, or which rows), while DIVERGED or REPAIRING. */
  readonly detail: string | null;
  readonly repairs: number;
  readonly lastRepairError: string | null;
}

/** A node's own view (NodeStatusReport.consistency). */
export interface NodeConsistency {
  readonly enabled: boolean;
  readonly repair: "auto" | "manual";
  /** DIVERGED: this node applied a verdict its own digests contradict; it serves no reads until repaired. */
  readonly status: "OK" | "DIVERGED";
  readonly diverged: DivergedFlag | null;
  readonly lastCheckpoint: {
    readonly index: number;
    readonly slice: string;
    readonly rows: number;
    readonly digestMs: number;
  } | null;
  /** On the leader (this runtime): mismatches found, repairs sent and failed; on every node: repairs installed. */
  readonly mismatchesDetected: number;
  readonly repairsSent: number;
  readonly repairFailures: number;
  readonly repairsInstalled: number;
  /**
   * Leader only: the last image checkpoint whose voters disagreed with no majority either way (a tie: no snapshot
   * image goes out, an operator decides); null once an image was verified since, and on other nodes.
   */
  readonly undecided: UndecidedImage | null;
}

/** A tie at an image checkpoint (monitor.ts, "Verified images"). */
export interface UndecidedImage {
  readonly checkpointIndex: number;
  readonly agreeing: readonly string[];
  readonly differing: readonly string[];
  readonly atMs: number;
}

export interface RepairOutcome {
  readonly node: string;
  readonly imageIndex: number;
  readonly durationMs: number;
}

/**
 * A repair image sent to a replica: installed, or not. Not installed says whether it may have been all the same (the
 * answer to the last chunk, which installs it, was lost), or surely was not (the replica could not be reached, or
 * refused, before the last chunk).
 */
export type RepairImageSent =
  { readonly ok: true } | { readonly ok: false; readonly error: string; readonly mayHaveInstalled: boolean };
