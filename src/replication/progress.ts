// The leader's view of one follower's log (etcd tracker/progress.go + inflights.go): where to send next, what is
// known to match, and how much may be in flight.
import { invariant } from "./assert.js";
import type { NodeId, ProgressState, ReplicaStatus } from "./types.js";

/** Last indexes of the AppendEntries messages in flight to one follower, oldest first, bounded. */
export class Inflights {
  private readonly lastIndexes: number[] = [];

  constructor(readonly capacity: number) {
    invariant(
      Number.isInteger(capacity) && capacity >= 1,
      `Inflights capacity must be a positive integer, got ${capacity}`,
    );
  }

  add(lastIndex: number): void {
    invariant(!this.full(), "Inflights.add: already full");
    const newest = this.lastIndexes[this.lastIndexes.length - 1];
    invariant(newest === undefined || lastIndex > newest, `Inflights.add: ${lastIndex} is not after ${String(newest)}`);
    this.lastIndexes.push(lastIndex);
  }

  /** Frees every message whose entries are all at or below `index` (acknowledged). */
  freeLE(index: number): void {
    let freed = 0;
    while (freed < this.lastIndexes.length && (this.lastIndexes[freed] as number) <= index) {
      freed++;
    }
    this.lastIndexes.splice(0, freed);
  }

  freeFirstOne(): void {
    this.lastIndexes.shift();
  }

  full(): boolean {
    return this.lastIndexes.length >= this.capacity;
  }

  count(): number {
    return this.lastIndexes.length;
  }

  reset(): void {
    this.lastIndexes.length = 0;
  }
}

export class Progress {
  /** Highest index known to match the leader's log. */
  matchIndex = 0;
  /** Next index to send. */
  nextIndex: number;
  state: ProgressState = "probe";
  /** Probe state: one message is out; wait for its answer (or a heartbeat answer) before sending another. */
  probeSent = false;
  /** Snapshot state: index of the snapshot being sent. */
  pendingSnapshotIndex = 0;
  ticksInSnapshotState = 0;
  readonly inflights: Inflights;

  // Contact and health, for CheckQuorum, leases and the replica status machine.
  ticksSinceContact = 0;
  consecutiveFailures = 0;
  reconnections = 0;
  /** Set by reportUnreachable / a failed snapshot; cleared by any message from the peer. */
  unreachable = false;
  /** Has this replica answered an AppendEntries with success since this leader's term began? */
  matchedOnce = false;
  /** Has this replica (after matching) been within laggingThresholdEntries of the leader's last index? */
  caughtUpOnce = false;
  /** The shell reported the replica ready (requireReplicaReady): e.g. its schema matches the leader's. */
  readyReported = false;
  /** As the replica last reported it: on voting probation, it ignores TimeoutNow, so it is no transfer target. */
  votingProbation = false;
  /** Highest commit index sent to it, so that a commit broadcast skips replicas that already know. */
  lastCommitSent = 0;
  status: ReplicaStatus | null = null;
  /** Highest heartbeat round this voter echoed in the current term, and the tick at which that round was sent. */
  ackedRound = 0;
  ackedRoundSentTick: number | null = null;

  constructor(
    readonly id: NodeId,
    public isLearner: boolean,
    options: { readonly nextIndex: number; readonly maxInflightMessages: number },
  ) {
    this.nextIndex = options.nextIndex;
    this.inflights = new Inflights(options.maxInflightMessages);
  }

  /** Paused progress gets no AppendEntries until something changes. */
  isPaused(): boolean {
    switch (this.state) {
      case "probe":
        return this.probeSent;
      case "replicate":
        return this.inflights.full();
      case "snapshot":
        return true;
    }
  }

  becomeProbe(): void {
    // After a snapshot, resume right after it (if it was delivered, the follower has it; if not, a rejection fixes next).
    const resumeAfter =
      this.state === "snapshot" ? Math.max(this.matchIndex, this.pendingSnapshotIndex) : this.matchIndex;
    this.resetState("probe");
    this.nextIndex = resumeAfter + 1;
  }

  /** The follower lost its log and now ends at `lastIndex`: probe from there. */
  resetAfterLogLoss(lastIndex: number): void {
    this.matchIndex = Math.min(this.matchIndex, lastIndex);
    this.lastCommitSent = 0;
    this.resetState("probe");
    this.nextIndex = lastIndex + 1;
  }

  becomeReplicate(): void {
    this.resetState("replicate");
    this.nextIndex = this.matchIndex + 1;
  }

  becomeSnapshot(snapshotIndex: number): void {
    this.resetState("snapshot");
    this.pendingSnapshotIndex = snapshotIndex;
  }

  /** A successful append response up to `index`; false when it tells us nothing new (stale or duplicate). */
  maybeUpdate(index: number): boolean {
    if (index <= this.matchIndex) {
      return false;
    }
    this.matchIndex = index;
    this.nextIndex = Math.max(this.nextIndex, index + 1);
    this.probeSent = false;
    return true;
  }

  /**
   * A rejection of prevLogIndex `rejected`, with the follower's hint turned into `matchHint` (the highest index that
   * may match). False when the rejection is stale.
   */
  maybeDecrTo(rejected: number, matchHint: number): boolean {
    if (this.state === "replicate") {
      if (rejected <= this.matchIndex) {
        return false;
      }
      this.nextIndex = this.matchIndex + 1;
      return true;
    }
    // Probe: only the answer to the message we sent (prevLogIndex = next - 1) counts.
    if (this.nextIndex - 1 !== rejected) {
      return false;
    }
    this.nextIndex = Math.max(Math.min(rejected, matchHint + 1), this.matchIndex + 1);
    this.probeSent = false;
    return true;
  }

  /** Bookkeeping after sending an AppendEntries whose last entry is `lastIndex` (null when it carried none). */
  sentAppend(lastIndex: number | null): void {
    switch (this.state) {
      case "replicate":
        if (lastIndex !== null) {
          this.nextIndex = lastIndex + 1;
          this.inflights.add(lastIndex);
        }
        return;
      case "probe":
        this.probeSent = true;
        return;
      case "snapshot":
        invariant(false, `sentAppend to ${this.id} in snapshot state`);
    }
  }

  private resetState(state: ProgressState): void {
    this.state = state;
    this.probeSent = false;
    this.pendingSnapshotIndex = 0;
    this.ticksInSnapshotState = 0;
    this.inflights.reset();
  }
}
