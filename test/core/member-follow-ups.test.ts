// The follow-ups of a committed membership change (src/objects/member-follow-ups.ts) on a hand-driven clock: waited
// for until the request's deadline at most, and the leave notice retried, bounded, after the answer.
import { describe, expect, it } from "vitest";
import type { LeaveValue, NodeResult } from "../../src/objects/cluster-types";
import {
  followUpDeadlineAtMs,
  followUpFinished,
  leaveNoticeOutcome,
  retryFollowUp,
  settleBy,
  type RetriedOutcome,
} from "../../src/objects/member-follow-ups";
import { ManualClock } from "../../src/objects/transport/manual-clock";

const settle = async (): Promise<void> => {
  for (let i = 0; i < 5; i++) {
    await Promise.resolve();
  }
};

/** A promise settled by hand. */
function pending<T>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve!: (value: T) => void;
  const promise = new Promise<T>((res) => {
    resolve = res;
  });
  return { promise, resolve };
}

/** Where a promise stands, read without awaiting it. */
function watch<T>(promise: Promise<T>): { value: T | "unsettled" } {
  const state: { value: T | "unsettled" } = { value: "unsettled" };
  void promise.then((value) => {
    state.value = value;
  });
  return state;
}

describe("settleBy", () => {
  it("answers the work's outcome when it settles by the deadline, and pending when it does not", async () => {
    const clock = new ManualClock(1_000);
    const quick = pending<boolean>();
    const first = watch(
      settleBy(quick.promise, { deadlineAtMs: 1_300, nowMs: clock.now(), what: "start n4", timers: clock }),
    );
    quick.resolve(true);
    await settle();
    expect(first.value).toBe(true);

    const slow = pending<boolean>();
    const second = watch(
      settleBy(slow.promise, { deadlineAtMs: 1_300, nowMs: clock.now(), what: "start n4", timers: clock }),
    );
    await clock.advance(299, settle);
    expect(second.value).toBe("unsettled");
    await clock.advance(1, settle);
    expect(second.value).toBe("pending");
  });

  it("does not wait at all once the deadline has passed", async () => {
    const clock = new ManualClock(2_000);
    const work = pending<boolean>();
    const outcome = watch(
      settleBy(work.promise, { deadlineAtMs: 1_999, nowMs: clock.now(), what: "x", timers: clock }),
    );
    await settle();
    expect(outcome.value).toBe("pending");
  });
});

describe("followUpDeadlineAtMs", () => {
  it("leaves the answer time to reach its caller: 250 ms, or a quarter of a short timeout", () => {
    expect(followUpDeadlineAtMs({ deadlineAtMs: 10_000, timeoutMs: 2_000 })).toBe(9_750);
    expect(followUpDeadlineAtMs({ deadlineAtMs: 10_000, timeoutMs: 400 })).toBe(9_900);
  });
});

describe("retryFollowUp", () => {
  it("tries again after doubling waits until an attempt delivers", async () => {
    const clock = new ManualClock(0);
    const attemptsAtMs: number[] = [];
    const outcome = watch(
      retryFollowUp(
        async () => {
          attemptsAtMs.push(clock.now());
          if (attemptsAtMs.length === 2) {
            throw new Error("an attempt that throws counts as failed");
          }
          return attemptsAtMs.length === 4;
        },
        { attempts: 6, firstBackoffMs: 500, moot: () => false, timers: clock },
      ),
    );
    await clock.advance(10_000, settle);
    expect(attemptsAtMs).toEqual([0, 500, 1_500, 3_500]);
    expect(outcome.value).toBe<RetriedOutcome>("delivered");
  });

  it("waits startAfterMs before its first attempt when one made elsewhere already failed", async () => {
    const clock = new ManualClock(0);
    const attemptsAtMs: number[] = [];
    const outcome = watch(
      retryFollowUp(async () => (attemptsAtMs.push(clock.now()), attemptsAtMs.length === 3), {
        attempts: 5,
        firstBackoffMs: 1_000,
        startAfterMs: 500,
        moot: () => false,
        timers: clock,
      }),
    );
    await clock.advance(10_000, settle);
    expect(attemptsAtMs).toEqual([500, 1_500, 3_500]);
    expect(outcome.value).toBe<RetriedOutcome>("delivered");
  });

  it("stops once the member answers that it ignored the notice as stale, and says so", async () => {
    const clock = new ManualClock(0);
    let attempts = 0;
    const outcome = watch(
      retryFollowUp(async () => (++attempts === 2 ? "stale" : false), {
        attempts: 6,
        firstBackoffMs: 100,
        moot: () => false,
        timers: clock,
      }),
    );
    await clock.advance(10_000, settle);
    expect(attempts).toBe(2);
    expect(outcome.value).toBe<RetriedOutcome>("stale");
  });

  it("gives up after its attempts, and stops early once the follow-up is moot", async () => {
    const clock = new ManualClock(0);
    /** Retries of an attempt that never delivers: how many attempts ran, and the outcome. */
    const neverDelivered = (attempts: number, moot: () => boolean) => {
      const run = { attempts: 0, outcome: { value: "unsettled" as RetriedOutcome | "unsettled" } };
      run.outcome = watch(
        retryFollowUp(async () => (run.attempts++, false), { attempts, firstBackoffMs: 100, moot, timers: clock }),
      );
      return run;
    };
    const failing = neverDelivered(3, () => false);
    await clock.advance(10_000, settle);
    expect(failing.attempts).toBe(3);
    expect(failing.outcome.value).toBe<RetriedOutcome>("gaveUp");

    let moot = false;
    const readded = neverDelivered(6, () => moot);
    await settle();
    moot = true;
    await clock.advance(10_000, settle);
    expect(readded.attempts).toBe(1);
    expect(readded.outcome.value).toBe<RetriedOutcome>("moot");
  });
});

describe("leaveNoticeOutcome and followUpFinished", () => {
  const answered = (value: LeaveValue): NodeResult<LeaveValue> => ({ ok: true, node: "n2", value });
  const refused = (code: "NOT_MEMBER" | "DROPPED" | "INTERNAL"): NodeResult<LeaveValue> => ({
    ok: false,
    node: "n2",
    error: { code, message: "x", retryable: false },
  });

  it("tells a notice the member ignored as stale from one that stopped it, and from one not delivered", () => {
    expect(leaveNoticeOutcome(answered({ removed: true }))).toBe(true);
    expect(leaveNoticeOutcome(answered({ removed: false }))).toBe("stale");
    // It had stopped already (a notice retried after one that got through, or a dropped database).
    expect(leaveNoticeOutcome(refused("NOT_MEMBER"))).toBe(true);
    expect(leaveNoticeOutcome(refused("DROPPED"))).toBe(true);
    expect(leaveNoticeOutcome(refused("INTERNAL"))).toBe(false);
  });

  it("counts delivered, started, stale and moot follow-ups as finished, anything else as failed", () => {
    for (const outcome of [true, "delivered", "stale", "moot"]) {
      expect(followUpFinished(outcome), String(outcome)).toBe(true);
    }
    for (const outcome of ["gaveUp", "NOT_MEMBER: n4 was removed", false, undefined]) {
      expect(followUpFinished(outcome), String(outcome)).toBe(false);
    }
  });
});
