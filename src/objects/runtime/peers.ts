// Peer links: one transport per peer, what peers report about themselves, and snapshot streaming.
import type { InstallSnapshot, Membership, Message, MessageType } from "../../replication/types";
import { PROTOCOL_VERSION, type MemberConfig } from "../cluster-types";
import type { SnapshotImage } from "../state-machine-port";
import { CommitNotices } from "../transport/commit-notices";
import {
  applyFaults,
  isPartitioned,
  PeerTransport,
  type DeliveryFailure,
  type FaultRules,
  type PeerTransportStats,
  type RaftEnvelope,
  type SnapshotChunk,
  validateEnvelope,
} from "../transport/index";
import { quorumSize } from "../../quorum/quorum";
import { NodeKeys, TestHookKeys } from "../storage-keys";
import {
  commitNoticeHoldMs,
  imageCheckpointDeadlineMs,
  peerTransportTiming,
  snapshotChunkTimeoutMs,
  snapshotRetryDelayMs,
} from "../timing";
import { LIMITS, type PeerStub, type RuntimeCore } from "./types";
import { BreakerLogLevels } from "./breaker-log";
import type { PeerConsistencyReport, RepairImageSent } from "../monitor/types";

/** What a peer tells the sender of an envelope about itself. */
export interface PeerReport {
  readonly appliedIndex: number;
  readonly schemaHash: string;
  readonly lastLogIndex: number;
  /** Made when the node's storage was first written: a new one means the storage was wiped. */
  readonly incarnation: string;
  /** Its persisted term (the voting census of a node with new storage reads it); absent from older versions. */
  readonly term?: number;
  /** Its consistency checkpoints and DIVERGED flag (src/objects/monitor); absent from nodes of older versions. */
  readonly consistency?: PeerConsistencyReport;
  /**
   * Whether it is on voting probation (./census): it ignores "take over now", so a leader does not pick it for a
   * leadership transfer (RaftNode.reportVotingProbation). Absent from nodes of older versions.
   */
  readonly votingProbation?: boolean;
}

/** The answer of a peer's receive(): the transport's result plus, on success, the peer's progress report. */
export interface PeerAnswer {
  readonly ok: boolean;
  /** The peer has never been started: the sender starts it with the cluster configuration and tries again. */
  readonly notStarted?: boolean;
  readonly report?: PeerReport;
  /**
   * The receiver's responses to the envelope's messages, when the envelope asked for them here
   * (RaftEnvelope.repliesInAnswer): one call per round instead of two. Checked like any envelope before they are stepped.
   */
  readonly replies?: readonly Message[];
}

export function isPeerAnswer(value: unknown): value is PeerAnswer {
  return typeof value === "object" && value !== null && typeof (value as { ok?: unknown }).ok === "boolean";
}

export interface PeerInfo {
  incarnation: string | null;
  schemaHash: string | null;
}

/**
 * The messages a receiver hands back in its answer instead of calling the sender: responses only, each small and at
 * most one per message received, so an answer stays as bounded as the envelope it answers. Requests (appends with
 * entries among them) always go through the transport and its flow control.
 */
/** Responses one answer carries at most; more go through the transport (a step makes about one per message). */
const MAX_REPLIES_IN_ANSWER = 256;

const REPLY_TYPES: ReadonlySet<MessageType> = new Set<MessageType>([
  "appendResponse",
  "heartbeatResponse",
  "preVoteResponse",
  "voteResponse",
  "readIndexResponse",
]);

/**
 * Group commit waits on a round in flight: entries being replicated, a read being confirmed (a heartbeat carrying a
 * read context), a read index asked of the leader. Plain heartbeats and commit notifications (appends without
 * entries) are not: a lone write that arrived while one was out would wait a whole round trip for nothing.
 */
export function isRound(messages: readonly Message[]): boolean {
  return messages.some(
    (message) =>
      (message.type === "append" && message.entries.length > 0) ||
      (message.type === "heartbeat" && message.readContext !== null) ||
      message.type === "readIndex",
  );
}

/**
 * Building a snapshot image reads the whole database synchronously. A peer whose transfer failed is probed again and
 * again; reuse the last image for a while (bounded in age and size) and, when building failed, wait before the next try.
 */
export const SNAPSHOT_IMAGE_LIMITS = {
  reuseForMs: 60_000,
  /** Characters of chunk data kept in memory between transfers (an object has 128 MB in all). */
  maxCachedChars: 16 * 1024 * 1024,
  retryBuildAfterMs: 10_000,
} as const;

