// Read-your-writes for level `none` within one worker isolate. A follower learns that an entry committed from the
// leader's next message, which may come a little after the leader answered the writer (the leader holds a commit
// notice for the next message to that peer, runtime/peers.ts). A client that writes and then reads at level none
// through this worker could otherwise be served by a follower that has not applied its write yet. So, for a short
// while after this isolate acknowledged a write to a cluster, its `none` reads that carry no floor of their own carry
// the highest raft index it acknowledged: a follower that has applied it serves at once, one that has not waits
// briefly and then answers STALE, and the read moves on to the leader (which has applied every write it answered).
//
// Best effort by design: another isolate does not know this one's writes (clients that need read-your-writes across
// isolates send the write's X-DHA-Raft-Index back). Past the window a follower still behind is cut off or slow, and
// level none then serves what it has, as documented.

/** For how long after its last acknowledged write an isolate gives its `none` reads a floor, and how long they wait. */
export interface RecentWritesTiming {
  /** One election timeout: a connected follower learns every commit within a heartbeat interval. */
  readonly windowMs: number;
  /** Two heartbeat intervals: past that the follower is unlikely to catch up soon; the leader serves at once. */
  readonly followerWaitMs: number;
}

export function recentWritesTiming(timing: {
  readonly heartbeatIntervalMs: number;
  readonly electionTimeoutMs: number;
}): RecentWritesTiming {
  return {
    windowMs: timing.electionTimeoutMs,
    followerWaitMs: Math.max(1, 2 * timing.heartbeatIntervalMs),
  };
}

/** The floor a `none` read carries, with how long a node may wait for it. */
export interface ReadFloor {
  readonly minRaftIndex: number;
  readonly waitMs: number;
}

/** At most this many nodes are remembered as behind (a cluster has a handful; the bound holds whatever names come). */
const MAX_NODES_BEHIND = 16;

/**
 * The highest raft index this isolate acknowledged for one cluster's writes, when it last acknowledged one, and
 * which nodes lately answered STALE to that floor (a follower catching up would otherwise cost one read in N the
 * whole wait, again and again: those nodes are asked last for one window).
 */
export class RecentWrites {
  private highestIndex = 0;
  private lastAtMs = Number.NEGATIVE_INFINITY;
  /** Node name to when its STALE answer stops counting. */
  private readonly behindUntilMs = new Map<string, number>();

  constructor(private readonly timing: RecentWritesTiming) {}

  /** A write was acknowledged to a client with this raft index at `nowMs`. */
  acknowledged(raftIndex: number, nowMs: number): void {
    if (!Number.isSafeInteger(raftIndex) || raftIndex < 1) {
      return;
    }
    // The window runs from the highest index's acknowledgement: a lower index (a cluster whose log started again)
    // neither keeps an unreachable floor alive nor is lost once that floor has expired.
    if (raftIndex >= this.highestIndex || this.floorAt(nowMs) === null) {
      this.highestIndex = raftIndex;
      this.lastAtMs = nowMs;
    }
  }

  /** `node` answered STALE at `nowMs` to a floor from floorAt: it is asked last for one window. */
  nodeBehind(node: string, nowMs: number): void {
    this.behindUntilMs.delete(node);
    if (this.behindUntilMs.size >= MAX_NODES_BEHIND) {
      const oldest = this.behindUntilMs.keys().next().value;
      if (oldest !== undefined) {
        this.behindUntilMs.delete(oldest);
      }
    }
    this.behindUntilMs.set(node, nowMs + this.timing.windowMs);
  }

  /** The nodes to ask last for a read with a floor from floorAt, at `nowMs` (oldest mark first). */
  nodesBehind(nowMs: number): string[] {
    const behind: string[] = [];
    for (const [node, untilMs] of this.behindUntilMs) {
      // A clock that went back ends the mark too, as it ends the floor.
      if (nowMs > untilMs || untilMs - nowMs > this.timing.windowMs) {
        this.behindUntilMs.delete(node);
      } else {
        behind.push(node);
      }
    }
    return behind;
  }

  /** The floor for a `none` read at `nowMs` that has none of its own; null outside the window. */
  floorAt(nowMs: number): ReadFloor | null {
    if (this.highestIndex === 0 || nowMs - this.lastAtMs > this.timing.windowMs || nowMs < this.lastAtMs) {
      return null;
    }
    return { minRaftIndex: this.highestIndex, waitMs: this.timing.followerWaitMs };
  }
}
