// The running Raft node inside a ClusterNode object: it owns the pure core, persists and applies what the core
// hands out (strictly in the order Ready documents) and runs its clock. Everything here runs synchronously inside
// one event, except the awaits on waiters and on outgoing RPC; after each of those, callers re-read role and term.
// The concerns around the loop live in ./runtime: peer links and snapshot streaming (peers), client requests
// (requests), error translation (errors), the status report (status-report).
import { createRaftNode, handleReadies, SeededRandom, type ReadyPorts } from "../replication/index";
import type {
  LogEntry,
  Membership,
  Message,
  NodeStatus,
  RaftEvent,
  RaftNodeApi,
  Ready,
  SnapshotMeta,
} from "../replication/types";
import type { SqlRequest } from "../shared/sql";
import type { BackupValue } from "./api";
import type { NodeStatusReport } from "./cluster-types";
import { objectName, raftConfigFor } from "./config";
import { withDeadline } from "./deadline";
import { logEvent, type LogLevel } from "./log";
import { RaftStorage } from "./raft-storage";
import { nodeError } from "./node-failure";
import { maybePromoteLearners } from "./runtime/learners";
import { PeerLinks, type PeerReport } from "./runtime/peers";
import { VotingCensus } from "./runtime/census";
import { ClientRequests, type QueryOptions, type RequestAnswer } from "./runtime/requests";
import { buildStatusReport, logReplicaSummary } from "./runtime/status-report";
import { LIMITS, type NodeIdentity, type RuntimeCore, type RuntimeDeps } from "./runtime/types";
import type { StateMachinePort } from "./state-machine-port";
import { NodeKeys } from "./storage-keys";
import { tickMs } from "./timing";
import type { applyFaults, RaftEnvelope, SnapshotChunk } from "./transport/index";
import { isMonitorCommand } from "./monitor/command";
import { ConsistencyMonitor } from "./runtime/consistency-monitor";
import type { RepairOutcome } from "./monitor/types";

export type { PeerAnswer, PeerReport } from "./runtime/peers";
export type { NodeIdentity, PeerStub, RuntimeDeps } from "./runtime/types";

/** What a leader sends its followers: none of it depends on the leader's own copy of its new entries. */
const LEADER_MESSAGE_TYPES: ReadonlySet<Message["type"]> = new Set(["append", "heartbeat", "snapshot", "timeoutNow"]);

/** Senders whose last report is remembered (peerReportFor); beyond it all are forgotten and get a full one next. */
const MAX_REPORT_RECIPIENTS = 64;

export class NodeRuntime {
  readonly identity: NodeIdentity;
  readonly raft: RaftNodeApi;
  private readonly deps: RuntimeDeps;
  private readonly raftStorage: RaftStorage;
  private readonly sm: StateMachinePort;
  private readonly tickIntervalMs: number;
  private readonly random: SeededRandom;
  private readonly core: RuntimeCore;
  private readonly peers: PeerLinks;
  private readonly requests: ClientRequests;
  private readonly monitor: ConsistencyMonitor;
  private readonly census: VotingCensus;
  private lastTickAtMs: number;
  private ticks = 0;
  private lastLeaderContactAtMs: number | null = null;
  private lastPeerMessageAtMs: number | null = null;
  private lastStallAtMs: number | null = null;
  private lastElectionMs: number | null = null;
  private stopped = false;
  private broken = false;
  /** A request left its Ready to the round in flight (requestReady); the round's end runs it at the latest. */
  private readyDeferred = false;
  /** The last report answered to each sender, and when: see peerReportFor. */
  private readonly reportsSent = new Map<string, { readonly key: string; readonly atMs: number }>();
  /** What each step of a Ready means for this node; the loop itself, and its order, is handleReadies. */
  private readonly readyPorts: ReadyPorts = {
    installSnapshot: (snapshot) => this.installSnapshot(snapshot),
    persist: (ready) => this.persistReady(ready),
    send: (messages) => this.peers.sendMessages(messages),
    apply: (entries) => this.applyCommitted(entries),
    compact: (meta) => this.raftStorage.compact(meta),
    settleReads: (ready) => this.requests.readsConfirmed(ready),
    observeEvents: (events) => this.handleEvents(events),
  };

