// A clock driven by hand, for tests and simulations of the transport: time moves only in advance().
import type { TransportClock } from "./clock";

interface Timer {
  readonly id: number;
  readonly dueMs: number;
  readonly fn: () => void;
}

export class ManualClock implements TransportClock {
  private nowMs: number;
  private nextId = 0;
  private timers: Timer[] = [];

  constructor(startMs = 0) {
    this.nowMs = startMs;
  }

  now(): number {
    return this.nowMs;
  }

  schedule(fn: () => void, delayMs: number): () => void {
    const timer: Timer = { id: this.nextId++, dueMs: this.nowMs + Math.max(0, delayMs), fn };
    this.timers.push(timer);
    return () => {
      this.timers = this.timers.filter((t) => t !== timer);
    };
  }

  /** Timers scheduled and neither run nor cancelled. */
  get pendingTimers(): number {
    return this.timers.length;
  }

  /**
   * Moves time forward by `deltaMs`, running every timer that falls due in time order (ties in scheduling
   * order). After each timer, and once at the start, awaits `settle()` so that promise chains the timer
   * released can run and schedule further timers, which also run if they fall due within the window.
   */
  async advance(deltaMs: number, settle: () => Promise<void>): Promise<void> {
    if (!(deltaMs >= 0)) {
      throw new RangeError(`advance needs deltaMs >= 0, got ${deltaMs}`);
    }
    const targetMs = this.nowMs + deltaMs;
    await settle();
    for (;;) {
      const next = this.nextDue(targetMs);
      if (next === null) {
        break;
      }
      this.timers = this.timers.filter((t) => t !== next);
      this.nowMs = next.dueMs;
      next.fn();
      await settle();
    }
    this.nowMs = targetMs;
  }

  private nextDue(limitMs: number): Timer | null {
    let best: Timer | null = null;
    for (const timer of this.timers) {
      if (timer.dueMs > limitMs) {
        continue;
      }
      if (best === null || timer.dueMs < best.dueMs || (timer.dueMs === best.dueMs && timer.id < best.id)) {
        best = timer;
      }
    }
    return best;
  }
}