/**
 * A snapshot chunk that timed out (snapshotChunkTimeoutMs in timing.ts) is sent again, a few times, before the
 * transfer is given up: the receiver takes an identical repeat, so a lost answer costs one chunk timeout.
 */
export const SNAPSHOT_CHUNK_LIMITS = {
  attemptsPerChunk: 3,
} as const;

/** Failed transfers in a row to one peer, and when the next may start. */
interface SnapshotRetry {
  readonly failures: number;
  readonly notBeforeMs: number;
}

/** From this many failed transfers in a row on, each failure is logged as an error. */
const SNAPSHOT_FAILURES_LOGGED_AS_ERROR = 5;

export class PeerLinks {
  private readonly peers = new Map<string, PeerTransport<PeerStub>>();
  private readonly peerInfo = new Map<string, PeerInfo>();
  private readonly memberHints = new Map<string, string>();
  /**
   * The peers an image is being streamed to, each with the image's applied index for a Raft snapshot (null for a repair,
   * which is checked against the replica's own log and replays it: the leader's log is not held for it).
   */
  private readonly snapshotStreams = new Map<string, number | null>();
  private readonly snapshotRetries = new Map<string, SnapshotRetry>();
  /** A dead peer's repeated probes are logged at debug (./breaker-log.ts). */
  private readonly breakerLogLevels = new BreakerLogLevels();
  /** Per peer, the (own, peer) schema hashes last compared; one entry per member. */
  private readonly schemasCompared = new Map<string, string>();
  private cachedImage: { readonly image: SnapshotImage; readonly builtAtMs: number } | null = null;
  private imageBuildFailedAtMs: number | null = null;
  /** Images built so far (for tests and the status log). */
  private imagesBuilt = 0;
  /** The stored test fault rules (null: none that fault anything), undefined until read (see faultRules). */
  private cachedFaultRules: FaultRules | null | undefined = undefined;
  /** While a peer's envelope is stepped with repliesInAnswer: that peer, and the responses held for the answer. */
  private held: { readonly peer: string; readonly replies: Message[]; readonly dropped: boolean } | null = null;
  /** Called with every report a peer sends back (the consistency monitor reads its checkpoints). */
  onPeerReport: ((peer: string, report: PeerReport) => void) | null = null;
  /** Called with every report too: the voting census of a node with new storage (./census). */
  onCensusReport: ((peer: string, report: PeerReport) => void) | null = null;
  /**
   * Where snapshot images come from while the consistency monitor is on: only images a majority verified (null while
   * none is ready yet). Unset: this node images its state as it is now.
   */
  verifiedImages: { image(minIndex: number): SnapshotImage | null | "unchecked"; built(): number } | null = null;
  /**
   * Snapshots waiting for an image checkpoint to be verified, by peer (one each). The core's progress stays in its
   * snapshot state meanwhile, as for a transfer in flight, and the image goes out once a majority has verified it
   * (retryAwaitingImages, on every tick and when a checkpoint settles). Reporting "not sent" instead made the core probe
   * again, be refused, and ask for the snapshot again, a heartbeat round or more each time around. Given up (reported
   * not sent) after the image checkpoint's deadline.
   */
  private readonly awaitingImage = new Map<string, { readonly message: InstallSnapshot; readonly sinceMs: number }>();

  /** Appends without entries wait here a moment for the next message to the same peer (see commit-notices.ts). */
  private readonly commitNotices: CommitNotices;

  constructor(private readonly core: RuntimeCore) {
    this.commitNotices = new CommitNotices({
      holdMs: commitNoticeHoldMs(core.identity.cluster),
      timers: core.deps.clock,
      send: (peer, messages) => this.transportFor(peer).send(messages),
    });
    for (const member of core.identity.cluster.members) {
      if (member.locationHint !== undefined) {
        this.memberHints.set(member.name, member.locationHint);
      }
    }
    for (const [name, hint] of Object.entries(core.deps.kv.get<Record<string, string>>(NodeKeys.memberHints) ?? {})) {
      this.memberHints.set(name, hint);
    }
  }

  /** Remembers where a new member should be placed, durably, so every later link to it uses the hint. */
  rememberHint(node: string, locationHint: string): void {
    this.memberHints.set(node, locationHint);
    this.core.deps.kv.put(NodeKeys.memberHints, Object.fromEntries(this.memberHints));
  }

  info(peer: string): PeerInfo | undefined {
    return this.peerInfo.get(peer);
  }

  transportStats(peer: string): PeerTransportStats | undefined {
    return this.peers.get(peer)?.stats();
  }

