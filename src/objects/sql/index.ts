// The replicated SQL state machine of a ClusterNode: request encoding, validation and rewriting (leader side),
// applying committed entries, local reads, schema version/hash, request-id deduplication, snapshots and dumps.
export {
  encodeSqlRequest,
  decodeSqlRequest,
  sqlRequestSizeBytes,
  encodeStatementResults,
  decodeStatementResults,
  SqlCodecError,
  MAX_REQUEST_ID_LENGTH,
} from "./codec";
export {
  prepareWrite,
  prepareRead,
  inspectStatement,
  READ_ONLY_VIOLATION,
  type WriteContext,
  type PrepareWriteResult,
  type PrepareReadResult,
} from "./validate";
export {
  classifyStatement,
  describeStatement,
  SQL_LIMITS,
  tokenizeSql,
  splitSqlStatements,
  SqlSyntaxError,
  type StatementShape,
  type SqlToken,
  type SqlTokenKind,
} from "../../shared/sql-text";
export {
  SqlStateMachine,
  ResultLimitError,
  DEFAULT_STATE_MACHINE_OPTIONS,
  cleanSqliteError,
  type SqlStateMachineOptions,
  type LogEntryToApply,
  type SchemaInfo,
} from "./state-machine";
export { SnapshotError, DEFAULT_SNAPSHOT_LIMITS, MAX_SNAPSHOT_CHUNK_BYTES, type SnapshotOptions } from "./snapshot";
export type { SnapshotChunk, SnapshotId, SnapshotImage } from "../snapshot-types";
export {
  SnapshotInstaller,
  type SnapshotInstallerOptions,
  type StagingStatus,
  type InstallOutcome,
} from "./snapshot-install";
export {
  createStateMachine,
  secureRandomBytes,
  stateMachineOptionsFromEnv,
  type StateMachineEnv,
  type StateMachineOptions,
} from "./port";
export {
  parseDump,
  LOAD_DEFERS_FOREIGN_KEYS,
  DumpError,
  DumpTooLargeError,
  DEFAULT_MAX_DUMP_BYTES,
  type DumpOptions,
  type ParseDumpOptions,
} from "./dump";
export { SQL_STATE_KEY_PREFIX } from "../storage-keys";
