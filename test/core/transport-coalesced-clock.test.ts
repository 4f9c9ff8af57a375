// CoalescedClock (src/objects/transport/clock.ts): many deadlines on one underlying timer, on a hand-driven clock.
import { describe, expect, it } from "vitest";
import { CoalescedClock } from "../../src/objects/transport/clock";
import { ManualClock } from "../../src/objects/transport/manual-clock";

const settle = async (): Promise<void> => {
  await Promise.resolve();
};

describe("CoalescedClock", () => {
  it("runs each timer at its due time, not before, in due order (ties in scheduling order)", async () => {
    const base = new ManualClock(1_000);
    const clock = new CoalescedClock(base);
    const ran: string[] = [];
    clock.schedule(() => ran.push("c@300"), 300);
    clock.schedule(() => ran.push("a@100"), 100);
    clock.schedule(() => ran.push("b@200"), 200);
    clock.schedule(() => ran.push("a2@100"), 100);
    expect(base.pendingTimers).toBe(1);
    await base.advance(99, settle);
    expect(ran).toEqual([]);
    await base.advance(1, settle);
    expect(ran).toEqual(["a@100", "a2@100"]);
    await base.advance(199, settle);
    expect(ran).toEqual(["a@100", "a2@100", "b@200"]);
    await base.advance(1, settle);
    expect(ran).toEqual(["a@100", "a2@100", "b@200", "c@300"]);
    expect(clock.pendingTimers).toBe(0);
  });

  it("keeps one underlying timer for many deadlines, and cancelling one clears nothing underneath", async () => {
    const base = new ManualClock();
    const clock = new CoalescedClock(base);
    const cancels = Array.from({ length: 1_000 }, () => clock.schedule(() => expect.fail("cancelled"), 1_000));
    expect(base.pendingTimers).toBe(1);
    for (const cancel of cancels) {
      cancel();
      cancel();
    }
    expect(clock.pendingTimers).toBe(0);
    // The underlying timer is left to fire with nothing due (cheaper than clearing it on the platform).
    expect(base.pendingTimers).toBe(1);
    let ran = 0;
    clock.schedule(() => ran++, 2_000);
    await base.advance(1_000, settle);
    expect(ran).toBe(0);
    expect(base.pendingTimers).toBe(1);
    await base.advance(1_000, settle);
    expect(ran).toBe(1);
    expect(base.pendingTimers).toBe(0);
  });

  it("re-arms for a deadline earlier than the one it waits for", async () => {
    const base = new ManualClock();
    const clock = new CoalescedClock(base);
    const ran: number[] = [];
    clock.schedule(() => ran.push(500), 500);
    clock.schedule(() => ran.push(50), 50);
    expect(base.pendingTimers).toBe(1);
    await base.advance(50, settle);
    expect(ran).toEqual([50]);
    await base.advance(450, settle);
    expect(ran).toEqual([50, 500]);
  });

  it("runs every due callback when one throws, then surfaces the error", () => {
    const base = new ManualClock();
    const ran: string[] = [];
    let fire: (() => void) | null = null;
    const capturing = {
      now: () => base.now(),
      schedule: (fn: () => void) => {
        fire = fn;
        return () => undefined;
      },
    };
    const coalesced = new CoalescedClock(capturing);
    coalesced.schedule(() => {
      ran.push("first");
      throw new Error("boom");
    }, 0);
    coalesced.schedule(() => ran.push("second"), 0);
    expect(fire).not.toBeNull();
    expect(() => fire!()).toThrow("boom");
    expect(ran).toEqual(["first", "second"]);
    expect(coalesced.pendingTimers).toBe(0);
  });

  it("refuses timers beyond its bound", () => {
    const clock = new CoalescedClock(new ManualClock(), 2);
    clock.schedule(() => undefined, 10);
    const cancel = clock.schedule(() => undefined, 10);
    expect(() => clock.schedule(() => undefined, 10)).toThrow(RangeError);
    cancel();
    expect(() => clock.schedule(() => undefined, 10)).not.toThrow();
  });
});
