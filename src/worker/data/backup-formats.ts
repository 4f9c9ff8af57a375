// The formats of GET /db/backup (a SQLite database file by default, SQL text with ?fmt=sql, either gzipped with
// ?compress) and the SQLite-file side of POST /db/load, as HTTP: which format a request asks for, the body to send,
// and the refusals (4xx) for files that cannot be made or read.
import { ApiError, badRequest, type ErrorShape } from "../http/errors";
import type { QueryParams } from "../http/params";
import type { RequestLimits } from "../../shared/sql-text/limits";
import {
  DEFAULT_BACKUP_FILE_LIMITS,
  dumpFromSqliteFile,
  SqliteFileError,
  sqliteFileFromDump,
  type SqliteFileLimits,
} from "./sqlite-file";

export type BackupFormat = "sqlite" | "sql";

/** rqlite's names: no fmt (or fmt=binary) is the database file, fmt=sql the dump; vacuum applies to files only. */
export function backupFormatOf(params: QueryParams): BackupFormat {
  if (params.fmt === "sql") {
    if (params.has("vacuum")) {
      throw badRequest("vacuum applies to SQLite file backups only: drop it, or drop fmt=sql");
    }
    return "sql";
  }
  if (params.fmt === undefined || params.fmt === "binary") {
    return "sqlite";
  }
  throw badRequest(
    `backup format ${JSON.stringify(params.fmt)} is unknown: leave fmt out for a SQLite database file, or use fmt=sql`,
  );
}

export interface BackupBody {
  readonly body: Uint8Array | ReadableStream<Uint8Array>;
  readonly contentType: string;
}

/**
 * The leader's dump in the asked format. A file is built fresh from the dump, so it is always compact: ?vacuum is
 * accepted and changes nothing. ?compress gzips either format (as rqlite, without Content-Encoding: the client
 * receives the .gz itself).
 */
export async function backupBody(
  dump: string,
  options: { readonly format: BackupFormat; readonly compress: boolean; readonly limits?: SqliteFileLimits },
): Promise<BackupBody> {
  const bytes = options.format === "sql" ? new TextEncoder().encode(dump) : await fileOrRefusal(dump, options.limits);
  const contentType = options.format === "sql" ? "application/sql" : "application/octet-stream";
  return { body: options.compress ? gzip(bytes) : bytes, contentType };
}

async function fileOrRefusal(dump: string, limits: SqliteFileLimits = DEFAULT_BACKUP_FILE_LIMITS): Promise<Uint8Array> {
  try {
    return await sqliteFileFromDump(dump, limits);
  } catch (error) {
    // A database too large (or holding what the WebAssembly SQLite cannot build) still has its SQL dump.
    throw refusal(error, { shape: "plain", tooLargeStatus: 400 });
  }
}

function gzip(bytes: Uint8Array): ReadableStream<Uint8Array> {
  return new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"));
}

/** The limits a /db/load upload is read under: the file, and its contents as SQL, within the load body limit. */
export function loadFileLimits(limits: RequestLimits): SqliteFileLimits {
  return {
    maxFileBytes: limits.maxLoadBodyBytes,
    maxDumpBytes: limits.maxLoadBodyBytes,
    maxStatements: limits.maxLoadStatements,
    maxHeapBytes: DEFAULT_BACKUP_FILE_LIMITS.maxHeapBytes,
  };
}

/** An uploaded SQLite file as the SQL dump that /db/load then applies; a bad file is a 400, an oversized one a 413. */
export async function dumpOfUploadedFile(file: Uint8Array, limits: RequestLimits): Promise<string> {
  try {
    return await dumpFromSqliteFile(file, loadFileLimits(limits));
  } catch (error) {
    throw refusal(error, { shape: "rqlite", tooLargeStatus: 413 });
  }
}

function refusal(error: unknown, options: { readonly shape: ErrorShape; readonly tooLargeStatus: 400 | 413 }): unknown {
  if (!(error instanceof SqliteFileError)) {
    return error;
  }
  if (error.kind === "too-large") {
    return new ApiError(options.tooLargeStatus, error.message, { shape: options.shape, code: "LIMIT" });
  }
  return badRequest(error.message, options.shape);
}
