// Bookkeeping for linearizable reads (etcd read_only.go, reworked around heartbeat rounds).
// On the leader a read waits, in order, for (1) an entry of the leader's term to commit, then (2) a heartbeat round
// sent after the read arrived to be echoed by a quorum of voters. On a follower a read is forwarded to the leader
// and waits for its answer. Every read has a deadline.
import { invariant } from "./assert.js";
import type { NodeId } from "./types.js";

/** A read on the leader; `from` is the leader itself for a local read, else the follower that forwarded it. */
export interface LeaderRead {
  readonly context: string;
  readonly from: NodeId;
  readonly deadlineTick: number;
}

export interface ConfirmingRead extends LeaderRead {
  /** The commit index when the read was admitted: the index the state machine must reach before serving it. */
  readonly index: number;
  /** The first heartbeat round whose quorum echo confirms it. */
  readonly round: number;
}

/** Send ticks of recent rounds, for leases; older rounds are forgotten (their echoes are too old to matter). */
const REMEMBERED_ROUNDS = 256;

export class LeaderReads {
  private waitingForTermCommit: LeaderRead[] = [];
  private confirming: ConfirmingRead[] = [];
  private readonly keys = new Set<string>();
  /** The last heartbeat round broadcast in this term (0: none yet). */
  private lastRound = 0;
  private readonly roundSentTicks = new Map<number, number>();
  /** A read joined a round that has not been broadcast yet. */
  private roundWanted = false;

  size(): number {
    return this.keys.size;
  }

  has(from: NodeId, context: string): boolean {
    return this.keys.has(readKey(from, context));
  }

  currentRound(): number {
    return this.lastRound;
  }

  wantsRound(): boolean {
    return this.roundWanted;
  }

  addWaitingForTermCommit(read: LeaderRead): void {
    this.track(read);
    this.waitingForTermCommit.push(read);
  }

  /** Reads admitted before the leader committed an entry of its term; they now get an index. */
  takeWaitingForTermCommit(): LeaderRead[] {
    const reads = this.waitingForTermCommit;
    this.waitingForTermCommit = [];
    for (const read of reads) {
      this.keys.delete(readKey(read.from, read.context));
    }
    return reads;
  }

  /** Admits a read at `index`; it is confirmed by the next round broadcast. */
  addConfirming(read: LeaderRead, index: number): void {
    this.track(read);
    this.confirming.push({ ...read, index, round: this.lastRound + 1 });
    this.roundWanted = true;
  }

  /** The context of the newest read waiting for a round (carried in heartbeats for traces), or null. */
  newestConfirmingContext(): string | null {
    return this.confirming[this.confirming.length - 1]?.context ?? null;
  }

  /** Starts a new heartbeat round sent at `nowTick`; returns its number. */
  startRound(nowTick: number): number {
    this.lastRound++;
    this.roundWanted = false;
    this.roundSentTicks.set(this.lastRound, nowTick);
    this.roundSentTicks.delete(this.lastRound - REMEMBERED_ROUNDS);
    return this.lastRound;
  }

  sentTickOf(round: number): number | undefined {
    return this.roundSentTicks.get(round);
  }

  /** Removes and returns the reads confirmed once a quorum echoed `round`. */
  releaseConfirmedUpTo(round: number): ConfirmingRead[] {
    let count = 0;
    while (count < this.confirming.length && (this.confirming[count] as ConfirmingRead).round <= round) {
      count++;
    }
    const released = this.confirming.splice(0, count);
    for (const read of released) {
      this.keys.delete(readKey(read.from, read.context));
    }
    return released;
  }

  /** Removes and returns the reads whose deadline passed. */
  takeExpired(nowTick: number): LeaderRead[] {
    const expired: LeaderRead[] = [];
    const keep = <T extends LeaderRead>(reads: T[]): T[] =>
      reads.filter((read) => {
        if (read.deadlineTick > nowTick) {
          return true;
        }
        expired.push(read);
        this.keys.delete(readKey(read.from, read.context));
        return false;
      });
    this.waitingForTermCommit = keep(this.waitingForTermCommit);
    this.confirming = keep(this.confirming);
    return expired;
  }

  /** Removes and returns every pending read (leadership lost), and starts over for a new term. */
  takeAll(): LeaderRead[] {
    const all = [...this.waitingForTermCommit, ...this.confirming];
    this.waitingForTermCommit = [];
    this.confirming = [];
    this.keys.clear();
    this.lastRound = 0;
    this.roundSentTicks.clear();
    this.roundWanted = false;
    return all;
  }

  private track(read: LeaderRead): void {
    const key = readKey(read.from, read.context);
    invariant(!this.keys.has(key), `read ${read.context} from ${read.from} is already pending`);
    this.keys.add(key);
  }
}

export interface ForwardedRead {
  readonly context: string;
  readonly leader: NodeId;
  readonly deadlineTick: number;
}

/** Reads a follower forwarded to its leader, by context. */
export class ForwardedReads {
  private readonly reads = new Map<string, ForwardedRead>();

  size(): number {
    return this.reads.size;
  }

  has(context: string): boolean {
    return this.reads.has(context);
  }

  add(read: ForwardedRead): void {
    invariant(!this.reads.has(read.context), `read ${read.context} is already forwarded`);
    this.reads.set(read.context, read);
  }

  /** The read with this context if it was forwarded to `leader`; removed. */
  take(context: string, leader: NodeId): ForwardedRead | undefined {
    const read = this.reads.get(context);
    if (read === undefined || read.leader !== leader) {
      return undefined;
    }
    this.reads.delete(context);
    return read;
  }

  takeExpired(nowTick: number): ForwardedRead[] {
    const expired = [...this.reads.values()].filter((read) => read.deadlineTick <= nowTick);
    for (const read of expired) {
      this.reads.delete(read.context);
    }
    return expired;
  }

  takeAll(): ForwardedRead[] {
    const all = [...this.reads.values()];
    this.reads.clear();
    return all;
  }
}

function readKey(from: NodeId, context: string): string {
  return `${from}\u0000${context}`;
}
