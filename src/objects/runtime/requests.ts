// Client requests: writes, reads at every level, waiting for a leader, leadership transfer and membership
// changes. Each one that waits on the log parks a bounded waiter with a deadline; the Ready loop wakes them.
import type { LogEntry, Membership, Ready } from "../../replication/types";
import type { SqlRequest, Statement, StatementResult } from "../../shared/sql";
import { sleepMs } from "../transport/index";
import { KeyedWaiters, ThresholdWaiters } from "../waiters";
import { awaitWaiter, nodeError, notLeaderError, proposalFailure, type NodeFailure } from "./errors";
import { LIMITS, type RuntimeCore } from "./types";

/** A log entry is one KV value, which the platform limits to 2 MB; JSON strings count about one byte a character. */
const MAX_ENTRY_CHARS = 1_900_000;

interface ApplyOutcome {
  readonly term: number;
  readonly results: readonly StatementResult[] | null;
}

export interface QueryOptions {
  readonly statements: readonly Statement[];
  readonly level: "none" | "weak" | "linearizable" | "strong";
  readonly freshnessMs?: number;
  readonly minAppliedIndex?: number;
  readonly transaction: boolean;
  readonly timeoutMs: number;
}

export interface RequestAnswer {
  readonly results: readonly StatementResult[];
  readonly raftIndex: number;
}

export class ClientRequests {
  private readonly writes: KeyedWaiters<number, ApplyOutcome>;
  private readonly proposedTerms = new Map<number, number>();
  private readonly reads: KeyedWaiters<string, number>;
  private readonly applied: ThresholdWaiters;
  private readonly leaderKnown: ThresholdWaiters;
  private readContextSeq = 0;

  constructor(private readonly core: RuntimeCore) {
    const timers = core.deps.clock;
    this.writes = new KeyedWaiters<number, ApplyOutcome>({ what: "write", limit: LIMITS.maxWritesWaiting, timers });
    this.reads = new KeyedWaiters<string, number>({ what: "linearizable read", limit: LIMITS.maxReadsWaiting, timers });
    this.applied = new ThresholdWaiters({ what: "wait for the applied index", limit: LIMITS.maxAppliedWaiters, timers });
    this.leaderKnown = new ThresholdWaiters({ what: "wait for a leader", limit: LIMITS.maxLeaderWaiters, timers });
  }

  // ---------------------------------------------------------------------------------------------------------
  // What the Ready loop tells the waiters

  /** An entry was applied with these results: wake the write waiting on its index. */
  entryApplied(entry: LogEntry, results: readonly StatementResult[] | null): void {
    const proposedTerm = this.proposedTerms.get(entry.index);
    if (proposedTerm === undefined) return;
    this.proposedTerms.delete(entry.index);
    this.writes.resolve(entry.index, { term: entry.term, results });
  }

  readsConfirmed(ready: Pick<Ready, "readStates" | "failedReads">): void {
    for (const read of ready.readStates) this.reads.resolve(read.context, read.index);
    for (const failed of ready.failedReads) {
      const leader = this.core.raft.status().leader;
      this.reads.reject(failed.context, failed.error.code === "NOT_LEADER" ? notLeaderError(failed.error.message, leader) : nodeError("NO_LEADER", failed.error.message, { leader }));
    }
  }

  /** After a Ready loop: wake reads waiting for the applied index and requests waiting for a leader. */
  readyHandled(): void {
    this.applied.advance(this.core.sm.appliedIndex());
    if (this.core.raft.status().leader !== null) this.leaderKnown.advance(1);
  }