  /** Hands one Ready's messages to the transports, batched per peer; snapshots are streamed. */
  sendMessages(messages: readonly Message[]): void {
    const byPeer = new Map<string, Message[]>();
    for (const message of messages) {
      if (message.type === "snapshot") {
        this.streamSnapshot(message);
        continue;
      }
      if (
        this.held !== null &&
        message.to === this.held.peer &&
        REPLY_TYPES.has(message.type) &&
        this.held.replies.length < MAX_REPLIES_IN_ANSWER
      ) {
        this.held.replies.push(message);
        continue;
      }
      const list = byPeer.get(message.to) ?? [];
      list.push(message);
      byPeer.set(message.to, list);
    }
    for (const [peer, list] of byPeer) {
      const outgoing = this.commitNotices.route(peer, list);
      if (outgoing.length > 0) {
        this.transportFor(peer).send(outgoing);
      }
    }
  }

  /**
   * Until releaseReplies(), responses to `peer` are held for the answer to its call rather than sent. Test fault rules
   * are applied once, as to any call: across a partition or with a delay the responses go through the transport,
   * which applies the rules; a random drop discards the held responses (rolling the dice again in the transport would
   * lose a response with the square of the configured probability). Returns whether they are held.
   */
  holdRepliesTo(peer: string): boolean {
    if (this.held !== null) {
      throw new Error(`replies to ${this.held.peer} are still held while an envelope from ${peer} is stepped`);
    }
    const rules = this.faultRules();
    if (rules !== null && (isPartitioned(rules, this.core.identity.node, peer) || (rules.delayMs ?? 0) > 0)) {
      return false;
    }
    const dropped = rules !== null && this.faultDecision(peer) === "drop";
    this.held = { peer, replies: [], dropped };
    return true;
  }

  /** Ends holding: the responses held since holdRepliesTo() (none when the fault rules dropped them). */
  releaseReplies(): Message[] {
    const held = this.held;
    this.held = null;
    if (held === null) {
      return [];
    }
    if (held.replies.length > MAX_REPLIES_IN_ANSWER) {
      throw new Error(`${held.replies.length} replies held, above the ${MAX_REPLIES_IN_ANSWER} an answer may carry`);
    }
    return held.dropped ? [] : held.replies;
  }

  recordPeerReport(peer: string, report: PeerReport): void {
    this.core.inBackground("peer report", () => this.applyPeerReport(peer, report));
  }

  private applyPeerReport(peer: string, report: PeerReport): void {
    const core = this.core;
    const info = this.peerInfoFor(peer);
    const previousIncarnation = info.incarnation;
    info.incarnation = report.incarnation;
    info.schemaHash = report.schemaHash;
    if (report.votingProbation !== undefined) {
      core.raft.reportVotingProbation(peer, report.votingProbation);
    }
    // ReplicaReady: a replica is ONLINE only once its schema is the leader's (and its log caught up).
    // Every answer carries the hashes; compare them only when either changed (or this node began leading).
    const ownHash = core.sm.schemaInfo().hash;
    const pair = `${ownHash} ${report.schemaHash}`;
    if (this.schemasCompared.get(peer) !== pair) {
      this.schemasCompared.set(peer, pair);
      if (report.schemaHash === ownHash) {
        core.raft.reportReplicaReady(peer);
      }
    }
    this.onPeerReport?.(peer, report);
    this.onCensusReport?.(peer, report);
    const storageReplaced = previousIncarnation !== null && previousIncarnation !== report.incarnation;
    if (!storageReplaced) {
      return;
    }
    const replica = core.raft.status().replicas.find((r) => r.id === peer);
    if (replica !== undefined && report.lastLogIndex < replica.matchIndex) {
      // The peer's storage was wiped (a new incarnation) and it holds less than it acknowledged: probe it again.
      core.log("warn", "peerLostLog", { peer, matchIndex: replica.matchIndex, lastLogIndex: report.lastLogIndex });
      core.raft.reportPeerLogLost(peer, report.lastLogIndex);
      core.processReady();
    }
  }

  /**
   * Whether a new proposal should wait for a round (isRound) in flight: true while too few voters are free (no round
   * answer expected from them) to make a quorum with this node. A round's end runs the deferred Ready loop (see
   * NodeRuntime.requestReady), and a failure or the next tick may run it sooner. Learners being caught up, or one slow
   * voter while enough others are free, do not hold a write back: commit waits only for the fastest quorum anyway.
   */
  roundInFlight(): boolean {
    const self = this.core.identity.node;
    const voters = this.core.raft.status().membership.voters;
    let free = 0;
    for (const voter of voters) {
      if (voter !== self && this.peers.get(voter)?.roundAnswerExpected !== true) {
        free += 1;
      }
    }
    const othersNeeded = quorumSize(voters.length) - (voters.includes(self) ? 1 : 0);
    return free < othersNeeded;
  }

