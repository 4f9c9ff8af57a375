// The hand-written envelope reader (envelope-reader.ts) against the zod schemas it replaced (envelope-schema.ts):
// on generated envelopes, valid ones and ones broken in one place, both must accept and refuse alike and return
// the same data (unknown fields dropped).
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../src/objects/cluster-types";
import { parseReceiveResult, validateEnvelope } from "../../src/objects/transport/envelope";
import { MAX_NAME_LENGTH, MAX_READ_CONTEXT_LENGTH } from "../../src/objects/transport/envelope-limits";
import { readEnvelope, ShapeError } from "../../src/objects/transport/envelope-reader";
import { envelopeSchema, receiveResultSchema } from "../../src/objects/transport/envelope-schema";

const FROM = "n1";
const TO = "n2";

const count = fc.oneof(fc.nat({ max: 20 }), fc.constantFrom(0, Number.MAX_SAFE_INTEGER));
const name = fc.oneof(fc.constantFrom("n1", "n2", "n3"), fc.string({ minLength: 1, maxLength: 8 }));
const readContext = fc.oneof(fc.string({ maxLength: 6 }), fc.constant("r".repeat(MAX_READ_CONTEXT_LENGTH)));
const route = { from: fc.constant(FROM), to: fc.constant(TO), term: count };

const entry = fc.record({
  index: count,
  term: count,
  kind: fc.constantFrom("normal", "noop", "config"),
  data: fc.string({ maxLength: 12 }),
});

const message = fc.oneof(
  fc.record({
    ...route,
    type: fc.constantFrom("preVote", "vote"),
    lastLogIndex: count,
    lastLogTerm: count,
    transfer: fc.boolean(),
  }),
  fc.record({ ...route, type: fc.constantFrom("preVoteResponse", "voteResponse"), granted: fc.boolean() }),
  fc.record({
    ...route,
    type: fc.constant("append"),
    prevLogIndex: count,
    prevLogTerm: count,
    entries: fc.array(entry, { maxLength: 3 }),
    commit: count,
  }),
  fc.record({
    ...route,
    type: fc.constant("appendResponse"),
    success: fc.boolean(),
    index: count,
    rejectHint: fc.option(fc.record({ index: count, term: count }), { nil: null }),
  }),
  fc.record({
    ...route,
    type: fc.constant("heartbeat"),
    commit: count,
    readContext: fc.option(readContext, { nil: null }),
    round: count,
  }),
  fc.record({
    ...route,
    type: fc.constant("heartbeatResponse"),
    readContext: fc.option(readContext, { nil: null }),
    round: count,
  }),
  fc.record({
    ...route,
    type: fc.constant("snapshot"),
    snapshot: fc.record({
      index: count,
      term: count,
      membership: fc.record({ voters: fc.array(name, { maxLength: 3 }), learners: fc.array(name, { maxLength: 2 }) }),
    }),
  }),
  fc.record({ ...route, type: fc.constant("timeoutNow") }),
  fc.record({ ...route, type: fc.constant("readIndex"), context: readContext }),
  fc.record({
    ...route,
    type: fc.constant("readIndexResponse"),
    context: readContext,
    index: fc.option(count, { nil: null }),
  }),
);

const chunk = fc.record(
  {
    snapshotIndex: count,
    snapshotTerm: count,
    seq: count,
    last: fc.boolean(),
    data: fc.string({ maxLength: 12 }),
    repair: fc.boolean(),
  },
  { requiredKeys: ["snapshotIndex", "snapshotTerm", "seq", "last", "data"] },
);

const validEnvelope = fc.record(
  {
    protocolVersion: fc.constant(PROTOCOL_VERSION),
    cluster: fc.oneof(fc.constant("c1"), fc.constant("c".repeat(MAX_NAME_LENGTH))),
    from: fc.constant(FROM),
    to: fc.constant(TO),
    messages: fc.array(message, { maxLength: 4 }),
    snapshotChunk: chunk,
    memberAsOf: count,
    onlyForAnswer: fc.constant(true),
    repliesInAnswer: fc.constant(true),
  },
  { requiredKeys: ["protocolVersion", "cluster", "from", "to", "messages"] },
);

/** Anything a broken or foreign sender might put in a field. */
const oddValue = fc.oneof(
  fc.constantFrom(
    undefined,
    null,
    -1,
    1.5,
    Number.NaN,
    Number.POSITIVE_INFINITY,
    Number.MAX_SAFE_INTEGER + 1,
    "",
    "x".repeat(MAX_NAME_LENGTH + 1),
    "r".repeat(MAX_READ_CONTEXT_LENGTH + 1),
    "gossip",
    true,
    false,
    [],
    {},
  ),
  fc.anything({ maxDepth: 2 }),
);

/** Every path to a value inside `value` (objects and arrays), the root excluded. */
function pathsOf(value: unknown, prefix: readonly (string | number)[] = []): (string | number)[][] {
  if (typeof value !== "object" || value === null) {
    return [];
  }
  const keys: (string | number)[] = Array.isArray(value) ? value.map((_, i) => i) : Object.keys(value);
  return keys.flatMap((key) => {
    const path = [...prefix, key];
    return [path, ...pathsOf((value as Record<string | number, unknown>)[key], path)];
  });
}