  /** The runtime stops: every request parked on the log fails with `failure`. */
  rejectAll(failure: NodeFailure): void {
    this.writes.rejectAll(failure);
    this.reads.rejectAll(failure);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Writes

  /** Validates, proposes and waits until the entry is applied (or the deadline passes). */
  async execute(options: { request: SqlRequest; timeoutMs: number }): Promise<RequestAnswer> {
    const { raft, sm } = this.core;
    this.core.advanceClock();
    this.assertLeader();
    this.touchStorage();
    const remembered = sm.rememberedResults(options.request.id);
    if (remembered !== null) return { results: remembered, raftIndex: sm.appliedIndex() };
    const prepared = sm.prepareWrite(options.request, { nowMs: this.core.deps.clock.now() });
    if (!prepared.ok) throw nodeError("INVALID_REQUEST", prepared.error, { retryable: false });
    if (prepared.value.length > MAX_ENTRY_CHARS) {
      throw nodeError("INVALID_REQUEST", `the request encodes to ${prepared.value.length} characters, above the ${MAX_ENTRY_CHARS} a log entry may hold`, { retryable: false });
    }
    // Refuse before proposing: once proposed, a refusal would hide a write that may still commit.
    if (this.writes.size >= LIMITS.maxWritesWaiting) throw nodeError("QUEUE_FULL", `${this.writes.size} writes are already waiting on this leader; retry later`);
    const proposal = raft.propose(prepared.value);
    if (!proposal.ok) throw proposalFailure(proposal.error, raft.status());
    return this.awaitApplied({ index: proposal.index, term: proposal.term, timeoutMs: options.timeoutMs, requestId: options.request.id });
  }

  /** Waits for the entry proposed at (index, term) to be applied; a different term there means it was lost. */
  private async awaitApplied(options: { index: number; term: number; timeoutMs: number; requestId?: string }): Promise<RequestAnswer> {
    this.proposedTerms.set(options.index, options.term);
    const waiting = this.writes.wait(options.index, options.timeoutMs);
    this.core.processReady();
    let outcome: ApplyOutcome;
    try {
      outcome = await awaitWaiter(waiting, () =>
        nodeError("TIMEOUT", `the write was proposed at index ${options.index} but not applied within ${options.timeoutMs} ms; its outcome is unknown (retrying with the same request id is safe)`, { retryable: true }),
      );
    } catch (err) {
      this.proposedTerms.delete(options.index);
      throw err;
    }
    if (outcome.term !== options.term) {
      throw nodeError("NOT_LEADER", `leadership changed before index ${options.index} committed: the write was not applied; retry it`, { leader: this.core.raft.status().leader });
    }
    const results = outcome.results ?? (options.requestId !== undefined ? this.core.sm.rememberedResults(options.requestId) : null) ?? [];
    return { results, raftIndex: options.index };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Reads

  async query(options: QueryOptions): Promise<RequestAnswer> {
    const { sm } = this.core;
    this.core.advanceClock();
    const prepared = sm.prepareRead(options.statements);
    if (!prepared.ok) throw nodeError("INVALID_REQUEST", prepared.error, { retryable: false });
    const deadlineAtMs = this.core.deps.clock.now() + options.timeoutMs;
    if (options.level === "strong") {
      return this.execute({ request: { id: `read-${this.core.identity.node}-${randomId(this.core.random)}`, statements: prepared.value, transaction: options.transaction }, timeoutMs: options.timeoutMs });
    }
    if (options.level === "weak") {
      this.assertLeader();
      this.touchStorage();
    }
    if (options.level === "linearizable") {
      const readIndex = await this.confirmReadIndex(options.timeoutMs);
      await this.waitApplied(readIndex, deadlineAtMs);
    }
    if (options.level === "none" && options.freshnessMs !== undefined) this.assertFresh(options.freshnessMs);
    if (options.minAppliedIndex !== undefined) await this.waitApplied(options.minAppliedIndex, deadlineAtMs);
    return { results: sm.query(prepared.value, { transaction: options.transaction }), raftIndex: sm.appliedIndex() };
  }

  private async confirmReadIndex(timeoutMs: number): Promise<number> {
    const { raft } = this.core;
    const context = `${this.core.identity.node}:${this.core.ticks()}:${++this.readContextSeq}`;
    const started = raft.requestRead(context);
    if (!started.ok) throw proposalFailure(started.error, raft.status());
    const waiting = this.reads.wait(context, timeoutMs);
    this.core.processReady();
    return awaitWaiter(waiting, () => nodeError("TIMEOUT", `the read index was not confirmed within ${timeoutMs} ms (no quorum reachable?)`, { retryable: true }));
  }

  private async waitApplied(index: number, deadlineAtMs: number): Promise<void> {
    const { sm } = this.core;
    const remainingMs = deadlineAtMs - this.core.deps.clock.now();
    await awaitWaiter(this.applied.wait(index, sm.appliedIndex(), Math.max(1, remainingMs)), () =>
      nodeError("STALE", `this node has applied index ${sm.appliedIndex()}, not yet ${index}, and the deadline passed`, { retryable: true }),
    );
  }

  private assertFresh(freshnessMs: number): void {
    if (this.core.raft.status().role === "leader") return;
    const last = this.core.lastLeaderContactAtMs();
    const nowMs = this.core.deps.clock.now();
    if (last === null || nowMs - last > freshnessMs) {
      const age = last === null ? "never" : `${nowMs - last} ms ago`;
      throw nodeError("STALE", `this node last heard from a leader ${age}, beyond the requested freshness of ${freshnessMs} ms`, { retryable: true });
    }
  }

  /** A SQL dump of this node's applied state. */
  dumpSql(): { sql: string; raftIndex: number } {
    return { sql: this.core.sm.dumpSql(), raftIndex: this.core.sm.appliedIndex() };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Leadership and membership

  async waitForLeader(timeoutMs: number): Promise<{ leader: string; term: number }> {
    const { raft } = this.core;
    this.core.advanceClock();
    const current = raft.status();
    if (current.leader !== null) return { leader: current.leader, term: current.term };
    await awaitWaiter(this.leaderKnown.wait(1, 0, timeoutMs), () =>
      nodeError("NO_LEADER", `no leader was elected within ${timeoutMs} ms (is a quorum of nodes reachable?)`, { retryable: true }),
    );
    const status = raft.status();
    if (status.leader === null) throw nodeError("NO_LEADER", "the leader was lost again while waiting", { retryable: true });
    return { leader: status.leader, term: status.term };
  }

  /** Leader only: moves leadership away and waits until another node leads. */
  async transferLeadership(options: { to?: string; timeoutMs: number }): Promise<{ leader: string; term: number }> {
    const { raft, identity } = this.core;
    this.core.advanceClock();
    this.assertLeader();
    if (options.to === identity.node) return { leader: identity.node, term: raft.status().term };
    const started = options.to === undefined ? raft.stepDown() : raft.transferLeadership(options.to);
    if (!started.ok) throw proposalFailure(started.error, raft.status());
    this.core.processReady();
    const deadlineAtMs = this.core.deps.clock.now() + options.timeoutMs;
    const oldTerm = raft.status().term;
    // Leadership moves through messages this node handles in other events; poll our own view, bounded.
    while (this.core.deps.clock.now() < deadlineAtMs) {
      const status = raft.status();
      if (status.term > oldTerm && status.leader !== null && status.leader !== identity.node) return { leader: status.leader, term: status.term };
      await this.waitOneTick(deadlineAtMs);
      if (this.core.isStopped()) throw nodeError("NOT_MEMBER", "this node stopped while leadership was moving", { retryable: true });
      this.core.advanceClock();
    }
    const status = raft.status();
    throw nodeError("TIMEOUT", `leadership did not move within ${options.timeoutMs} ms (current leader: ${status.leader ?? "none"})`, { leader: status.leader, retryable: true });
  }

  /** Leader only: proposes a membership change and waits until it is applied. */
  async changeMembership(options: { change: { kind: "addLearner" | "remove" | "promote"; node: string }; beforePropose?: () => void; timeoutMs: number }): Promise<Membership> {
    const { raft } = this.core;
    this.core.advanceClock();
    this.assertLeader();
    this.touchStorage();
    options.beforePropose?.();
    const proposal = raft.proposeConfigChange(options.change);
    if (!proposal.ok) throw proposalFailure(proposal.error, raft.status());
    await this.awaitApplied({ index: proposal.index, term: proposal.term, timeoutMs: options.timeoutMs });
    return raft.status().membership;
  }

  // ---------------------------------------------------------------------------------------------------------

  private assertLeader(): void {
    const { raft, identity } = this.core;
    const status = raft.status();
    if (status.removed && status.role !== "leader") {
      throw nodeError("NOT_MEMBER", `${identity.node} is no longer a member of cluster ${identity.cluster.name}`, { retryable: false });
    }
    if (status.role !== "leader") {
      throw notLeaderError(
        status.leader === null ? `${identity.node} is not the leader and no leader is known (election under way)` : `${identity.node} is not the leader; the leader is ${status.leader}`,
        status.leader,
      );
    }
  }

  /** A stale instance that no longer owns the object fails on its next storage access: touch it before leading. */
  private touchStorage(): void {
    this.core.deps.kv.get("raft/hard");
  }

  /** One tick, but never past `deadlineAtMs`. */
  private waitOneTick(deadlineAtMs: number): Promise<void> {
    const waitMs = Math.max(1, Math.min(this.core.tickIntervalMs, deadlineAtMs - this.core.deps.clock.now()));
    return sleepMs(this.core.deps.clock, waitMs);
  }
}

/** 64 bits from the runtime's seeded random source (the seam keeps the simulator deterministic). */
function randomId(random: { nextUint32(): number }): string {
  return random.nextUint32().toString(16).padStart(8, "0") + random.nextUint32().toString(16).padStart(8, "0");
}
