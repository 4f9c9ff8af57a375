// The one deadline helper (src/objects/deadline.ts) on a hand-driven clock.
import { describe, expect, it } from "vitest";
import { DeadlineExceeded, sleep, withDeadline } from "../../src/objects/deadline";
import { ManualClock } from "../../src/objects/transport/manual-clock";

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve();
  }
};

/** A promise settled by hand. */
function pending<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (error: Error) => void } {
  let resolve!: (value: T) => void;
  let reject!: (error: Error) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}

describe("withDeadline", () => {
  it("rejects with DeadlineExceeded naming what was awaited once the deadline passes, not before", async () => {
    const clock = new ClockWithOutcome();
    const never = pending<string>();
    clock.watch(withDeadline(never.promise, { timeoutMs: 300, what: "node n2", timers: clock }));
    await clock.advance(299, settle);
    expect(clock.outcome).toBe("pending");
    await clock.advance(1, settle);
    expect(clock.error).toBeInstanceOf(DeadlineExceeded);
    expect(clock.error?.message).toBe("node n2: no answer within 300 ms");
    expect((clock.error as DeadlineExceeded).timeoutMs).toBe(300);
    // The abandoned promise failing later is swallowed, not an unhandled rejection.
    never.reject(new Error("late"));
    await settle();
    expect(clock.error?.message).toBe("node n2: no answer within 300 ms");
  });

  it("settles like the promise when it settles first, and cancels its timer", async () => {
    const clock = new ClockWithOutcome();
    const answer = pending<string>();
    clock.watch(withDeadline(answer.promise, { timeoutMs: 300, what: "node n2", timers: clock }));
    expect(clock.pendingTimers).toBe(1);
    answer.resolve("ok");
    await settle();
    expect(clock.outcome).toBe("ok");
    expect(clock.pendingTimers).toBe(0);

    const failing = pending<string>();
    const other = new ClockWithOutcome();
    other.watch(withDeadline(failing.promise, { timeoutMs: 300, what: "node n3", timers: other }));
    failing.reject(new Error("refused"));
    await settle();
    expect(other.error?.message).toBe("refused");
    expect(other.pendingTimers).toBe(0);
  });

  it("rejects with onTimeout's error when one is given", async () => {
    const clock = new ClockWithOutcome();
    const never = pending<string>();
    clock.watch(
      withDeadline(never.promise, {
        timeoutMs: 50,
        what: "the repair",
        timers: clock,
        onTimeout: () => new RangeError("TIMEOUT: the repair did not finish"),
      }),
    );
    await clock.advance(50, settle);
    expect(clock.error).toBeInstanceOf(RangeError);
    expect(clock.error?.message).toBe("TIMEOUT: the repair did not finish");
  });

  it("sleep resolves after its delay on the given timers", async () => {
    const clock = new ClockWithOutcome();
    clock.watch(sleep(100, clock).then(() => "woke"));
    await clock.advance(99, settle);
    expect(clock.outcome).toBe("pending");
    await clock.advance(1, settle);
    expect(clock.outcome).toBe("woke");
  });
});

/** A ManualClock that also records how the one promise it watches settled. */
class ClockWithOutcome extends ManualClock {
  outcome: string = "pending";
  error: Error | undefined;

  watch(promise: Promise<string>): void {
    promise.then(
      (value) => {
        this.outcome = value;
      },
      (err: unknown) => {
        this.outcome = "rejected";
        this.error = err as Error;
      },
    );
  }
}
