// Reads a peer envelope (and a peer's receive result) by hand instead of with zod. Every write crosses this two
// to five times (each envelope, and the replies handed back in each answer), on a runtime where one isolate runs the
// worker and the nodes: zod 4 compiles its fast parsers with `new Function`, which Workers forbid (zod detects the
// runtime and takes its interpreted path), and that path cost about 0.4 ms of CPU per write. This reader makes the
// same refusals as the zod schemas in envelope-schema.ts, which stay as the reference: a property test
// (test/core/transport-envelope-reader.test.ts) checks that both accept and refuse the same envelopes and return
// the same data. Like the schemas it drops unknown fields (a newer sender's additions never reach the core) and
// never copies or parses entry payloads.
import type { LogEntry, Membership, Message, MessageType } from "../../replication/types";
import type { SnapshotChunk } from "../snapshot-types";
import type { RaftEnvelope } from "./envelope";
import {
  MAX_ENTRIES_PER_MESSAGE,
  MAX_MEMBERS,
  MAX_MESSAGES_PER_ENVELOPE,
  MAX_NAME_LENGTH,
  MAX_READ_CONTEXT_LENGTH,
} from "./envelope-limits";

/** The first problem found: where (a dotted path, "(root)" for the envelope itself) and what. */
export class ShapeError extends Error {
  constructor(
    readonly path: string,
    readonly problem: string,
  ) {
    super(`${path === "" ? "(root)" : path}: ${problem}`);
  }
}

type Fields = Record<string, unknown>;

function describe(value: unknown): string {
  if (value === null) {
    return "null";
  }
  if (Array.isArray(value)) {
    return "an array";
  }
  if (typeof value === "number") {
    return Number.isNaN(value) ? "NaN" : String(value);
  }
  return typeof value;
}

/** Characters of a received string an error message quotes at most. */
const QUOTED_CHARS = 200;

/**
 * A received value as an error message names it: a string quoted (cut at QUOTED_CHARS), anything else by its kind.
 * Never JSON.stringify of the value itself: a bigint or a cyclic object would throw, and a refusal must be an answer.
 */
export function describeReceived(value: unknown): string {
  if (typeof value === "string") {
    return JSON.stringify(value.length > QUOTED_CHARS ? `${value.slice(0, QUOTED_CHARS)}…` : value);
  }
  return describe(value);
}

function at(path: string, key: string | number): string {
  return path === "" ? String(key) : `${path}.${key}`;
}

function objectAt(value: unknown, path: string): Fields {
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new ShapeError(path, `expected an object, got ${describe(value)}`);
  }
  return value as Fields;
}

function arrayAt(value: unknown, path: string, maxLength: number): readonly unknown[] {
  if (!Array.isArray(value)) {
    throw new ShapeError(path, `expected an array, got ${describe(value)}`);
  }
  if (value.length > maxLength) {
    throw new ShapeError(path, `expected at most ${maxLength} items, got ${value.length}`);
  }
  return value;
}

/** A non-negative safe integer (a term, an index, a count). */
function count(fields: Fields, key: string, path: string): number {
  const value = fields[key];
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < 0) {
    throw new ShapeError(at(path, key), `expected a non-negative integer, got ${describe(value)}`);
  }
  return value;
}

function nullableCount(fields: Fields, key: string, path: string): number | null {
  return fields[key] === null ? null : count(fields, key, path);
}

function text(fields: Fields, key: string, path: string, lengths: { min: number; max: number }): string {
  const value = fields[key];
  if (typeof value !== "string") {
    throw new ShapeError(at(path, key), `expected a string, got ${describe(value)}`);
  }
  if (value.length < lengths.min || value.length > lengths.max) {
    throw new ShapeError(
      at(path, key),
      `expected a string of ${lengths.min} to ${lengths.max} characters, got ${value.length}`,
    );
  }
  return value;
}

const ANY_LENGTH = { min: 0, max: Number.POSITIVE_INFINITY };
const NAME_LENGTH = { min: 1, max: MAX_NAME_LENGTH };
const READ_CONTEXT_LENGTH = { min: 0, max: MAX_READ_CONTEXT_LENGTH };

function nodeId(fields: Fields, key: string, path: string): string {
  return text(fields, key, path, NAME_LENGTH);
}

