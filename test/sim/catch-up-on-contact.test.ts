// A leader whose calls to a follower had been failing sends it what it missed as soon as the follower calls it, not
// at its next heartbeat: NodeRuntime.receiveEnvelope asks PeerLinks.heardFrom whether the breaker to the caller would
// let a probe through now and, if so, has the core probe it at once (RaftNode.reportReachable). The core's side has
// unit tests in test/core; this runs the real shell on the simulator.
//
// The follower is cut off from the leader until the leader's breaker to it opened. The cut heals for one of the
// follower's calls to the leader, one that leaves while the leader's breaker would take it as contact (OPEN for at
// least its shortest open time: circuit-breaker.ts, noteContact), and the other way only once that call arrived: it
// is the first contact either way, and no probe of the leader's can get through first. The append that catches the
// follower up must then leave in the very event that handles the call (the same simulated ms: before an answer of the
// follower is back, nothing else sends a probing follower an append). Without the wiring it waits for the leader's
// next heartbeat tick and the follower's answer to it.
import { describe, expect, it } from "vitest";
import { peerTransportTiming } from "../../src/objects/timing";
import type { NodeId } from "../../src/replication/types";
import { FOLLOWER_CUT_TIMING, FollowerCut, runFollowerCut } from "./follower-cut";
import type { DirectedRun, PeerRpc } from "./run";

/** The leader's breaker takes a call as contact this long after it opened (circuit-breaker.ts, noteContact). */
const CONTACT_COUNTS_AFTER_MS = peerTransportTiming(FOLLOWER_CUT_TIMING).breakerMinOpenMs;

/** Heals the cut for the follower's first call that leaves while the leader's breaker would take it as contact. */
class ContactScenario extends FollowerCut {
  protected duringCut(rpc: PeerRpc, run: DirectedRun): void {
    // The follower's call leaves while the leader would take it as contact: let it (and only it) through.
    if (rpc.stage === "sent" && this.isToLeader(rpc) && this.contactWouldCount(run.nowMs())) {
      run.network.healPartitions();
      run.network.block(this.leader as NodeId, this.follower as NodeId);
      this.phase = "healing";
    }
  }

  private contactWouldCount(nowMs: number): boolean {
    return this.breakerState === "OPEN" && nowMs - this.breakerChangedAtMs >= CONTACT_COUNTS_AFTER_MS;
  }

  /**
   * If the leader's breaker is still OPEN, this is the contact. If it probed meanwhile (its probe was lost on the cut
   * path, and a breaker with a probe out takes no contact), the cut is made again to wait for the next chance.
   */
  protected isContact(): boolean {
    return this.breakerState === "OPEN";
  }
}

describe("a leader hears from a follower it could not reach", () => {
  it("sends it the entries it missed in the event that handles its call, not at the next heartbeat", async () => {
    const scenario = new ContactScenario();
    // The breaker stays OPEN half a heartbeat interval at a time, and the leader probes at its next heartbeat after
    // that: a call of the follower's must leave in the short window between, which seed 11 gives (seeds move with
    // timing: with whole-heartbeat periods seeds 1, 10 and 11 of 1-12 gave it).
    await runFollowerCut(scenario, { seed: 11 });
    const { contact, firstAppend } = scenario;
    console.log(
      `cut ${scenario.follower} off ${scenario.leader}; the leader's breaker opened ${scenario.breakerOpenings} times;` +
        ` contact at ${contact?.atMs} ms, first append ${firstAppend === null ? "never" : `at ${firstAppend.atMs} ms`},` +
        ` first heartbeat after it at ${scenario.firstHeartbeatAfterContactAtMs} ms,` +
        ` follower caught up at ${scenario.caughtUpAtMs} ms`,
    );
    expect(scenario.breakerOpenings, "the leader's breaker to the cut-off follower opened").toBeGreaterThan(0);
    expect(contact, "the follower's call reached the leader while its breaker took it as contact").not.toBeNull();
    if (contact === null || firstAppend === null) {
      expect(firstAppend, "the leader sent the follower an append after its call").not.toBeNull();
      return;
    }
    expect(contact.followerLastIndex, "the follower missed entries").toBeLessThan(contact.leaderLastIndex);
    expect(firstAppend.atMs, "the append left in the event that handled the follower's call").toBe(contact.atMs);
    expect(firstAppend.append.entries.length).toBeGreaterThan(0);
    expect(firstAppend.append.prevLogIndex).toBeLessThanOrEqual(contact.followerLastIndex);
    expect(scenario.caughtUpAtMs, "the follower caught up").not.toBeNull();
  }, 120_000);
});