  constructor(deps: RuntimeDeps) {
    this.deps = deps;
    this.identity = deps.identity;
    this.sm = deps.stateMachine;
    // The bug switch puts back the old, non-atomic persist (a storage error half-way left entries without their term).
    this.raftStorage = new RaftStorage(
      deps.kv,
      deps.bugs?.persistNotAtomic === true ? <T>(fn: () => T): T => fn() : deps.transaction,
      { heldWrittenOnTicksOnly: deps.bugs?.heldEntriesWrittenOnTicksOnly === true },
    );
    this.tickIntervalMs = tickMs(deps.identity.cluster);
    this.lastTickAtMs = deps.clock.now();
    this.random = new SeededRandom(deps.seed);
    const persisted = this.raftStorage.load(this.sm.appliedIndex());
    const fresh = persisted.hardState.term === 0 && persisted.snapshot === null && persisted.entries.length === 0;
    const initialVoters = deps.identity.cluster.members.map((member) => member.name);
    const bootstrap: Membership | null =
      fresh && initialVoters.includes(deps.identity.node) ? { voters: initialVoters, learners: [] } : null;
    // New storage may be a wiped voter's: on voting probation until the census (./runtime/census) concludes.
    const votingProbation =
      deps.kv.get<boolean>(NodeKeys.votingProbation) === true || (fresh && deps.bugs?.wipedVoterVotesAtOnce !== true);
    if (fresh && votingProbation) {
      deps.kv.put(NodeKeys.votingProbation, true);
    }
    this.raft = createRaftNode({
      config: raftConfigFor({ config: deps.identity.cluster, node: deps.identity.node, random: this.random }),
      persisted,
      bootstrap,
      votingProbation,
    });
    this.core = {
      identity: this.identity,
      raft: this.raft,
      sm: this.sm,
      deps,
      tickIntervalMs: this.tickIntervalMs,
      random: this.random,
      bugs: deps.bugs ?? {},
      isStopped: () => this.stopped,
      ticks: () => this.ticks,
      lastLeaderContactAtMs: () => this.lastLeaderContactAtMs,
      lastPeerMessageAtMs: () => this.lastPeerMessageAtMs,
      lastStallAtMs: () => this.lastStallAtMs,
      startedAtMs: this.lastTickAtMs,
      advanceClock: () => this.advanceClock(),
      processReady: () => this.processReady(),
      requestReady: () => this.requestReady(),
      runDeferredReady: () => this.runDeferredReady(),
      receiveReplies: (envelope) => void this.receiveEnvelope(envelope, { answer: true }),
      inBackground: (what, fn) => this.inBackground(what, fn),
      log: (level, event, fields) => this.log(level, event, fields),
      readRefusal: () => this.monitor.readRefusal(),
    };
    this.peers = new PeerLinks(this.core);
    this.monitor = new ConsistencyMonitor(this.core, (options) => this.peers.sendRepairImage(options));
    this.peers.onPeerReport = (peer, report) =>
      this.monitor.recordPeerReport(peer, report.consistency, report.appliedIndex);
    this.census = new VotingCensus(this.core, (peer) => this.peers.askForReport(peer));
    this.peers.onCensusReport = (peer, report) => this.census.noteReport(peer, report);
    if (this.monitor.config.enabled && deps.bugs?.snapshotImageUnverified !== true) {
      const monitor = this.monitor;
      this.monitor.imagesVerified = true;
      this.monitor.onImageSettled = () =>
        queueMicrotask(() => this.inBackground("snapshots awaiting an image", () => this.peers.retryAwaitingImages()));
      this.peers.verifiedImages = {
        image: (minIndex) => monitor.verifiedImage(minIndex),
        built: () => monitor.imageCheckpointImagesBuilt(),
      };
    }
    this.requests = new ClientRequests(this.core, this.nextRuntimeId());
    this.log("info", "nodeStarted", {
      fresh,
      bootstrap: bootstrap !== null,
      votingProbation,
      appliedIndex: this.sm.appliedIndex(),
      lastLogIndex: this.raft.status().lastIndex,
    });
    this.processReady();
    this.census.ticked();
  }

