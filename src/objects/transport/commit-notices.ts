// Commit notices: appends without entries, which a leader sends a follower to tell it the new commit index (or to
// probe it). The core makes them in the same Ready as the commit, and the shell sends a Ready's messages before it
// applies and answers the client: sent at once, their RPCs and the followers' handling of them (one isolate runs the
// worker and every node under `wrangler dev`) sit in front of the client's answer. At one client they were two of
// the about five peer calls per write.
//
// So the shell holds a notice for a while instead (the core stays as it is): it goes with the next message to that
// peer, or alone when `holdMs` passes; an append with entries in the same term that carries at least its commit makes
// it redundant, and it is dropped. That is only a delay (or a loss) the network could have caused, which Raft
// tolerates; heartbeats carry the commit index too. Bounded: one held notice per peer (a newer one replaces it), each
// for at most `holdMs`.
import type { AppendEntries, Message } from "../../replication/types";
import type { Timers } from "../deadline";

export function isCommitNotice(message: Message): message is AppendEntries {
  return message.type === "append" && message.entries.length === 0;
}

export interface CommitNoticeOptions {
  /** How long a notice waits for another message to the same peer; 0 sends every notice at once (no holding). */
  readonly holdMs: number;
  readonly timers: Timers;
  /** Sends a notice whose time ran out, alone. */
  readonly send: (peer: string, messages: readonly Message[]) => void;
}

interface HeldNotice {
  readonly notice: AppendEntries;
  readonly cancel: () => void;
}

export class CommitNotices {
  private readonly held = new Map<string, HeldNotice>();
  /** False once sendAtOnce() ran: every notice then goes out as the core made it. */
  private holding = true;

  constructor(private readonly options: CommitNoticeOptions) {
    if (!(options.holdMs >= 0)) {
      throw new RangeError(`holdMs must be >= 0, got ${options.holdMs}`);
    }
  }

  /**
   * The messages to send `peer` now, in order, for one batch the core made: a batch of notices only is held (its
   * newest notice); any other batch takes the held notice along, first, except where an append in the batch makes
   * a notice redundant.
   */
  route(peer: string, messages: readonly Message[]): readonly Message[] {
    if (this.options.holdMs === 0 || !this.holding) {
      return messages;
    }
    const previous = this.take(peer);
    let newestNotice: AppendEntries | null = null;
    let othersCount = 0;
    for (const message of messages) {
      if (isCommitNotice(message)) {
        newestNotice = message;
      } else {
        othersCount++;
      }
    }
    if (othersCount === 0) {
      const notice = newestNotice ?? previous;
      if (notice !== null) {
        this.hold(peer, notice);
      }
      return [];
    }
    if (previous === null && newestNotice === null) {
      return messages;
    }
    const outgoing: Message[] = [];
    if (previous !== null && !madeRedundant(previous, messages)) {
      outgoing.push(previous);
    }
    for (const message of messages) {
      if (!isCommitNotice(message) || !madeRedundant(message, messages)) {
        outgoing.push(message);
      }
    }
    return outgoing;
  }

  /** Notices held right now (at most one per peer). */
  get heldCount(): number {
    return this.held.size;
  }

  /** The peer left the configuration (or its link closed): its held notice goes nowhere. */
  forget(peer: string): void {
    this.take(peer);
  }

  /**
   * From now on holds nothing, and sends what it holds now: no timer stays pending (a test's eviction waits for an
   * object's pending work to drain, see NodeHost.tickByAlarmOnly).
   */
  sendAtOnce(): void {
    this.holding = false;
    for (const peer of [...this.held.keys()]) {
      const notice = this.take(peer);
      if (notice !== null) {
        this.options.send(peer, [notice]);
      }
    }
  }

  /** Drops every held notice and its timer (the node stops). */
  clear(): void {
    for (const peer of [...this.held.keys()]) {
      this.take(peer);
    }
  }

  private hold(peer: string, notice: AppendEntries): void {
    const cancel = this.options.timers.schedule(() => {
      if (this.held.get(peer)?.notice !== notice) {
        return;
      }
      this.held.delete(peer);
      this.options.send(peer, [notice]);
    }, this.options.holdMs);
    this.held.set(peer, { notice, cancel });
  }

  private take(peer: string): AppendEntries | null {
    const held = this.held.get(peer);
    if (held === undefined) {
      return null;
    }
    this.held.delete(peer);
    held.cancel();
    return held.notice;
  }
}

/** An append with entries, in the notice's term, that tells the follower at least the notice's commit index. */
function madeRedundant(notice: AppendEntries, messages: readonly Message[]): boolean {
  return messages.some(
    (message) =>
      message.type === "append" &&
      message.entries.length > 0 &&
      message.term === notice.term &&
      message.commit >= notice.commit,
  );
}
