// Lossless JSON for SQLite values, plus byte counting. JSON has no bytes, no 64-bit integers and no infinities, so
// those travel as tagged objects: {"$blob": base64}, {"$int": "decimal"}, {"$real": number | "Infinity" | "-Infinity"}.
import type { SqlValue } from "../../shared/sql";

/** A value as SQLite holds it, including what a JavaScript number cannot say on its own. */
export type StoredValue = SqlValue | { readonly bigint: string } | { readonly real: number };

export type EncodedValue =
  | null
  | number
  | string
  | { readonly $blob: string }
  | { readonly $int: string }
  | { readonly $real: number | "Infinity" | "-Infinity" };

const BASE64_BLOCK = 0x6000; // a multiple of 3, so blocks concatenate without padding in between

export function bytesToBase64(bytes: Uint8Array): string {
  let out = "";
  for (let offset = 0; offset < bytes.length; offset += BASE64_BLOCK) {
    const block = bytes.subarray(offset, offset + BASE64_BLOCK);
    out += btoa(String.fromCharCode(...block));
  }
  return out;
}

const BASE64_PATTERN = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

export function base64ToBytes(text: string): Uint8Array {
  if (!BASE64_PATTERN.test(text)) {
    throw new Error("invalid base64");
  }
  const binary = atob(text);
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) {
    bytes[i] = binary.charCodeAt(i);
  }
  return bytes;
}

export function bytesToHex(bytes: Uint8Array): string {
  let out = "";
  for (const byte of bytes) {
    out += byte.toString(16).padStart(2, "0");
  }
  return out;
}

/** UTF-8 byte length of a string, without allocating. Lone surrogates count as 3 bytes (TextEncoder's U+FFFD). */
export function utf8ByteLength(text: string): number {
  let bytes = 0;
  for (let i = 0; i < text.length; i += 1) {
    const code = text.charCodeAt(i);
    if (code < 0x80) {
      bytes += 1;
    } else if (code < 0x800) {
      bytes += 2;
    } else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i += 1;
    } else {
      bytes += 3;
    }
  }
  return bytes;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

/**
 * The largest prefix length (in UTF-16 code units) of `text`, starting at `from`, whose UTF-8 encoding fits in
 * `maxBytes`, never splitting a surrogate pair. Returns the end offset.
 */
export function utf8PrefixEnd(text: string, from: number, maxBytes: number): number {
  let bytes = 0;
  let i = from;
  while (i < text.length) {
    const code = text.charCodeAt(i);
    let width: number;
    let units = 1;
    if (code < 0x80) {
      width = 1;
    } else if (code < 0x800) {
      width = 2;
    } else if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length && isLowSurrogate(text.charCodeAt(i + 1))) {
      width = 4;
      units = 2;
    } else {
      width = 3;
    }
    if (bytes + width > maxBytes) {
      break;
    }
    bytes += width;
    i += units;
  }
  return i;
}

/** Bytes a value occupies for limit checks: UTF-8 for text, raw length for blobs, 8 for numbers. */
export function sqlValueByteLength(value: SqlValue): number {
  if (value === null) {
    return 1;
  }
  if (typeof value === "number" || typeof value === "bigint") {
    return 8;
  }
  if (typeof value === "string") {
    return utf8ByteLength(value);
  }
  return value.byteLength;
}

export function isSqlValue(value: unknown): value is SqlValue {
  return (
    value === null ||
    typeof value === "number" ||
    typeof value === "bigint" ||
    typeof value === "string" ||
    value instanceof Uint8Array
  );
}

export const MIN_INT64 = -(2n ** 63n);
export const MAX_INT64 = 2n ** 63n - 1n;

/** True for a bigint SQLite can hold as an INTEGER. */
export function isInt64(value: bigint): boolean {
  return value >= MIN_INT64 && value <= MAX_INT64;
}

/** An integer as SqlValue carries it: a number when that is exact, else a bigint. */
export function exactInteger(value: bigint): number | bigint {
  return value >= BigInt(Number.MIN_SAFE_INTEGER) && value <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(value) : value;
}

/**
 * A number read from the platform that may not be what SQLite holds: the platform turns every INTEGER into a double,
 * so any integral number beyond the safe range may be a rounded 64-bit integer (or a REAL that happens to be whole).
 */
export function isPossiblyRoundedInteger(value: unknown): boolean {
  return typeof value === "number" && Number.isInteger(value) && !Number.isSafeInteger(value);
}

export function encodeValue(value: StoredValue): EncodedValue {
  if (value === null || typeof value === "string") {
    return value;
  }
  if (typeof value === "bigint") {
    return { $int: value.toString() };
  }
  if (typeof value === "number") {
    if (Number.isFinite(value)) {
      return value;
    }
    if (Number.isNaN(value)) {
      throw new Error("NaN cannot be stored in SQLite");
    }
    return { $real: value > 0 ? "Infinity" : "-Infinity" };
  }
  if (value instanceof Uint8Array) {
    return { $blob: bytesToBase64(value) };
  }
  if ("bigint" in value) {
    return { $int: value.bigint };
  }
  if (Number.isFinite(value.real)) {
    return { $real: value.real };
  }
  return { $real: value.real > 0 ? "Infinity" : "-Infinity" };
}

const INTEGER_TEXT = /^-?[0-9]{1,19}$/;

/** Decodes what encodeValue produced; throws a clear error on anything else. */
export function decodeValue(encoded: unknown, where: string): StoredValue {
  if (encoded === null || typeof encoded === "string") {
    return encoded;
  }
  if (typeof encoded === "number") {
    return encoded;
  }
  if (typeof encoded !== "object" || Array.isArray(encoded)) {
    throw new Error(`${where}: not a SQL value`);
  }
  const keys = Object.keys(encoded);
  const tag = keys[0];
  if (keys.length !== 1 || tag === undefined) {
    throw new Error(`${where}: a tagged value has exactly one key`);
  }
  const payload = (encoded as Record<string, unknown>)[tag];
  switch (tag) {
    case "$blob":
      if (typeof payload !== "string") {
        throw new Error(`${where}: $blob must be a base64 string`);
      }
      try {
        return base64ToBytes(payload);
      } catch {
        throw new Error(`${where}: $blob is not valid base64`);
      }
    case "$int":
      if (typeof payload !== "string" || !INTEGER_TEXT.test(payload)) {
        throw new Error(`${where}: $int must be a decimal integer string`);
      }
      return { bigint: payload };
    case "$real":
      if (payload === "Infinity") {
        return { real: Infinity };
      }
      if (payload === "-Infinity") {
        return { real: -Infinity };
      }
      if (typeof payload !== "number") {
        throw new Error(`${where}: $real must be a number, "Infinity" or "-Infinity"`);
      }
      return { real: payload };
    default:
      throw new Error(`${where}: unknown value tag ${JSON.stringify(tag)}`);
  }
}

/** A stored value as a plain SqlValue (what results carry): big integers stay exact (bigint). */
export function toSqlValue(value: StoredValue): SqlValue {
  if (
    value === null ||
    typeof value === "number" ||
    typeof value === "bigint" ||
    typeof value === "string" ||
    value instanceof Uint8Array
  ) {
    return value;
  }
  if ("bigint" in value) {
    return exactInteger(BigInt(value.bigint));
  }
  return value.real;
}