  /** This node began leading: its new progress trackers have not heard which replicas' schemas match. */
  leadershipGained(): void {
    this.schemasCompared.clear();
  }

  /**
   * A configuration was applied: links to former members close, and every schema comparison is made afresh. A member
   * added back after a removal gets a new progress tracker that has not heard its schema matches, while an answer it
   * sent before the removal may have left the same pair of hashes here (which would skip the comparison for good).
   */
  membershipApplied(membership: Membership): void {
    this.schemasCompared.clear();
    const members = new Set([...membership.voters, ...membership.learners]);
    for (const [peer, transport] of this.peers) {
      if (!members.has(peer)) {
        this.commitNotices.forget(peer);
        void transport.close();
        this.peers.delete(peer);
        this.peerInfo.delete(peer);
        this.breakerLogLevels.forget(peer);
      }
    }
    // A snapshot still waiting for its verified image would otherwise go out to the former member once the image is
    // ready (and open a new link to it); its back-off would greet a member added back under the same name.
    for (const peer of [...this.awaitingImage.keys(), ...this.snapshotRetries.keys()]) {
      if (!members.has(peer)) {
        this.awaitingImage.delete(peer);
        this.snapshotRetries.delete(peer);
      }
    }
  }

  /**
   * `peer` called this node: it is up and reaches us, so the breaker of an existing link to it need not wait out its
   * time before probing (transport/peer-transport.ts, peerHeardFrom). Makes no link. True when calls to it had been
   * failing and its breaker lets a probe through now (circuit-breaker.ts, noteContact, wouldAdmitProbe): the caller
   * has the core probe it now (RaftNode.reportReachable) rather than at the next heartbeat.
   */
  heardFrom(peer: string, how: { readonly answer?: boolean } = {}): boolean {
    const transport = this.peers.get(peer);
    if (transport === undefined || transport.isClosed) {
      return false;
    }
    transport.peerHeardFrom(how);
    // Only when the breaker lets the probe through now: otherwise the append would be built and refused at once.
    return transport.probeWouldGoOut;
  }

  /** Sends `peer` an empty envelope for its answer (its report reaches onCensusReport); true once it answered. */
  async askForReport(peer: string): Promise<boolean> {
    const outcome = await this.transportFor(peer).deliverNow({ onlyForAnswer: true });
    return outcome.ok;
  }

  /** Test-only: whether a message from here to `to` would pass the fault rules right now. */
  faultDecision(to: string): ReturnType<typeof applyFaults> {
    const rules = this.faultRules();
    return rules === null
      ? "deliver"
      : applyFaults(rules, this.core.identity.node, to, () => this.core.random.nextInt(1_000_000) / 1_000_000);
  }

  /** Commit notices go out at once from now on (see CommitNotices.sendAtOnce). */
  sendCommitNoticesAtOnce(): void {
    this.commitNotices.sendAtOnce();
  }

  async closeAll(): Promise<void> {
    this.commitNotices.clear();
    await Promise.all([...this.peers.values()].map((transport) => transport.close()));
    this.peers.clear();
  }

