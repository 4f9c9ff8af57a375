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
import { addLogObserver } from "../../src/objects/log";
import { peerTransportTiming } from "../../src/objects/timing";
import type { RaftEnvelope } from "../../src/objects/transport/index";
import type { Message, NodeId } from "../../src/replication/types";
import { QUIET } from "./bugs";
import { HEALTHY_PROFILE } from "./network";
import { runSeed, type DirectedRun, type PeerRpc } from "./run";

type Append = Extract<Message, { type: "append" }>;

const TIMING = { heartbeatIntervalMs: 20, electionTimeoutMs: 200 };
/** The leader's breaker takes a call as contact this long after it opened (circuit-breaker.ts, noteContact). */
const CONTACT_COUNTS_AFTER_MS = peerTransportTiming(TIMING).breakerMinOpenMs;
/** Simulated time before the cut: a leader elected and writes committed. */
const CUT_AT_MS = 1_000;

/** Drives the cut and the heal from the peer RPCs it sees, and records what the leader sends after the contact. */
class ContactScenario {
  phase: "before" | "cut" | "halfHealed" | "contact" | "done" = "before";
  leader: NodeId | null = null;
  follower: NodeId | null = null;
  /** While the leader's breaker to the follower is OPEN: since when, and which transition opened it. */
  breakerOpen: { atMs: number; transition: number } | null = null;
  breakerOpenings = 0;
  private breakerTransitions = 0;
  contact: { atMs: number; leaderLastIndex: number; followerLastIndex: number } | null = null;
  firstAppend: { atMs: number; append: Append } | null = null;
  firstHeartbeatAfterContactAtMs: number | null = null;
  caughtUpAtMs: number | null = null;
  private run: DirectedRun | null = null;

  onBreaker(node: string, peer: unknown, to: unknown): void {
    if (node !== this.leader || peer !== this.follower || this.run === null) {
      return;
    }
    this.breakerTransitions += 1;
    this.breakerOpen = to === "OPEN" ? { atMs: this.run.nowMs(), transition: this.breakerTransitions } : null;
    this.breakerOpenings += to === "OPEN" ? 1 : 0;
  }

  onPeerRpc(rpc: PeerRpc, run: DirectedRun): void {
    this.run = run;
    const toLeader = rpc.from === this.follower && rpc.to === this.leader;
    switch (this.phase) {
      case "before":
        this.maybeCut(run);
        return;
      case "cut":
        // The follower's call leaves while the leader would take it as contact: let it (and only it) through.
        if (rpc.stage === "sent" && toLeader && this.contactWouldCount(run.nowMs())) {
          run.network.healPartitions();
          run.network.block(this.leader as NodeId, this.follower as NodeId);
          this.phase = "halfHealed";
        }
        return;
      case "halfHealed":
        if (rpc.stage === "delivered" && toLeader) {
          this.onFirstCall(run);
        }
        return;
      case "contact":
        this.recordLeaderSends(rpc);
        return;
      case "done":
        this.recordLeaderSends(rpc);
        this.noteCatchUp(run);
        return;
    }
  }

  private maybeCut(run: DirectedRun): void {
    const leader = run.leader();
    if (run.nowMs() < CUT_AT_MS || leader === null || (run.status(leader)?.commit ?? 0) === 0) {
      return;
    }
    this.leader = leader;
    this.follower = ["n1", "n2", "n3"].find((node) => node !== leader) ?? null;
    run.network.blockBothWays(leader, this.follower as NodeId);
    // Both sides' breakers cycle with the same period, so the follower's calls would keep leaving at the same point of
    // the leader's cycle, on some seeds never one where it takes contact: its events run a little late, by chance.
    run.slowDown(this.follower as NodeId, { lateByMs: TIMING.heartbeatIntervalMs, untilMs: Number.MAX_SAFE_INTEGER });
    this.phase = "cut";
  }

  private contactWouldCount(nowMs: number): boolean {
    return this.breakerOpen !== null && nowMs - this.breakerOpen.atMs >= CONTACT_COUNTS_AFTER_MS;
  }

  /**
   * The follower's call reached the leader. If the leader's breaker is still in the same OPEN period, this is the
   * contact: heal the other way too. If it probed meanwhile (its probe was lost on the cut path, and a breaker with a
   * probe out takes no contact), cut again and wait for the next chance.
   */
  private onFirstCall(run: DirectedRun): void {
    const leader = this.leader as NodeId;
    const follower = this.follower as NodeId;
    if (this.breakerOpen === null || this.breakerOpen.transition !== this.breakerTransitions) {
      run.network.block(follower, leader);
      this.phase = "cut";
      return;
    }
    run.network.healPartitions();
    run.slowDown(follower, { lateByMs: 0, untilMs: 0 });
    this.contact = {
      atMs: run.nowMs(),
      leaderLastIndex: run.status(leader)?.lastIndex ?? 0,
      followerLastIndex: run.status(follower)?.lastIndex ?? 0,
    };
    this.phase = "contact";
  }

  /** When the follower first holds everything the leader held at the contact. */
  private noteCatchUp(run: DirectedRun): void {
    const followerLastIndex = run.status(this.follower as NodeId)?.lastIndex ?? 0;
    if (this.caughtUpAtMs === null && this.contact !== null && followerLastIndex >= this.contact.leaderLastIndex) {
      this.caughtUpAtMs = run.nowMs();
    }
  }

  private recordLeaderSends(rpc: PeerRpc): void {
    if (rpc.stage !== "sent" || rpc.from !== this.leader || rpc.to !== this.follower) {
      return;
    }
    const messages = (rpc.envelope as RaftEnvelope).messages;
    if (messages.some((message) => message.type === "heartbeat")) {
      this.firstHeartbeatAfterContactAtMs ??= rpc.atMs;
    }
    const append = messages.find((message): message is Append => message.type === "append");
    if (append !== undefined && this.firstAppend === null) {
      this.firstAppend = { atMs: rpc.atMs, append };
      this.phase = "done";
    }
  }
}

describe("a leader hears from a follower it could not reach", () => {
  it("sends it the entries it missed in the event that handles its call, not at the next heartbeat", async () => {
    const scenario = new ContactScenario();
    const stopObserving = addLogObserver((_level, context, event, fields) => {
      if (event === "circuitBreaker") {
        scenario.onBreaker(context.node, fields["peer"], fields["to"]);
      }
    });
    try {
      await runSeed({
        seed: 3,
        steps: 10_000,
        liveness: false,
        monitor: false,
        adjustScenario: (drawn) => ({
          ...drawn,
          nodes: 3,
          ...TIMING,
          snapshotThresholdEntries: 1_000,
          network: HEALTHY_PROFILE,
          faults: QUIET,
          workload: { ...drawn.workload, clients: 2, mix: { ...drawn.workload.mix, write: 10 } },
        }),
        onPeerRpc: (rpc, run) => scenario.onPeerRpc(rpc, run),
      });
    } finally {
      stopObserving();
    }
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
