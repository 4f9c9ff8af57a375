// The running Raft node inside a ClusterNode object: it owns the pure core, persists and applies what the core
// hands out (strictly in the order Ready documents), moves messages through the transport and answers the
// requests that wait on the log. Everything here runs synchronously inside one event, except the awaits on
// waiters and on outgoing RPC; after each of those, callers re-read role and term.
import { createRaftNode, SeededRandom } from "../replication/index";
import type { InstallSnapshot, LogEntry, Membership, Message, NodeStatus, RaftEvent, RaftNodeApi, Ready } from "../replication/types";
import type { SqlRequest, Statement, StatementResult } from "../shared/sql";
import { PROTOCOL_VERSION, type ClusterConfig, type MemberConfig, type NodeAddress, type NodeError, type NodeErrorCode, type NodeStatusReport, type ReplicaReport } from "./api";
import { objectName, raftConfigFor, tickMs } from "./config";
import { logEvent, type LogLevel } from "./log";
import { RaftStorage } from "./raft-storage";
import type { StateMachinePort } from "./state-machine-port";
import { KeyedWaiters, ThresholdWaiters, TooManyWaitersError, WaitTimeoutError } from "./waiters";
import {
  applyFaults,
  FAULT_RULES_STORAGE_KEY,
  PeerTransport,
  type DeliveryFailure,
  type FaultRules,
  type RaftEnvelope,
  type SnapshotChunk,
} from "./transport/index";

/** What a peer node must offer for the transport to reach it. */
export interface PeerStub {
  receive(envelope: RaftEnvelope): Promise<unknown>;
  start(address: NodeAddress): Promise<unknown>;
}

export interface NodeIdentity {
  readonly cluster: ClusterConfig;
  readonly node: string;
}

export interface RuntimeDeps {
  readonly identity: NodeIdentity;
  readonly storage: DurableObjectStorage;
  readonly stateMachine: StateMachinePort;
  readonly peerStub: (member: MemberConfig) => PeerStub;
  /** Fault rules are consulted only when test configuration switched fault injection on. */
  readonly faultsEnabled: boolean;
  readonly nowMs: () => number;
  readonly seed: number;
  /** This node's storage incarnation (see PeerReport). */
  readonly incarnation: string;
  readonly onLeaderWork?: () => void;
}

export class NodeFailure extends Error {
  constructor(readonly error: NodeError) {
    super(error.message);
    this.name = "NodeFailure";
  }
}

export function nodeError(code: NodeErrorCode, message: string, extra: { leader?: string | null; retryable?: boolean } = {}): NodeFailure {
  const retryable = extra.retryable ?? (code === "NOT_LEADER" || code === "NO_LEADER" || code === "QUEUE_FULL" || code === "TRANSFER_IN_PROGRESS");
  return new NodeFailure({ code, message, retryable, ...(extra.leader === undefined ? {} : { leader: extra.leader }) });
}

/** Bounds on everything a node keeps waiting. */
const LIMITS = {
  maxWritesWaiting: 4096,
  maxReadsWaiting: 1024,
  maxAppliedWaiters: 1024,
  maxLeaderWaiters: 1024,
  /** After a long eviction, catch up at most this many ticks at once (the core only needs "a timeout passed"). */
  maxCatchUpTicks: 64,
  snapshotChunkTimeoutMs: 5_000,
  statusSummaryEveryTicks: 50,
} as const;

interface ApplyOutcome {
  readonly term: number;
  readonly results: readonly StatementResult[] | null;
}

interface PeerInfo {
  incarnation: string | null;
  schemaHash: string | null;
  appliedIndex: number;
  lastReplyAtMs: number | null;
}

const HINTS_KEY = "node/hints";
/** A log entry is one KV value, which the platform limits to 2 MB; JSON strings count about one byte a character. */
const MAX_ENTRY_CHARS = 1_900_000;
const PEER_INFO_CHUNK_SEQ = -1;

export class NodeRuntime {
  readonly identity: NodeIdentity;
  readonly raft: RaftNodeApi;
  private readonly deps: RuntimeDeps;
  private readonly raftStorage: RaftStorage;
  private readonly sm: StateMachinePort;
  private readonly tickIntervalMs: number;
  private lastTickAtMs: number;
  private ticks = 0;
  private readonly peers = new Map<string, PeerTransport<PeerStub>>();
  private readonly peerInfo = new Map<string, PeerInfo>();
  private readonly memberHints = new Map<string, string>();
  private readonly writes: KeyedWaiters<number, ApplyOutcome>;
  private readonly proposedTerms = new Map<number, number>();
  private readonly reads: KeyedWaiters<string, number>;
  private readonly applied: ThresholdWaiters;
  private readonly leaderKnown: ThresholdWaiters;
  private readonly snapshotStreams = new Set<string>();
  private lastLeaderContactAtMs: number | null = null;
  private lastElectionMs: number | null = null;
  private readContextSeq = 0;
  private readonly random: SeededRandom;
  private stopped = false;
  private broken = false;