function readContext(fields: Fields, key: string, path: string): string | null {
  return fields[key] === null ? null : text(fields, key, path, READ_CONTEXT_LENGTH);
}

function flag(fields: Fields, key: string, path: string): boolean {
  const value = fields[key];
  if (typeof value !== "boolean") {
    throw new ShapeError(at(path, key), `expected a boolean, got ${describe(value)}`);
  }
  return value;
}

/** An optional field that may only be `true` (present) or absent. */
function trueOrAbsent(fields: Fields, key: string, path: string): true | undefined {
  const value = fields[key];
  if (value !== undefined && value !== true) {
    throw new ShapeError(at(path, key), `expected true or nothing, got ${describe(value)}`);
  }
  return value;
}

function readEntry(value: unknown, path: string): LogEntry {
  const fields = objectAt(value, path);
  const kind = fields["kind"];
  if (kind !== "normal" && kind !== "noop" && kind !== "config") {
    throw new ShapeError(at(path, "kind"), `expected "normal", "noop" or "config", got ${describe(kind)}`);
  }
  return {
    index: count(fields, "index", path),
    term: count(fields, "term", path),
    kind,
    data: text(fields, "data", path, ANY_LENGTH),
  };
}

function readEntries(value: unknown, path: string): LogEntry[] {
  const items = arrayAt(value, path, MAX_ENTRIES_PER_MESSAGE);
  const entries: LogEntry[] = new Array<LogEntry>(items.length);
  for (let position = 0; position < items.length; position++) {
    entries[position] = readEntry(items[position], `${path}.${position}`);
  }
  return entries;
}

function readNames(value: unknown, path: string): string[] {
  const items = arrayAt(value, path, MAX_MEMBERS);
  const names: string[] = new Array<string>(items.length);
  for (let position = 0; position < items.length; position++) {
    names[position] = nodeId(items as unknown as Fields, String(position), path);
  }
  return names;
}

function readMembership(value: unknown, path: string): Membership {
  const fields = objectAt(value, path);
  return {
    voters: readNames(fields["voters"], at(path, "voters")),
    learners: readNames(fields["learners"], at(path, "learners")),
  };
}

function readRejectHint(value: unknown, path: string): { index: number; term: number } | null {
  if (value === null) {
    return null;
  }
  const fields = objectAt(value, path);
  return { index: count(fields, "index", path), term: count(fields, "term", path) };
}

const MESSAGE_TYPE_LIST: readonly MessageType[] = [
  "preVote",
  "preVoteResponse",
  "vote",
  "voteResponse",
  "append",
  "appendResponse",
  "heartbeat",
  "heartbeatResponse",
  "snapshot",
  "timeoutNow",
  "readIndex",
  "readIndexResponse",
];
const MESSAGE_TYPE_SET: ReadonlySet<string> = new Set(MESSAGE_TYPE_LIST);
const MESSAGE_TYPES = MESSAGE_TYPE_LIST.map((type) => JSON.stringify(type)).join(", ");

