// Client requests: writes, reads at every level, waiting for a leader, leadership transfer and membership
// changes. Each one that waits on the log parks a bounded waiter with a deadline; the Ready loop wakes them.
import type { LogEntry, Membership, Ready, TransferAbortReason } from "../../replication/types";
import type { SqlRequest, Statement, StatementResult } from "../../shared/sql";
import type { BackupValue } from "../api";
import { sleep } from "../deadline";
import { RaftKeys } from "../storage-keys";
import { STRONG_READ_ID_PREFIX } from "../sql/state-machine";
import { utf8ByteLength } from "../sqlite/values";
import { KeyedWaiters, ThresholdWaiters } from "../waiters";
import { BackupStreams, dumpWithin, INLINE_ONLY_DUMP_MAX_CHARS } from "./backup-dump";
import { awaitWaiter, notLeaderError, outcomeUnknownError, proposalFailure } from "./errors";
import { nodeError, type NodeFailure } from "../node-failure";
import { recentContactTicks, startupQuietWindowMs } from "../timing";
import { LIMITS, type RuntimeCore } from "./types";

/** A log entry is one KV value, which the platform limits to 2 MB (bytes, UTF-8); leave room for the entry's envelope. */
export const MAX_ENTRY_BYTES = 1_900_000;

interface ApplyOutcome {
  readonly term: number;
  readonly results: readonly StatementResult[] | null;
}

/** A write (or membership change) waiting for its entry: what to answer when this node can no longer follow it. */
interface PendingWrite {
  readonly index: number;
  readonly term: number;
  /** Membership changes answer TIMEOUT ("may still complete"), writes OUTCOME_UNKNOWN. */
  readonly kind: "write" | "config";
}

export interface QueryOptions {
  readonly statements: readonly Statement[];
  readonly level: "none" | "weak" | "linearizable" | "strong";
  readonly freshnessMs?: number;
  readonly minAppliedIndex?: number;
  /** How long to wait for minAppliedIndex at most (default: until timeoutMs). */
  readonly minAppliedWaitMs?: number;
  readonly transaction: boolean;
  readonly timeoutMs: number;
}

export interface RequestAnswer {
  readonly results: readonly StatementResult[];
  readonly raftIndex: number;
}

export class ClientRequests {
  private readonly writes: KeyedWaiters<string, ApplyOutcome>;
  /** Every write waiting, by waiter key; and by log index, the keys waiting there (several terms after a truncation). */
  private readonly pendingWrites = new Map<string, PendingWrite>();
  private readonly pendingByIndex = new Map<number, Set<string>>();
  private readonly reads: KeyedWaiters<string, number>;
  private readonly applied: ThresholdWaiters;
  private readonly leaderKnown: ThresholdWaiters;
  /**
   * Unique to this runtime: a leader ignores a read whose (sender, context) is already pending and a follower takes
   * the first answer for a context, so contexts must never repeat across restarts of a node.
   */
  private readonly readContextPrefix: string;
  private readContextSeq = 0;
  /** The last index of the log when this node last became leader: its own term's first entry is at or below it. */
  private leaderTermStartIndex = 0;
  /** Leadership transfers this node gave up, and the last one: what a transferLeadership that times out says. */
  private transferAborts = 0;
  private lastTransferAbort: { readonly to: string; readonly reason: TransferAbortReason } | null = null;
  /** Large backups still being read by the worker: they hold their dump in memory until then. */
  private readonly backupStreams: BackupStreams;

  /** `runtimeId` is unique among the runtimes this node's storage has ever had (see NodeRuntime). */
  constructor(
    private readonly core: RuntimeCore,
    runtimeId: string,
  ) {
    const timers = core.deps.clock;
    this.writes = new KeyedWaiters<string, ApplyOutcome>({ what: "write", limit: LIMITS.maxWritesWaiting, timers });
    this.reads = new KeyedWaiters<string, number>({ what: "linearizable read", limit: LIMITS.maxReadsWaiting, timers });
    this.applied = new ThresholdWaiters({
      what: "wait for the applied index",
      limit: LIMITS.maxAppliedWaiters,
      timers,
    });
    this.leaderKnown = new ThresholdWaiters({ what: "wait for a leader", limit: LIMITS.maxLeaderWaiters, timers });
    this.readContextPrefix = `${core.identity.node}:${runtimeId}`;
    this.backupStreams = new BackupStreams(() => core.deps.clock.now());
  }

