// Values that survive structured cloning over RPC but not JSON.stringify (a bigint, a cycle) must be refused as
// MALFORMED like any other bad value, never thrown: a refusal is an answer. Found by review of the hand-written
// envelope reader, which quoted the received value with JSON.stringify (zod never serialises what it refuses).
import { describe, expect, it } from "vitest";
import { PROTOCOL_VERSION } from "../../src/objects/cluster-types";
import { parseReceiveResult, validateEnvelope } from "../../src/objects/transport/envelope";

function envelope(overrides: Record<string, unknown>, messageType: unknown = "heartbeat"): unknown {
  return {
    protocolVersion: PROTOCOL_VERSION,
    cluster: "c",
    from: "a",
    to: "b",
    messages: [{ type: messageType, from: "a", to: "b", term: 1 }],
    ...overrides,
  };
}

function cyclic(): Record<string, unknown> {
  const value: Record<string, unknown> = {};
  value["self"] = value;
  return value;
}

const EXPECTED = { cluster: "c", node: "b" };

describe("peer envelopes holding values JSON cannot write", () => {
  it.each([
    ["a bigint message type", envelope({}, 1n), "MALFORMED"],
    ["a cyclic message type", envelope({}, cyclic()), "MALFORMED"],
    ["a bigint cluster", envelope({ cluster: 1n }), "WRONG_CLUSTER"],
    ["a cyclic addressee", envelope({ to: cyclic() }), "WRONG_NODE"],
  ])("refuses %s without throwing", (_name, input, code) => {
    const checked = validateEnvelope(input, EXPECTED);
    expect(checked.ok).toBe(false);
    expect(checked.ok ? null : checked.error.code).toBe(code);
  });

  it("quotes a long received string only in part", () => {
    const checked = validateEnvelope(envelope({ cluster: "x".repeat(10_000) }), EXPECTED);
    expect(checked.ok ? "" : checked.error.message.length).toBeLessThan(400);
  });

  it("turns a receive result with a bigint or cyclic error code into a MALFORMED refusal", () => {
    for (const code of [1n, cyclic()]) {
      const result = parseReceiveResult({ ok: false, error: { code, message: "x" } });
      expect(result.ok).toBe(false);
      expect(result.ok ? null : result.error.code).toBe("MALFORMED");
    }
  });
});
