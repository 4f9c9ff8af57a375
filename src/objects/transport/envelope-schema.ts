// The peer envelope and the receive result as zod schemas: the reference the hand-written reader (envelope-reader.ts)
// is checked against, by a property test on generated valid and invalid envelopes. Production code does not parse
// with these (see envelope-reader.ts for why); they stay the readable statement of what an envelope may hold, and the
// compile-time checks below fail when a message type gains or loses a field the schemas do not list.
import { z } from "zod";
import { PROTOCOL_VERSION } from "../cluster-types";
import type { LogEntry, Message, MessageType } from "../../replication/types";
import {
  MAX_ENTRIES_PER_MESSAGE,
  MAX_MEMBERS,
  MAX_MESSAGES_PER_ENVELOPE,
  MAX_NAME_LENGTH,
  MAX_READ_CONTEXT_LENGTH,
} from "./envelope-limits";

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

export const envelopeSchema = z.object({
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

export const receiveResultSchema = z.discriminatedUnion("ok", [
  z.object({ ok: z.literal(true) }),
  z.object({
    ok: z.literal(false),
    error: z.object({
      code: z.enum(["PROTOCOL", "WRONG_CLUSTER", "WRONG_NODE", "MALFORMED", "UNAVAILABLE"]),
      message: z.string(),
    }),
  }),
]);