  private transportFor(peer: string): PeerTransport<PeerStub> {
    const existing = this.peers.get(peer);
    if (existing !== undefined && !existing.isClosed) {
      return existing;
    }
    const core = this.core;
    const cluster = core.identity.cluster;
    const hint = this.memberHints.get(peer);
    const member: MemberConfig = hint === undefined ? { name: peer } : { name: peer, locationHint: hint };
    const transportTiming = peerTransportTiming(cluster);
    const transport = new PeerTransport<PeerStub>({
      cluster: cluster.name,
      self: core.identity.node,
      peer,
      getStub: () => core.deps.peerStub(member),
      clock: core.deps.clock,
      call: async (stub, unstamped) => {
        const envelope: RaftEnvelope = { ...this.stampMembership(unstamped), repliesInAnswer: true };
        let answer = await stub.receive(envelope);
        if (isPeerAnswer(answer) && answer.notStarted === true) {
          // Cluster formation: whoever reaches a node first starts it, in any order (no hand-made ordering).
          await stub.start({ protocolVersion: PROTOCOL_VERSION, cluster, node: peer });
          answer = await stub.receive(envelope);
        }
        if (isPeerAnswer(answer) && answer.ok && answer.report !== undefined) {
          this.recordPeerReport(peer, answer.report);
        }
        if (isPeerAnswer(answer) && answer.ok && answer.replies !== undefined) {
          this.receiveReplies(peer, answer.replies);
        }
        return answer;
      },
      onDelivered: () => core.runDeferredReady(),
      onFailure: (failedPeer, failure) => this.onDeliveryFailure(failedPeer, failure),
      onEvent: (event) => {
        if (event.kind === "breaker") {
          core.log(this.breakerLogLevels.levelFor(event.peer, event.transition), "circuitBreaker", {
            peer: event.peer,
            from: event.transition.from,
            to: event.transition.to,
          });
        }
        if (event.kind === "callbackFailed") {
          core.log("error", "transportCallbackFailed", {
            peer: event.peer,
            callback: event.callback,
            error: String(event.error),
          });
        }
      },
      faultRules: () => this.faultRules(),
      config: {
        callTimeoutMs: transportTiming.callTimeoutMs,
        deadlineMs: transportTiming.deadlineMs,
        breaker: {
          failureThreshold: 3,
          successThreshold: 1,
          openTimeoutMs: transportTiming.breakerMinOpenMs,
          maxOpenTimeoutMs: transportTiming.breakerMaxOpenMs,
          probeTimeoutMs: transportTiming.breakerProbeTimeoutMs,
        },
      },
      random: () => core.random.nextInt(1_000_000) / 1_000_000,
      isRound,
    });
    this.peers.set(peer, transport);
    return transport;
  }

  /** Steps the responses a peer handed back in its answer, once checked like an envelope it had sent. */
  private receiveReplies(peer: string, replies: unknown): void {
    const core = this.core;
    const checked = validateEnvelope(
      {
        protocolVersion: PROTOCOL_VERSION,
        cluster: core.identity.cluster.name,
        from: peer,
        to: core.identity.node,
        messages: replies,
      },
      { cluster: core.identity.cluster.name, node: core.identity.node },
    );
    if (!checked.ok) {
      core.log("warn", "repliesRefused", { peer, error: checked.error.message });
      return;
    }
    if (checked.envelope.messages.length > 0) {
      core.inBackground("replies in an answer", () => core.receiveReplies(checked.envelope));
    }
  }

  /**
   * Adds the proof a removed peer needs to accept a re-admission (RaftEnvelope.memberAsOf): stamped at each attempt,
   * from this node's applied configuration at that moment, never from the one the messages were made under.
   */
  private stampMembership(envelope: RaftEnvelope): RaftEnvelope {
    const memberAsOf = membershipProof(this.core.raft.status(), envelope.to);
    return memberAsOf === undefined ? envelope : { ...envelope, memberAsOf };
  }

  private onDeliveryFailure(peer: string, failure: DeliveryFailure): void {
    const core = this.core;
    core.inBackground("delivery failure", () => {
      // Overflow drops are flow control, not a broken peer; everything else means the peer did not get it.
      if (failure.kind !== "overflow") {
        core.raft.reportUnreachable(peer);
      }
      core.log("debug", "deliveryFailed", { peer, kind: failure.kind, detail: failure.detail });
      core.processReady();
    });
  }

  /** The peers a snapshot is being streamed to right now (a drop waits for them, bounded). */
  snapshotStreamsInFlight(): string[] {
    return [...this.snapshotStreams.keys()];
  }

  /**
   * The oldest image being streamed (its applied index), or null: the leader keeps its log from being compacted past
   * it (RaftNode.holdCompaction), since the peer that installs it goes on from the log right after it. Compacting past
   * it during a long stream and install would have the peer need another image as soon as it installed this one.
   */
  oldestImageInFlight(): number | null {
    const indexes = [...this.snapshotStreams.values()].filter((index): index is number => index !== null);
    return indexes.length === 0 ? null : Math.min(...indexes);
  }

  /** How many snapshot images this runtime built (each one reads the whole database). */
  snapshotImagesBuilt(): number {
    return this.imagesBuilt + (this.verifiedImages?.built() ?? 0);
  }

  /**
   * Snapshots that wait for a verified image try again: the image may be ready, the checkpoint's deadline past, or
   * this node no longer the leader of the term they were asked in (then the core has dropped their progress).
   */
  retryAwaitingImages(): void {
    if (this.awaitingImage.size === 0) {
      return;
    }
    const status = this.core.raft.status();
    for (const [peer, { message }] of [...this.awaitingImage]) {
      if (status.role !== "leader" || status.term !== message.term) {
        this.awaitingImage.delete(peer);
        continue;
      }
      this.streamSnapshot(message);
    }
  }

