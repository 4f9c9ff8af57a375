// Statement results in rqlite's wire shapes (rqlite command/encoding/json.go and http/service.go):
// empty and zero fields omitted, no "values" key on an empty result set, associative rows as sorted maps.
import type { StatementResult } from "../../shared/sql";
import { base64, encodeWire, GoMap, type WireValue } from "../http/wire-json";
import { shownRows, UnshowableValue, type ShownValue } from "./declared-values";

export interface RenderOptions {
  readonly associative: boolean;
  /** BLOBs as arrays of byte values instead of base64 strings. */
  readonly blobArray: boolean;
  readonly timings: boolean;
}

/**
 * /db/execute: {last_insert_id, rows_affected, error, time}. A write that returned columns (RETURNING: the node
 * counts its rows and returns columns) answers them instead, as a query result that is never associative: rqlite
 * runs such a statement as a query (db.go, executeStmtWithConn, ForceQuery) and renders it so on /db/execute,
 * ?associative or not, its BLOBs base64 even with ?blob_array, which /db/execute does not read (measured on 8.26.8).
 * A SELECT or PRAGMA sent there answers counts only, as in rqlite.
 */
export function renderExecuteResult(result: StatementResult, options: RenderOptions): WireValue {
  const returning = result.columns !== undefined && result.rowsAffected !== undefined;
  if (returning && nonEmpty(result.error) === undefined) {
    return renderQueryResult(result, { ...options, associative: false, blobArray: false });
  }
  return renderCounts(result, options);
}

function renderCounts(result: StatementResult, options: RenderOptions): Record<string, WireValue | undefined> {
  return {
    last_insert_id: nonZero(result.lastInsertId),
    rows_affected: nonZero(result.rowsAffected),
    error: nonEmpty(result.error),
    time: timing(result, options),
  };
}

/** /db/query: {columns, types, values, error, time}, or associatively {types, rows, error, time}. */
export function renderQueryResult(result: StatementResult, options: RenderOptions): WireValue {
  return renderShownQuery(result, shownValuesOf(result), options);
}

type ShownValues = { readonly rows: readonly (readonly ShownValue[])[] } | { readonly error: string };

/**
 * The result's rows as rqlite shows them (BOOLEAN and date/time columns converted by declared-values.ts), or the
 * error rqlite answers in their place when one of them cannot be shown.
 */
function shownValuesOf(result: StatementResult): ShownValues {
  try {
    return { rows: shownRows(result.types ?? [], result.rows ?? []) };
  } catch (error) {
    if (error instanceof UnshowableValue) {
      return { error: error.message };
    }
    throw error;
  }
}

function renderShownQuery(result: StatementResult, shown: ShownValues, options: RenderOptions): WireValue {
  if ("error" in shown) {
    // rqlite answers the error alone: no columns, no types, no time (as for any failed statement).
    return options.associative ? { rows: [], error: shown.error } : { error: shown.error };
  }
  const columns = result.columns ?? [];
  const types = result.types ?? [];
  const rows = shown.rows;
  if (options.associative) {
    return {
      types: columns.length === 0 ? undefined : new GoMap(columns.map((column, i) => [column, types[i] ?? ""])),
      // rqlite always writes "rows", an empty list included.
      rows: rows.map((row) => new GoMap(columns.map((column, i) => [column, renderValue(row[i] ?? null, options)]))),
      error: nonEmpty(result.error),
      time: timing(result, options),
    };
  }
  return {
    columns: columns.length === 0 ? undefined : [...columns],
    types: types.length === 0 ? undefined : [...types],
    values: rows.length === 0 ? undefined : rows.map((row) => row.map((value) => renderValue(value, options))),
    error: nonEmpty(result.error),
    time: timing(result, options),
  };
}

/**
 * /db/request: a statement that produced columns renders as a query result, any other as an execute result.
 * A failed statement is just {"error": ...}; an associative execute result carries "rows": null, as rqlite's does.
 */
export function renderRequestResult(result: StatementResult, options: RenderOptions): WireValue {
  if (result.columns !== undefined) {
    const shown = shownValuesOf(result);
    // A write's RETURNING rows that cannot be shown answer the error alone, associative or not (rqlite 8.26.8).
    if ("error" in shown && result.rowsAffected !== undefined) {
      return { error: shown.error };
    }
    return renderShownQuery(result, shown, options);
  }
  if (nonEmpty(result.error) !== undefined) {
    return { error: result.error };
  }
  const execute = renderCounts(result, options);
  return options.associative ? { ...execute, rows: null } : execute;
}

export function renderValue(value: ShownValue, options: Pick<RenderOptions, "blobArray">): WireValue {
  if (value instanceof Uint8Array) {
    return options.blobArray ? Array.from(value) : base64(value);
  }
  // Defensive: other byte views (or a bare ArrayBuffer) are BLOBs too.
  const raw = value as unknown;
  if (ArrayBuffer.isView(raw)) {
    return renderValue(new Uint8Array(raw.buffer, raw.byteOffset, raw.byteLength), options);
  }
  if (raw instanceof ArrayBuffer) {
    return renderValue(new Uint8Array(raw), options);
  }
  return value;
}

/** The top level of every data response: {results, error, time, raft_index}, in rqlite's field order. */
export interface DataResponse {
  readonly results: readonly WireValue[];
  readonly error?: string;
  /** Seconds the whole request took; only with `timings`. */
  readonly timeSeconds?: number;
  /** Only when the client asked with `raft_index`. */
  readonly raftIndex?: number;
}

export function encodeDataResponse(response: DataResponse, pretty: boolean): string {
  return encodeWire(
    {
      results: response.results,
      error: nonEmpty(response.error),
      time: response.timeSeconds === undefined ? undefined : nonZero(response.timeSeconds),
      raft_index: response.raftIndex === undefined ? undefined : nonZero(response.raftIndex),
    },
    pretty,
  );
}

/** A statement's time, with `timings`; none for a failed one: rqlite times only what succeeded (db/db.go). */
function timing(result: StatementResult, options: Pick<RenderOptions, "timings">): number | undefined {
  return options.timings && nonEmpty(result.error) === undefined ? nonZero(result.time) : undefined;
}

function nonZero<T extends number | bigint>(value: T | undefined): T | undefined {
  return value === undefined || value === 0 || value === 0n ? undefined : value;
}

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value === "" ? undefined : value;
}
