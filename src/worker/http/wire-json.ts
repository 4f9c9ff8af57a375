// JSON exactly as rqlite (Go's encoding/json) writes it, so that responses are byte-compatible:
// struct fields in declaration order, map keys sorted by their UTF-8 bytes, <, > and & escaped as \u003c, \u003e and
// \u0026, U+2028/U+2029 escaped, and `pretty` indenting with four spaces like json.MarshalIndent(v, "", "    ").

/** A Go map: encoded with its keys sorted bytewise; a repeated key keeps its last value. */
export class GoMap {
  readonly entries: readonly (readonly [string, WireValue])[];

  constructor(entries: Iterable<readonly [string, WireValue]>) {
    const byKey = new Map<string, WireValue>();
    for (const [key, value] of entries) {
      byKey.set(key, value);
    }
    this.entries = [...byKey.entries()].sort(([a], [b]) => compareUtf8(a, b));
  }
}

/** A value the encoder accepts. Plain objects keep their insertion order (Go structs); GoMap sorts. */
export type WireValue =
  | null
  | boolean
  | number
  | bigint
  | string
  | GoMap
  | readonly WireValue[]
  | { readonly [key: string]: WireValue | undefined };

const INDENT = "    ";
const UTF8 = new TextEncoder();

/** Encodes compactly, or indented when `pretty` (both without a trailing newline, as rqlite writes them). */
export function encodeWire(value: WireValue, pretty = false): string {
  return encodeValue(value, pretty ? "\n" : "");
}

function encodeValue(value: WireValue, newline: string): string {
  if (value === null) {
    return "null";
  }
  if (typeof value === "boolean") {
    return value ? "true" : "false";
  }
  if (typeof value === "number") {
    // Go refuses NaN and infinities; SQLite can hold an infinite REAL, which we render as null rather than fail.
    return Number.isFinite(value) ? JSON.stringify(value) : "null";
  }
  if (typeof value === "bigint") {
    // A 64-bit integer, exactly (as Go writes an int64).
    return value.toString();
  }
  if (typeof value === "string") {
    return encodeString(value);
  }
  const inner = newline === "" ? "" : newline + INDENT;
  if (Array.isArray(value)) {
    const items = (value as readonly WireValue[]).map((item) => encodeValue(item, inner));
    return wrap("[", items, "]", newline);
  }
  const entries =
    value instanceof GoMap ? value.entries : definedEntries(value as Record<string, WireValue | undefined>);
  const separator = newline === "" ? ":" : ": ";
  const items = entries.map(([key, item]) => encodeString(key) + separator + encodeValue(item, inner));
  return wrap("{", items, "}", newline);
}

function definedEntries(value: Record<string, WireValue | undefined>): [string, WireValue][] {
  const entries: [string, WireValue][] = [];
  for (const [key, item] of Object.entries(value)) {
    if (item !== undefined) {
      entries.push([key, item]);
    }
  }
  return entries;
}

function wrap(open: string, items: readonly string[], close: string, newline: string): string {
  if (items.length === 0) {
    return open + close;
  }
  if (newline === "") {
    return open + items.join(",") + close;
  }
  const inner = newline + INDENT;
  return open + inner + items.join("," + inner) + newline + close;
}

const GO_EXTRA_ESCAPES: Record<string, string> = {
  "<": "\\u003c",
  ">": "\\u003e",
  "&": "\\u0026",
  "\u2028": "\\u2028",
  "\u2029": "\\u2029",
};

/** JSON.stringify escapes control characters as Go does (\b, \f, \n, \r, \t, else \u00xx); Go escapes a few more. */
export function encodeString(value: string): string {
  return JSON.stringify(value).replace(/[<>&\u2028\u2029]/g, (char) => GO_EXTRA_ESCAPES[char] ?? char);
}

function compareUtf8(a: string, b: string): number {
  const left = UTF8.encode(a);
  const right = UTF8.encode(b);
  const length = Math.min(left.length, right.length);
  for (let i = 0; i < length; i++) {
    const difference = (left[i] as number) - (right[i] as number);
    if (difference !== 0) {
      return difference;
    }
  }
  return left.length - right.length;
}

/** Go encodes a []byte as standard base64 with padding. */
export function base64(bytes: Uint8Array): string {
  let binary = "";
  const chunkBytes = 0x8000;
  for (let offset = 0; offset < bytes.length; offset += chunkBytes) {
    binary += String.fromCharCode(...bytes.subarray(offset, offset + chunkBytes));
  }
  return btoa(binary);
}
