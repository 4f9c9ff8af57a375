// The durations the worker takes from src/objects/timing.ts instead of deriving them from the cluster's timing itself.
import { describe, expect, it } from "vitest";
import { appliedPollIntervalMs, nodeTimeoutWithinMs, readElsewhereAfterMs } from "../../src/objects/timing";

describe("durations the worker takes from timing.ts", () => {
  it("gives a node its caller's timeout less a margin of at least one heartbeat (at least 1 ms)", () => {
    expect(nodeTimeoutWithinMs({ heartbeatIntervalMs: 100 }, { callerTimeoutMs: 1_000, minMarginMs: 50 })).toBe(900);
    expect(nodeTimeoutWithinMs({ heartbeatIntervalMs: 20 }, { callerTimeoutMs: 1_000, minMarginMs: 50 })).toBe(950);
    expect(nodeTimeoutWithinMs({ heartbeatIntervalMs: 100 }, { callerTimeoutMs: 80, minMarginMs: 50 })).toBe(1);
  });

  it("moves a read elsewhere after a number of election timeouts, and polls progress once a heartbeat", () => {
    expect(readElsewhereAfterMs({ electionTimeoutMs: 500 }, { electionTimeouts: 3 })).toBe(1_500);
    expect(readElsewhereAfterMs({ electionTimeoutMs: 500 }, { electionTimeouts: 0 })).toBe(1);
    expect(appliedPollIntervalMs({ heartbeatIntervalMs: 75 })).toBe(75);
  });
});