  /**
   * An image for a snapshot at `snapshotIndex`: the cached one while fresh enough, else a new one; null while building
   * is backing off; "verifying" while an image checkpoint is on its way (the consistency monitor is on).
   */
  private snapshotImage(snapshotIndex: number): SnapshotImage | null | "verifying" {
    const verified = this.verifiedImages === null ? "unchecked" : this.verifiedImages.image(snapshotIndex);
    if (verified !== "unchecked") {
      return verified ?? "verifying";
    }
    const core = this.core;
    const nowMs = core.deps.clock.now();
    const reuse = core.bugs.snapshotRebuiltOnEveryProbe !== true;
    const cached = this.cachedImage;
    if (
      reuse &&
      cached !== null &&
      cached.image.appliedIndex >= snapshotIndex &&
      nowMs - cached.builtAtMs < SNAPSHOT_IMAGE_LIMITS.reuseForMs
    ) {
      return cached.image;
    }
    if (
      reuse &&
      this.imageBuildFailedAtMs !== null &&
      nowMs - this.imageBuildFailedAtMs < SNAPSHOT_IMAGE_LIMITS.retryBuildAfterMs
    ) {
      return null;
    }
    this.cachedImage = null;
    this.imagesBuilt++;
    try {
      const image = core.sm.createSnapshotImage();
      this.imageBuildFailedAtMs = null;
      const chars = image.chunks.reduce((sum, chunk) => sum + chunk.length, 0);
      if (chars <= SNAPSHOT_IMAGE_LIMITS.maxCachedChars) {
        this.cachedImage = { image, builtAtMs: nowMs };
      }
      return image;
    } catch (err) {
      this.imageBuildFailedAtMs = nowMs;
      throw err;
    }
  }

  /** Streams the current state-machine image to a peer in bounded chunks, then the snapshot message itself. */
  private streamSnapshot(message: InstallSnapshot): void {
    const core = this.core;
    const peer = message.to;
    if (this.snapshotStreams.has(peer)) {
      return;
    }
    const retry = this.snapshotRetries.get(peer);
    if (retry !== undefined && core.deps.clock.now() < retry.notBeforeMs) {
      this.reportSnapshotNotSent(peer);
      return;
    }
    let image: SnapshotImage | null | "verifying";
    try {
      image = this.snapshotImage(message.snapshot.index);
    } catch (err) {
      // E.g. the database is larger than a snapshot may be: tell the core, keep serving everyone else.
      core.log("error", "snapshotFailed", { peer, error: err instanceof Error ? err.message : String(err) });
      image = null;
    }
    if (image === "verifying") {
      const nowMs = core.deps.clock.now();
      const sinceMs = this.awaitingImage.get(peer)?.sinceMs ?? nowMs;
      if (nowMs - sinceMs < imageCheckpointDeadlineMs(core.identity.cluster)) {
        this.awaitingImage.set(peer, { message, sinceMs });
        return;
      }
      image = null;
    }
    this.awaitingImage.delete(peer);
    if (image === null) {
      this.reportSnapshotNotSent(peer);
      return;
    }
    const sending = image;
    const snapshot = this.snapshotMetaFor(message, image);
    const transport = this.transportFor(peer);
    this.snapshotStreams.set(peer, image.appliedIndex);
    core.log("info", "snapshotSending", {
      peer,
      snapshotIndex: snapshot.snapshot.index,
      compactedIndex: message.snapshot.index,
      appliedIndex: image.appliedIndex,
      chunks: image.chunks.length,
    });
    const fixedTimeout = core.bugs.snapshotChunkWaitsFixedTimeout === true;
    const timeoutMsFor = (chunkChars: number): number =>
      fixedTimeout ? LIMITS.snapshotChunkTimeoutMs : snapshotChunkTimeoutMs(core.identity.cluster, { chunkChars });
    const attempts = fixedTimeout ? 1 : SNAPSHOT_CHUNK_LIMITS.attemptsPerChunk;
    const run = async (): Promise<boolean> => {
      for (const [seq, data] of sending.chunks.entries()) {
        const chunk: SnapshotChunk = {
          snapshotIndex: snapshot.snapshot.index,
          snapshotTerm: snapshot.snapshot.term,
          seq,
          last: seq === sending.chunks.length - 1,
          data,
        };
        if (!(await this.deliverChunk(peer, transport, chunk, { timeoutMs: timeoutMsFor(data.length), attempts })).ok) {
          return false;
        }
      }
      const outcome = await transport.deliverNow({
        messages: [snapshot],
        timeoutMs: timeoutMsFor(0),
        waitForProbe: true,
      });
      return outcome.ok;
    };
    void run()
      .catch(() => false)
      .then((ok) => {
        this.snapshotStreams.delete(peer);
        core.inBackground("snapshot result", () => {
          this.noteSnapshotResult(peer, ok);
          core.raft.reportSnapshotResult(peer, ok);
          core.processReady();
        });
      });
  }

