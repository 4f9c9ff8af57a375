// What one node sends another over RPC: a batch of Raft messages (and, while a snapshot is being streamed, one
// chunk of its image), stamped with the protocol version and the cluster name. During a deploy old and new code
// talk to each other, so the receiver checks the version before anything else and refuses unknown ones cleanly.
import { z } from "zod";
import { PROTOCOL_VERSION } from "../cluster-types";
import type { LogEntry, Message, MessageType } from "../../replication/types";
import type { SnapshotChunk } from "../snapshot-types";

export type { SnapshotChunk } from "../snapshot-types";

export interface RaftEnvelope {
  readonly protocolVersion: number;
  readonly cluster: string;
  readonly from: string;
  readonly to: string;
  /** Every message has the envelope's `from` and `to`. */
  readonly messages: readonly Message[];
  readonly snapshotChunk?: SnapshotChunk;
  /**
   * Set by a sender whose applied configuration lists the addressee: the sender's applied index. It proves to a
   * node that was removed (as of an earlier applied index) that a later configuration added it back. Older senders
   * omit it, and older receivers drop it.
   */
  readonly memberAsOf?: number;
  /**
   * Set on an envelope with nothing in it, sent for the answer alone (the receiver's report about itself, read by
   * the voting census of a node with new storage). Older receivers refuse it, and are asked again later.
   */
  readonly onlyForAnswer?: true;
  /**
   * Set by a sender that reads replies in the answer (PeerAnswer.replies): the receiver may hand back its responses
   * to these messages there instead of in a call of its own. Older receivers drop the flag and call back as before.
   */
  readonly repliesInAnswer?: true;
}

export type EnvelopeErrorCode = "PROTOCOL" | "WRONG_CLUSTER" | "WRONG_NODE" | "MALFORMED";

export interface EnvelopeError {
  readonly code: EnvelopeErrorCode;
  readonly message: string;
}

export type EnvelopeValidation =
  { readonly ok: true; readonly envelope: RaftEnvelope } | { readonly ok: false; readonly error: EnvelopeError };

/** Why a receiver refused an envelope: a validation error, or "UNAVAILABLE" (not started, shutting down...). */
export type ReceiveRefusalCode = EnvelopeErrorCode | "UNAVAILABLE";

/** What the peer's `receive(envelope)` RPC method answers. A refusal is an answer, not an exception. */
export type ReceiveResult =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: { readonly code: ReceiveRefusalCode; readonly message: string } };

/** Bounds on what one envelope may carry; the platform's own limit is 32 MiB per RPC payload. */
export const MAX_MESSAGES_PER_ENVELOPE = 1024;
export const MAX_ENTRIES_PER_MESSAGE = 65_536;
export const MAX_NAME_LENGTH = 256;
export const MAX_READ_CONTEXT_LENGTH = 1024;
export const MAX_MEMBERS = 256;

// ---------------------------------------------------------------------------------------------------------------
// Schemas. Full but flat: the cost is linear in the number of messages and entries, which structured clone
// already paid for; entry payloads (strings) are checked for type only, never copied or parsed.

const nodeId = z.string().min(1).max(MAX_NAME_LENGTH);
const count = z.number().int().nonnegative();
const readContext = z.string().max(MAX_READ_CONTEXT_LENGTH);

const base = { from: nodeId, to: nodeId, term: count };

const logEntry = z.object({
  index: count,
  term: count,
  kind: z.enum(["normal", "noop", "config"]),
  data: z.string(),
});

const membership = z.object({
  voters: z.array(nodeId).max(MAX_MEMBERS),
  learners: z.array(nodeId).max(MAX_MEMBERS),
});

const messageSchema = z.discriminatedUnion("type", [
  z.object({ ...base, type: z.literal("preVote"), lastLogIndex: count, lastLogTerm: count, transfer: z.boolean() }),
  z.object({ ...base, type: z.literal("preVoteResponse"), granted: z.boolean() }),
  z.object({ ...base, type: z.literal("vote"), lastLogIndex: count, lastLogTerm: count, transfer: z.boolean() }),
  z.object({ ...base, type: z.literal("voteResponse"), granted: z.boolean() }),
  z.object({
    ...base,
    type: z.literal("append"),
    prevLogIndex: count,
    prevLogTerm: count,
    entries: z.array(logEntry).max(MAX_ENTRIES_PER_MESSAGE),
    commit: count,
  }),
  z.object({
    ...base,
    type: z.literal("appendResponse"),
    success: z.boolean(),
    index: count,
    rejectHint: z.object({ index: count, term: count }).nullable(),
  }),
  z.object({ ...base, type: z.literal("heartbeat"), commit: count, readContext: readContext.nullable(), round: count }),
  z.object({ ...base, type: z.literal("heartbeatResponse"), readContext: readContext.nullable(), round: count }),
  z.object({
    ...base,
    type: z.literal("snapshot"),
    snapshot: z.object({ index: count, term: count, membership }),
  }),
  z.object({ ...base, type: z.literal("timeoutNow") }),
  z.object({ ...base, type: z.literal("readIndex"), context: readContext }),
  z.object({ ...base, type: z.literal("readIndexResponse"), context: readContext, index: count.nullable() }),
]);

