// Directed scenarios in which a leader loses one follower for a while and must catch it up as soon as the follower
// calls it again (catch-up-on-contact.test.ts, probe-hangs-then-contact.test.ts): a quiet three-node cluster under
// steady writes on a healthy network; once a write committed, one follower is cut off from the leader both ways. The
// scenario follows the leader's breaker to it through the log, decides from the peer RPCs it sees when to heal (a
// subclass's part), and records when the leader's first append after the contact left and when the follower held
// everything the leader held at the contact.
import { addLogObserver } from "../../src/objects/log";
import type { RaftEnvelope } from "../../src/objects/transport/index";
import type { Message, NodeId } from "../../src/replication/types";
import { QUIET } from "./bugs";
import { HEALTHY_PROFILE } from "./network";
import { runSeed, type DirectedRun, type PeerRpc } from "./run";

type Append = Extract<Message, { type: "append" }>;

/** Short, so that a run goes through many breaker periods in a few simulated seconds. */
export const FOLLOWER_CUT_TIMING = { heartbeatIntervalMs: 20, electionTimeoutMs: 200 };
/** Simulated time before the cut: a leader elected and writes committed. */
const CUT_AT_MS = 1_000;

export abstract class FollowerCut {
  phase: "before" | "cut" | "healing" | "contact" | "done" = "before";
  leader: NodeId | null = null;
  follower: NodeId | null = null;
  /** The leader's breaker to the follower: its state, how many transitions it made, and when it made the last. */
  breakerState: unknown = "CLOSED";
  breakerTransitions = 0;
  breakerChangedAtMs = 0;
  breakerOpenings = 0;
  contact: { atMs: number; leaderLastIndex: number; followerLastIndex: number } | null = null;
  firstAppend: { atMs: number; append: Append } | null = null;
  firstHeartbeatAfterContactAtMs: number | null = null;
  caughtUpAtMs: number | null = null;
  private run: DirectedRun | null = null;

  /** In the cut, sees each peer RPC: heals (some of) the cut and moves to "healing" for the call meant as contact. */
  protected abstract duringCut(rpc: PeerRpc, run: DirectedRun): void;

  /** Whether the follower's call, just arrived, is the contact the scenario wants; if not, the cut is made again. */
  protected abstract isContact(): boolean;

  /** The leader's breaker to the follower made a transition (after it was recorded). */
  protected onBreakerTransition(): void {}

  onBreaker(node: string, peer: unknown, to: unknown): void {
    if (node !== this.leader || peer !== this.follower || this.run === null) {
      return;
    }
    this.breakerTransitions += 1;
    this.breakerState = to;
    this.breakerChangedAtMs = this.run.nowMs();
    this.breakerOpenings += to === "OPEN" ? 1 : 0;
    this.onBreakerTransition();
  }

  onPeerRpc(rpc: PeerRpc, run: DirectedRun): void {
    this.run = run;
    switch (this.phase) {
      case "before":
        this.maybeCut(run);
        return;
      case "cut":
        this.duringCut(rpc, run);
        return;
      case "healing":
        if (rpc.stage === "delivered" && this.isToLeader(rpc)) {
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

  protected isToLeader(rpc: PeerRpc): boolean {
    return rpc.from === this.follower && rpc.to === this.leader;
  }

  private maybeCut(run: DirectedRun): void {
    const leader = run.leader();
    if (run.nowMs() < CUT_AT_MS || leader === null || (run.status(leader)?.commit ?? 0) === 0) {
      return;
    }
    this.leader = leader;
    this.follower = ["n1", "n2", "n3"].find((node) => node !== leader) ?? null;
    run.network.blockBothWays(leader, this.follower as NodeId);
    // Both sides cycle with the same period in the cut (breakers, and calls that hang until their timeout), so the
    // follower's calls would keep leaving at the same point of the leader's cycle, on some seeds never the point the
    // scenario waits for: its events run a little late, by chance.
    const lateByMs = FOLLOWER_CUT_TIMING.heartbeatIntervalMs;
    run.slowDown(this.follower as NodeId, { lateByMs, untilMs: Number.MAX_SAFE_INTEGER });
    this.phase = "cut";
  }

  /** The follower's call reached the leader: the contact, with the cut healed both ways, or the cut again. */
  private onFirstCall(run: DirectedRun): void {
    const leader = this.leader as NodeId;
    const follower = this.follower as NodeId;
    if (!this.isContact()) {
      run.network.blockBothWays(leader, follower);
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

/** Runs seed `seed` of the quiet cluster with `scenario` watching its peer RPCs and its breaker transitions. */
export async function runFollowerCut(scenario: FollowerCut, options: { readonly seed: number }): Promise<void> {
  const stopObserving = addLogObserver((_level, context, event, fields) => {
    if (event === "circuitBreaker") {
      scenario.onBreaker(context.node, fields["peer"], fields["to"]);
    }
  });
  try {
    await runSeed({
      seed: options.seed,
      steps: 10_000,
      liveness: false,
      monitor: false,
      adjustScenario: (drawn) => ({
        ...drawn,
        nodes: 3,
        ...FOLLOWER_CUT_TIMING,
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
}