  // ---------------------------------------------------------------------------------------------------------
  // What the Ready loop tells the waiters

  /**
   * An entry was applied with these results: wake every write waiting on its index. The one proposed in the entry's
   * term gets the results; any other was proposed in a term whose entry was truncated, and learns it was lost.
   */
  entryApplied(entry: LogEntry, results: readonly StatementResult[] | null): void {
    const keys = this.pendingByIndex.get(entry.index);
    if (keys === undefined) {
      return;
    }
    this.pendingByIndex.delete(entry.index);
    for (const key of keys) {
      this.pendingWrites.delete(key);
      this.writes.resolve(key, { term: entry.term, results });
    }
  }

  /**
   * On every tick: a leader that has not heard from a majority for most of an election timeout cannot commit what it
   * holds; answer its pending writes now (outcome unknown) so their clients retry on the majority's side, rather
   * than when CheckQuorum finally steps it down.
   */
  ticked(): void {
    if (this.core.bugs.pendingWritesWaitAfterStepDown || this.pendingWrites.size === 0) {
      return;
    }
    if (this.core.raft.status().role !== "leader") {
      return;
    }
    const heard = this.quorumHeard();
    if (!heard.ok) {
      this.rejectPendingWrites(`${this.core.identity.node} ${heard.why}`);
    }
  }

  /** This node became leader: weak reads wait until it applied the entries up to here (its term's no-op among them). */
  becameLeader(lastIndex: number): void {
    this.leaderTermStartIndex = lastIndex;
  }

  /**
   * This node stopped leading (CheckQuorum, a newer term, a transfer): the writes it proposed may still commit under
   * the next leader, or may be lost. Answer them now so their clients resend (same request id) to the new leader.
   */
  leadershipLost(reason: string): void {
    if (this.core.bugs.pendingWritesWaitAfterStepDown) {
      return;
    }
    this.rejectPendingWrites(`${this.core.identity.node} stopped leading (${reason}) before the write committed`);
  }

  /** The core gave a leadership transfer up (transferLeadership starts it again while its deadline allows). */
  transferAborted(to: string, reason: TransferAbortReason): void {
    this.transferAborts++;
    this.lastTransferAbort = { to, reason };
  }

  /** Fails every write still waiting with "outcome unknown" (membership changes with TIMEOUT: they may still complete). */
  rejectPendingWrites(what: string): void {
    const leader = this.core.raft.status().leader;
    for (const [key, pending] of [...this.pendingWrites]) {
      this.forgetPendingWrite(key, pending);
      this.writes.reject(
        key,
        pending.kind === "config"
          ? nodeError(
              "TIMEOUT",
              `${what}; the membership change at index ${pending.index} may still complete: check the cluster status`,
              { leader, retryable: true },
            )
          : outcomeUnknownError(`${what} (proposed at index ${pending.index}, term ${pending.term})`, leader),
      );
    }
  }

  /** Fails every read waiting for its read index (the runtime stops: no round will confirm them). */
  rejectPendingReads(failure: NodeFailure): void {
    this.reads.rejectAll(failure);
  }

  readsConfirmed(ready: Pick<Ready, "readStates" | "failedReads">): void {
    for (const read of ready.readStates) {
      this.reads.resolve(read.context, read.index);
    }
    for (const failed of ready.failedReads) {
      const leader = this.core.raft.status().leader;
      this.reads.reject(
        failed.context,
        failed.error.code === "NOT_LEADER"
          ? notLeaderError(failed.error.message, leader)
          : nodeError("NO_LEADER", failed.error.message, { leader }),
      );
    }
  }

  /** After a Ready loop: wake reads waiting for the applied index and requests waiting for a leader. */
  readyHandled(): void {
    this.applied.advance(this.core.sm.appliedIndex());
    const known = this.core.bugs.cutOffNodeWaits ? this.core.raft.status().leader !== null : this.liveLeader() !== null;
    if (known) {
      this.leaderKnown.advance(1);
    }
  }

