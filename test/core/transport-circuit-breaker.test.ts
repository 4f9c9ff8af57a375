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
      expect(breaker.tryAcquire()).toEqual({ epoch: 0, probe: false, probeSeq: 0 });
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
    expect(probe).toEqual({ epoch: 2, probe: true, probeSeq: 1 });
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
    expect(transitions.at(-1)).toMatchObject({
      from: "HALF_OPEN",
      to: "OPEN",
      atMs: 1_010,
      reason: "probe failed; open for 1000 ms",
    });
    advance(999);
    expect(breaker.allowRequest()).toBe(false);
    advance(1);
    expect(breaker.allowRequest()).toBe(true);
    expect(breaker.reconnections).toBe(0);
    expect(path()).toEqual(["CLOSED->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->OPEN", "OPEN->HALF_OPEN"]);
  });

  it("doubles the time OPEN after each failed probe, up to maxOpenTimeoutMs, and starts short again once closed", () => {
    const { breaker, advance } = makeBreaker({ successThreshold: 1, openTimeoutMs: 200, maxOpenTimeoutMs: 1_000 });
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    const waits: number[] = [];
    for (let round = 0; round < 5; round++) {
      let waitedMs = 0;
      while (!breaker.allowRequest()) {
        advance(10);
        waitedMs += 10;
      }
      waits.push(waitedMs);
      breaker.recordFailure();
    }
    expect(waits).toEqual([200, 400, 800, 1_000, 1_000]);
    advance(1_000);
    breaker.recordSuccess(breaker.tryAcquire() ?? undefined);
    expect(breaker.state).toBe("CLOSED");
    expect(breaker.openTimeoutMs).toBe(200);
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    advance(199);
    expect(breaker.allowRequest()).toBe(false);
    advance(1);
    expect(breaker.allowRequest()).toBe(true);
  });

  it("probes early once the peer is heard from, no sooner than openTimeoutMs after opening", () => {
    const { breaker, advance, transitions } = makeBreaker({ openTimeoutMs: 200, maxOpenTimeoutMs: 1_000 });
    breaker.noteContact(); // before it opened: says nothing about the outage
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    advance(200);
    breaker.recordFailure(breaker.tryAcquire() ?? undefined); // open for 400 ms now
    advance(100);
    breaker.noteContact();
    advance(50);
    expect(breaker.allowRequest()).toBe(false); // 150 ms into the period: not yet
    advance(50);
    expect(breaker.tryAcquire()).toEqual({ epoch: 4, probe: true, probeSeq: 1 });
    expect(transitions.at(-1)?.reason).toBe("open for 200 ms, peer heard from: probing");
  });

  it("says whether it would let a probe through now, changing nothing (wouldAdmitProbe)", () => {
    const { breaker, advance } = makeBreaker({ openTimeoutMs: 200, maxOpenTimeoutMs: 1_000 });
    expect(breaker.wouldAdmitProbe()).toBe(false); // CLOSED: nothing to probe
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    breaker.noteContact();
    expect(breaker.wouldAdmitProbe()).toBe(false); // contact counts only openTimeoutMs after opening
    advance(199);
    expect(breaker.wouldAdmitProbe()).toBe(false);
    advance(1);
    expect(breaker.wouldAdmitProbe()).toBe(true);
    expect(breaker.state).toBe("OPEN");
    const probe = breaker.tryAcquire();
    expect(probe?.probe).toBe(true);
    expect(breaker.wouldAdmitProbe()).toBe(false); // a probe is out
    breaker.recordFailure(probe ?? undefined); // a timed probe failed: open for 400 ms, contact still counts
    breaker.noteContact();
    advance(199);
    expect(breaker.wouldAdmitProbe()).toBe(false);
    advance(1);
    expect(breaker.wouldAdmitProbe()).toBe(true);
    const onContact = breaker.tryAcquire(); // what it said tryAcquire does
    expect(onContact?.probe).toBe(true);
    breaker.recordFailure(onContact ?? undefined); // a probe let through on contact failed: contact is disregarded
    breaker.noteContact();
    advance(799);
    expect(breaker.wouldAdmitProbe()).toBe(false);
    advance(1);
    expect(breaker.wouldAdmitProbe()).toBe(true);
  });

  it("disregards contact once a probe it let through failed, until the breaker closes", () => {
    const { breaker, advance } = makeBreaker({ successThreshold: 1, openTimeoutMs: 200, maxOpenTimeoutMs: 1_000 });
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    advance(200);
    breaker.noteContact();
    breaker.recordFailure(breaker.tryAcquire() ?? undefined); // a timed probe: contact still counts
    advance(200);
    const onContact = breaker.tryAcquire();
    expect(onContact?.probe).toBe(true);
    breaker.recordFailure(onContact ?? undefined); // the peer calls us but cannot be reached: open for 800 ms
    breaker.noteContact();
    advance(799);
    expect(breaker.allowRequest()).toBe(false);
    advance(1);
    const timed = breaker.tryAcquire();
    expect(timed?.probe).toBe(true);
    breaker.recordSuccess(timed ?? undefined);
    expect(breaker.state).toBe("CLOSED");
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    breaker.noteContact();
    advance(200);
    expect(breaker.allowRequest()).toBe(true);
  });

  it("lets one more probe through when the peer is heard from while a probe hangs", () => {
    const { breaker, advance, path } = makeBreaker({ successThreshold: 1, openTimeoutMs: 200, probeTimeoutMs: 1_500 });
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    advance(200);
    breaker.noteContact(); // before the probe: it says nothing the probe does not
    const hung = breaker.tryAcquire();
    expect(hung).toEqual({ epoch: 2, probe: true, probeSeq: 1 });
    expect(breaker.wouldAdmitProbe()).toBe(false);
    advance(10);
    breaker.noteContact({ answer: true }); // an answer to a call of ours (the probe's own, maybe): no sign
    expect(breaker.wouldAdmitProbe()).toBe(false);
    expect(breaker.tryAcquire()).toBeNull();
    breaker.noteContact(); // the peer called us after the probe went: it is up
    expect(breaker.wouldAdmitProbe()).toBe(true);
    const second = breaker.tryAcquire();
    expect(second).toEqual({ epoch: 2, probe: true, probeSeq: 2 });
    breaker.noteContact();
    expect(breaker.tryAcquire()).toBeNull(); // at most one more: the second went out on contact
    expect(breaker.wouldAdmitProbe()).toBe(false);
    expect(breaker.recordFailure(hung ?? undefined)).toBe("stale"); // the first times out: superseded
    expect(breaker.state).toBe("HALF_OPEN");
    expect(breaker.recordSuccess(second ?? undefined)).toBe("applied");
    expect(breaker.state).toBe("CLOSED");
    expect(path()).toEqual(["CLOSED->OPEN", "OPEN->HALF_OPEN", "HALF_OPEN->CLOSED"]);
  });

  it("closes on a superseded probe's success, and disregards contact when the probe let through on it fails", () => {
    const { breaker, advance } = makeBreaker({ successThreshold: 1, openTimeoutMs: 200, maxOpenTimeoutMs: 1_000 });
    const open = (): void => {
      for (let i = 0; i < 3; i++) {
        breaker.recordFailure();
      }
    };
    open();
    advance(200);
    const first = breaker.tryAcquire();
    breaker.noteContact();
    const second = breaker.tryAcquire();
    expect(second?.probeSeq).toBe(2);
    expect(breaker.recordSuccess(first ?? undefined)).toBe("applied"); // the peer answered after all
    expect(breaker.state).toBe("CLOSED");
    expect(breaker.recordFailure(second ?? undefined)).toBe("stale");

    open();
    advance(200);
    breaker.tryAcquire();
    breaker.noteContact();
    const onContact = breaker.tryAcquire();
    expect(breaker.recordFailure(onContact ?? undefined)).toBe("applied"); // it calls us but cannot be reached
    expect(breaker.state).toBe("OPEN");
    breaker.noteContact();
    advance(399);
    expect(breaker.wouldAdmitProbe()).toBe(false); // contact is disregarded: the doubled time is waited out
    advance(1);
    expect(breaker.tryAcquire()?.probe).toBe(true);
    breaker.noteContact();
    expect(breaker.tryAcquire()).toBeNull(); // nor does it supersede a probe until the breaker closes
  });

  it("review rev1: a superseded probe's success (successThreshold 2) leaves the newer probe in flight", () => {
    const { breaker, advance } = makeBreaker({ successThreshold: 2, openTimeoutMs: 200 });
    for (let i = 0; i < 3; i++) {
      breaker.recordFailure();
    }
    advance(200);
    const first = breaker.tryAcquire();
    breaker.noteContact();
    const second = breaker.tryAcquire();
    expect(second?.probeSeq).toBe(2);
    expect(breaker.recordSuccess(first ?? undefined)).toBe("applied"); // one success of two
    expect(breaker.state).toBe("HALF_OPEN");
    expect(breaker.probeInFlight).toBe(true); // the second is still out
    expect(breaker.tryAcquire()).toBeNull(); // one probe at a time (a third would make its failure stale)
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
    expect(breaker.recordFailure({ epoch: 0, probe: false, probeSeq: 0 })).toBe("stale");
    expect(breaker.state).toBe("HALF_OPEN");
    expect(breaker.consecutiveFailures).toBe(4);
    breaker.recordSuccess(probe ?? undefined);
    expect(breaker.state).toBe("CLOSED");
  });

  it.each([
    { config: { openTimeoutMs: 200, maxOpenTimeoutMs: 1_000 }, longestOpenMs: 1_000 },
    // probeTimeoutMs apart from the time OPEN: the wait for a probe stays as long however short the time OPEN is.
    { config: { openTimeoutMs: 200, maxOpenTimeoutMs: 500, probeTimeoutMs: 1_000 }, longestOpenMs: 500 },
  ])(
    "treats a probe unanswered for probeTimeoutMs (else maxOpenTimeoutMs) as failed, so a lost result cannot wedge it",
    ({ config, longestOpenMs }) => {
      const { breaker, advance } = makeBreaker(config);
      for (let i = 0; i < 3; i++) {
        breaker.recordFailure();
      }
      advance(200);
      expect(breaker.tryAcquire()?.probe).toBe(true);
      advance(999);
      expect(breaker.tryAcquire()).toBeNull();
      expect(breaker.state).toBe("HALF_OPEN");
      advance(1);
      expect(breaker.tryAcquire()).toBeNull();
      expect(breaker.state).toBe("OPEN");
      // The time OPEN grows only to maxOpenTimeoutMs, whatever the probe's timeout.
      advance(breaker.openTimeoutMs);
      breaker.recordFailure(breaker.tryAcquire()!);
      advance(breaker.openTimeoutMs);
      breaker.recordFailure(breaker.tryAcquire()!);
      expect(breaker.openTimeoutMs).toBe(longestOpenMs);
    },
  );

  it("treats a probe unanswered for openTimeoutMs as failed when the time OPEN does not grow", () => {
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
    expect(
      () =>
        new CircuitBreaker({
          config: { failureThreshold: 1, successThreshold: 1, openTimeoutMs: 200, maxOpenTimeoutMs: 100 },
          now,
        }),
    ).toThrow(/maxOpenTimeoutMs must be a finite number >= openTimeoutMs/);
    expect(
      () =>
        new CircuitBreaker({
          config: { failureThreshold: 1, successThreshold: 1, openTimeoutMs: 200, probeTimeoutMs: 0 },
          now,
        }),
    ).toThrow(/probeTimeoutMs must be a finite number > 0/);
  });
});