// The schemas strip unknown fields, so a field added to a message type but not here would vanish in transit.
// These compile-time checks fail (naming the type) when the field sets differ in either direction.
type SchemaMessage = z.output<typeof messageSchema>;
type FieldsOf<Union, Type extends MessageType> = keyof Extract<Union, { type: Type }>;
type MessageTypesWithDifferentFields = {
  [Type in MessageType]: [FieldsOf<Message, Type>] extends [FieldsOf<SchemaMessage, Type>]
    ? [FieldsOf<SchemaMessage, Type>] extends [FieldsOf<Message, Type>]
      ? never
      : Type
    : Type;
}[MessageType];
type EntryFieldsDiffer = [keyof LogEntry] extends [keyof z.output<typeof logEntry>]
  ? [keyof z.output<typeof logEntry>] extends [keyof LogEntry]
    ? never
    : "LogEntry"
  : "LogEntry";
const schemasMatchTypes: [MessageTypesWithDifferentFields | EntryFieldsDiffer] extends [never]
  ? true
  : MessageTypesWithDifferentFields | EntryFieldsDiffer = true;
void schemasMatchTypes;

const snapshotChunkSchema = z.object({
  snapshotIndex: count,
  snapshotTerm: count,
  seq: count,
  last: z.boolean(),
  data: z.string(),
  repair: z.boolean().optional(),
});

const envelopeSchema = z.object({
  protocolVersion: z.literal(PROTOCOL_VERSION),
  cluster: z.string().min(1).max(MAX_NAME_LENGTH),
  from: nodeId,
  to: nodeId,
  messages: z.array(messageSchema).max(MAX_MESSAGES_PER_ENVELOPE),
  snapshotChunk: snapshotChunkSchema.optional(),
  memberAsOf: count.optional(),
  onlyForAnswer: z.literal(true).optional(),
  repliesInAnswer: z.literal(true).optional(),
});

const receiveResultSchema = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true) }),
  z.object({
    ok: z.literal(false),
    error: z.object({
      code: z.enum(["PROTOCOL", "WRONG_CLUSTER", "WRONG_NODE", "MALFORMED", "UNAVAILABLE"]),
      message: z.string(),
    }),
  }),
]);

// ---------------------------------------------------------------------------------------------------------------

function refuse(code: EnvelopeErrorCode, message: string): EnvelopeValidation {
  return { ok: false, error: { code, message } };
}

function describeIssues(issues: readonly z.core.$ZodIssue[]): string {
  const shown = issues.slice(0, 3).map((issue) => `${issue.path.join(".") || "(root)"}: ${issue.message}`);
  const more = issues.length > shown.length ? ` (and ${issues.length - shown.length} more)` : "";
  return shown.join("; ") + more;
}

function addressingError(envelope: RaftEnvelope): string | null {
  const empty = envelope.messages.length === 0 && envelope.snapshotChunk === undefined;
  if (empty && envelope.onlyForAnswer !== true) {
    return "the envelope carries neither messages nor a snapshot chunk";
  }
  if (!empty && envelope.onlyForAnswer === true) {
    return "an envelope sent only for the answer carries messages or a snapshot chunk";
  }
  if (envelope.from === envelope.to) {
    return `the envelope is addressed from ${envelope.from} to itself`;
  }
  for (const [position, message] of envelope.messages.entries()) {
    if (message.from !== envelope.from || message.to !== envelope.to) {
      return (
        `messages.${position} (${message.type}) goes from ${message.from} to ${message.to}, ` +
        `but the envelope from ${envelope.from} to ${envelope.to}`
      );
    }
  }
  return null;
}

/**
 * Checks an incoming envelope, in this order: protocol version (before the shape, which a newer version may
 * have changed), cluster, addressee, shape of every message, and that every message matches the envelope's
 * addressing. Returns the typed envelope, or an error whose message names what was wrong.
 */