  /**
   * The snapshot message to send with `image`: the core names its last compaction, up to a compaction interval
   * behind the image, and the follower would be sent again every entry in between (which its state machine already
   * holds). Said at the image's own index instead when the core knows that index's term and membership.
   */
  private snapshotMetaFor(message: InstallSnapshot, image: SnapshotImage): InstallSnapshot {
    if (image.appliedIndex <= message.snapshot.index) {
      return message;
    }
    const meta = this.core.raft.snapshotMetaAt(image.appliedIndex);
    return meta === null ? message : { ...message, snapshot: meta };
  }

  /**
   * Sends one chunk, again after a timeout (its answer, or the chunk, was lost: the receiver takes an identical
   * repeat), at most `attempts` times. Not ok when it did not get through or the runtime stopped: then whether any
   * call that carried it may have reached the peer.
   */
  private async deliverChunk(
    peer: string,
    transport: PeerTransport<PeerStub>,
    chunk: SnapshotChunk,
    limits: { readonly timeoutMs: number; readonly attempts: number },
  ): Promise<ChunkDelivery> {
    let mayHaveArrived = false;
    let detail = "the runtime stopped";
    for (let attempt = 1; attempt <= limits.attempts; attempt += 1) {
      const outcome = await transport.deliverNow({
        snapshotChunk: chunk,
        timeoutMs: limits.timeoutMs,
        deadlineMs: limits.timeoutMs * 2,
        // The core asks for a snapshot as a returning peer answers its first probe, often while that probe's
        // breaker has not closed yet.
        waitForProbe: true,
      });
      if (outcome.ok) {
        // Accepted: installed, if it was a repair's last chunk, even should the runtime have stopped meanwhile.
        return this.core.isStopped() ? { ok: false, detail, mayHaveArrived: true } : { ok: true };
      }
      mayHaveArrived ||= mayHaveReachedPeer(outcome.failure);
      detail = outcome.failure.detail;
      if (this.core.isStopped() || outcome.failure.kind !== "timeout") {
        return { ok: false, detail, mayHaveArrived };
      }
      this.core.log("info", "snapshotChunkTimedOut", { peer, seq: chunk.seq, attempt });
    }
    return { ok: false, detail: `${detail} (${limits.attempts} attempts)`, mayHaveArrived };
  }

  /** The core hears that no snapshot went out (after this event: the core is in the middle of a Ready). */
  private reportSnapshotNotSent(peer: string): void {
    const core = this.core;
    queueMicrotask(() => {
      core.inBackground("snapshot failure report", () => {
        core.raft.reportSnapshotResult(peer, false);
        core.processReady();
      });
    });
  }

  /** Counts failed transfers in a row per peer and logs them; after a success the next transfer starts at once. */
  private noteSnapshotResult(peer: string, ok: boolean): void {
    const core = this.core;
    if (ok) {
      this.snapshotRetries.delete(peer);
      core.log("info", "snapshotSent", { peer, ok });
      return;
    }
    const failures = (this.snapshotRetries.get(peer)?.failures ?? 0) + 1;
    const retryInMs = snapshotRetryDelayMs(core.identity.cluster, failures);
    this.snapshotRetries.set(peer, { failures, notBeforeMs: core.deps.clock.now() + retryInMs });
    // A peer that fails again and again (it cannot install what it is sent) must be seen, not retried in silence.
    core.log(failures >= SNAPSHOT_FAILURES_LOGGED_AS_ERROR ? "error" : "warn", "snapshotSent", {
      peer,
      ok,
      failuresInARow: failures,
      retryInMs,
    });
  }

