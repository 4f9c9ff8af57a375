import { describe, expect, it } from "vitest";
import {
  assertBreakerTransition,
  CircuitBreaker,
  type BreakerTransition,
  type CircuitBreakerConfig,
} from "../../src/objects/transport/circuit-breaker";

function makeBreaker(config: Partial<CircuitBreakerConfig> = {}) {
  let nowMs = 0;
  const transitions: BreakerTransition[] = [];
  const breaker = new CircuitBreaker({
    config: { failureThreshold: 3, successThreshold: 2, openTimeoutMs: 1_000, ...config },
    now: () => nowMs,
    onTransition: (t) => transitions.push(t),
  });
  return {
    breaker,
    transitions,
    advance(ms: number) {
      nowMs += ms;
    },
    path: () => transitions.map((t) => `${t.from}->${t.to}`),
  };
}

describe("CircuitBreaker", () => {
  it("starts CLOSED and admits everything", () => {
    const { breaker } = makeBreaker();
    expect(breaker.state).toBe("CLOSED");
    for (let i = 0; i < 10; i++) {
      expect(breaker.tryAcquire()).toEqual({ epoch: 0, probe: false });
    }
  });

  it("opens after failureThreshold consecutive failures, not before", () => {
    const { breaker, path } = makeBreaker();
    breaker.recordFailure();
    breaker.recordFailure();
    expect(breaker.state).toBe("CLOSED");
    expect(breaker.consecutiveFailures).toBe(2);
    breaker.recordFailure();
    expect(breaker.state).toBe("OPEN");
    expect(breaker.consecutiveFailures).toBe(3);
    expect(path()).toEqual(["CLOSED->OPEN"]);
  });

  it("resets the failure count on a success while CLOSED", () => {
    const { breaker } = makeBreaker();
    breaker.recordFailure();
    breaker.recordFailure();
    breaker.recordSuccess();
    breaker.recordFailure();
    breaker.recordFailure();
    expect(breaker.state).toBe("CLOSED");
    expect(breaker.consecutiveFailures).toBe(2);
  });

  it("refuses requests while OPEN, then lets exactly one probe through after openTimeoutMs", () => {
    const { breaker, advance, path } = makeBreaker();
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    expect(breaker.allowRequest()).toBe(false);
    advance(999);
    expect(breaker.allowRequest()).toBe(false);
    expect(breaker.state).toBe("OPEN");
    advance(1);
    const probe = breaker.tryAcquire();
    expect(probe).toEqual({ epoch: 2, probe: true });
    expect(breaker.state).toBe("HALF_OPEN");
    expect(breaker.tryAcquire()).toBeNull(); // one probe at a time
    expect(path()).toEqual(["CLOSED->OPEN", "OPEN->HALF_OPEN"]);
  });

  it("closes after successThreshold probe successes, one probe at a time, and counts a reconnection", () => {
    const { breaker, advance, path } = makeBreaker({ successThreshold: 2 });
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    advance(1_000);
    const first = breaker.tryAcquire();
    expect(first?.probe).toBe(true);
    expect(breaker.recordSuccess(first ?? undefined)).toBe("applied");
    expect(breaker.state).toBe("HALF_OPEN");
    const second = breaker.tryAcquire();
    expect(second?.probe).toBe(true);
    expect(breaker.tryAcquire()).toBeNull();
    breaker.recordSuccess(second ?? undefined);
    expect(breaker.state).toBe("CLOSED");
    expect(breaker.reconnections).toBe(1);
    expect(breaker.consecutiveFailures).toBe(0);
    expect(path()).toEqual(["CLOSED->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->CLOSED"]);
  });

  it("reopens on a probe failure and waits a full openTimeoutMs again", () => {
    const { breaker, advance, path, transitions } = makeBreaker();
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    advance(1_000);
    const probe = breaker.tryAcquire();
    advance(10);
    breaker.recordFailure(probe ?? undefined);
    expect(breaker.state).toBe("OPEN");
    expect(breaker.consecutiveFailures).toBe(4);
    expect(transitions.at(-1)).toMatchObject({ from: "HALF_OPEN", to: "OPEN", atMs: 1_010, reason: "probe failed" });
    advance(999);
    expect(breaker.allowRequest()).toBe(false);
    advance(1);
    expect(breaker.allowRequest()).toBe(true);
    expect(breaker.reconnections).toBe(0);
    expect(path()).toEqual(["CLOSED->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->OPEN", "OPEN->HALF_OPEN"]);
  });

  it("ignores stale results of requests admitted before the last transition", () => {
    const { breaker, advance } = makeBreaker({ successThreshold: 1 });
    const inFlight = [breaker.tryAcquire(), breaker.tryAcquire(), breaker.tryAcquire(), breaker.tryAcquire()];
    for (const permit of inFlight.slice(0, 3)) {
      breaker.recordFailure(permit ?? undefined);
    }
    expect(breaker.state).toBe("OPEN");
    advance(1_000);
    const probe = breaker.tryAcquire();
    expect(probe?.probe).toBe(true);
    // The fourth call, admitted while CLOSED, succeeds late: it must neither close the breaker nor free the probe slot.
    expect(breaker.recordSuccess(inFlight[3] ?? undefined)).toBe("stale");
    expect(breaker.state).toBe("HALF_OPEN");
    expect(breaker.tryAcquire()).toBeNull();
    // A stale failure does not reopen it either, but it is counted.
    expect(breaker.recordFailure({ epoch: 0, probe: false })).toBe("stale");
    expect(breaker.state).toBe("HALF_OPEN");
    expect(breaker.consecutiveFailures).toBe(4);
    breaker.recordSuccess(probe ?? undefined);
    expect(breaker.state).toBe("CLOSED");
  });

  it("treats a probe unanswered for openTimeoutMs as failed, so a lost result cannot wedge it", () => {
    const { breaker, advance, path } = makeBreaker();
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    advance(1_000);
    const lost = breaker.tryAcquire();
    expect(lost?.probe).toBe(true);
    advance(999);
    expect(breaker.tryAcquire()).toBeNull();
    advance(1);
    expect(breaker.tryAcquire()).toBeNull();
    expect(breaker.state).toBe("OPEN");
    expect(path()).toEqual(["CLOSED->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->OPEN"]);
    expect(breaker.recordSuccess(lost ?? undefined)).toBe("stale");
    advance(1_000);
    expect(breaker.tryAcquire()?.probe).toBe(true);
  });

  it("counts every completed OPEN -> CLOSED cycle as a reconnection", () => {
    const { breaker, advance } = makeBreaker({ successThreshold: 1 });
    for (let cycle = 1; cycle <= 3; cycle++) {
      for (let i = 0; i < 3; i++) {
        breaker.recordFailure();
      }
      advance(1_000);
      breaker.recordSuccess(breaker.tryAcquire() ?? undefined);
      expect(breaker.state).toBe("CLOSED");
      expect(breaker.reconnections).toBe(cycle);
    }
    expect(breaker.epoch).toBe(9);
  });

  it("reports transitions with time, failure count and reason", () => {
    const { breaker, advance, transitions } = makeBreaker();
    advance(5);
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    expect(transitions).toEqual([
      { from: "CLOSED", to: "OPEN", atMs: 5, consecutiveFailures: 3, reason: "3 consecutive failure(s)" },
    ]);
  });

  it("throws on invalid transitions", () => {
    expect(() => assertBreakerTransition("CLOSED", "HALF_OPEN")).toThrow(
      "circuit breaker: invalid transition CLOSED -> HALF_OPEN",
    );
    expect(() => assertBreakerTransition("OPEN", "CLOSED", "why")).toThrow("invalid transition OPEN -> CLOSED (why)");
    expect(() => assertBreakerTransition("CLOSED", "CLOSED")).toThrow(/invalid transition/);
    expect(() => assertBreakerTransition("HALF_OPEN", "HALF_OPEN")).toThrow(/invalid transition/);
    for (const [from, to] of [
      ["CLOSED", "OPEN"],
      ["OPEN", "HALF_OPEN"],
      ["HALF_OPEN", "CLOSED"],
      ["HALF_OPEN", "OPEN"],
    ] as const) {
      expect(() => assertBreakerTransition(from, to)).not.toThrow();
    }
  });

  it("refuses invalid configuration", () => {
    const now = () => 0;
    expect(
      () => new CircuitBreaker({ config: { failureThreshold: 0, successThreshold: 1, openTimeoutMs: 1 }, now }),
    ).toThrow(/failureThreshold must be an integer >= 1/);
    expect(
      () => new CircuitBreaker({ config: { failureThreshold: 1, successThreshold: 1.5, openTimeoutMs: 1 }, now }),
    ).toThrow(/successThreshold/);
    expect(
      () => new CircuitBreaker({ config: { failureThreshold: 1, successThreshold: 1, openTimeoutMs: 0 }, now }),
    ).toThrow(/openTimeoutMs/);
  });
});