export function validateEnvelope(input: unknown, expected: { cluster: string; node: string }): EnvelopeValidation {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return refuse(
      "MALFORMED",
      `an envelope must be an object, got ${Array.isArray(input) ? "an array" : typeof input}`,
    );
  }
  const fields = input as Record<string, unknown>;
  const version = fields["protocolVersion"];
  if (version !== PROTOCOL_VERSION) {
    const got = typeof version === "number" ? `protocol version ${version}` : "no numeric protocol version";
    return refuse("PROTOCOL", `the envelope has ${got}; this node speaks protocol version ${PROTOCOL_VERSION}`);
  }
  if (fields["cluster"] !== expected.cluster) {
    return refuse(
      "WRONG_CLUSTER",
      `the envelope is for cluster ${JSON.stringify(fields["cluster"])}; this node belongs to ${JSON.stringify(expected.cluster)}`,
    );
  }
  if (fields["to"] !== expected.node) {
    return refuse(
      "WRONG_NODE",
      `the envelope is addressed to ${JSON.stringify(fields["to"])}; this node is ${JSON.stringify(expected.node)}`,
    );
  }
  const parsed = envelopeSchema.safeParse(input);
  if (!parsed.success) {
    return refuse("MALFORMED", `malformed envelope: ${describeIssues(parsed.error.issues)}`);
  }
  const envelope: RaftEnvelope = parsed.data;
  const problem = addressingError(envelope);
  if (problem !== null) {
    return refuse("MALFORMED", `malformed envelope: ${problem}`);
  }
  return { ok: true, envelope };
}

/**
 * Builds an outgoing envelope, asserting what the sender controls: every message is from `from` to `to`, the
 * count is within bounds, and there is something to send. A violation is a bug in the caller: it throws.
 */
export function createEnvelope(parts: {
  cluster: string;
  from: string;
  to: string;
  messages: readonly Message[];
  snapshotChunk?: SnapshotChunk;
  onlyForAnswer?: true;
}): RaftEnvelope {
  if (parts.messages.length > MAX_MESSAGES_PER_ENVELOPE) {
    throw new RangeError(
      `an envelope holds at most ${MAX_MESSAGES_PER_ENVELOPE} messages, got ${parts.messages.length}`,
    );
  }
  const envelope: RaftEnvelope = {
    protocolVersion: PROTOCOL_VERSION,
    cluster: parts.cluster,
    from: parts.from,
    to: parts.to,
    messages: parts.messages,
    ...(parts.snapshotChunk === undefined ? {} : { snapshotChunk: parts.snapshotChunk }),
    ...(parts.onlyForAnswer === true ? { onlyForAnswer: true as const } : {}),
  };
  const problem = addressingError(envelope);
  if (problem !== null) {
    throw new Error(`createEnvelope: ${problem}`);
  }
  return envelope;
}

/**
 * Reads a peer's answer to `receive`. A peer on other code may answer something else entirely: that becomes a
 * MALFORMED refusal rather than an exception, so it is reported like any other refusal.
 */
export function parseReceiveResult(input: unknown): ReceiveResult {
  const parsed = receiveResultSchema.safeParse(input);
  if (parsed.success) {
    return parsed.data;
  }
  return {
    ok: false,
    error: {
      code: "MALFORMED",
      message: `the peer answered with a malformed result: ${describeIssues(parsed.error.issues)}`,
    },
  };
}

/**
 * An upper estimate of the bytes a message occupies on the wire (structured clone stores strings as one or two
 * bytes per UTF-16 unit; we assume two), used to keep envelopes well under the 32 MiB RPC limit.
 */
export function estimateMessageBytes(message: Message): number {
  const fixedBytes = 128;
  switch (message.type) {
    case "append": {
      let bytes = fixedBytes;
      for (const entry of message.entries) {
        bytes += 48 + 2 * entry.data.length;
      }
      return bytes;
    }
    case "snapshot": {
      const { voters, learners } = message.snapshot.membership;
      let bytes = fixedBytes;
      for (const member of [...voters, ...learners]) {
        bytes += 16 + 2 * member.length;
      }
      return bytes;
    }
    case "heartbeat":
    case "heartbeatResponse":
      return fixedBytes + 2 * (message.readContext?.length ?? 0);
    case "readIndex":
    case "readIndexResponse":
      return fixedBytes + 2 * message.context.length;
    default:
      return fixedBytes;
  }
}

export function estimateChunkBytes(chunk: SnapshotChunk): number {
  return 128 + 2 * chunk.data.length;
}
