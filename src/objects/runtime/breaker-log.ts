// How loud a breaker transition is logged. A peer that stays down is probed at every heartbeat
// (timing.ts, peerTransportTiming), two transitions each: one line per probe would fill the logs with what the first
// probe already said. The event feed folds them the same way (src/objects/events.ts, FOLD_RULES).
import type { LogLevel } from "../log";
import type { BreakerState } from "../transport/circuit-breaker";

/** Whether the transition is a probe of a peer that has not come back: OPEN -> HALF_OPEN, or HALF_OPEN -> OPEN. */
function isProbeStep(transition: { readonly from: BreakerState; readonly to: BreakerState }): boolean {
  return (
    (transition.from === "OPEN" && transition.to === "HALF_OPEN") ||
    (transition.from === "HALF_OPEN" && transition.to === "OPEN")
  );
}

/**
 * Per peer: the first failed probe of an outage (its OPEN -> HALF_OPEN and HALF_OPEN -> OPEN) is logged at info, the
 * probes after it at debug; opening and closing always at info, and closing starts the next outage afresh.
 */
export class BreakerLogLevels {
  /** Peers whose current outage has logged a failed probe at info (at most one entry per peer). */
  private readonly probedInOutage = new Set<string>();

  levelFor(peer: string, transition: { readonly from: BreakerState; readonly to: BreakerState }): LogLevel {
    if (!isProbeStep(transition)) {
      this.probedInOutage.delete(peer);
      return "info";
    }
    const level: LogLevel = this.probedInOutage.has(peer) ? "debug" : "info";
    if (transition.from === "HALF_OPEN") {
      this.probedInOutage.add(peer);
    }
    return level;
  }

  /** A peer no longer a member: forget it. */
  forget(peer: string): void {
    this.probedInOutage.delete(peer);
  }
}