  /**
   * A repair (src/objects/monitor): streams this node's image to `peer`, flagged so that the peer installs it as soon
   * as the last chunk is staged. Resolves once the peer accepted the last chunk, that is, installed it. While it
   * runs, no Raft snapshot is streamed to the same peer (they would share its staging area).
   */
  async sendRepairImage(options: {
    readonly peer: string;
    readonly image: SnapshotImage;
    readonly snapshotTerm: number;
  }): Promise<RepairImageSent> {
    const { peer, image } = options;
    if (this.snapshotStreams.has(peer)) {
      return { ok: false, error: "a snapshot is being streamed to it; try again shortly", mayHaveInstalled: false };
    }
    this.snapshotStreams.set(peer, null);
    // The peer installs the image as it takes the last chunk: until that is sent, nothing can have been installed.
    let lastChunkSent = false;
    try {
      const transport = this.transportFor(peer);
      for (const [seq, data] of image.chunks.entries()) {
        const chunk: SnapshotChunk = {
          snapshotIndex: image.appliedIndex,
          snapshotTerm: options.snapshotTerm,
          seq,
          last: seq === image.chunks.length - 1,
          data,
          repair: true,
        };
        const limits = {
          timeoutMs: snapshotChunkTimeoutMs(this.core.identity.cluster, { chunkChars: data.length }),
          attempts: SNAPSHOT_CHUNK_LIMITS.attemptsPerChunk,
        };
        lastChunkSent = chunk.last;
        const delivery = await this.deliverChunk(peer, transport, chunk, limits);
        if (!delivery.ok) {
          return {
            ok: false,
            error: `chunk ${seq} of ${image.chunks.length} was not delivered: ${delivery.detail}`,
            mayHaveInstalled: chunk.last && delivery.mayHaveArrived,
          };
        }
      }
      return { ok: true };
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err.message : String(err), mayHaveInstalled: lastChunkSent };
    } finally {
      this.snapshotStreams.delete(peer);
    }
  }

  /**
   * The test fault rules: read from storage once and kept until faultRulesChanged(), since every call to a peer asks
   * for them. Rules that fault nothing are kept as none, so a healed cluster skips them as one never faulted does.
   */
  private faultRules(): FaultRules | null {
    if (!this.core.deps.faultsEnabled) {
      return null;
    }
    if (this.cachedFaultRules === undefined) {
      const stored = this.core.deps.kv.get<FaultRules>(TestHookKeys.faultRules) ?? null;
      this.cachedFaultRules = stored !== null && faultsAnything(stored) ? stored : null;
    }
    return this.cachedFaultRules;
  }

  /** The stored fault rules changed (ClusterNode.setFaults): read them again at the next call. */
  faultRulesChanged(): void {
    this.cachedFaultRules = undefined;
  }

  private peerInfoFor(peer: string): PeerInfo {
    let info = this.peerInfo.get(peer);
    if (info === undefined) {
      info = { incarnation: null, schemaHash: null };
      this.peerInfo.set(peer, info);
    }
    return info;
  }
}

/** Whether rules can change anything: a partition, a drop probability or a delay (applyFaults delivers otherwise). */
function faultsAnything(rules: FaultRules): boolean {
  return (rules.partitions ?? []).length > 0 || (rules.dropProbability ?? 0) > 0 || (rules.delayMs ?? 0) > 0;
}

/**
 * The proof that the configuration this node applied lists `node`: its applied index (RaftEnvelope.memberAsOf, and
 * a leader's start of a member it added), or undefined when that configuration does not list it. A removed node is
 * re-admitted by a proof beyond the index it was removed at (NodeHost.readmittedBy).
 */
export function membershipProof(
  status: { readonly membership: Membership; readonly applied: number },
  node: string,
): number | undefined {
  const listed = status.membership.voters.includes(node) || status.membership.learners.includes(node);
  return listed ? status.applied : undefined;
}

/** One snapshot chunk sent (deliverChunk): accepted, or not, and then whether a call carrying it may have arrived. */
type ChunkDelivery =
  { readonly ok: true } | { readonly ok: false; readonly detail: string; readonly mayHaveArrived: boolean };

/**
 * Whether a failed delivery may have reached the peer: some call went to its stub, and the peer did not answer with a
 * refusal it makes before taking anything in (UNAVAILABLE is also its answer when taking the envelope in failed). A
 * refusal answers the last call only: an earlier one the transport retried (a retryable error, which may come after
 * the peer took the envelope in, e.g. a reset for a code update) may have reached it all the same.
 */
export function mayHaveReachedPeer(failure: DeliveryFailure): boolean {
  if (failure.callsMade === 0) {
    return false;
  }
  return failure.kind !== "refused" || failure.refusal === "UNAVAILABLE" || failure.callsMade > 1;
}