  constructor(deps: RuntimeDeps) {
    this.deps = deps;
    this.identity = deps.identity;
    this.sm = deps.stateMachine;
    this.raftStorage = new RaftStorage(deps.storage.kv);
    this.tickIntervalMs = tickMs(deps.identity.cluster);
    this.lastTickAtMs = deps.nowMs();
    this.random = new SeededRandom(deps.seed);
    const persisted = this.raftStorage.load(this.sm.appliedIndex());
    const fresh = persisted.hardState.term === 0 && persisted.snapshot === null && persisted.entries.length === 0;
    const initialVoters = deps.identity.cluster.members.map((member) => member.name);
    const bootstrap: Membership | null = fresh && initialVoters.includes(deps.identity.node) ? { voters: initialVoters, learners: [] } : null;
    this.raft = createRaftNode({
      config: raftConfigFor({ config: deps.identity.cluster, node: deps.identity.node, random: this.random }),
      persisted,
      bootstrap,
    });
    for (const member of deps.identity.cluster.members) {
      if (member.locationHint !== undefined) this.memberHints.set(member.name, member.locationHint);
    }
    for (const [name, hint] of Object.entries(deps.storage.kv.get<Record<string, string>>(HINTS_KEY) ?? {})) {
      this.memberHints.set(name, hint);
    }
    this.writes = new KeyedWaiters({ what: "write", limit: LIMITS.maxWritesWaiting });
    this.reads = new KeyedWaiters({ what: "linearizable read", limit: LIMITS.maxReadsWaiting });
    this.applied = new ThresholdWaiters({ what: "wait for the applied index", limit: LIMITS.maxAppliedWaiters });
    this.leaderKnown = new ThresholdWaiters({ what: "wait for a leader", limit: LIMITS.maxLeaderWaiters });
    this.log("info", "nodeStarted", {
      fresh,
      bootstrap: bootstrap !== null,
      appliedIndex: this.sm.appliedIndex(),
      lastLogIndex: this.raft.status().lastIndex,
    });
    this.processReady();
  }

  // ---------------------------------------------------------------------------------------------------------
  // Time

  /** Catches the core's logical clock up with real time; call at the start of every event. */
  advanceClock(): void {
    if (this.stopped) return;
    const nowMs = this.deps.nowMs();
    const due = Math.floor((nowMs - this.lastTickAtMs) / this.tickIntervalMs);
    if (due <= 0) return;
    const ticks = Math.min(due, LIMITS.maxCatchUpTicks);
    for (let i = 0; i < ticks; i++) {
      this.raft.tick();
      this.ticks++;
      if (this.ticks % LIMITS.statusSummaryEveryTicks === 0) this.logReplicaSummary();
    }
    this.lastTickAtMs = due > ticks ? nowMs : this.lastTickAtMs + ticks * this.tickIntervalMs;
    this.maybePromoteLearners();
    this.processReady();
  }

  /** When the alarm should next fire: the next tick. */
  nextWakeAtMs(): number {
    return this.lastTickAtMs + this.tickIntervalMs;
  }

  get isStopped(): boolean {
    return this.stopped;
  }