  /**
   * The runtime stops: the writes it proposed may still be applied (the log is persisted and other nodes carry on),
   * so they are answered "outcome unknown"; reads are simply not served (`readFailure`).
   */
  rejectAll(what: string, readFailure: NodeFailure): void {
    if (this.core.bugs.stoppedWritesAnsweredNotMember) {
      this.pendingWrites.clear();
      this.pendingByIndex.clear();
      this.writes.rejectAll(readFailure);
    } else {
      this.rejectPendingWrites(what);
    }
    this.reads.rejectAll(readFailure);
  }

  /**
   * A stopped runtime (removed, or discarded after an error) answers nothing from its frozen state. `cause`: what
   * stopped it, when this call saw it happen (the answer and the node's log then say why).
   */
  assertServing(cause?: unknown): void {
    if (!this.core.isStopped() || this.core.bugs.brokenRuntimeKeepsServing) {
      return;
    }
    const why =
      cause === undefined ? "" : ` (${cause instanceof Error ? `${cause.name}: ${cause.message}` : String(cause)})`;
    throw nodeError("NO_LEADER", `${this.core.identity.node} is restarting${why}; retry shortly`, {
      leader: null,
      retryable: true,
    });
  }

  /**
   * The start of every client call: refuse when stopped, then catch the clock up. The catch-up runs the Ready loop,
   * and a storage write there that fails stops the runtime before anything of the call ran: answered as any call to
   * a stopped runtime (retryable), not as the node's internal error.
   */
  beginCall(): void {
    this.assertServing();
    try {
      this.core.advanceClock();
    } catch (err) {
      this.assertServing(err);
      throw err;
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Writes

  /** Validates, proposes and waits until the entry is applied (or the deadline passes). */
  async execute(options: { request: SqlRequest; timeoutMs: number }): Promise<RequestAnswer> {
    const { raft, sm } = this.core;
    this.beginCall();
    this.assertLeader();
    this.assertConsistent("write");
    this.assertQuorumHeard();
    this.touchStorage();
    const reused = sm.reusedIdRefusal(options.request);
    if (reused !== null) {
      throw nodeError("IDEMPOTENCY_KEY_REUSED", reused, { retryable: false });
    }
    const remembered = sm.rememberedResults(options.request.id);
    if (remembered !== null) {
      return { results: remembered, raftIndex: sm.appliedIndex() };
    }
    const prepared = sm.prepareWrite(options.request, { nowMs: this.core.deps.clock.now() });
    if (!prepared.ok) {
      throw nodeError("INVALID_REQUEST", prepared.error, { retryable: false });
    }
    this.assertEntryFits(prepared.value);
    // Refuse before proposing: once proposed, a refusal would hide a write that may still commit.
    if (this.writes.size >= LIMITS.maxWritesWaiting) {
      throw nodeError("QUEUE_FULL", `${this.writes.size} writes are already waiting on this leader; retry later`);
    }
    const proposal = raft.propose(prepared.value);
    if (!proposal.ok) {
      throw proposalFailure(proposal.error, raft.status());
    }
    return this.awaitApplied({
      index: proposal.index,
      term: proposal.term,
      timeoutMs: options.timeoutMs,
      requestId: options.request.id,
    });
  }

  /** The log stores bytes: a request's UTF-8 encoding must fit one entry (one KV value). */
  private assertEntryFits(encoded: string): void {
    const size = this.core.bugs.entrySizeCountsChars ? encoded.length : utf8ByteLength(encoded);
    if (size > MAX_ENTRY_BYTES) {
      throw nodeError(
        "INVALID_REQUEST",
        `the request encodes to ${size} bytes, above the ${MAX_ENTRY_BYTES} a log entry may hold`,
        { retryable: false },
      );
    }
  }

  /**
   * A leader that has not heard from a majority of voters for three quarters of an election timeout is probably cut off: a
   * proposal would not commit, so refuse it (retryable) and let the client find the majority's leader.
   */
  private assertQuorumHeard(): void {
    if (this.core.bugs.leaderAcceptsWithoutQuorum) {
      return;
    }
    const heard = this.quorumHeard();
    if (!heard.ok) {
      throw nodeError("NO_LEADER", `${this.core.identity.node} ${heard.why}`, { leader: null, retryable: true });
    }
  }

  /** Ticks in "a while" (timing.ts, recentContactTicks). */
  private recentTicks(): number {
    return recentContactTicks(this.core.identity.cluster);
  }

  /** True for a window after this node caught up several ticks at once: its own stall explains any silence. */
  private recentlyStalled(windowMs: number): boolean {
    const stall = this.core.lastStallAtMs();
    return stall !== null && this.core.deps.clock.now() - stall <= windowMs;
  }

  /** On the leader: whether a majority of voters answered within the last recentTicks(). */
  private quorumHeard(): { ok: true } | { ok: false; why: string } {
    const { raft, identity, tickIntervalMs } = this.core;
    const status = raft.status();
    const windowTicks = this.recentTicks();
    if (this.recentlyStalled(windowTicks * tickIntervalMs)) {
      return { ok: true };
    }
    const heard = status.membership.voters.filter((voter) => {
      if (voter === identity.node) {
        return true;
      }
      const replica = status.replicas.find((r) => r.id === voter);
      return replica !== undefined && replica.ticksSinceContact <= windowTicks;
    }).length;
    const majority = Math.floor(status.membership.voters.length / 2) + 1;
    if (heard >= majority) {
      return { ok: true };
    }
    return {
      ok: false,
      why: `leads term ${status.term} but heard from only ${heard} of ${status.membership.voters.length} voters in the last ${windowTicks * tickIntervalMs} ms; it may be cut off from the majority`,
    };
  }

  /**
   * A follower forwards a linearizable read to its leader: only worth it while that leader is heard from. If it has
   * gone quiet, the read would wait for its whole deadline; say so now so the caller can try another node.
   */
  private assertLeaderHeardLately(): void {
    if (this.core.bugs.cutOffNodeWaits) {
      return;
    }
    const status = this.core.raft.status();
    if (status.leader === null || this.liveLeader() !== null) {
      return;
    }
    const last = this.core.lastLeaderContactAtMs();
    const silence =
      last === null
        ? "has not heard from it since it started"
        : `has not heard from it for ${this.core.deps.clock.now() - last} ms`;
    throw nodeError(
      "NO_LEADER",
      `${this.core.identity.node} follows ${status.leader} but ${silence}: it cannot confirm a read index; try another node`,
      { leader: null, retryable: true },
    );
  }

  /**
   * A node that has received nothing from any peer for two election timeouts (and has run that long) is cut off: a
   * live majority would have heard from its leader or campaigned by then (every campaign reaches every voter). It
   * will not learn of a leader or confirm a read in time, so say so at once and let the caller try another node.
   */
  private assertNotCutOff(what: string): void {
    if (this.core.bugs.cutOffNodeWaits) {
      return;
    }
    const { identity } = this.core;
    const nowMs = this.core.deps.clock.now();
    const membership = this.core.raft.status().membership;
    const windowMs = startupQuietWindowMs(identity.cluster);
    if (nowMs - this.core.startedAtMs < windowMs || membership.voters.length + membership.learners.length <= 1) {
      return;
    }
    if (this.recentlyStalled(windowMs)) {
      return;
    }
    const last = this.core.lastPeerMessageAtMs();
    if (last !== null && nowMs - last <= windowMs) {
      return;
    }
    const heard = last === null ? "never heard from any other node" : `heard from no other node for ${nowMs - last} ms`;
    throw nodeError("NO_LEADER", `${identity.node} ${heard}: it is cut off, so ${what}; try another node`, {
      leader: null,
      retryable: true,
    });
  }

  private writeKey(index: number, term: number): string {
    return this.core.bugs.writeWaitersKeyedByIndex ? String(index) : `${index}@${term}`;
  }

  private forgetPendingWrite(key: string, pending: PendingWrite): void {
    this.pendingWrites.delete(key);
    const keys = this.pendingByIndex.get(pending.index);
    keys?.delete(key);
    if (keys !== undefined && keys.size === 0) {
      this.pendingByIndex.delete(pending.index);
    }
  }

  /** Waits for the entry proposed at (index, term) to be applied; a different term there means it was lost. */
  private async awaitApplied(options: {
    index: number;
    term: number;
    timeoutMs: number;
    requestId?: string;
    kind?: "write" | "config";
  }): Promise<RequestAnswer> {
    const key = this.writeKey(options.index, options.term);
    const pending: PendingWrite = { index: options.index, term: options.term, kind: options.kind ?? "write" };
    const waiting = this.writes.wait(key, options.timeoutMs);
    // Registered only when the waiter was: a full queue (or, with the index-only keys of the old bug, a second
    // write at the same index) rejects at once.
    if (this.writes.has(key) && !this.pendingWrites.has(key)) {
      this.pendingWrites.set(key, pending);
      const keys = this.pendingByIndex.get(options.index) ?? new Set<string>();
      keys.add(key);
      this.pendingByIndex.set(options.index, keys);
    }
    try {
      // Group commit: now, or with the next round when one is in flight (see NodeRuntime.requestReady).
      this.core.requestReady();
    } catch (err) {
      // The entry is in the log (proposed, maybe persisted and sent): it may commit without us.
      waiting.catch(() => undefined);
      if (this.core.bugs.readyFailureAnsweredInternal) {
        throw err;
      }
      throw outcomeUnknownError(
        `${this.core.identity.node} failed while logging the write at index ${options.index} (${err instanceof Error ? err.message : String(err)})`,
        null,
      );
    }
    let outcome: ApplyOutcome;
    try {
      outcome = await awaitWaiter(waiting, () =>
        nodeError(
          "TIMEOUT",
          `the write was proposed at index ${options.index} but not applied within ${options.timeoutMs} ms; its outcome is unknown (retrying with the same request id is safe)`,
          { retryable: true },
        ),
      );
    } catch (err) {
      if (this.pendingWrites.get(key) === pending) {
        this.forgetPendingWrite(key, pending);
      }
      throw err;
    }
    if (outcome.term !== options.term) {
      throw nodeError(
        "NOT_LEADER",
        `leadership changed before index ${options.index} committed: the write was not applied; retry it`,
        { leader: this.core.raft.status().leader },
      );
    }
    const results =
      outcome.results ??
      (options.requestId !== undefined ? this.core.sm.rememberedResults(options.requestId) : null) ??
      [];
    return { results, raftIndex: options.index };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Reads

  async query(options: QueryOptions): Promise<RequestAnswer> {
    const { sm } = this.core;
    this.beginCall();
    this.assertConsistent("read");
    const prepared = sm.prepareRead(options.statements);
    if (!prepared.ok) {
      throw nodeError("INVALID_REQUEST", prepared.error, { retryable: false });
    }
    const deadlineAtMs = this.core.deps.clock.now() + options.timeoutMs;
    if (options.level === "strong") {
      const prefix = this.core.bugs.strongReadsRemembered ? "read-" : STRONG_READ_ID_PREFIX;
      return this.execute({
        request: {
          id: `${prefix}${this.core.identity.node}-${randomId(this.core.random)}`,
          statements: prepared.value,
          // Reads only: every statement answers, as at the other levels (the transaction would stop at a failure).
          transaction: false,
        },
        timeoutMs: options.timeoutMs,
      });
    }
    if (options.level === "weak") {
      this.assertLeader();
      this.touchStorage();
      if (!this.core.bugs.weakReadBeforeOwnTermApplied) {
        // A new leader may not have applied what the previous one acknowledged until its own term's entry applies.
        const term = this.core.raft.status().term;
        await this.waitApplied(this.leaderTermStartIndex, deadlineAtMs);
        if (this.core.raft.status().term !== term) {
          this.assertLeader();
        }
      }
    }
    if (options.level === "linearizable") {
      const readIndex = await this.confirmReadIndex(options.timeoutMs);
      await this.waitApplied(readIndex, deadlineAtMs);
    }
    if (options.level === "none" && options.freshnessMs !== undefined) {
      this.assertFresh(options.freshnessMs);
    }
    if (options.minAppliedIndex !== undefined) {
      const waitMs = options.minAppliedWaitMs ?? options.timeoutMs;
      await this.waitApplied(options.minAppliedIndex, Math.min(deadlineAtMs, this.core.deps.clock.now() + waitMs));
    }
    return { results: sm.query(prepared.value, { transaction: options.transaction }), raftIndex: sm.appliedIndex() };
  }

  private async confirmReadIndex(timeoutMs: number): Promise<number> {
    const { raft } = this.core;
    if (raft.status().role === "leader") {
      this.assertQuorumHeard();
    } else {
      this.assertLeaderHeardLately();
    }
    const context = this.core.bugs.readContextRestartsAtZero
      ? `${this.core.identity.node}:${this.core.ticks()}:${++this.readContextSeq}`
      : `${this.readContextPrefix}:${++this.readContextSeq}`;
    const started = raft.requestRead(context);
    if (!started.ok) {
      throw proposalFailure(started.error, raft.status());
    }
    const waiting = this.reads.wait(context, timeoutMs);
    try {
      // Reads that arrive while a round is in flight share the next confirmation round.
      this.core.requestReady();
    } catch (err) {
      // Handling the Ready failed (a storage error writing what it or an earlier one left, such as a leader's held
      // entries): the runtime broke and failed this read with the others (NodeRuntime.markBroken), and nothing else
      // awaits `waiting`. The read was not served; the caller may retry at once.
      waiting.catch(() => undefined);
      throw nodeError(
        "NO_LEADER",
        `${this.core.identity.node} failed while confirming a read (${err instanceof Error ? err.message : String(err)}); retry shortly`,
        { leader: null, retryable: true },
      );
    }
    return awaitWaiter(waiting, () =>
      nodeError("TIMEOUT", `the read index was not confirmed within ${timeoutMs} ms (no quorum reachable?)`, {
        retryable: true,
      }),
    );
  }

  private async waitApplied(index: number, deadlineAtMs: number): Promise<void> {
    const { sm } = this.core;
    const remainingMs = deadlineAtMs - this.core.deps.clock.now();
    await awaitWaiter(this.applied.wait(index, sm.appliedIndex(), Math.max(1, remainingMs)), () =>
      nodeError(
        "STALE",
        `this node has applied index ${sm.appliedIndex()}, not yet ${index}, and the deadline passed`,
        { retryable: true },
      ),
    );
  }

  private assertFresh(freshnessMs: number): void {
    if (this.core.raft.status().role === "leader") {
      return;
    }
    const last = this.core.lastLeaderContactAtMs();
    const nowMs = this.core.deps.clock.now();
    if (last === null || nowMs - last > freshnessMs) {
      const age = last === null ? "never" : `${nowMs - last} ms ago`;
      throw nodeError(
        "STALE",
        `this node last heard from a leader ${age}, beyond the requested freshness of ${freshnessMs} ms`,
        { retryable: true },
      );
    }
  }

  /**
   * Leader only: a SQL dump holding every write acknowledged before the call (a read index confirms leadership and
   * the commit index first). A follower answers NOT_LEADER naming the leader; a dump past maxDumpBytes, TOO_LARGE.
   */
  async backup(options: { timeoutMs: number; maxDumpBytes: number; mayStream: boolean }): Promise<BackupValue> {
    const { sm } = this.core;
    this.beginCall();
    this.assertConsistent("read");
    if (!this.core.bugs.backupFromAnyNode) {
      this.assertLeader();
      this.touchStorage();
      const deadlineAtMs = this.core.deps.clock.now() + options.timeoutMs;
      const readIndex = await this.confirmReadIndex(options.timeoutMs);
      await this.waitApplied(readIndex, deadlineAtMs);
    }
    this.backupStreams.assertRoomFor(options.maxDumpBytes);
    // Built in one synchronous step: the dump is the state at one applied index, whatever is applied after.
    const sql = dumpWithin((dumpOptions) => sm.dumpSql(dumpOptions), options.maxDumpBytes);
    if (!options.mayStream) {
      if (sql.length > INLINE_ONLY_DUMP_MAX_CHARS) {
        throw nodeError(
          "TOO_LARGE",
          `the database's SQL dump is larger than one answer holds (${sql.length} characters)`,
          {
            retryable: false,
          },
        );
      }
      return { sql, raftIndex: sm.appliedIndex() };
    }
    return this.backupStreams.value(sql, sm.appliedIndex());
  }

  // ---------------------------------------------------------------------------------------------------------
  // Leadership and membership

  async waitForLeader(timeoutMs: number): Promise<{ leader: string; term: number }> {
    this.beginCall();
    if (this.core.bugs.cutOffNodeWaits) {
      return this.waitForAnyLeader(timeoutMs);
    }
    const live = this.liveLeader();
    if (live !== null) {
      return live;
    }
    const status = this.core.raft.status();
    if (status.leader === this.core.identity.node) {
      const heard = this.quorumHeard();
      if (!heard.ok) {
        throw nodeError("NO_LEADER", `${this.core.identity.node} ${heard.why}; try another node`, {
          leader: null,
          retryable: true,
        });
      }
    }
    this.assertNotCutOff("it cannot learn of a leader");
    // Woken by the Ready loop once a leader is heard from (readyHandled), or failed at the deadline.
    await awaitWaiter(this.leaderKnown.wait(1, 0, timeoutMs), () =>
      nodeError("NO_LEADER", `no leader was elected within ${timeoutMs} ms (is a quorum of nodes reachable?)`, {
        leader: null,
        retryable: true,
      }),
    );
    const found = this.liveLeader();
    if (found === null) {
      throw nodeError("NO_LEADER", "the leader was lost again while waiting", { leader: null, retryable: true });
    }
    return found;
  }

  /**
   * The leader as far as this node can vouch for it: itself while a majority answers it, or the leader it heard
   * from within recentTicks(). A leader last heard long ago may be cut off or deposed: naming it would
   * send the caller to a node that cannot commit.
   */
  private liveLeader(): { leader: string; term: number } | null {
    const status = this.core.raft.status();
    if (status.leader === null) {
      return null;
    }
    if (status.leader === this.core.identity.node) {
      return this.quorumHeard().ok ? { leader: status.leader, term: status.term } : null;
    }
    const last = this.core.lastLeaderContactAtMs();
    const windowMs = this.recentTicks() * this.core.tickIntervalMs;
    const fresh = last !== null && (this.core.deps.clock.now() - last <= windowMs || this.recentlyStalled(windowMs));
    return fresh ? { leader: status.leader, term: status.term } : null;
  }

  /** The old wait (bug cutOffNodeWaits): any leader the core names, however long ago it was heard. */
  private async waitForAnyLeader(timeoutMs: number): Promise<{ leader: string; term: number }> {
    const { raft } = this.core;
    const current = raft.status();
    if (current.leader !== null) {
      return { leader: current.leader, term: current.term };
    }
    await awaitWaiter(this.leaderKnown.wait(1, 0, timeoutMs), () =>
      nodeError("NO_LEADER", `no leader was elected within ${timeoutMs} ms (is a quorum of nodes reachable?)`, {
        retryable: true,
      }),
    );
    const status = raft.status();
    if (status.leader === null) {
      throw nodeError("NO_LEADER", "the leader was lost again while waiting", { retryable: true });
    }
    return { leader: status.leader, term: status.term };
  }

  /** Leader only: moves leadership away and waits until another node leads. */
  async transferLeadership(options: { to?: string; timeoutMs: number }): Promise<{ leader: string; term: number }> {
    const { raft, identity } = this.core;
    this.beginCall();
    this.assertLeader();
    if (options.to === identity.node) {
      return { leader: identity.node, term: raft.status().term };
    }
    let attempts = 0;
    const startTransfer = (): void => {
      const started = options.to === undefined ? raft.stepDown() : raft.transferLeadership(options.to);
      if (!started.ok) {
        throw proposalFailure(started.error, raft.status());
      }
      attempts++;
      this.core.processReady();
    };
    startTransfer();
    // Counted from after our first start: a transfer it replaced is given up by that start (superseded), and the
    // answer must not describe another request's transfer.
    const abortsBefore = this.transferAborts;
    const deadlineAtMs = this.core.deps.clock.now() + options.timeoutMs;
    const oldTerm = raft.status().term;
    // Leadership moves through messages this node handles in other events; poll our own view, bounded.
    while (this.core.deps.clock.now() < deadlineAtMs) {
      const status = raft.status();
      if (status.term > oldTerm && status.leader !== null && status.leader !== identity.node) {
        return { leader: status.leader, term: status.term };
      }
      if (status.role === "leader" && status.term === oldTerm && status.transferee === null) {
        // The core gave the transfer up (the target did not take over within an election timeout: it was cut off,
        // or behind): nothing changed, so start it again while the deadline allows rather than wait it out.
        startTransfer();
      }
      await this.waitOneTick(deadlineAtMs);
      if (this.core.isStopped()) {
        throw nodeError("NOT_MEMBER", "this node stopped while leadership was moving", { retryable: true });
      }
      this.core.advanceClock();
    }
    const status = raft.status();
    const lastAbort = this.transferAborts > abortsBefore ? this.lastTransferAbort : null;
    const why =
      lastAbort === null
        ? `${status.transferee ?? options.to ?? "the target"} has not taken over yet`
        : describeTransferAbort(lastAbort);
    const tries = `${attempts} ${attempts === 1 ? "attempt" : "attempts"}`;
    throw nodeError(
      "TIMEOUT",
      `leadership did not move within ${options.timeoutMs} ms: ${why}, ${tries} (current leader: ${status.leader ?? "none"})`,
      { leader: status.leader, retryable: true },
    );
  }

  /**
   * Leader only: proposes a membership change and waits until it is applied; answers the membership then, and the
   * change's config entry (a removed node's leave notice names it).
   */
  async changeMembership(options: {
    change: { kind: "addLearner" | "remove" | "promote"; node: string };
    beforePropose?: () => void;
    timeoutMs: number;
  }): Promise<{ readonly membership: Membership; readonly index: number }> {
    const { raft } = this.core;
    this.beginCall();
    this.assertLeader();
    this.touchStorage();
    options.beforePropose?.();
    const proposal = raft.proposeConfigChange(options.change);
    if (!proposal.ok) {
      throw proposalFailure(proposal.error, raft.status());
    }
    await this.awaitApplied({
      index: proposal.index,
      term: proposal.term,
      timeoutMs: options.timeoutMs,
      kind: "config",
    });
    return { membership: raft.status().membership, index: proposal.index };
  }

  // ---------------------------------------------------------------------------------------------------------

  private assertLeader(): void {
    const { raft, identity } = this.core;
    const status = raft.status();
    if (status.removed && status.role !== "leader") {
      throw nodeError("NOT_MEMBER", `${identity.node} is no longer a member of cluster ${identity.cluster.name}`, {
        retryable: false,
      });
    }
    if (status.role !== "leader") {
      // Name the leader only while it is heard from: a stale hint sends the caller to a cut-off or deposed node.
      const hint = this.core.bugs.cutOffNodeWaits ? status.leader : (this.liveLeader()?.leader ?? null);
      throw notLeaderError(
        hint === null
          ? `${identity.node} is not the leader and no leader is known${status.leader === null ? "" : ` (${status.leader} has not been heard from lately)`} (election under way?)`
          : `${identity.node} is not the leader; the leader is ${hint}`,
        hint,
      );
    }
  }

  /**
   * A node the consistency monitor found DIVERGED answers nothing from its database: reads go to another node (STALE
   * names the leader), writes wait for the consistent node it hands leadership to.
   */
  private assertConsistent(what: "read" | "write"): void {
    const refusal = this.core.readRefusal();
    if (refusal === null) {
      return;
    }
    if (what === "read") {
      const leader = this.liveLeader()?.leader ?? null;
      throw nodeError("STALE", refusal, {
        leader: leader === this.core.identity.node ? null : leader,
        retryable: true,
      });
    }
    throw nodeError("NO_LEADER", `${refusal}; it hands leadership to a consistent node`, {
      leader: null,
      retryable: true,
    });
  }

  /** A stale instance that no longer owns the object fails on its next storage access: touch it before leading. */
  private touchStorage(): void {
    this.core.deps.kv.get(RaftKeys.hardState);
  }

  /** One tick, but never past `deadlineAtMs`. */
  private waitOneTick(deadlineAtMs: number): Promise<void> {
    const waitMs = Math.max(1, Math.min(this.core.tickIntervalMs, deadlineAtMs - this.core.deps.clock.now()));
    return sleep(waitMs, this.core.deps.clock);
  }
}

/** Why the core gave a leadership transfer up, in words. */
function describeTransferAbort(abort: { readonly to: string; readonly reason: TransferAbortReason }): string {
  switch (abort.reason) {
    case "deadline":
      return `${abort.to} did not take over within an election timeout`;
    case "notVoter":
      return `${abort.to} is no longer a voter`;
    case "superseded":
      return `the transfer to ${abort.to} was replaced by a transfer to another node`;
    case "cancelled":
      return `the transfer to ${abort.to} was cancelled (leadership was asked for the leader itself)`;
    case "lostLeadership":
      return `the leader stepped down before ${abort.to} took over`;
  }
}

/** 64 bits from the runtime's seeded random source (the seam keeps the simulator deterministic). */
function randomId(random: { nextUint32(): number }): string {
  return random.nextUint32().toString(16).padStart(8, "0") + random.nextUint32().toString(16).padStart(8, "0");
}
