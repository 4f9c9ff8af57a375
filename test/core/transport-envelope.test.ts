import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../src/objects/cluster-types";
import {
  createEnvelope,
  estimateMessageBytes,
  MAX_MESSAGES_PER_ENVELOPE,
  parseReceiveResult,
  validateEnvelope,
} from "../../src/objects/transport/envelope";
import type { Message } from "../../src/replication/types";

const expected = { cluster: "c1", node: "n2" };
const route = { from: "n1", to: "n2" };

/** One message of every type, all from n1 to n2. */
const everyMessage: Message[] = [
  { ...route, term: 3, type: "preVote", lastLogIndex: 10, lastLogTerm: 2, transfer: false },
  { ...route, term: 3, type: "preVoteResponse", granted: true },
  { ...route, term: 3, type: "vote", lastLogIndex: 10, lastLogTerm: 2, transfer: true },
  { ...route, term: 3, type: "voteResponse", granted: false },
  {
    ...route,
    term: 3,
    type: "append",
    prevLogIndex: 9,
    prevLogTerm: 2,
    entries: [
      { index: 10, term: 3, kind: "noop", data: "" },
      { index: 11, term: 3, kind: "normal", data: '{"sql":"INSERT"}' },
    ],
    commit: 9,
  },
  { ...route, term: 3, type: "appendResponse", success: false, index: 9, rejectHint: { index: 5, term: 1 } },
  { ...route, term: 3, type: "appendResponse", success: true, index: 11, rejectHint: null },
  { ...route, term: 3, type: "heartbeat", commit: 9, readContext: "r-1", round: 4 },
  { ...route, term: 3, type: "heartbeatResponse", readContext: null, round: 4 },
  {
    ...route,
    term: 3,
    type: "snapshot",
    snapshot: { index: 100, term: 2, membership: { voters: ["n1", "n2", "n3"], learners: ["n4"] } },
  },
  { ...route, term: 3, type: "timeoutNow" },
  { ...route, term: 3, type: "readIndex", context: "ctx" },
  { ...route, term: 3, type: "readIndexResponse", context: "ctx", index: null },
];

function envelopeWith(overrides: Record<string, unknown>): Record<string, unknown> {
  return {
    protocolVersion: PROTOCOL_VERSION,
    cluster: "c1",
    from: "n1",
    to: "n2",
    messages: everyMessage,
    ...overrides,
  };
}

function errorOf(input: unknown) {
  const result = validateEnvelope(input, expected);
  if (result.ok) {
    throw new Error("expected the envelope to be refused");
  }
  return result.error;
}

describe("validateEnvelope", () => {
  it("accepts every message type and returns them unchanged", () => {
    const result = validateEnvelope(createEnvelope({ cluster: "c1", ...route, messages: everyMessage }), expected);
    expect(result.ok).toBe(true);
    if (result.ok) {
      expect(result.envelope.messages).toEqual(everyMessage);
    }
  });

  it("accepts a snapshot chunk without messages", () => {
    const chunk = { snapshotIndex: 100, snapshotTerm: 2, seq: 0, last: false, data: "CREATE TABLE t(x);" };
    const result = validateEnvelope(envelopeWith({ messages: [], snapshotChunk: chunk }), expected);
    expect(result).toEqual({ ok: true, envelope: expect.objectContaining({ snapshotChunk: chunk }) });
  });

  it("refuses an unknown protocol version, naming both versions, before looking at the shape", () => {
    const error = errorOf({ protocolVersion: PROTOCOL_VERSION + 1, something: "entirely different" });
    expect(error.code).toBe("PROTOCOL");
    expect(error.message).toBe(
      `the envelope has protocol version ${PROTOCOL_VERSION + 1}; this node speaks protocol version ${PROTOCOL_VERSION}`,
    );
    expect(errorOf(envelopeWith({ protocolVersion: "1" }))).toMatchObject({
      code: "PROTOCOL",
      message: `the envelope has no numeric protocol version; this node speaks protocol version ${PROTOCOL_VERSION}`,
    });
  });

  it("refuses an envelope for another cluster or another node", () => {
    expect(errorOf(envelopeWith({ cluster: "other" }))).toEqual({
      code: "WRONG_CLUSTER",
      message: 'the envelope is for cluster "other"; this node belongs to "c1"',
    });
    expect(errorOf(envelopeWith({ to: "n3" }))).toEqual({
      code: "WRONG_NODE",
      message: 'the envelope is addressed to "n3"; this node is "n2"',
    });
  });

  it("refuses values that are not objects", () => {
    expect(errorOf(null)).toMatchObject({ code: "MALFORMED", message: "an envelope must be an object, got object" });
    expect(errorOf([])).toMatchObject({ code: "MALFORMED", message: "an envelope must be an object, got an array" });
    expect(errorOf("x")).toMatchObject({ code: "MALFORMED", message: "an envelope must be an object, got string" });
  });

  it("refuses malformed messages and says where", () => {
    const badTerm = { ...route, term: -1, type: "timeoutNow" };
    expect(errorOf(envelopeWith({ messages: [badTerm] })).message).toMatch(/^malformed envelope: messages\.0\.term: /);

    const unknownType = { ...route, term: 1, type: "gossip" };
    expect(errorOf(envelopeWith({ messages: [unknownType] }))).toMatchObject({ code: "MALFORMED" });

    const badEntry = {
      ...route,
      term: 1,
      type: "append",
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [{ index: 1.5, term: 1, kind: "normal", data: "" }],
      commit: 0,
    };
    expect(errorOf(envelopeWith({ messages: [badEntry] })).message).toMatch(/messages\.0\.entries\.0\.index/);

    const missingField = { ...route, term: 1, type: "heartbeat", commit: 0, round: 1 };
    expect(errorOf(envelopeWith({ messages: [missingField] })).message).toMatch(/messages\.0\.readContext/);

    expect(errorOf(envelopeWith({ messages: "nope" })).message).toMatch(/messages: /);
  });

  it("refuses messages whose addressing differs from the envelope's", () => {
    const stray = { from: "n3", to: "n2", term: 1, type: "timeoutNow" };
    expect(errorOf(envelopeWith({ messages: [stray] }))).toEqual({
      code: "MALFORMED",
      message: "malformed envelope: messages.0 (timeoutNow) goes from n3 to n2, but the envelope from n1 to n2",
    });
  });

  it("refuses an empty envelope and one sent by a node to itself", () => {
    expect(errorOf(envelopeWith({ messages: [] })).message).toMatch(/neither messages nor a snapshot chunk/);
    const chunk = { snapshotIndex: 1, snapshotTerm: 1, seq: 0, last: true, data: "" };
    expect(errorOf(envelopeWith({ from: "n2", messages: [], snapshotChunk: chunk })).message).toBe(
      "malformed envelope: the envelope is addressed from n2 to itself",
    );
  });

  it("bounds the number of messages", () => {
    const many = Array.from({ length: MAX_MESSAGES_PER_ENVELOPE + 1 }, () => ({
      ...route,
      term: 1,
      type: "timeoutNow",
    }));
    expect(errorOf(envelopeWith({ messages: many })).message).toMatch(/^malformed envelope: messages: /);
  });

  it("drops unknown fields instead of passing them on", () => {
    const result = validateEnvelope(
      envelopeWith({ messages: [{ ...route, term: 1, type: "timeoutNow", extra: 1 }], extra: 2 }),
      expected,
    );
    expect(result.ok && result.envelope).toEqual({
      protocolVersion: PROTOCOL_VERSION,
      cluster: "c1",
      ...route,
      messages: [{ ...route, term: 1, type: "timeoutNow" }],
    });
  });
});

