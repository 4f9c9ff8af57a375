import { setImmediate as nextMacrotask } from "node:timers/promises";
import { describe, expect, it } from "vitest";
import { backoffDelayMs, withRetry, type RetryOptions } from "../../src/objects/transport/backoff";
import { DeadlineExceeded } from "../../src/objects/deadline";
import { DeliveryError } from "../../src/objects/transport/errors";
import { ManualClock } from "../../src/objects/transport/manual-clock";

const settle = async (): Promise<void> => {
  await nextMacrotask();
};

function rpcError(flags: { retryable?: boolean; overloaded?: boolean; remote?: boolean }): Error {
  return Object.assign(new Error("rpc failed"), flags);
}

/** A random source that replays the given draws, then fails the test if asked for more. */
function replay(...draws: number[]): () => number {
  let next = 0;
  return () => {
    const draw = draws[next++];
    if (draw === undefined) {
      throw new Error("random() called more often than the test expected");
    }
    return draw;
  };
}

describe("backoffDelayMs", () => {
  const options = { baseDelayMs: 100, maxDelayMs: 1_000 };

  it("draws uniformly below min(cap, base * 2^attempt)", () => {
    expect(backoffDelayMs(0, options, () => 0.5)).toBe(50);
    expect(backoffDelayMs(1, options, () => 0.5)).toBe(100);
    expect(backoffDelayMs(2, options, () => 0.5)).toBe(200);
    expect(backoffDelayMs(3, options, () => 0.999)).toBe(799);
    expect(backoffDelayMs(4, options, () => 0.999)).toBe(999); // capped at 1000
    expect(backoffDelayMs(0, options, () => 0)).toBe(0);
  });

  it("stays capped for huge attempt numbers instead of overflowing", () => {
    expect(backoffDelayMs(10_000, options, () => 0.5)).toBe(500);
  });

  it("refuses bad inputs with a clear error", () => {
    expect(() => backoffDelayMs(-1, options, () => 0)).toThrow(/attempt must be an integer >= 0/);
    expect(() => backoffDelayMs(0, { baseDelayMs: -1, maxDelayMs: 1 }, () => 0)).toThrow(/baseDelayMs/);
    expect(() => backoffDelayMs(0, options, () => 1)).toThrow(/random\(\) must return a number in \[0, 1\)/);
  });
});