  /**
   * Counts the runtimes this storage has had (persisted, so deterministic and unique without a random source): with
   * the incarnation it names this runtime in read contexts, which must never repeat across restarts.
   */
  private nextRuntimeId(): string {
    const starts = (this.deps.kv.get<number>(NodeKeys.runtimeStarts) ?? 0) + 1;
    this.deps.kv.put(NodeKeys.runtimeStarts, starts);
    return `${this.deps.incarnation}.${starts}`;
  }

  // ---------------------------------------------------------------------------------------------------------
  // Time

  /** Catches the core's logical clock up with real time; call at the start of every event. */
  advanceClock(): void {
    if (this.stopped) {
      return;
    }
    const nowMs = this.deps.clock.now();
    const due = Math.floor((nowMs - this.lastTickAtMs) / this.tickIntervalMs);
    if (due <= 0) {
      return;
    }
    let ticks = Math.min(due, LIMITS.maxCatchUpTicks);
    // Stalled: woken two ticks or more after it meant to wake. A quiet follower meant to sleep (nextWakeAtMs).
    if (nowMs - this.nextWakeAtMs() >= 2 * this.tickIntervalMs) {
      this.lastStallAtMs = nowMs;
      ticks = this.ticksAfterStall(ticks);
    }
    if (ticks === 0) {
      this.lastTickAtMs = nowMs;
      return;
    }
    for (let i = 0; i < ticks; i++) {
      this.raft.tick();
      this.ticks++;
      if (this.ticks % LIMITS.statusSummaryEveryTicks === 0) {
        logReplicaSummary(this.core);
      }
    }
    this.lastTickAtMs = due > ticks ? nowMs : this.lastTickAtMs + ticks * this.tickIntervalMs;
    if (this.deps.bugs?.heldEntriesWrittenOnTicksOnly === true) {
      this.raftStorage.writeHeld();
    }
    maybePromoteLearners(this.core, this.peers);
    this.requests.ticked();
    this.monitor.ticked();
    this.peers.retryAwaitingImages();
    this.holdCompactionForImages();
    this.census.ticked();
    this.processReady();
  }

  /**
   * A follower's own stall is not its leader's silence: it catches up to one tick short of its election timeout, so
   * that what waited behind the stall (the leader's heartbeat, a pre-vote it should refuse while the leader lives) is
   * handled before it campaigns or grants one; if nothing comes, the next tick times out as usual. On a shared thread
   * (every node of a local cluster) a stall of all followers at once otherwise ended in an election the leader's
   * heartbeats, queued behind the stall, would have prevented.
   */
  private ticksAfterStall(ticks: number): number {
    const untilElection = this.raft.ticksUntilElection();
    return untilElection === null ? ticks : Math.min(ticks, untilElection - 1);
  }

