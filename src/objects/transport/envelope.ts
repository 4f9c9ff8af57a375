// What one node sends another over RPC: a batch of Raft messages (and, while a snapshot is being streamed, one
// chunk of its image), stamped with the protocol version and the cluster name. During a deploy old and new code
// talk to each other, so the receiver checks the version before anything else and refuses unknown ones cleanly.
import { PROTOCOL_VERSION } from "../cluster-types";
import type { Message } from "../../replication/types";
import type { SnapshotChunk } from "../snapshot-types";
import { MAX_MESSAGES_PER_ENVELOPE } from "./envelope-limits";
import { describeReceived, readEnvelope, ShapeError } from "./envelope-reader";

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

export * from "./envelope-limits";

// ---------------------------------------------------------------------------------------------------------------

function refuse(code: EnvelopeErrorCode, message: string): EnvelopeValidation {
  return { ok: false, error: { code, message } };
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
      `the envelope is for cluster ${describeReceived(fields["cluster"])}; this node belongs to ${JSON.stringify(expected.cluster)}`,
    );
  }
  if (fields["to"] !== expected.node) {
    return refuse(
      "WRONG_NODE",
      `the envelope is addressed to ${describeReceived(fields["to"])}; this node is ${JSON.stringify(expected.node)}`,
    );
  }
  let envelope: RaftEnvelope;
  try {
    envelope = readEnvelope(input, PROTOCOL_VERSION);
  } catch (err) {
    if (err instanceof ShapeError) {
      return refuse("MALFORMED", `malformed envelope: ${err.message}`);
    }
    throw err;
  }
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
  const problem = receiveResultProblem(input);
  if (problem === null) {
    const answer = input as ReceiveResult;
    return answer.ok ? { ok: true } : { ok: false, error: { code: answer.error.code, message: answer.error.message } };
  }
  return {
    ok: false,
    error: { code: "MALFORMED", message: `the peer answered with a malformed result: ${problem}` },
  };
}

const REFUSAL_CODES: ReadonlySet<unknown> = new Set<ReceiveRefusalCode>([
  "PROTOCOL",
  "WRONG_CLUSTER",
  "WRONG_NODE",
  "MALFORMED",
  "UNAVAILABLE",
]);

/** What is wrong with a peer's answer (checked by hand like the envelope, see envelope-reader.ts), or null. */
function receiveResultProblem(input: unknown): string | null {
  if (typeof input !== "object" || input === null || Array.isArray(input)) {
    return `expected an object, got ${input === null ? "null" : Array.isArray(input) ? "an array" : typeof input}`;
  }
  const { ok, error } = input as { ok?: unknown; error?: unknown };
  if (ok === true) {
    return null;
  }
  if (ok !== false) {
    return `ok: expected true or false, got ${typeof ok}`;
  }
  if (typeof error !== "object" || error === null || Array.isArray(error)) {
    return "error: expected an object";
  }
  const { code, message } = error as { code?: unknown; message?: unknown };
  if (!REFUSAL_CODES.has(code)) {
    return `error.code: expected one of ${[...REFUSAL_CODES].join(", ")}, got ${describeReceived(code)}`;
  }
  if (typeof message !== "string") {
    return `error.message: expected a string, got ${typeof message}`;
  }
  return null;
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
