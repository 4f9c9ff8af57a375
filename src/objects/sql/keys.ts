// Where the SQL state machine keeps its own state in ctx.storage.kv. User SQL cannot reach the KV table
// (SQLITE_AUTH on _cf_KV), so none of this is exposed to statements. Everything lives under one prefix: the
// shell must not write keys that start with it.
export const SQL_STATE_KEY_PREFIX = "sm/";

/** Fixed width so that lexical order is numeric order (indices stay below 2^53). */
export function padIndex(index: number): string {
  return index.toString().padStart(16, "0");
}

export const StateKeys = {
  applied: "sm/applied",
  schemaVersion: "sm/schema/version",
  schemaHash: "sm/schema/hash",
  dedupCount: "sm/dedup/count",
  dedupIdPrefix: "sm/dedup/id/",
  dedupIndexPrefix: "sm/dedup/ix/",
  dedupById: (id: string): string => `sm/dedup/id/${id}`,
  dedupByIndex: (index: number): string => `sm/dedup/ix/${padIndex(index)}`,
  stagingMeta: "sm/staging/meta",
  stagingChunkPrefix: "sm/staging/chunk/",
  stagingChunk: (seq: number): string => `sm/staging/chunk/${padIndex(seq)}`,
} as const;

/** One remembered request: the index it was applied at and its results (encodeStatementResults). */
export interface DedupRecord {
  readonly index: number;
  /** null when even the trimmed results were too large to keep. */
  readonly results: string | null;
  /** How many statements the request had. */
  readonly count: number;
}