  /**
   * When the alarm should next fire: the next tick, or for a quiet follower (the core's quietTicks) the tick its
   * election timer would fire at. A leader's heartbeats wake a follower anyway (each envelope catches its clock up);
   * setting the alarm every tick on every node was most of what an idle cluster cost.
   */
  nextWakeAtMs(): number {
    const quiet = this.census.needsTicks ? 1 : Math.min(this.raft.quietTicks(), LIMITS.maxQuietTicks);
    const wakeAtMs = this.lastTickAtMs + quiet * this.tickIntervalMs;
    if (!Number.isFinite(wakeAtMs)) {
      throw new Error(
        `next wake is not a time: last tick ${this.lastTickAtMs}, quiet ticks ${quiet} (core ${this.raft.quietTicks()}), tick ${this.tickIntervalMs} ms`,
      );
    }
    return wakeAtMs;
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

  /**
   * Steps every message of a validated envelope; a snapshot message only once its image is fully staged. Returns the
   * responses to hand back in the answer when the envelope asked for them there (repliesInAnswer), else none: they
   * are persisted like anything sent (the Ready loop persists before it sends).
   */
  receiveEnvelope(envelope: RaftEnvelope, how: { readonly answer?: boolean } = {}): readonly Message[] {
    // A stopped runtime must not acknowledge what it will never persist.
    this.requests.assertServing();
    // An answer to this node's own call is stepped before its breaker counts the call a success: its responses drive
    // the next append already, and reporting the peer reachable too would send the same probe twice.
    const answer = how.answer === true;
    const reachableAgain = this.peers.heardFrom(envelope.from, { answer }) && !answer;
    const holding = envelope.repliesInAnswer === true && this.peers.holdRepliesTo(envelope.from);
    try {
      this.stepEnvelope(envelope, { reachableAgain });
    } catch (err) {
      this.peers.releaseReplies();
      throw err;
    }
    return holding ? this.peers.releaseReplies() : [];
  }

  private stepEnvelope(envelope: RaftEnvelope, options: { readonly reachableAgain: boolean }): void {
    this.advanceClock();
    this.lastPeerMessageAtMs = this.deps.clock.now();
    if (envelope.snapshotChunk !== undefined) {
      if (!this.sm.stageSnapshotChunk(envelope.snapshotChunk)) {
        throw nodeError(
          "INTERNAL",
          `snapshot chunk ${envelope.snapshotChunk.seq} of snapshot ${envelope.snapshotChunk.snapshotIndex} could not be staged`,
          { retryable: false },
        );
      }
      if (envelope.snapshotChunk.repair === true && envelope.snapshotChunk.last) {
        this.installRepair(envelope.snapshotChunk);
      }
    }
    for (const message of envelope.messages) {
      if (
        message.type === "snapshot" &&
        !this.sm.hasCompleteSnapshot({ snapshotIndex: message.snapshot.index, snapshotTerm: message.snapshot.term })
      ) {
        this.log("warn", "snapshotIncomplete", { from: message.from, snapshotIndex: message.snapshot.index });
        continue;
      }
      if (this.deps.bugs?.freshnessCountsStaleTerm === true) {
        this.noteAnyLeaderMessage(message);
      }
      this.raft.step(message);
      this.noteLeaderContact(message);
    }
    if (options.reachableAgain) {
      this.raft.reportReachable(envelope.from);
    }
    this.processReady();
  }

  /**
   * The report to answer `envelope` with: in full when it asks only for the answer (a probe), when what the sender
   * acts on at once may have changed since the last report to it (incarnation, term, leader, schema, consistency
   * records, compaction), and at least once a heartbeat interval for the applied and last log indexes (also when the
   * clock went back); otherwise none, which saves building, sending and judging it on every answer of a busy leader's
   * rounds.
   */
  peerReportFor(envelope: Pick<RaftEnvelope, "from" | "onlyForAnswer">): PeerReport | undefined {
    const nowMs = this.deps.clock.now();
    const status = this.raft.status();
    const key = [
      this.deps.incarnation,
      status.term,
      // A new leader in the same term (it won after this node's vote answer went to it as candidate) hears at once.
      status.leader,
      this.sm.schemaInfo().hash,
      this.monitor.ownRecordsVersion,
      status.firstIndex,
      // The leader passes a node on probation over as a transfer target: it hears at once when that ends.
      status.votingProbation,
    ].join(" ");
    const last = this.reportsSent.get(envelope.from);
    if (
      envelope.onlyForAnswer !== true &&
      last !== undefined &&
      last.key === key &&
      nowMs >= last.atMs &&
      nowMs - last.atMs < this.identity.cluster.heartbeatIntervalMs
    ) {
      return undefined;
    }
    if (last === undefined && this.reportsSent.size >= MAX_REPORT_RECIPIENTS) {
      this.reportsSent.clear();
    }
    this.reportsSent.set(envelope.from, { key, atMs: nowMs });
    return this.peerReport();
  }

  /** What a receiver tells the sender besides "ok": enough for the leader to judge a learner's schema. */
  peerReport(): PeerReport {
    const status = this.raft.status();
    return {
      appliedIndex: this.sm.appliedIndex(),
      schemaHash: this.sm.schemaInfo().hash,
      lastLogIndex: status.lastIndex,
      incarnation: this.deps.incarnation,
      term: status.term,
      consistency: this.monitor.peerReport(),
      votingProbation: status.votingProbation,
    };
  }

  /**
   * The leader keeps its log from being compacted past an image it is about to send or is sending (the older of the
   * consistency monitor's image checkpoint and the streams in flight): the peer that installs it goes on from the log
   * right after it. Set on every tick; RaftNode.holdCompaction bounds how long the log may grow meanwhile.
   */
  private holdCompactionForImages(): void {
    const holds = [this.monitor.compactionHold(), this.peers.oldestImageInFlight()].filter(
      (index): index is number => index !== null,
    );
    const leading = this.raft.status().role === "leader";
    this.raft.holdCompaction(leading && holds.length > 0 ? Math.min(...holds) : null);
  }

  /**
   * A repair image from the leader is fully staged: swap it in, replacing this node's diverged state, then replay
   * this node's own log from the image's index to where it had applied (the core has handed those entries out
   * already). A failure half-way marks the runtime broken: reloaded from storage, it replays from what was kept.
   */
  private installRepair(chunk: SnapshotChunk): void {
    const appliedBefore = this.sm.appliedIndex();
    const replayFrom = this.raftStorage.snapshot()?.index ?? 0;
    const imageIndex = this.sm.installRepairImage(
      { snapshotIndex: chunk.snapshotIndex, snapshotTerm: chunk.snapshotTerm },
      { minImageIndex: replayFrom },
    );
    try {
      for (let index = imageIndex + 1; index <= appliedBefore; index++) {
        const entry = this.raftStorage.entry(index);
        if (entry === undefined) {
          throw new Error(`entry ${index} is not in the log to replay after the repair image at ${imageIndex}`);
        }
        this.sm.applyEntry(entry);
      }
    } catch (err) {
      this.markBroken(`replaying the log after a repair failed: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
    this.monitor.stateReplaced({ repair: true, imageIndex });
  }

  recordPeerReport(peer: string, report: PeerReport): void {
    this.peers.recordPeerReport(peer, report);
  }

  /**
   * Freshness counts a message as leader contact only when, once stepped, it came from the leader of this node's
   * current term: a deposed leader still sending in its stale term is no evidence this node is up to date.
   */
  private noteLeaderContact(message: Message): void {
    if (message.type !== "append" && message.type !== "heartbeat" && message.type !== "snapshot") {
      return;
    }
    const status = this.raft.status();
    if (message.term === status.term && status.leader === message.from) {
      this.lastLeaderContactAtMs = this.deps.clock.now();
    }
  }

  /** The old rule (bug freshnessCountsStaleTerm): any leader-type message counts, whatever its term. */
  private noteAnyLeaderMessage(message: Message): void {
    if (message.type === "append" || message.type === "heartbeat" || message.type === "snapshot") {
      this.lastLeaderContactAtMs = this.deps.clock.now();
    }
  }

  /**
   * Runs a callback that no request awaits (a delivery failure, a peer's report, the end of a snapshot stream). If it
   * throws, the core may be half-way through a Ready: mark this runtime broken so the object discards it and reloads
   * from storage, instead of keeping a runtime that neither ticks nor persists.
   */
  private inBackground(what: string, fn: () => void): void {
    if (this.stopped) {
      return;
    }
    try {
      fn();
    } catch (err) {
      this.log("error", "backgroundCallbackFailed", {
        callback: what,
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
      });
      if (this.deps.bugs?.brokenRuntimeKeepsServing === true) {
        return;
      }
      this.markBroken(`the ${what} callback failed`);
    }
  }

  private markBroken(reason: string): void {
    if (this.broken) {
      return;
    }
    this.broken = true;
    this.stopped = true;
    // The log is persisted as far as it got (entries a leader held and sent may be on followers only): what was
    // proposed may still commit through the other nodes.
    if (this.deps.bugs?.readyFailureAnsweredInternal !== true) {
      this.requests.rejectPendingWrites(`${this.identity.node} failed (${reason})`);
    }
    // Reads waiting for a confirmation round this runtime will never run: the caller retries elsewhere.
    this.requests.rejectPendingReads(
      nodeError("NO_LEADER", `${this.identity.node} is restarting (${reason}); retry shortly`, {
        leader: null,
        retryable: true,
      }),
    );
  }

  // ---------------------------------------------------------------------------------------------------------
  // The Ready loop

  /**
   * Group commit: a proposal or read that arrives while a round of messages to the peers is in flight rides the
   * next round with everything else that arrived meanwhile: the peers' answers run the Ready loop (so does the next
   * tick, and a failed delivery), which persists the batch in one transaction and sends it in one append (or one
   * read-confirmation round) per peer. With nothing in flight the Ready loop runs now.
   */
  requestReady(): void {
    if (this.deps.bugs?.readyFailureAnsweredInternal !== true && this.peers.roundInFlight()) {
      this.readyDeferred = true;
      return;
    }
    this.processReady();
  }

  /** A call to a peer ended: if a request left its Ready to that round and no Ready ran since, run it now. */
  private runDeferredReady(): void {
    if (this.readyDeferred) {
      this.inBackground("deferred Ready loop", () => this.processReady());
    }
  }

  /** Handles every pending Ready (bounded), in the documented order, until the core has nothing more to say. */
  processReady(): void {
    // A stopped runtime (removed, halted, or discarded after an error) must never touch storage or send again.
    if (this.stopped) {
      return;
    }
    this.readyDeferred = false;
    try {
      // Entries a leader held (persistReady) are written by the next Ready loop (on the next tick at the latest,
      // even when no follower answers), before anything in it can act on a commit that counts them.
      if (this.deps.bugs?.heldEntriesWrittenOnTicksOnly !== true) {
        this.raftStorage.writeHeld();
      }
      handleReadies(this.raft, this.readyPorts);
    } catch (err) {
      // The core handed out a Ready we could not finish: it will never hand out another. Stop; the object reloads
      // the node from storage (which holds everything persisted so far, in order).
      this.markBroken(`handling a Ready failed: ${err instanceof Error ? err.message : String(err)}`);
      throw err;
    }
    this.requests.readyHandled();
  }

  /**
   * The image and the Raft log's snapshot record in one transaction: a storage error between two transactions would
   * leave the image applied beside a log that still holds entries it replaced, some perhaps never committed (a
   * deposed leader's), and only the clamp of the applied index on load (RaftStorage.load) would keep them from
   * counting as committed.
   */
  private installSnapshot(snapshot: SnapshotMeta): void {
    const id = { snapshotIndex: snapshot.index, snapshotTerm: snapshot.term };
    const recordInLog = (): void => this.raftStorage.installSnapshot(snapshot);
    const separately = this.deps.bugs?.snapshotInstallNotAtomic === true;
    let appliedIndex: number;
    try {
      appliedIndex = separately
        ? this.sm.installStagedSnapshot(id)
        : this.sm.installStagedSnapshot(id, { alongside: recordInLog });
    } catch (err) {
      // Named apart from the discard that follows: an image that can never install (the leader keeps sending it,
      // backing off) shows up as this event, again and again, rather than as a node that merely restarts.
      this.log("error", "snapshotInstallFailed", {
        snapshotIndex: snapshot.index,
        snapshotTerm: snapshot.term,
        error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
      });
      throw err;
    }
    if (separately) {
      recordInLog();
    }
    this.monitor.stateReplaced({ repair: false, imageIndex: appliedIndex });
    this.log("info", "snapshotInstalled", { snapshotIndex: snapshot.index, appliedIndex });
  }

  /**
   * Step 2 of a Ready, with one exception: a leader's new entries, when writing them is all this Ready would do, are
   * held in memory (RaftStorage.hold) and written first thing by the node's next Ready loop (processReady), which a
   * follower's acknowledgement or the next tick runs, and by RaftStorage before any other write.
   *
   * Why it is safe. The core counts the leader's own copy towards a commit from this Ready's advance() on, but a
   * commit that counts it changes the hard state, so the Ready that carries it persists (step 2) before it sends or
   * applies anything, and RaftStorage writes the held entries before any other write; processReady writes them first
   * too. That is the same event: on the platform every write of an event commits together (or the object restarts
   * without any), and the answer to the client and the commit notices wait for that commit (the output gate, which
   * the simulator models). Until then the held entries are what the Raft thesis allows a leader (section 10.2.1):
   * sent to followers before they are on its own disk. A crash loses them as it loses entries whose write had not
   * finished; the followers may still commit them, and the restarted node is a follower that must win a new term to
   * lead again, so it never appends anew where its lost entries were.
   *
   * Why. At one client each write is a Ready of its own: written on its own, the entry cost the leader a storage
   * commit (an fsync) between the client's call and the followers' acknowledgements; held, it commits with the
   * Ready that applies the write, one commit per write on the leader instead of two.
   */
  private persistReady(ready: Ready): void {
    if (this.mayHoldEntries(ready) && this.raftStorage.hold(ready.entries)) {
      return;
    }
    this.raftStorage.persist(ready);
  }

  /** A leader's Ready whose only write is new entries, and that sends only what a leader sends its followers. */
  private mayHoldEntries(ready: Ready): boolean {
    return (
      ready.entries.length > 0 &&
      ready.hardState === null &&
      ready.truncateFrom === null &&
      ready.snapshot === null &&
      ready.committedEntries.length === 0 &&
      ready.compact === null &&
      this.raft.status().role === "leader" &&
      ready.messages.every((message) => LEADER_MESSAGE_TYPES.has(message.type))
    );
  }

  private applyCommitted(entries: readonly LogEntry[]): void {
    for (const entry of entries) {
      const results = this.sm.applyEntry(entry);
      if (entry.kind === "normal" && results !== null && isMonitorCommand(entry.data)) {
        this.monitor.entryApplied(entry.index);
      }
      this.requests.entryApplied(entry, results);
    }
  }

  private handleEvents(events: readonly RaftEvent[]): void {
    for (const event of events) {
      switch (event.kind) {
        case "becameLeader":
          this.lastElectionMs = event.electionTicks * this.tickIntervalMs;
          this.log("info", "becameLeader", { electionMs: this.lastElectionMs });
          this.requests.becameLeader(this.raft.status().lastIndex);
          this.peers.leadershipGained();
          this.monitor.becameLeader();
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
          this.log("info", "membershipApplied", {
            index: event.index,
            voters: event.membership.voters,
            learners: event.membership.learners,
          });
          this.peers.membershipApplied(event.membership);
          this.monitor.membershipChanged(new Set([...event.membership.voters, ...event.membership.learners]));
          break;
        case "steppedDown":
          this.log("warn", "steppedDown", { reason: event.reason });
          this.requests.leadershipLost(event.reason);
          break;
        case "leadershipTransfer":
          if (event.outcome === "aborted") {
            this.log("info", "leadershipTransfer", { to: event.to, outcome: event.outcome, reason: event.reason });
            this.requests.transferAborted(event.to, event.reason);
          } else {
            this.log("info", "leadershipTransfer", { to: event.to, outcome: event.outcome });
          }
          break;
        case "votingProbationEnded":
          this.deps.kv.delete(NodeKeys.votingProbation);
          this.log("info", "votingProbationEnded", { commit: event.commit });
          break;
      }
    }
    if (this.raft.status().removed && !this.stopped) {
      this.log("warn", "removedFromCluster", {});
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // Client requests (see ./runtime/requests)

  /** Validates, proposes and waits until the entry is applied (or the deadline passes). */
  execute(options: { request: SqlRequest; timeoutMs: number }): Promise<RequestAnswer> {
    return this.requests.execute(options);
  }

  query(options: QueryOptions): Promise<RequestAnswer> {
    return this.requests.query(options);
  }

  waitForLeader(timeoutMs: number): Promise<{ leader: string; term: number }> {
    return this.requests.waitForLeader(timeoutMs);
  }

  /** Leader only: moves leadership away and waits until another node leads. */
  transferLeadership(options: { to?: string; timeoutMs: number }): Promise<{ leader: string; term: number }> {
    return this.requests.transferLeadership(options);
  }

  /**
   * Leader only: proposes a membership change and waits until it is applied (the membership then, and its entry).
   * `check` runs right before the proposal, as leader, and may refuse it by throwing.
   */
  changeMembership(options: {
    change: { kind: "addLearner" | "remove" | "promote"; node: string };
    locationHint?: string;
    check?: () => void;
    timeoutMs: number;
  }): Promise<{ readonly membership: Membership; readonly index: number }> {
    const { locationHint, check } = options;
    return this.requests.changeMembership({
      change: options.change,
      timeoutMs: options.timeoutMs,
      beforePropose: () => {
        check?.();
        if (locationHint !== undefined) {
          this.peers.rememberHint(options.change.node, locationHint);
        }
      },
    });
  }

  /** Leader only (after a read index): a SQL dump with every write acknowledged before the call. */
  backup(options: { timeoutMs: number; maxDumpBytes: number; mayStream: boolean }): Promise<BackupValue> {
    return this.requests.backup(options);
  }

  /**
   * Leader only: replaces a member's state with the leader's (README "Consistency monitor"); resolves once the member
   * installed it. Fails NOT_REPAIRED when the image surely did not reach it, TIMEOUT when it may have (the answer to
   * the last chunk was lost) or at the deadline (the repair may still complete).
   */
  async repairMember(options: { node: string; timeoutMs: number }): Promise<RepairOutcome> {
    this.requests.beginCall();
    const status = this.raft.status();
    if (status.role !== "leader") {
      throw nodeError("NOT_LEADER", `${this.identity.node} is not the leader`, { leader: status.leader });
    }
    return withDeadline(this.monitor.repair(options.node, { byOperator: true }), {
      timeoutMs: options.timeoutMs,
      what: `the repair of ${options.node}`,
      timers: this.deps.clock,
      onTimeout: () =>
        nodeError(
          "TIMEOUT",
          `the repair of ${options.node} did not finish within ${options.timeoutMs} ms; it may still complete: check /api/v1/cluster/health`,
          { retryable: true },
        ),
    });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Status

  status(): NodeStatus {
    return this.raft.status();
  }

  statusReport(options: { locationHint: string | null }): NodeStatusReport {
    return buildStatusReport(this.core, this.peers, {
      locationHint: options.locationHint,
      lastElectionMs: this.lastElectionMs,
      monitor: this.monitor,
    });
  }

  /** Test only: commit notices go out at once, holding no timer (NodeHost.tickByAlarmOnly). */
  sendCommitNoticesAtOnce(): void {
    this.peers.sendCommitNoticesAtOnce();
  }

  /** The peers a snapshot is being streamed to right now. */
  snapshotStreamsInFlight(): string[] {
    return this.peers.snapshotStreamsInFlight();
  }

  /** How many snapshot images this runtime built (each reads the whole database; tests check they are reused). */
  snapshotImagesBuilt(): number {
    return this.peers.snapshotImagesBuilt();
  }

  /** Test-only: whether a message from here to `to` would pass the fault rules right now. */
  faultDecision(to: string): ReturnType<typeof applyFaults> {
    return this.peers.faultDecision(to);
  }

  /** Test-only: the stored fault rules changed; the peer links read them again. */
  faultRulesChanged(): void {
    this.peers.faultRulesChanged();
  }

  /** Stops every timer-like thing this runtime holds; waiting requests fail cleanly. */
  async stop(reason: string): Promise<void> {
    this.stopped = true;
    this.requests.rejectAll(
      `${this.identity.node} stopped (${reason})`,
      nodeError("NOT_MEMBER", reason, { retryable: false }),
    );
    await this.peers.closeAll();
  }

  log(level: LogLevel, event: string, fields: Record<string, unknown>): void {
    logEvent(
      level,
      {
        cluster: this.identity.cluster.name,
        node: this.identity.node,
        term: this.raft === undefined ? 0 : this.raft.status().term,
      },
      event,
      fields,
    );
  }
}

export { objectName };