describe("withRetry", () => {
  function options(clock: ManualClock, overrides: Partial<RetryOptions> = {}): RetryOptions {
    return {
      maxAttempts: 4,
      baseDelayMs: 100,
      maxDelayMs: 1_000,
      timeoutMs: 500,
      deadlineMs: 10_000,
      random: () => 0.5,
      clock,
      ...overrides,
    };
  }

  it("returns the first success without retrying", async () => {
    const clock = new ManualClock();
    let calls = 0;
    const result = await withRetry(async () => {
      calls++;
      return "ok";
    }, options(clock));
    expect(result).toBe("ok");
    expect(calls).toBe(1);
    expect(clock.pendingTimers).toBe(0); // the timeout timer was cleared
  });

  it("retries retryable errors with jittered exponential delays, then succeeds", async () => {
    const clock = new ManualClock();
    const startedAtMs: number[] = [];
    const done = withRetry(async (attempt) => {
      startedAtMs.push(clock.now());
      if (attempt < 2) {
        throw rpcError({ retryable: true });
      }
      return attempt;
    }, options(clock));
    await clock.advance(1_000, settle);
    await expect(done).resolves.toBe(2);
    // random 0.5: the first retry waits 0.5 * 100, the second 0.5 * 200.
    expect(startedAtMs).toEqual([0, 50, 150]);
    expect(clock.pendingTimers).toBe(0);
  });

  it("does not retry overloaded, remote or broken errors", async () => {
    for (const [error, expected] of [
      [rpcError({ overloaded: true, retryable: true }), "overloaded"],
      [rpcError({ remote: true }), "remote"],
      [new Error("gone"), "broken"],
    ] as const) {
      const clock = new ManualClock();
      let calls = 0;
      const failures: string[] = [];
      const done = withRetry(
        async () => {
          calls++;
          throw error;
        },
        options(clock, { onAttemptFailed: ({ classification }) => failures.push(classification) }),
      );
      await expect(done).rejects.toMatchObject({
        name: "DeliveryError",
        classification: expected,
        attempts: 1,
        cause: error,
      });
      expect(calls).toBe(1);
      expect(failures).toEqual([expected]);
    }
  });

  it("stops after maxAttempts and reports the last error", async () => {
    const clock = new ManualClock();
    let calls = 0;
    const done = withRetry(
      async () => {
        calls++;
        throw rpcError({ retryable: true });
      },
      options(clock, { maxAttempts: 3 }),
    );
    const outcome = done.then(
      () => null,
      (err: unknown) => err,
    );
    await clock.advance(5_000, settle);
    const err = await outcome;
    expect(err).toBeInstanceOf(DeliveryError);
    expect(err).toMatchObject({ classification: "retryable", attempts: 3 });
    expect(calls).toBe(3);
  });

  it("times out a hung attempt and does not retry a timeout", async () => {
    const clock = new ManualClock();
    let calls = 0;
    const done = withRetry(
      () => {
        calls++;
        return new Promise<never>(() => {});
      },
      options(clock, { timeoutMs: 300 }),
    );
    const outcome = done.then(
      () => null,
      (err: unknown) => err,
    );
    await clock.advance(299, settle);
    expect(calls).toBe(1);
    await clock.advance(1, settle);
    const err = await outcome;
    expect(err).toMatchObject({ classification: "timeout", attempts: 1 });
    expect((err as DeliveryError).cause).toBeInstanceOf(DeadlineExceeded);
    expect(calls).toBe(1);
  });

  it("never sleeps past the deadline: gives up instead", async () => {
    const clock = new ManualClock();
    let calls = 0;
    const done = withRetry(
      async () => {
        calls++;
        throw rpcError({ retryable: true });
      },
      options(clock, { deadlineMs: 120, random: () => 0.9 }),
    );
    // attempt 0 at t=0 fails; delay 0.9 * 100 = 90 < 120: retry at t=90; delay 0.9 * 200 = 180: 90 + 180 >= 120, stop.
    const outcome = done.then(
      () => null,
      (err: unknown) => err,
    );
    await clock.advance(1_000, settle);
    expect(await outcome).toMatchObject({ classification: "retryable", attempts: 2 });
    expect(calls).toBe(2);
  });

  it("bounds each attempt by the time left before the deadline", async () => {
    const clock = new ManualClock();
    const done = withRetry(
      async (attempt) => {
        if (attempt === 0) {
          throw rpcError({ retryable: true });
        }
        return new Promise<never>(() => {});
      },
      options(clock, { deadlineMs: 200, timeoutMs: 1_000, random: replay(0.5) }),
    );
    const outcome = done.then(
      () => null,
      (err: unknown) => err,
    );
    // Retry at t=50; the deadline is t=200, so that attempt times out after 150 ms, not 1000.
    await clock.advance(199, settle);
    expect(clock.now()).toBe(199);
    await clock.advance(1, settle);
    const err = await outcome;
    expect(err).toMatchObject({ classification: "timeout", attempts: 2 });
    expect(((err as DeliveryError).cause as DeadlineExceeded).timeoutMs).toBe(150);
  });

  it("turns a synchronous throw into a classified failure", async () => {
    const clock = new ManualClock();
    const done = withRetry((): Promise<never> => {
      throw rpcError({ remote: true });
    }, options(clock));
    await expect(done).rejects.toMatchObject({ classification: "remote", attempts: 1 });
  });

  it("refuses invalid options", async () => {
    const clock = new ManualClock();
    const fn = async (): Promise<number> => 1;
    await expect(withRetry(fn, options(clock, { maxAttempts: 0 }))).rejects.toThrow(
      /maxAttempts must be an integer >= 1/,
    );
    await expect(withRetry(fn, options(clock, { timeoutMs: 0 }))).rejects.toThrow(/timeoutMs must be > 0/);
    await expect(withRetry(fn, options(clock, { deadlineMs: Number.NaN }))).rejects.toThrow(/deadlineMs must be > 0/);
  });
});