/** A deep copy of `value` with the value at `path` replaced (or deleted, for `undefined` in an object). */
function withValueAt(value: unknown, path: readonly (string | number)[], replacement: unknown): unknown {
  const copy: unknown = structuredClone(value);
  let parent = copy as Record<string | number, unknown>;
  for (const key of path.slice(0, -1)) {
    parent = parent[key] as Record<string | number, unknown>;
  }
  const last = path[path.length - 1]!;
  if (replacement === undefined && !Array.isArray(parent)) {
    delete parent[last];
  } else {
    parent[last] = replacement;
  }
  return copy;
}

/** A valid envelope broken in one place: a field replaced, removed, or an unknown one added. */
const brokenEnvelope = fc
  .tuple(validEnvelope, fc.nat(), oddValue, fc.boolean())
  .map(([envelope, pick, replacement, addUnknown]) => {
    const paths = pathsOf(envelope);
    const path = paths[pick % paths.length]!;
    if (addUnknown) {
      return withValueAt(envelope, [...path.slice(0, -1), "unknownField"], replacement);
    }
    return withValueAt(envelope, path, replacement);
  });

function readerVerdict(input: unknown): { ok: true; data: unknown } | { ok: false; error: ShapeError } {
  try {
    return { ok: true, data: readEnvelope(input, PROTOCOL_VERSION) };
  } catch (err) {
    if (err instanceof ShapeError) {
      return { ok: false, error: err };
    }
    throw err;
  }
}

function expectAgreement(input: unknown): void {
  const reference = envelopeSchema.safeParse(input);
  const verdict = readerVerdict(input);
  expect({ input, accepted: verdict.ok }).toEqual({ input, accepted: reference.success });
  if (verdict.ok && reference.success) {
    expect(verdict.data).toEqual(reference.data);
  }
  if (!verdict.ok && !reference.success) {
    // The reader names one problem, where zod lists them all: its path is one zod found as well.
    const referencePaths = reference.error.issues.map((issue) => issue.path.join("."));
    expect(referencePaths.some((path) => path === verdict.error.path || verdict.error.path.startsWith(path))).toBe(
      true,
    );
  }
}

describe("the hand-written envelope reader agrees with the zod schema", () => {
  it("on valid envelopes: accepted, with the same data", () => {
    fc.assert(fc.property(validEnvelope, expectAgreement), { numRuns: 500 });
  });

  it("on envelopes broken in one place: refused alike, and accepted alike when the change is harmless", () => {
    let refused = 0;
    const runs = 3000;
    fc.assert(
      fc.property(brokenEnvelope, (input) => {
        expectAgreement(input);
        refused += envelopeSchema.safeParse(input).success ? 0 : 1;
      }),
      { numRuns: runs },
    );
    // Many breakages must be refusals, or the comparison would say little about the refusals.
    expect(refused).toBeGreaterThan(runs / 3);
  });

  it("on arbitrary values", () => {
    fc.assert(fc.property(fc.anything({ maxDepth: 3 }), expectAgreement), { numRuns: 500 });
  });

  it("refuses with a message that names the field", () => {
    const envelope = {
      protocolVersion: PROTOCOL_VERSION,
      cluster: "c1",
      from: FROM,
      to: TO,
      messages: [{ from: FROM, to: TO, term: 1, type: "heartbeat", commit: 2, readContext: 7, round: 1 }],
    };
    expect(validateEnvelope(envelope, { cluster: "c1", node: TO })).toEqual({
      ok: false,
      error: {
        code: "MALFORMED",
        message: "malformed envelope: messages.0.readContext: expected a string, got 7",
      },
    });
  });
});

describe("parseReceiveResult agrees with the zod schema", () => {
  const answer = fc.oneof(
    fc.constant({ ok: true }),
    fc.record({ ok: fc.constant(true), report: fc.anything({ maxDepth: 1 }) }),
    fc.record({
      ok: fc.oneof(fc.constant(false), oddValue),
      error: fc.oneof(
        fc.record({
          code: fc.oneof(
            fc.constantFrom("PROTOCOL", "WRONG_CLUSTER", "WRONG_NODE", "MALFORMED", "UNAVAILABLE", "DROPPED"),
            oddValue,
          ),
          message: fc.oneof(fc.string({ maxLength: 5 }), oddValue),
        }),
        oddValue,
      ),
    }),
    oddValue,
  );

  it("accepts and refuses alike, and passes the same data on", () => {
    fc.assert(
      fc.property(answer, (input) => {
        const reference = receiveResultSchema.safeParse(input);
        const parsed = parseReceiveResult(input);
        if (reference.success) {
          expect(parsed).toEqual(reference.data);
        } else {
          expect(parsed).toMatchObject({
            ok: false,
            error: {
              code: "MALFORMED",
              message: expect.stringMatching(/^the peer answered with a malformed result: /),
            },
          });
        }
      }),
      { numRuns: 1000 },
    );
  });
});
