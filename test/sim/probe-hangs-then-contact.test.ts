// A leader whose breaker to a follower is HALF_OPEN, its probe hanging in a cut (a call into a black hole lasts until
// its timeout), sends the follower what it missed as soon as the follower calls it once the cut healed: contact after
// the probe went lets one more probe through at once (circuit-breaker.ts, contactSupersedesProbe). Without it the
// leader waits out the hung probe's timeout, then (part of) an open period, and only then probes again. The breaker's
// side has unit tests in test/core; this runs the real shell on the simulator (catch-up-on-contact.test.ts is the
// OPEN case).
//
// On the simulator a message on a blocked path is lost without a trace: its call hangs until the caller's timeout, as
// a black-holed call does. The follower is cut off from the leader both ways until the leader's breaker to it opened
// and let a probe out into the cut. The cut heals for one of the follower's calls to the leader that leaves while
// that probe hangs (at least two heartbeat intervals after it went, at most half its call timeout), and the call must
// reach the leader while that same probe is still in flight: it is the first contact since the probe went. The append
// must leave in the event that handles the call, and the follower must hold everything the leader held at the contact
// before the hung probe's call has timed out: without the second probe, nothing from the leader can reach it before.
import { describe, expect, it } from "vitest";
import { peerTransportTiming } from "../../src/objects/timing";
import { FOLLOWER_CUT_TIMING, FollowerCut, runFollowerCut } from "./follower-cut";
import type { DirectedRun, PeerRpc } from "./run";

/** How long the hung probe's call lasts before it fails (a timeout is not retried: backoff.ts). */
const CALL_TIMEOUT_MS = peerTransportTiming(FOLLOWER_CUT_TIMING).callTimeoutMs;
/** The cut heals for a call of the follower no sooner than this after the leader's probe went into it. */
const PROBE_HUNG_AT_LEAST_MS = 2 * FOLLOWER_CUT_TIMING.heartbeatIntervalMs;

/** The probe the leader's breaker let out into the cut, and the breaker transition that admitted it. */
interface HungProbe {
  readonly sentAtMs: number;
  readonly transition: number;
}

/** Heals the cut for the follower's first call that leaves while the leader's probe hangs in the cut. */
class HungProbeScenario extends FollowerCut {
  /** The HALF_OPEN probe in flight into the cut; null when none is. */
  private hungProbe: HungProbe | null = null;
  /** The probe that hung when the follower's call reached the leader. */
  probeAtContact: HungProbe | null = null;

  protected override onBreakerTransition(): void {
    this.hungProbe = null;
  }

  protected duringCut(rpc: PeerRpc, run: DirectedRun): void {
    this.noteProbe(rpc);
    if (rpc.stage === "sent" && this.isToLeader(rpc) && this.probeHungLongEnough(run.nowMs())) {
      run.network.healPartitions();
      this.phase = "healing";
    }
  }

  /** The first call of the leader to the follower after its breaker went HALF_OPEN is the probe (lost in the cut). */
  private noteProbe(rpc: PeerRpc): void {
    const fromLeader = rpc.from === this.leader && rpc.to === this.follower;
    if (rpc.stage === "sent" && fromLeader && this.breakerState === "HALF_OPEN" && this.hungProbe === null) {
      this.hungProbe = { sentAtMs: rpc.atMs, transition: this.breakerTransitions };
    }
  }

  /**
   * A probe is in flight into the cut and has been out for a while (a couple of heartbeat intervals: plainly hung, not
   * just sent), but no more than half its call timeout (time left to show the catch-up beats that timeout).
   */
  private probeHungLongEnough(nowMs: number): boolean {
    const hungMs = this.hungProbe === null ? Number.NaN : nowMs - this.hungProbe.sentAtMs;
    return hungMs >= PROBE_HUNG_AT_LEAST_MS && hungMs <= CALL_TIMEOUT_MS / 2;
  }

  /** The same probe is still in flight (the breaker has not moved since it went). */
  protected isContact(): boolean {
    const probe = this.hungProbe;
    if (probe === null || probe.transition !== this.breakerTransitions) {
      return false;
    }
    this.probeAtContact = probe;
    return true;
  }
}

describe("a leader whose probe to a follower hangs in a cut that healed", () => {
  it("sends the follower what it missed once it calls, not after the hung probe's timeout", async () => {
    const scenario = new HungProbeScenario();
    await runFollowerCut(scenario, { seed: 3 });
    const { contact, firstAppend, probeAtContact: probe } = scenario;
    console.log(
      `cut ${scenario.follower} off ${scenario.leader}; its breaker to it opened ${scenario.breakerOpenings} times;` +
        ` probe into the cut at ${probe?.sentAtMs} ms, contact at ${contact?.atMs} ms,` +
        ` first append ${firstAppend === null ? "never" : `at ${firstAppend.atMs} ms`},` +
        ` follower caught up at ${scenario.caughtUpAtMs} ms (the hung probe times out at` +
        ` ${probe === null ? "?" : probe.sentAtMs + CALL_TIMEOUT_MS} ms)`,
    );
    expect(scenario.breakerOpenings, "the leader's breaker to the cut-off follower opened").toBeGreaterThan(0);
    expect(contact, "the follower's call reached the leader while its probe hung").not.toBeNull();
    if (contact === null || probe === null) {
      return;
    }
    expect(contact.followerLastIndex, "the follower missed entries").toBeLessThan(contact.leaderLastIndex);
    expect(scenario.caughtUpAtMs, "the follower caught up").not.toBeNull();
    expect(
      scenario.caughtUpAtMs ?? Number.POSITIVE_INFINITY,
      "the follower caught up before the hung probe's call timed out",
    ).toBeLessThan(probe.sentAtMs + CALL_TIMEOUT_MS);
    expect(firstAppend?.atMs, "the append left in the event that handled the follower's call").toBe(contact.atMs);
  }, 120_000);
});