/** One Raft message: its type first (as zod's discriminated union does), then its fields; unknown fields dropped. */
export function readMessage(value: unknown, path: string): Message {
  const fields = objectAt(value, path);
  const type = fields["type"];
  if (typeof type !== "string" || !MESSAGE_TYPE_SET.has(type)) {
    throw new ShapeError(at(path, "type"), `expected one of ${MESSAGE_TYPES}, got ${describeReceived(type)}`);
  }
  const from = nodeId(fields, "from", path);
  const to = nodeId(fields, "to", path);
  const term = count(fields, "term", path);
  switch (type) {
    case "preVote":
    case "vote":
      return {
        from,
        to,
        term,
        type,
        lastLogIndex: count(fields, "lastLogIndex", path),
        lastLogTerm: count(fields, "lastLogTerm", path),
        transfer: flag(fields, "transfer", path),
      };
    case "preVoteResponse":
    case "voteResponse":
      return { from, to, term, type, granted: flag(fields, "granted", path) };
    case "append":
      return {
        from,
        to,
        term,
        type,
        prevLogIndex: count(fields, "prevLogIndex", path),
        prevLogTerm: count(fields, "prevLogTerm", path),
        entries: readEntries(fields["entries"], at(path, "entries")),
        commit: count(fields, "commit", path),
      };
    case "appendResponse":
      return {
        from,
        to,
        term,
        type,
        success: flag(fields, "success", path),
        index: count(fields, "index", path),
        rejectHint: readRejectHint(fields["rejectHint"], at(path, "rejectHint")),
      };
    case "heartbeat":
      return {
        from,
        to,
        term,
        type,
        commit: count(fields, "commit", path),
        readContext: readContext(fields, "readContext", path),
        round: count(fields, "round", path),
      };
    case "heartbeatResponse":
      return {
        from,
        to,
        term,
        type,
        readContext: readContext(fields, "readContext", path),
        round: count(fields, "round", path),
      };
    case "snapshot": {
      const snapshotPath = at(path, "snapshot");
      const snapshot = objectAt(fields["snapshot"], snapshotPath);
      return {
        from,
        to,
        term,
        type,
        snapshot: {
          index: count(snapshot, "index", snapshotPath),
          term: count(snapshot, "term", snapshotPath),
          membership: readMembership(snapshot["membership"], at(snapshotPath, "membership")),
        },
      };
    }
    case "timeoutNow":
      return { from, to, term, type };
    case "readIndex":
      return { from, to, term, type, context: text(fields, "context", path, READ_CONTEXT_LENGTH) };
    case "readIndexResponse":
      return {
        from,
        to,
        term,
        type,
        context: text(fields, "context", path, READ_CONTEXT_LENGTH),
        index: nullableCount(fields, "index", path),
      };
    default:
      throw new Error(`readMessage: message type ${type} is listed but not read`);
  }
}

export function readMessages(value: unknown, path: string): Message[] {
  const items = arrayAt(value, path, MAX_MESSAGES_PER_ENVELOPE);
  const messages: Message[] = new Array<Message>(items.length);
  for (let position = 0; position < items.length; position++) {
    messages[position] = readMessage(items[position], `${path}.${position}`);
  }
  return messages;
}

function readSnapshotChunk(value: unknown, path: string): SnapshotChunk {
  const fields = objectAt(value, path);
  const repair = fields["repair"];
  if (repair !== undefined && typeof repair !== "boolean") {
    throw new ShapeError(at(path, "repair"), `expected a boolean or nothing, got ${describe(repair)}`);
  }
  return {
    snapshotIndex: count(fields, "snapshotIndex", path),
    snapshotTerm: count(fields, "snapshotTerm", path),
    seq: count(fields, "seq", path),
    last: flag(fields, "last", path),
    data: text(fields, "data", path, ANY_LENGTH),
    ...(repair === undefined ? {} : { repair }),
  };
}

/**
 * Reads a whole envelope whose protocol version the caller has already checked (a newer version may change the
 * shape, so the version is checked first and alone). Throws a ShapeError naming the first problem.
 */
export function readEnvelope(value: unknown, protocolVersion: number): RaftEnvelope {
  const fields = objectAt(value, "");
  if (fields["protocolVersion"] !== protocolVersion) {
    throw new ShapeError("protocolVersion", `expected ${protocolVersion}, got ${describe(fields["protocolVersion"])}`);
  }
  const cluster = text(fields, "cluster", "", NAME_LENGTH);
  const from = nodeId(fields, "from", "");
  const to = nodeId(fields, "to", "");
  const messages = readMessages(fields["messages"], "messages");
  const chunk = fields["snapshotChunk"];
  const snapshotChunk = chunk === undefined ? undefined : readSnapshotChunk(chunk, "snapshotChunk");
  const memberAsOf = fields["memberAsOf"] === undefined ? undefined : count(fields, "memberAsOf", "");
  const onlyForAnswer = trueOrAbsent(fields, "onlyForAnswer", "");
  const repliesInAnswer = trueOrAbsent(fields, "repliesInAnswer", "");
  return {
    protocolVersion,
    cluster,
    from,
    to,
    messages,
    ...(snapshotChunk === undefined ? {} : { snapshotChunk }),
    ...(memberAsOf === undefined ? {} : { memberAsOf }),
    ...(onlyForAnswer === undefined ? {} : { onlyForAnswer }),
    ...(repliesInAnswer === undefined ? {} : { repliesInAnswer }),
  };
}
