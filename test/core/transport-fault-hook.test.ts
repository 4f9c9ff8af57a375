import { describe, expect, it } from "vitest";
import {
  applyFaults,
  assertFaultsEnabled,
  faultsEnabled,
  isPartitioned,
  parseFaultRules,
} from "../../src/objects/transport/fault-hook";

const never = (): number => {
  throw new Error("random() must not be drawn here");
};

describe("the fault switch", () => {
  it('is on only when DHA_TEST_FAULTS is exactly "1"', () => {
    expect(faultsEnabled({ DHA_TEST_FAULTS: "1" })).toBe(true);
    for (const value of [undefined, "", "0", "true", "yes", " 1", "1 "]) {
      expect(faultsEnabled(value === undefined ? {} : { DHA_TEST_FAULTS: value })).toBe(false);
    }
  });

  it("lets the test-only RPC refuse with a clear error", () => {
    expect(() => assertFaultsEnabled({})).toThrow(/fault injection is disabled: it needs DHA_TEST_FAULTS = "1"/);
    expect(() => assertFaultsEnabled({ DHA_TEST_FAULTS: "1" })).not.toThrow();
  });
});

describe("applyFaults", () => {
  it("delivers when there are no rules, without drawing randomness", () => {
    expect(applyFaults({}, "n1", "n2", never)).toBe("deliver");
    expect(applyFaults({ dropProbability: 0, delayMs: 0, partitions: [] }, "n1", "n2", never)).toBe("deliver");
  });

  it("cuts a one-way partition in one direction only", () => {
    const rules = { partitions: [{ from: "n1", to: "n2" }] };
    expect(applyFaults(rules, "n1", "n2", never)).toBe("drop");
    expect(applyFaults(rules, "n2", "n1", never)).toBe("deliver");
    expect(applyFaults(rules, "n1", "n3", never)).toBe("deliver");
  });

  it("cuts a two-way partition in both directions", () => {
    const rules = { partitions: [{ from: "n1", to: "n2", bothWays: true }] };
    expect(isPartitioned(rules, "n1", "n2")).toBe(true);
    expect(isPartitioned(rules, "n2", "n1")).toBe(true);
    expect(isPartitioned(rules, "n2", "n3")).toBe(false);
  });

  it("drops with the given probability", () => {
    const rules = { dropProbability: 0.25 };
    expect(applyFaults(rules, "n1", "n2", () => 0.24)).toBe("drop");
    expect(applyFaults(rules, "n1", "n2", () => 0.25)).toBe("deliver");
    expect(applyFaults({ dropProbability: 1 }, "n1", "n2", () => 0.999)).toBe("drop");
  });

  it("delays what it does not drop", () => {
    expect(applyFaults({ delayMs: 40 }, "n1", "n2", never)).toEqual({ delayMs: 40 });
    expect(applyFaults({ delayMs: 40, dropProbability: 0.5 }, "n1", "n2", () => 0.9)).toEqual({ delayMs: 40 });
    expect(applyFaults({ delayMs: 40, partitions: [{ from: "n1", to: "n2" }] }, "n1", "n2", never)).toBe("drop");
  });
});

describe("parseFaultRules", () => {
  it("accepts valid rules", () => {
    const rules = { dropProbability: 0.1, delayMs: 5, partitions: [{ from: "n1", to: "n2", bothWays: true }] };
    expect(parseFaultRules(rules)).toEqual(rules);
    expect(parseFaultRules({})).toEqual({});
  });

  it("refuses out-of-range or unknown settings, naming them", () => {
    expect(() => parseFaultRules({ dropProbability: 1.5 })).toThrow(/invalid fault rules: .*dropProbability/s);
    expect(() => parseFaultRules({ delayMs: -1 })).toThrow(/delayMs/);
    expect(() => parseFaultRules({ delayMs: 60_001 })).toThrow(/delayMs/);
    expect(() => parseFaultRules({ partitions: [{ from: "n1" }] })).toThrow(/partitions/);
    expect(() => parseFaultRules({ dropProbabilty: 0.5 })).toThrow(/dropProbabilty/);
    expect(() => parseFaultRules(null)).toThrow(/invalid fault rules/);
  });
});
