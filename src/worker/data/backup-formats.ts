// The formats of GET /db/backup (a SQLite database file by default, SQL text with ?fmt=sql, either gzipped with
// ?compress) and the SQLite-file side of POST /db/load, as HTTP: which format a request asks for, the body to send,
// and the refusals (4xx) for files that cannot be made or read.
import type { BackupValue } from "../../objects/api";
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
 * The largest dump a backup asks the leader for: a file is built in the worker from a smaller one than ?fmt=sql
 * sends, and the leader refuses a larger dump at once (TOO_LARGE) instead of sending what the worker would refuse.
 */
export function backupDumpLimit(
  format: BackupFormat,
  limits: RequestLimits,
  fileLimits: SqliteFileLimits = DEFAULT_BACKUP_FILE_LIMITS,
): number {
  return format === "sql" ? limits.maxBackupDumpBytes : Math.min(limits.maxBackupDumpBytes, fileLimits.maxDumpBytes);
}

/** The leader's refusal of a dump past the limit, as a refusal that says what to do instead (code LIMIT). */
export function backupTooLarge(nodeMessage: string, format: BackupFormat): ApiError {
  if (format === "sqlite") {
    const message = `${nodeMessage}, the most a SQLite file is built from (in the worker's memory): use ?fmt=sql`;
    return new ApiError(400, message, { shape: "plain", code: "LIMIT" });
  }
  const message =
    `${nodeMessage}, the most a backup holds (the leader builds the dump in its memory): ` +
    "read the tables with /db/query instead, a range of rows at a time";
  return new ApiError(413, message, { shape: "plain", code: "LIMIT" });
}

/**
 * The leader's dump in the asked format. A file is built fresh from the dump, so it is always compact: ?vacuum is
 * accepted and changes nothing. ?compress gzips either format (as rqlite, without Content-Encoding: the client
 * receives the .gz itself). A streamed dump is sent on as it arrives when the format is SQL.
 */
export async function backupBody(
  dump: BackupValue,
  options: { readonly format: BackupFormat; readonly compress: boolean; readonly limits?: SqliteFileLimits },
): Promise<BackupBody> {
  if (options.format === "sql") {
    const body = "sqlStream" in dump ? sizedStream(dump) : new TextEncoder().encode(dump.sql);
    return { body: options.compress ? gzip(body) : body, contentType: "application/sql" };
  }
  const limits = options.limits ?? DEFAULT_BACKUP_FILE_LIMITS;
  const file = await fileOrRefusal(await dumpText(dump, limits.maxDumpBytes), limits);
  return { body: options.compress ? gzip(file) : file, contentType: "application/octet-stream" };
}

/**
 * A streamed dump with its length known (Content-Length), so that a client can tell a body cut short: the stream
 * errors if more or fewer bytes arrive.
 */
function sizedStream(dump: {
  readonly sqlStream: ReadableStream<Uint8Array>;
  readonly sqlBytes: number;
}): ReadableStream<Uint8Array> {
  return dump.sqlStream.pipeThrough(new FixedLengthStream(dump.sqlBytes));
}

/** The dump as text, read whole (a file is built from all of it); a streamed one is refused past `maxBytes`. */
async function dumpText(dump: BackupValue, maxBytes: number): Promise<string> {
  if (!("sqlStream" in dump)) {
    return dump.sql;
  }
  if (dump.sqlBytes > maxBytes) {
    // Let the leader drop it now (a stream that already failed has nothing to let go).
    await dump.sqlStream.cancel().catch(() => undefined);
    throw backupTooLarge(`the database's SQL dump is ${dump.sqlBytes} bytes, more than ${maxBytes}`, "sqlite");
  }
  return new Response(dump.sqlStream).text();
}

async function fileOrRefusal(dump: string, limits: SqliteFileLimits): Promise<Uint8Array> {
  try {
    return await sqliteFileFromDump(dump, limits);
  } catch (error) {
    // A database too large (or holding what the WebAssembly SQLite cannot build) still has its SQL dump.
    throw refusal(error, { shape: "plain", tooLargeStatus: 400 });
  }
}

function gzip(body: Uint8Array | ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  const stream = body instanceof Uint8Array ? new Blob([body]).stream() : body;
  return stream.pipeThrough(new CompressionStream("gzip"));
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