describe("createEnvelope", () => {
  it("stamps the protocol version", () => {
    const envelope = createEnvelope({ cluster: "c1", ...route, messages: everyMessage.slice(0, 1) });
    expect(envelope.protocolVersion).toBe(PROTOCOL_VERSION);
    expect("snapshotChunk" in envelope).toBe(false);
  });

  it("throws on a message addressed elsewhere, an empty batch, or too many messages", () => {
    expect(() => createEnvelope({ cluster: "c1", from: "n1", to: "n3", messages: everyMessage.slice(0, 1) })).toThrow(
      "createEnvelope: messages.0 (preVote) goes from n1 to n2, but the envelope from n1 to n3",
    );
    expect(() => createEnvelope({ cluster: "c1", ...route, messages: [] })).toThrow(
      /neither messages nor a snapshot chunk/,
    );
    const many = Array.from({ length: MAX_MESSAGES_PER_ENVELOPE + 1 }, (): Message => ({
      ...route,
      term: 1,
      type: "timeoutNow",
    }));
    expect(() => createEnvelope({ cluster: "c1", ...route, messages: many })).toThrow(RangeError);
  });
});

describe("parseReceiveResult", () => {
  it("passes well-formed answers through", () => {
    expect(parseReceiveResult({ ok: true })).toEqual({ ok: true });
    const refusal = { ok: false, error: { code: "PROTOCOL", message: "speaks 2" } };
    expect(parseReceiveResult(refusal)).toEqual(refusal);
  });

  it("turns anything else into a MALFORMED refusal instead of throwing", () => {
    for (const answer of [
      undefined,
      null,
      "ok",
      { ok: "yes" },
      { ok: false, error: { code: "NEW_CODE", message: "" } },
    ]) {
      const parsed = parseReceiveResult(answer);
      expect(parsed.ok).toBe(false);
      if (!parsed.ok) {
        expect(parsed.error.code).toBe("MALFORMED");
        expect(parsed.error.message).toMatch(/^the peer answered with a malformed result: /);
      }
    }
  });
});

describe("estimateMessageBytes", () => {
  it("grows with entry payloads and stays above two bytes per character", () => {
    const small = estimateMessageBytes({ ...route, term: 1, type: "timeoutNow" });
    const data = "x".repeat(10_000);
    const append: Message = {
      ...route,
      term: 1,
      type: "append",
      prevLogIndex: 0,
      prevLogTerm: 0,
      entries: [
        { index: 1, term: 1, kind: "normal", data },
        { index: 2, term: 1, kind: "normal", data },
      ],
      commit: 0,
    };
    expect(estimateMessageBytes(append)).toBeGreaterThanOrEqual(2 * 2 * data.length);
    expect(estimateMessageBytes(append)).toBeGreaterThan(small);
    expect(new TextEncoder().encode(JSON.stringify(append)).length).toBeLessThan(estimateMessageBytes(append));
  });
});
