// The retry arithmetic on its own: deadline-bound budgets and a backoff that grows, jitters and never collapses.
import { describe, expect, it } from "vitest";
import {
  attemptBudgetMs,
  backoffDelayMs,
  DEFAULT_ROUTING_POLICY,
  electionWaitMs,
} from "../../src/worker/routing/retry-policy";

const policy = DEFAULT_ROUTING_POLICY;

describe("retry policy", () => {
  it("backs off exponentially, half fixed and half random, capped, never past the deadline", () => {
    expect(backoffDelayMs(policy, { failures: 1, random: 0, remainingMs: 10_000 })).toBe(12.5);
    expect(backoffDelayMs(policy, { failures: 1, random: 0.999, remainingMs: 10_000 })).toBeCloseTo(25, 0);
    expect(backoffDelayMs(policy, { failures: 3, random: 0, remainingMs: 10_000 })).toBe(50);
    expect(backoffDelayMs(policy, { failures: 40, random: 0, remainingMs: 10_000 })).toBe(500);
    expect(backoffDelayMs(policy, { failures: 40, random: 0.999, remainingMs: 10_000 })).toBeLessThan(1_000);
    expect(backoffDelayMs(policy, { failures: 40, random: 0.5, remainingMs: 30 })).toBe(30);
    expect(backoffDelayMs(policy, { failures: 2, random: 0.5, remainingMs: -5 })).toBe(0);
  });

  it("gives a leader call what is left (up to attemptTimeoutMs), and an any-node call a share bounded by election timeouts", () => {
    expect(attemptBudgetMs(policy, { remainingMs: 10_000, reach: "leader", electionTimeoutMs: 1_000 })).toBe(5_000);
    expect(attemptBudgetMs(policy, { remainingMs: 3_000, reach: "leader", electionTimeoutMs: 1_000 })).toBe(3_000);
    expect(attemptBudgetMs(policy, { remainingMs: 4_000, reach: "any", electionTimeoutMs: 1_000 })).toBe(2_000);
    expect(attemptBudgetMs(policy, { remainingMs: 10_000, reach: "any", electionTimeoutMs: 500 })).toBe(1_500);
    expect(attemptBudgetMs(policy, { remainingMs: 0, reach: "any", electionTimeoutMs: 500 })).toBe(0);
    expect(electionWaitMs(policy, { remainingMs: 10_000, reach: "leader", electionTimeoutMs: 1_000 })).toBe(5_000);
    expect(electionWaitMs(policy, { remainingMs: 10_000, reach: "any", electionTimeoutMs: 1_000 })).toBe(3_000);
  });
});