  /** True once handling a Ready failed: the object must discard this runtime and reload from storage. */
  get isBroken(): boolean {
    return this.broken;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Incoming messages

  /** Steps every message of a validated envelope; a snapshot message only once its image is fully staged. */
  receiveEnvelope(envelope: RaftEnvelope): void {
    this.advanceClock();
    if (envelope.snapshotChunk !== undefined) {
      if (envelope.snapshotChunk.seq === PEER_INFO_CHUNK_SEQ) return;
      if (!this.sm.stageSnapshotChunk(envelope.snapshotChunk)) {
        throw nodeError("INTERNAL", `snapshot chunk ${envelope.snapshotChunk.seq} of snapshot ${envelope.snapshotChunk.snapshotIndex} could not be staged`, { retryable: false });
      }
    }
    for (const message of envelope.messages) {
      if (message.type === "snapshot" && !this.sm.hasCompleteSnapshot({ snapshotIndex: message.snapshot.index, snapshotTerm: message.snapshot.term })) {
        this.log("warn", "snapshotIncomplete", { from: message.from, snapshotIndex: message.snapshot.index });
        continue;
      }
      this.noteLeaderContact(message);
      this.raft.step(message);
    }
    this.processReady();
  }

  /** What a receiver tells the sender besides "ok": enough for the leader to judge a learner's schema. */
  peerReport(): PeerReport {
    return { appliedIndex: this.sm.appliedIndex(), schemaHash: this.sm.schemaInfo().hash, lastLogIndex: this.raft.status().lastIndex, incarnation: this.deps.incarnation };
  }

  recordPeerReport(peer: string, report: PeerReport): void {
    if (this.stopped) return;
    const info = this.peerInfoFor(peer);
    const previousIncarnation = info.incarnation;
    info.incarnation = report.incarnation;
    info.appliedIndex = report.appliedIndex;
    info.schemaHash = report.schemaHash;
    info.lastReplyAtMs = this.deps.nowMs();
    // The HA plan's ReplicaReady: a replica is ONLINE only once its schema is the leader's (and its log caught up).
    if (report.schemaHash === this.sm.schemaInfo().hash) this.raft.reportReplicaReady(peer);
    const replica = this.raft.status().replicas.find((r) => r.id === peer);
    const storageReplaced = previousIncarnation !== null && previousIncarnation !== report.incarnation;
    if (replica !== undefined && storageReplaced && report.lastLogIndex < replica.matchIndex) {
      // The peer's storage was wiped (a new incarnation) and it holds less than it acknowledged: probe it again.
      this.log("warn", "peerLostLog", { peer, matchIndex: replica.matchIndex, lastLogIndex: report.lastLogIndex });
      this.raft.reportPeerLogLost(peer, report.lastLogIndex);
      this.processReady();
    }
  }

  private noteLeaderContact(message: Message): void {
    if (message.type === "append" || message.type === "heartbeat" || message.type === "snapshot") {
      this.lastLeaderContactAtMs = this.deps.nowMs();
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // The Ready loop

  /** Handles every pending Ready, in the documented order, until the core has nothing more to say. */
  processReady(): void {
    // A stopped runtime (removed, halted, or discarded after an error) must never touch storage or send again.
    if (this.stopped) return;
    try {
      // Bounded: each round either makes progress or empties the Ready; 1,000 rounds means something is wrong.
      for (let round = 0; round < 1000 && this.raft.hasReady(); round++) {
        const ready = this.raft.ready();
        this.installSnapshot(ready);
        this.raftStorage.persist(ready);
        this.sendMessages(ready.messages);
        this.applyCommitted(ready.committedEntries);
        if (ready.compact !== null) this.raftStorage.compact(ready.compact);
        this.handleReads(ready);
        this.handleEvents(ready.events);
        this.raft.advance(ready);
      }
    } catch (err) {
      // The core handed out a Ready we could not finish: it will never hand out another. Stop; the object reloads
      // the node from storage (which holds everything persisted so far, in order).
      this.broken = true;
      this.stopped = true;
      throw err;
    }
    this.applied.advance(this.sm.appliedIndex());
    if (this.raft.status().leader !== null) this.leaderKnown.advance(1);
  }

  private installSnapshot(ready: Ready): void {
    if (ready.snapshot === null) return;
    const appliedIndex = this.sm.installStagedSnapshot({ snapshotIndex: ready.snapshot.index, snapshotTerm: ready.snapshot.term });
    this.raftStorage.installSnapshot(ready.snapshot);
    this.log("info", "snapshotInstalled", { snapshotIndex: ready.snapshot.index, appliedIndex });
  }

  private applyCommitted(entries: readonly LogEntry[]): void {
    for (const entry of entries) {
      const results = this.sm.applyEntry(entry);
      const proposedTerm = this.proposedTerms.get(entry.index);
      if (proposedTerm === undefined) continue;
      this.proposedTerms.delete(entry.index);
      this.writes.resolve(entry.index, { term: entry.term, results });
    }
  }

  private handleReads(ready: Ready): void {
    for (const read of ready.readStates) this.reads.resolve(read.context, read.index);
    for (const failed of ready.failedReads) {
      const leader = this.raft.status().leader;
      this.reads.reject(failed.context, nodeError(failed.error.code === "NOT_LEADER" ? (leader === null ? "NO_LEADER" : "NOT_LEADER") : "NO_LEADER", failed.error.message, { leader }));
    }
  }

  private handleEvents(events: readonly RaftEvent[]): void {
    for (const event of events) {
      switch (event.kind) {
        case "becameLeader":
          this.lastElectionMs = event.electionTicks * this.tickIntervalMs;
          this.log("info", "becameLeader", { electionMs: this.lastElectionMs });
          this.deps.onLeaderWork?.();
          break;
        case "becameFollower":
          this.log("info", "becameFollower", { leader: event.leader });
          break;
        case "becamePreCandidate":
        case "becameCandidate":
          this.log("info", event.kind, {});
          break;
        case "replicaStatus":
          this.log("info", "replicaStatus", { peer: event.peer, from: event.from, to: event.to });
          break;
        case "membershipApplied":
          this.log("info", "membershipApplied", { index: event.index, voters: event.membership.voters, learners: event.membership.learners });
          this.dropTransportsOfFormerMembers(event.membership);
          break;
        case "steppedDown":
          this.log("warn", "steppedDown", { reason: event.reason });
          break;
        case "leadershipTransfer":
          this.log("info", "leadershipTransfer", { to: event.to, outcome: event.outcome });
          break;
      }
    }
    if (this.raft.status().removed && !this.stopped) {
      this.log("warn", "removedFromCluster", {});
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Outgoing messages

  private sendMessages(messages: readonly Message[]): void {
    const byPeer = new Map<string, Message[]>();
    for (const message of messages) {
      if (message.type === "snapshot") {
        this.streamSnapshot(message);
        continue;
      }
      const list = byPeer.get(message.to) ?? [];
      list.push(message);
      byPeer.set(message.to, list);
    }
    for (const [peer, list] of byPeer) this.transportFor(peer).send(list);
  }

  private transportFor(peer: string): PeerTransport<PeerStub> {
    const existing = this.peers.get(peer);
    if (existing !== undefined && !existing.isClosed) return existing;
    const hint = this.memberHints.get(peer);
    const member: MemberConfig = hint === undefined ? { name: peer } : { name: peer, locationHint: hint };
    const transport = new PeerTransport<PeerStub>({
      cluster: this.identity.cluster.name,
      self: this.identity.node,
      peer,
      getStub: () => this.deps.peerStub(member),
      call: async (stub, envelope) => {
        let answer = await stub.receive(envelope);
        if (isPeerAnswer(answer) && answer.notStarted === true) {
          // Cluster formation: whoever reaches a node first starts it, in any order (no hand-made ordering).
          await stub.start({ protocolVersion: PROTOCOL_VERSION, cluster: this.identity.cluster, node: peer });
          answer = await stub.receive(envelope);
        }
        if (isPeerAnswer(answer) && answer.ok && answer.report !== undefined) this.recordPeerReport(peer, answer.report);
        return answer;
      },
      onFailure: (failedPeer, failure) => this.onDeliveryFailure(failedPeer, failure),
      onEvent: (event) => {
        if (event.kind === "breaker") this.log("info", "circuitBreaker", { peer: event.peer, from: event.transition.from, to: event.transition.to });
        if (event.kind === "callbackFailed") this.log("error", "transportCallbackFailed", { peer: event.peer, callback: event.callback, error: String(event.error) });
      },
      faultRules: () => this.faultRules(),
      config: {
        callTimeoutMs: Math.max(50, Math.min(1000, this.identity.cluster.electionTimeoutMs)),
        deadlineMs: Math.max(75, Math.min(1500, this.identity.cluster.electionTimeoutMs * 1.5)),
        breaker: { failureThreshold: 3, successThreshold: 1, openTimeoutMs: Math.max(100, this.identity.cluster.electionTimeoutMs) },
      },
      random: () => this.random.nextInt(1_000_000) / 1_000_000,
    });
    this.peers.set(peer, transport);
    return transport;
  }

  private onDeliveryFailure(peer: string, failure: DeliveryFailure): void {
    if (this.stopped) return;
    // Overflow drops are flow control, not a broken peer; everything else means the peer did not get it.
    if (failure.kind !== "overflow") this.raft.reportUnreachable(peer);
    this.log("debug", "deliveryFailed", { peer, kind: failure.kind, detail: failure.detail });
    this.processReady();
  }

  /** Streams the current state-machine image to a peer in bounded chunks, then the snapshot message itself. */
  private streamSnapshot(message: InstallSnapshot): void {
    const peer = message.to;
    if (this.snapshotStreams.has(peer)) return;
    let image: ReturnType<StateMachinePort["createSnapshotImage"]>;
    try {
      image = this.sm.createSnapshotImage();
    } catch (err) {
      // E.g. the database is larger than a snapshot may be: tell the core, keep serving everyone else.
      this.log("error", "snapshotFailed", { peer, error: err instanceof Error ? err.message : String(err) });
      queueMicrotask(() => {
        if (this.stopped) return;
        this.raft.reportSnapshotResult(peer, false);
        this.processReady();
      });
      return;
    }
    const transport = this.transportFor(peer);
    this.snapshotStreams.add(peer);
    this.log("info", "snapshotSending", { peer, snapshotIndex: message.snapshot.index, appliedIndex: image.appliedIndex, chunks: image.chunks.length });
    const run = async (): Promise<boolean> => {
      for (const [seq, data] of image.chunks.entries()) {
        const chunk: SnapshotChunk = { snapshotIndex: message.snapshot.index, snapshotTerm: message.snapshot.term, seq, last: seq === image.chunks.length - 1, data };
        const outcome = await transport.deliverNow({ snapshotChunk: chunk, timeoutMs: LIMITS.snapshotChunkTimeoutMs, deadlineMs: LIMITS.snapshotChunkTimeoutMs * 2 });
        if (!outcome.ok || this.stopped) return false;
      }
      const outcome = await transport.deliverNow({ messages: [message], timeoutMs: LIMITS.snapshotChunkTimeoutMs });
      return outcome.ok;
    };
    void run()
      .catch(() => false)
      .then((ok) => {
        this.snapshotStreams.delete(peer);
        if (this.stopped) return;
        this.log(ok ? "info" : "warn", "snapshotSent", { peer, ok });
        this.raft.reportSnapshotResult(peer, ok);
        this.processReady();
      });
  }

  private dropTransportsOfFormerMembers(membership: Membership): void {
    const members = new Set([...membership.voters, ...membership.learners]);
    for (const [peer, transport] of this.peers) {
      if (!members.has(peer)) {
        void transport.close();
        this.peers.delete(peer);
        this.peerInfo.delete(peer);
      }
    }
  }

  private faultRules(): FaultRules | null {
    if (!this.deps.faultsEnabled) return null;
    return this.deps.storage.kv.get<FaultRules>(FAULT_RULES_STORAGE_KEY) ?? null;
  }

  /** Test-only: whether a message from here to `to` would pass the fault rules right now. */
  faultDecision(to: string): ReturnType<typeof applyFaults> {
    const rules = this.faultRules();
    return rules === null ? "deliver" : applyFaults(rules, this.identity.node, to, () => this.random.nextInt(1_000_000) / 1_000_000);
  }

  // ---------------------------------------------------------------------------------------------------------
  // Writes

  /** Validates, proposes and waits until the entry is applied (or the deadline passes). */
  async execute(options: { request: SqlRequest; timeoutMs: number }): Promise<{ results: readonly StatementResult[]; raftIndex: number }> {
    this.advanceClock();
    this.assertLeader();
    this.touchStorage();
    const remembered = this.sm.rememberedResults(options.request.id);
    if (remembered !== null) return { results: remembered, raftIndex: this.sm.appliedIndex() };
    const prepared = this.sm.prepareWrite(options.request, { nowMs: this.deps.nowMs() });
    if (!prepared.ok) throw nodeError("INVALID_REQUEST", prepared.error, { retryable: false });
    if (prepared.value.length > MAX_ENTRY_CHARS) {
      throw nodeError("INVALID_REQUEST", `the request encodes to ${prepared.value.length} characters, above the ${MAX_ENTRY_CHARS} a log entry may hold`, { retryable: false });
    }
    // Refuse before proposing: once proposed, a refusal would hide a write that may still commit.
    if (this.writes.size >= LIMITS.maxWritesWaiting) throw nodeError("QUEUE_FULL", `${this.writes.size} writes are already waiting on this leader; retry later`);
    const proposal = this.raft.propose(prepared.value);
    if (!proposal.ok) throw this.proposalFailure(proposal.error);
    return this.awaitApplied({ index: proposal.index, term: proposal.term, timeoutMs: options.timeoutMs, requestId: options.request.id });
  }

  /** Waits for the entry proposed at (index, term) to be applied; a different term there means it was lost. */
  private async awaitApplied(options: { index: number; term: number; timeoutMs: number; requestId?: string }): Promise<{ results: readonly StatementResult[]; raftIndex: number }> {
    this.proposedTerms.set(options.index, options.term);
    const waiting = this.writes.wait(options.index, options.timeoutMs);
    this.processReady();
    let outcome: ApplyOutcome;
    try {
      outcome = await waiting;
    } catch (err) {
      this.proposedTerms.delete(options.index);
      if (err instanceof WaitTimeoutError) {
        throw nodeError("TIMEOUT", `the write was proposed at index ${options.index} but not applied within ${options.timeoutMs} ms; its outcome is unknown (retrying with the same request id is safe)`, { retryable: true });
      }
      if (err instanceof TooManyWaitersError) throw nodeError("QUEUE_FULL", err.message);
      throw err;
    }
    if (outcome.term !== options.term) {
      throw nodeError("NOT_LEADER", `leadership changed before index ${options.index} committed: the write was not applied; retry it`, { leader: this.raft.status().leader });
    }
    const results = outcome.results ?? (options.requestId !== undefined ? this.sm.rememberedResults(options.requestId) : null) ?? [];
    return { results, raftIndex: options.index };
  }

  // ---------------------------------------------------------------------------------------------------------
  // Reads

  async query(options: {
    statements: readonly Statement[];
    level: "none" | "weak" | "linearizable" | "strong";
    freshnessMs?: number;
    minAppliedIndex?: number;
    transaction: boolean;
    timeoutMs: number;
  }): Promise<{ results: readonly StatementResult[]; raftIndex: number }> {
    this.advanceClock();
    const prepared = this.sm.prepareRead(options.statements);
    if (!prepared.ok) throw nodeError("INVALID_REQUEST", prepared.error, { retryable: false });
    const deadlineAtMs = this.deps.nowMs() + options.timeoutMs;
    if (options.level === "strong") {
      return this.execute({ request: { id: `read-${this.identity.node}-${crypto.randomUUID()}`, statements: prepared.value, transaction: options.transaction }, timeoutMs: options.timeoutMs });
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
    return { results: this.sm.query(prepared.value, { transaction: options.transaction }), raftIndex: this.sm.appliedIndex() };
  }

  private async confirmReadIndex(timeoutMs: number): Promise<number> {
    const context = `${this.identity.node}:${this.ticks}:${++this.readContextSeq}`;
    const started = this.raft.requestRead(context);
    if (!started.ok) throw this.proposalFailure(started.error);
    const waiting = this.reads.wait(context, timeoutMs);
    this.processReady();
    try {
      return await waiting;
    } catch (err) {
      if (err instanceof WaitTimeoutError) throw nodeError("TIMEOUT", `the read index was not confirmed within ${timeoutMs} ms (no quorum reachable?)`, { retryable: true });
      if (err instanceof TooManyWaitersError) throw nodeError("QUEUE_FULL", err.message);
      throw err;
    }
  }

  private async waitApplied(index: number, deadlineAtMs: number): Promise<void> {
    const remainingMs = deadlineAtMs - this.deps.nowMs();
    try {
      await this.applied.wait(index, this.sm.appliedIndex(), Math.max(1, remainingMs));
    } catch (err) {
      if (err instanceof WaitTimeoutError) throw nodeError("STALE", `this node has applied index ${this.sm.appliedIndex()}, not yet ${index}, and the deadline passed`, { retryable: true });
      throw err;
    }
  }

  private assertFresh(freshnessMs: number): void {
    if (this.raft.status().role === "leader") return;
    const last = this.lastLeaderContactAtMs;
    if (last === null || this.deps.nowMs() - last > freshnessMs) {
      const age = last === null ? "never" : `${this.deps.nowMs() - last} ms ago`;
      throw nodeError("STALE", `this node last heard from a leader ${age}, beyond the requested freshness of ${freshnessMs} ms`, { retryable: true });
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Leadership and membership

  async waitForLeader(timeoutMs: number): Promise<{ leader: string; term: number }> {
    this.advanceClock();
    const current = this.raft.status();
    if (current.leader !== null) return { leader: current.leader, term: current.term };
    try {
      await this.leaderKnown.wait(1, 0, timeoutMs);
    } catch (err) {
      if (err instanceof WaitTimeoutError) throw nodeError("NO_LEADER", `no leader was elected within ${timeoutMs} ms (is a quorum of nodes reachable?)`, { retryable: true });
      throw err;
    }
    const status = this.raft.status();
    if (status.leader === null) throw nodeError("NO_LEADER", "the leader was lost again while waiting", { retryable: true });
    return { leader: status.leader, term: status.term };
  }

  /** Leader only: moves leadership away and waits until another node leads. */
  async transferLeadership(options: { to?: string; timeoutMs: number }): Promise<{ leader: string; term: number }> {
    this.advanceClock();
    this.assertLeader();
    if (options.to === this.identity.node) return { leader: this.identity.node, term: this.raft.status().term };
    const started = options.to === undefined ? this.raft.stepDown() : this.raft.transferLeadership(options.to);
    if (!started.ok) throw this.proposalFailure(started.error);
    this.processReady();
    const deadlineAtMs = this.deps.nowMs() + options.timeoutMs;
    const oldTerm = this.raft.status().term;
    // Leadership moves through messages this node handles in other events; poll our own view, bounded.
    while (this.deps.nowMs() < deadlineAtMs) {
      const status = this.raft.status();
      if (status.term > oldTerm && status.leader !== null && status.leader !== this.identity.node) return { leader: status.leader, term: status.term };
      await this.waitOneTick(deadlineAtMs);
      if (this.stopped) throw nodeError("NOT_MEMBER", "this node stopped while leadership was moving", { retryable: true });
      this.advanceClock();
    }
    const status = this.raft.status();
    throw nodeError("TIMEOUT", `leadership did not move within ${options.timeoutMs} ms (current leader: ${status.leader ?? "none"})`, { leader: status.leader, retryable: true });
  }

  /** Leader only: proposes a membership change and waits until it is applied. */
  async changeMembership(options: { change: { kind: "addLearner" | "remove" | "promote"; node: string }; locationHint?: string; timeoutMs: number }): Promise<Membership> {
    this.advanceClock();
    this.assertLeader();
    this.touchStorage();
    if (options.locationHint !== undefined) {
      this.memberHints.set(options.change.node, options.locationHint);
      this.deps.storage.kv.put(HINTS_KEY, Object.fromEntries(this.memberHints));
    }
    const proposal = this.raft.proposeConfigChange(options.change);
    if (!proposal.ok) throw this.proposalFailure(proposal.error);
    await this.awaitApplied({ index: proposal.index, term: proposal.term, timeoutMs: options.timeoutMs });
    return this.raft.status().membership;
  }

  /** Promotes learners whose log and schema caught up with the leader's (the HA plan's JOINING -> ONLINE). */
  private maybePromoteLearners(): void {
    const status = this.raft.status();
    if (status.role !== "leader" || status.membership.learners.length === 0) return;
    const ownSchema = this.sm.schemaInfo().hash;
    for (const replica of status.replicas) {
      if (!replica.isLearner) continue;
      const info = this.peerInfo.get(replica.id);
      // ONLINE already means: log within the lagging threshold and schema equal to ours (ReplicaReady).
      const logCaughtUp = replica.status === "ONLINE";
      const schemaMatches = info?.schemaHash === ownSchema;
      if (!logCaughtUp || !schemaMatches) {
        if (this.ticks % LIMITS.statusSummaryEveryTicks === 0) {
          this.log("info", "learnerCatchingUp", { peer: replica.id, matchIndex: replica.matchIndex, commit: status.commit, schemaMatches });
        }
        continue;
      }
      const proposal = this.raft.proposeConfigChange({ kind: "promote", node: replica.id });
      if (proposal.ok) {
        this.log("info", "learnerPromoting", { peer: replica.id, index: proposal.index, schemaHash: ownSchema });
        return;
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Status

  status(): NodeStatus {
    return this.raft.status();
  }

  statusReport(options: { locationHint: string | null }): NodeStatusReport {
    const status = this.raft.status();
    const schema = this.sm.schemaInfo();
    const nowMs = this.deps.nowMs();
    const replicas: ReplicaReport[] = status.replicas.map((replica) => {
      const transport = this.peers.get(replica.id)?.stats();
      const info = this.peerInfo.get(replica.id);
      return {
        name: replica.id,
        isLearner: replica.isLearner,
        status: replica.status,
        matchIndex: replica.matchIndex,
        lagEntries: replica.lagEntries,
        lastContactMs: replica.ticksSinceContact === Number.POSITIVE_INFINITY ? null : replica.ticksSinceContact * this.tickIntervalMs,
        consecutiveFailures: Math.max(replica.consecutiveFailures, transport?.consecutiveFailures ?? 0),
        reconnections: Math.max(replica.reconnections, transport?.reconnections ?? 0),
        breaker: transport?.breaker ?? "CLOSED",
        schemaHash: info?.schemaHash ?? null,
      };
    });
    return {
      node: this.identity.node,
      cluster: this.identity.cluster.name,
      started: true,
      member: !status.removed && (status.membership.voters.includes(this.identity.node) || status.membership.learners.includes(this.identity.node)),
      role: status.role,
      term: status.term,
      leader: status.leader,
      commitIndex: status.commit,
      appliedIndex: this.sm.appliedIndex(),
      lastLogIndex: status.lastIndex,
      firstLogIndex: status.firstIndex,
      voters: status.membership.voters,
      learners: status.membership.learners,
      election: { status: status.election.status, term: status.election.term, lastElectionMs: status.election.lastElectionTicks === null ? this.lastElectionMs : status.election.lastElectionTicks * this.tickIntervalMs },
      schemaVersion: schema.version,
      schemaHash: schema.hash,
      lastLeaderContactMs: status.role === "leader" ? 0 : this.lastLeaderContactAtMs === null ? null : nowMs - this.lastLeaderContactAtMs,
      replicas,
      locationHint: options.locationHint,
    };
  }

  dumpSql(): { sql: string; raftIndex: number } {
    return { sql: this.sm.dumpSql(), raftIndex: this.sm.appliedIndex() };
  }

  /** Stops every timer-like thing this runtime holds; waiting requests fail cleanly. */
  async stop(reason: string): Promise<void> {
    this.stopped = true;
    const failure = nodeError("NOT_MEMBER", reason, { retryable: false });
    this.writes.rejectAll(failure);
    this.reads.rejectAll(failure);
    await Promise.all([...this.peers.values()].map((transport) => transport.close()));
    this.peers.clear();
  }

  // ---------------------------------------------------------------------------------------------------------

  private assertLeader(): void {
    const status = this.raft.status();
    if (status.removed && status.role !== "leader") {
      throw nodeError("NOT_MEMBER", `${this.identity.node} is no longer a member of cluster ${this.identity.cluster.name}`, { retryable: false });
    }
    if (status.role !== "leader") {
      throw status.leader === null
        ? nodeError("NO_LEADER", `${this.identity.node} is not the leader and no leader is known (election under way)`, { leader: null })
        : nodeError("NOT_LEADER", `${this.identity.node} is not the leader; the leader is ${status.leader}`, { leader: status.leader });
    }
  }

  /** A stale instance that no longer owns the object fails on its next storage access: touch it before leading. */
  private touchStorage(): void {
    this.deps.storage.kv.get("raft/hard");
  }

  private proposalFailure(error: { code: string; message: string; leader?: string | null }): NodeFailure {
    switch (error.code) {
      case "NOT_LEADER": {
        const leader = error.leader ?? this.raft.status().leader;
        return leader === null || leader === undefined ? nodeError("NO_LEADER", error.message, { leader: null }) : nodeError("NOT_LEADER", error.message, { leader });
      }
      case "QUEUE_FULL":
        return nodeError("QUEUE_FULL", error.message);
      case "TRANSFER_IN_PROGRESS":
        return nodeError("TRANSFER_IN_PROGRESS", error.message, { leader: this.raft.status().leader });
      case "CONFIG_CHANGE_IN_PROGRESS":
        return nodeError("CONFIG_CHANGE_IN_PROGRESS", error.message, { retryable: true });
      case "REMOVED":
        // A leader whose removal is under way hands leadership over: the request can go to the next leader.
        return this.raft.status().role === "leader"
          ? nodeError("TRANSFER_IN_PROGRESS", `${error.message}; leadership is being handed over`, { leader: null })
          : nodeError("NOT_MEMBER", error.message, { retryable: false });
      default:
        return nodeError("INVALID_REQUEST", error.message, { retryable: false });
    }
  }

  /** One tick, but never past `deadlineAtMs`. */
  private waitOneTick(deadlineAtMs: number): Promise<void> {
    const waitMs = Math.max(1, Math.min(this.tickIntervalMs, deadlineAtMs - this.deps.nowMs()));
    return new Promise((resolve) => setTimeout(resolve, waitMs));
  }

  private peerInfoFor(peer: string): PeerInfo {
    let info = this.peerInfo.get(peer);
    if (info === undefined) {
      info = { incarnation: null, schemaHash: null, appliedIndex: 0, lastReplyAtMs: null };
      this.peerInfo.set(peer, info);
    }
    return info;
  }

  private logReplicaSummary(): void {
    const status = this.raft.status();
    if (status.role !== "leader") return;
    this.log("info", "replicaSummary", {
      commit: status.commit,
      lastIndex: status.lastIndex,
      replicas: status.replicas.map((r) => ({ peer: r.id, status: r.status, match: r.matchIndex, lag: r.lagEntries, learner: r.isLearner })),
    });
  }

  log(level: LogLevel, event: string, fields: Record<string, unknown>): void {
    logEvent(level, { cluster: this.identity.cluster.name, node: this.identity.node, term: this.raft === undefined ? 0 : this.raft.status().term }, event, fields);
  }
}

/** What a peer tells the sender of an envelope about itself. */
export interface PeerReport {
  readonly appliedIndex: number;
  readonly schemaHash: string;
  readonly lastLogIndex: number;
  /** Made when the node's storage was first written: a new one means the storage was wiped. */
  readonly incarnation: string;
}

/** The answer of a peer's receive(): the transport's result plus, on success, the peer's progress report. */
export interface PeerAnswer {
  readonly ok: boolean;
  /** The peer has never been started: the sender starts it with the cluster configuration and tries again. */
  readonly notStarted?: boolean;
  readonly report?: PeerReport;
}

function isPeerAnswer(value: unknown): value is PeerAnswer {
  return typeof value === "object" && value !== null && typeof (value as { ok?: unknown }).ok === "boolean";
}

export { objectName };
