// Every key a node keeps in ctx.storage.kv, in one place. These strings are the stored format: a node reads what an
// earlier version of it wrote, so a key must never change, only be added. The KV table is platform-reserved (user SQL
// gets SQLITE_AUTH on _cf_KV), so no client statement can reach any of them.

/** Fixed width so that lexical order is numeric order (indices stay below 2^53): KV lists come out in index order. */
export function padIndex(index: number): string {
  return index.toString().padStart(16, "0");
}

/** The Raft log, hard state and snapshot metadata (raft-storage.ts). */
export const RaftKeys = {
  hardState: "raft/hard",
  snapshot: "raft/snapshot",
  logPrefix: "raft/log/",
  log: (index: number): string => `raft/log/${padIndex(index)}`,
} as const;

/** Who this node is and what happened to it across restarts (node-host.ts, node-runtime.ts, runtime/peers.ts). */
export const NodeKeys = {
  identity: "node/identity",
  removed: "node/removed",
  /** The last lifted removal and the proof that lifted it (node-host.ts readmittedBy), until the next removal. */
  readmission: "node/readmission",
  incarnation: "node/incarnation",
  runtimeStarts: "node/runtimeStarts",
  votingProbation: "node/votingProbation",
  /** Members' location hints, so that a restarted node places new peers where they were configured. */
  memberHints: "node/hints",
} as const;

/** Dropping a database (lifecycle/drop.ts). */
export const LifecycleKeys = {
  tombstone: "lifecycle/tombstone",
  dropping: "lifecycle/dropping",
} as const;

/**
 * Test switches, written only when the deployment allows test faults (cluster-node.ts): kept in storage so that they
 * survive an eviction or restart within the test.
 */
export const TestHookKeys = {
  faultRules: "transport:faultRules",
  shellBugs: "test:shellBugs",
} as const;

/**
 * Everything the SQL state machine keeps, under one prefix: replacing the node's state with a snapshot clears what
 * the image replaces (sql/snapshot-install.ts), and the shell must not write keys that start with it.
 */
export const SQL_STATE_KEY_PREFIX = "sm/";

export const StateKeys = {
  applied: "sm/applied",
  schemaVersion: "sm/schema/version",
  schemaHash: "sm/schema/hash",
  /** Remembered request ids (DedupRecord each) and their bookkeeping. */
  dedupPrefix: "sm/dedup/",
  dedupCount: "sm/dedup/count",
  dedupBytes: "sm/dedup/bytes",
  dedupIdPrefix: "sm/dedup/id/",
  dedupIndexPrefix: "sm/dedup/ix/",
  dedupById: (id: string): string => `sm/dedup/id/${id}`,
  dedupByIndex: (index: number): string => `sm/dedup/ix/${padIndex(index)}`,
  stagingMeta: "sm/staging/meta",
  stagingChunkPrefix: "sm/staging/chunk/",
  stagingChunk: (seq: number): string => `sm/staging/chunk/${padIndex(seq)}`,
  /** The consistency monitor's checkpoints and DIVERGED flag (monitor/records.ts). */
  checkpointPrefix: "sm/checkpoint/",
  checkpointRecordPrefix: "sm/checkpoint/rec/",
  checkpointRecord: (index: number): string => `sm/checkpoint/rec/${padIndex(index)}`,
  diverged: "sm/checkpoint/diverged",
} as const;

/** One remembered request, stored under StateKeys.dedupById: the index it was applied at and its results. */
export interface DedupRecord {
  readonly index: number;
  /** null when even the trimmed results were too large to keep. */
  readonly results: string | null;
  /** How many statements the request had. */
  readonly count: number;
  /**
   * requestFingerprint of the request's statements and transaction flag, so that an id reused for another request
   * is refused rather than answered with the first one's results. Absent in records written before it existed.
   */
  readonly fingerprint?: string;
}
