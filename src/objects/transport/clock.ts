// Time as the transport sees it: injected, so that tests drive it by hand and the Durable Object uses the real one.
// Waits with a deadline and sleeps take this clock's timers (../deadline.ts).
import { realTimers, type Timers } from "../deadline";

export interface TransportClock extends Timers {
  /** Milliseconds on a monotonic-enough scale (Date.now() in production). */
  now(): number;
}

/** The real clock. In workerd Date.now() advances only across I/O, which is all the transport needs. */
export const systemClock: TransportClock = {
  now: () => Date.now(),
  schedule: realTimers.schedule,
};
