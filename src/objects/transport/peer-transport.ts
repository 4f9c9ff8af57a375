// One PeerTransport per peer, owned by a node object: it turns the Raft core's outgoing messages into RPC calls
// to the peer's `receive(envelope)`, in the background, with everything bounded.
//
//  - send(messages) is synchronous and never blocks: messages join the single pending batch, which goes out as
//    soon as one of `maxInFlight` call slots is free. When the batch exceeds its bounds the OLDEST messages are
//    dropped and reported ("overflow"): Raft tolerates loss and resends what matters, and the newest messages
//    (latest term, commit index, heartbeats) are the most useful.
//  - Calls on one stub reach the peer in the order they were made (Cap'n Proto E-order), but a retry or a new
//    stub can reorder envelopes; Raft tolerates reordering and duplicates.
//  - Every call has a timeout; retries are bounded, jittered and only for "retryable" errors, within a deadline.
//  - After any failed call the stub is dropped and a fresh one is made for the next call (a stub is broken after
//    an exception).
//  - A per-peer circuit breaker: while OPEN, pending messages are discarded and reported ("circuitOpen"); once
//    its time passed (or the peer called us: peerHeardFrom), the next batch goes out alone as the probe, and what
//    is sent meanwhile waits in the pending batch (bounded as ever) for the probe's result: sent on success,
//    discarded on failure. Discarding it at once cost a reconnected peer a heartbeat interval.
//  - Callbacks report the outcome of every envelope so the node can call core.reportUnreachable(peer) and
//    reportSnapshotResult(peer, ok). They are never called synchronously from inside send() or deliverNow();
//    onEvent (logging only: breaker transitions, stub replacements) may be.
import { withRetry, type BackoffOptions } from "./backoff";
import {
  CircuitBreaker,
  type BreakerPermit,
  type BreakerState,
  type BreakerTransition,
  type CircuitBreakerConfig,
} from "./circuit-breaker";
import { sleep } from "../deadline";
import { systemClock, type TransportClock } from "./clock";
import {
  createEnvelope,
  estimateChunkBytes,
  estimateMessageBytes,
  MAX_MESSAGES_PER_ENVELOPE,
  parseReceiveResult,
  type RaftEnvelope,
  type ReceiveRefusalCode,
  type ReceiveResult,
  type SnapshotChunk,
} from "./envelope";
import { classifyError, DeliveryError, describeError, FaultInjectedError, type FailureClass } from "./errors";
import { applyFaults, type FaultRules } from "./fault-hook";
import type { Message } from "../../replication/types";

/** The platform's limit on one RPC payload. */
export const MAX_RPC_PAYLOAD_BYTES = 32 * 1024 * 1024;

/**
 * - FailureClass: the call failed (see errors.ts).
 * - "refused": the peer answered but refused the envelope (protocol version, cluster, addressee, malformed,
 *   unavailable); `refusal` says which.
 * - "circuitOpen": not sent, the breaker is OPEN (or its probe is in flight).
 * - "overflow": dropped from the pending batch to keep it within bounds.
 * - "oversize": one message (or chunk) is estimated larger than the 32 MiB RPC limit; it can never be sent.
 * - "busy": deliverNow() only, its slots are all in use.
 */
export type DeliveryFailureKind = FailureClass | "refused" | "circuitOpen" | "overflow" | "oversize" | "busy";

export interface DeliveryFailure {
  readonly kind: DeliveryFailureKind;
  readonly detail: string;
  /** The messages that were not delivered (possibly empty for a chunk-only delivery). */
  readonly messages: readonly Message[];
  readonly snapshotChunk?: SnapshotChunk;
  /** Calls made (0 when nothing was sent). */
  readonly attempts: number;
  /**
   * Of those, the calls handed to the peer's stub: the others were dropped by the fault hook (tests) before any call.
   * 0 means the envelope never left this node.
   */
  readonly callsMade: number;
  readonly refusal?: ReceiveRefusalCode;
}

export interface Delivery {
  readonly messages: readonly Message[];
  readonly snapshotChunk?: SnapshotChunk;
  readonly attempts: number;
}

export type DeliveryOutcome =
  { readonly ok: true; readonly delivery: Delivery } | { readonly ok: false; readonly failure: DeliveryFailure };

export type PeerTransportEvent =
  | { readonly kind: "breaker"; readonly peer: string; readonly transition: BreakerTransition }
  | { readonly kind: "stubReplaced"; readonly peer: string; readonly after: FailureClass }
  | {
      readonly kind: "callbackFailed";
      readonly peer: string;
      readonly callback: "onDelivered" | "onFailure";
      readonly error: unknown;
    }
  | { readonly kind: "internalError"; readonly peer: string; readonly error: unknown };

export interface PeerTransportConfig {
  /** Each call is abandoned after this long. Keep it at or below the election timeout. */
  readonly callTimeoutMs: number;
  /** All attempts for one envelope end within this long. */
  readonly deadlineMs: number;
  /** Attempts per envelope, the first included; only "retryable" failures are retried. */
  readonly maxAttempts: number;
  readonly backoff: BackoffOptions;
  readonly breaker: CircuitBreakerConfig;
  /** Background calls in flight to this peer at once. */
  readonly maxInFlight: number;
  /** deliverNow() calls in flight at once (separate from maxInFlight, so snapshot chunks are never starved). */
  readonly maxDirectInFlight: number;
  /** Bounds on the pending batch; beyond them the oldest messages are dropped. */
  readonly maxPendingMessages: number;
  readonly maxPendingBytes: number;
  /** Bounds on one envelope (a single larger message still goes out alone, up to the RPC limit). */
  readonly maxMessagesPerEnvelope: number;
  readonly maxEnvelopeBytes: number;
}

export const DEFAULT_PEER_TRANSPORT_CONFIG: PeerTransportConfig = {
  callTimeoutMs: 1_000,
  deadlineMs: 1_500,
  maxAttempts: 3,
  backoff: { baseDelayMs: 25, maxDelayMs: 250 },
  breaker: { failureThreshold: 3, successThreshold: 1, openTimeoutMs: 1_000 },
  maxInFlight: 4,
  maxDirectInFlight: 1,
  maxPendingMessages: 512,
  maxPendingBytes: 8 * 1024 * 1024,
  maxMessagesPerEnvelope: 256,
  maxEnvelopeBytes: 8 * 1024 * 1024,
};

export interface PeerTransportOptions<Stub> {
  readonly cluster: string;
  /** This node's name: the `from` of every message. */
  readonly self: string;
  /** The peer's name: the `to` of every message. */
  readonly peer: string;
  /** Makes a fresh stub for the peer (e.g. env.CLUSTER_NODE.getByName(...)); called again after every failure. */
  readonly getStub: () => Stub;
  /** Makes the RPC call, e.g. `(stub, envelope) => stub.receive(envelope)`. Its answer is checked. */
  readonly call: (stub: Stub, envelope: RaftEnvelope) => Promise<unknown>;
  readonly onDelivered?: (peer: string, delivery: Delivery) => void;
  readonly onFailure: (peer: string, failure: DeliveryFailure) => void;
  readonly onEvent?: (event: PeerTransportEvent) => void;
  /** Test-only fault rules (see fault-hook.ts); null or absent in production. Read once per attempt. */
  readonly faultRules?: () => FaultRules | null;
  readonly config?: Partial<PeerTransportConfig>;
  readonly clock?: TransportClock;
  /** In [0, 1); used for backoff jitter and fault dice. */
  readonly random?: () => number;
  /**
   * Whether a batch is a round whose answers the sender waits on (see roundAnswerExpected); every batch when absent.
   * Heartbeats and commit notifications, say, need not hold back the next proposal.
   */
  readonly isRound?: (messages: readonly Message[]) => boolean;
}

export interface PeerTransportStats {
  readonly peer: string;
  readonly breaker: BreakerState;
  readonly consecutiveFailures: number;
  readonly reconnections: number;
  readonly inFlight: number;
  readonly directInFlight: number;
  readonly pendingMessages: number;
  readonly pendingBytes: number;
  readonly envelopesDelivered: number;
  readonly envelopesFailed: number;
  readonly messagesDropped: number;
  readonly stubsMade: number;
}

interface Batch {
  readonly messages: readonly Message[];
  readonly snapshotChunk?: SnapshotChunk;
  readonly onlyForAnswer?: true;
}

function assertPositiveInteger(value: number, name: string): void {
  if (!Number.isInteger(value) || value < 1) {
    throw new RangeError(`${name} must be an integer >= 1, got ${value}`);
  }
}

export function resolvePeerTransportConfig(overrides: Partial<PeerTransportConfig> = {}): PeerTransportConfig {
  const config: PeerTransportConfig = { ...DEFAULT_PEER_TRANSPORT_CONFIG, ...overrides };
  assertPositiveInteger(config.maxAttempts, "maxAttempts");
  assertPositiveInteger(config.maxInFlight, "maxInFlight");
  assertPositiveInteger(config.maxDirectInFlight, "maxDirectInFlight");
  assertPositiveInteger(config.maxPendingMessages, "maxPendingMessages");
  assertPositiveInteger(config.maxPendingBytes, "maxPendingBytes");
  assertPositiveInteger(config.maxMessagesPerEnvelope, "maxMessagesPerEnvelope");
  assertPositiveInteger(config.maxEnvelopeBytes, "maxEnvelopeBytes");
  if (config.maxMessagesPerEnvelope > MAX_MESSAGES_PER_ENVELOPE) {
    throw new RangeError(
      `maxMessagesPerEnvelope must be <= ${MAX_MESSAGES_PER_ENVELOPE}, got ${config.maxMessagesPerEnvelope}`,
    );
  }
  if (config.maxEnvelopeBytes > MAX_RPC_PAYLOAD_BYTES) {
    throw new RangeError(`maxEnvelopeBytes must be <= ${MAX_RPC_PAYLOAD_BYTES}, got ${config.maxEnvelopeBytes}`);
  }
  if (!(config.callTimeoutMs > 0)) {
    throw new RangeError(`callTimeoutMs must be > 0, got ${config.callTimeoutMs}`);
  }
  if (!(config.deadlineMs >= config.callTimeoutMs)) {
    throw new RangeError(`deadlineMs (${config.deadlineMs}) must be >= callTimeoutMs (${config.callTimeoutMs})`);
  }
  return config;
}

export class PeerTransport<Stub> {
  readonly peer: string;
  private readonly options: PeerTransportOptions<Stub>;
  private readonly config: PeerTransportConfig;
  private readonly clock: TransportClock;
  private readonly random: () => number;
  private readonly breaker: CircuitBreaker;
  private stub: Stub | null = null;
  private pending: Message[] = [];
  private pendingSizes: number[] = [];
  private pendingByteCount = 0;
  private inFlightCount = 0;
  /** Background calls in flight whose batch is a round (options.isRound). */
  private roundsInFlightCount = 0;
  private directInFlightCount = 0;
  /** Direct deliveries waiting for the breaker's probe to be answered (at most maxDirectInFlight, counted there). */
  private readonly probeWaiters = new Set<() => void>();
  private readonly tasks = new Set<Promise<void>>();
  private closed = false;
  private counters = { envelopesDelivered: 0, envelopesFailed: 0, messagesDropped: 0, stubsMade: 0 };

  constructor(options: PeerTransportOptions<Stub>) {
    if (options.self === options.peer) {
      throw new Error(`a node cannot have a transport to itself (${options.self})`);
    }
    this.options = options;
    this.peer = options.peer;
    this.config = resolvePeerTransportConfig(options.config);
    this.clock = options.clock ?? systemClock;
    this.random = options.random ?? Math.random;
    this.breaker = new CircuitBreaker({
      config: this.config.breaker,
      now: () => this.clock.now(),
      onTransition: (transition) => this.emit({ kind: "breaker", peer: this.peer, transition }),
    });
  }

  /** Queues messages for the peer and returns at once; delivery happens in the background. */
  send(messages: readonly Message[]): void {
    this.assertOpen();
    for (const message of messages) {
      this.assertAddressed(message);
    }
    const oversize: Message[] = [];
    for (const message of messages) {
      const bytes = estimateMessageBytes(message);
      if (bytes > MAX_RPC_PAYLOAD_BYTES) {
        oversize.push(message);
        continue;
      }
      this.pending.push(message);
      this.pendingSizes.push(bytes);
      this.pendingByteCount += bytes;
    }
    if (oversize.length > 0) {
      this.reportLater({
        kind: "oversize",
        detail: `estimated above the ${MAX_RPC_PAYLOAD_BYTES}-byte RPC limit`,
        messages: oversize,
        attempts: 0,
        callsMade: 0,
      });
    }
    this.enforcePendingBounds();
    this.pump();
  }

  /**
   * Sends one envelope now, outside the pending batch (for snapshot chunks, which must not be coalesced or
   * dropped), and resolves with its outcome; it never rejects. The callbacks fire for it as well. At most
   * `maxDirectInFlight` run at once; beyond that it resolves at once with a "busy" failure.
   */
  deliverNow(parts: {
    messages?: readonly Message[];
    snapshotChunk?: SnapshotChunk;
    /** Send an empty envelope, for the peer's answer alone (its report about itself); only with nothing else. */
    onlyForAnswer?: boolean;
    timeoutMs?: number;
    deadlineMs?: number;
    /**
     * While the breaker's probe is in flight, wait for its answer (at most `deadlineMs`, as long as any delivery
     * takes) and go out then, instead of failing at once: a snapshot the core asks for just as the peer comes back
     * would otherwise fail, count against the peer, and wait for the next heartbeat round.
     */
    waitForProbe?: boolean;
  }): Promise<DeliveryOutcome> {
    this.assertOpen();
    const batch: Batch = {
      messages: parts.messages ?? [],
      ...(parts.snapshotChunk === undefined ? {} : { snapshotChunk: parts.snapshotChunk }),
      ...(parts.onlyForAnswer === true ? { onlyForAnswer: true as const } : {}),
    };
    for (const message of batch.messages) {
      this.assertAddressed(message);
    }
    const empty = batch.messages.length === 0 && batch.snapshotChunk === undefined;
    if (empty !== (parts.onlyForAnswer === true)) {
      throw new Error(
        empty
          ? `deliverNow to ${this.peer} was given neither messages nor a snapshot chunk`
          : `deliverNow to ${this.peer} was asked for an answer only, but given messages or a snapshot chunk`,
      );
    }
    const bytes =
      batch.messages.reduce((sum, m) => sum + estimateMessageBytes(m), 0) +
      (batch.snapshotChunk ? estimateChunkBytes(batch.snapshotChunk) : 0);
    if (bytes > MAX_RPC_PAYLOAD_BYTES) {
      return Promise.resolve(
        this.failNow({
          kind: "oversize",
          detail: `estimated ${bytes} bytes, above the RPC limit`,
          ...batch,
          attempts: 0,
          callsMade: 0,
        }),
      );
    }
    if (this.directInFlightCount >= this.config.maxDirectInFlight) {
      return Promise.resolve(
        this.failNow({
          kind: "busy",
          detail: `${this.directInFlightCount} direct deliveries already in flight`,
          ...batch,
          attempts: 0,
          callsMade: 0,
        }),
      );
    }
    const timing = {
      timeoutMs: parts.timeoutMs ?? this.config.callTimeoutMs,
      deadlineMs: parts.deadlineMs ?? Math.max(this.config.deadlineMs, parts.timeoutMs ?? 0),
    };
    const permit = this.breaker.tryAcquire();
    if (permit === null && parts.waitForProbe === true && this.breaker.probeInFlight) {
      this.directInFlightCount++;
      const outcome = this.untilProbeAnswered(this.clock.now() + this.config.deadlineMs).then((afterProbe) => {
        this.directInFlightCount--;
        return this.deliverDirect(batch, afterProbe, timing);
      });
      this.track(outcome.then(() => undefined));
      return outcome;
    }
    return this.deliverDirect(batch, permit, timing);
  }

  /** deliverNow once its checks passed: out now with `permit`, or refused by the breaker without one. */
  private deliverDirect(
    batch: Batch,
    permit: BreakerPermit | null,
    timing: { timeoutMs: number; deadlineMs: number },
  ): Promise<DeliveryOutcome> {
    if (permit === null) {
      return Promise.resolve(this.refusedByBreaker(batch));
    }
    this.directInFlightCount++;
    const outcome = this.deliver(batch, permit, timing).finally(() => {
      this.directInFlightCount--;
      // It may have been the breaker's probe, which messages pending meanwhile wait on.
      this.pump();
    });
    this.track(outcome.then(() => undefined));
    return outcome;
  }

  private refusedByBreaker(batch: Batch): DeliveryOutcome {
    return this.failNow({
      kind: "circuitOpen",
      detail: `circuit breaker is ${this.breaker.state}`,
      ...batch,
      attempts: 0,
      callsMade: 0,
    });
  }

  /**
   * Waits while the breaker's probe is in flight, until `deadlineAtMs`: every delivery's end wakes it, but only the
   * probe's answer settles the breaker (another call of an earlier epoch, or a probe superseded since, may end first).
   * Then the permit tryAcquire gives, or null when the breaker refuses or the transport closed.
   */
  private async untilProbeAnswered(deadlineAtMs: number): Promise<BreakerPermit | null> {
    for (;;) {
      if (this.closed) {
        return null;
      }
      const permit = this.breaker.tryAcquire();
      const leftMs = deadlineAtMs - this.clock.now();
      if (permit !== null || !this.breaker.probeInFlight || leftMs <= 0) {
        return permit;
      }
      await this.deliveryEnded(leftMs);
    }
  }

  /** Resolves when a delivery in flight ends (or the transport closes), or after `waitMs`. */
  private deliveryEnded(waitMs: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        this.probeWaiters.delete(done);
        cancel();
        resolve();
      };
      const cancel = this.clock.schedule(done, waitMs);
      this.probeWaiters.add(done);
    });
  }

  /**
   * The peer called us, so it is up and reaching us: an open breaker lets the next envelope through as a probe
   * (circuit-breaker.ts, noteContact), rather than leaving the peer alone for the rest of its time.
   */
  peerHeardFrom(how: { readonly answer?: boolean } = {}): void {
    this.breaker.noteContact(how);
  }

  /** Whether calls had been failing and the breaker would let the next one through as its probe now. */
  get probeWouldGoOut(): boolean {
    return this.breaker.wouldAdmitProbe();
  }

  /** Resolves once no call is in flight and no callback is pending (each call is bounded by its deadline). */
  async settled(): Promise<void> {
    while (this.tasks.size > 0) {
      await Promise.all([...this.tasks]);
    }
  }

  /** Stops the transport: pending messages are discarded, in-flight calls finish without callbacks. */
  close(): Promise<void> {
    this.closed = true;
    this.pending = [];
    this.pendingSizes = [];
    this.pendingByteCount = 0;
    this.wakeProbeWaiters();
    return this.settled();
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /**
   * Whether a background call carrying a round (options.isRound) is in flight to a peer that has been answering
   * (breaker closed, no failure since the last success): its answer is expected soon. A call to a silent peer is
   * expected to time out instead.
   */
  get roundAnswerExpected(): boolean {
    return this.roundsInFlightCount > 0 && this.breaker.state === "CLOSED" && this.breaker.consecutiveFailures === 0;
  }

  stats(): PeerTransportStats {
    return {
      peer: this.peer,
      breaker: this.breaker.state,
      consecutiveFailures: this.breaker.consecutiveFailures,
      reconnections: this.breaker.reconnections,
      inFlight: this.inFlightCount,
      directInFlight: this.directInFlightCount,
      pendingMessages: this.pending.length,
      pendingBytes: this.pendingByteCount,
      ...this.counters,
    };
  }

  // -------------------------------------------------------------------------------------------------------------

  private assertOpen(): void {
    if (this.closed) {
      throw new Error(`the transport to ${this.peer} is closed`);
    }
  }

  private assertAddressed(message: Message): void {
    if (message.from !== this.options.self || message.to !== this.peer) {
      throw new Error(
        `the transport from ${this.options.self} to ${this.peer} was given a ${message.type} message from ${message.from} to ${message.to}`,
      );
    }
  }

  /** Drops the oldest pending messages until the batch is within its bounds (the newest message always stays). */
  private enforcePendingBounds(): void {
    let dropCount = 0;
    let droppedBytes = 0;
    while (
      this.pending.length - dropCount > 1 &&
      (this.pending.length - dropCount > this.config.maxPendingMessages ||
        this.pendingByteCount - droppedBytes > this.config.maxPendingBytes)
    ) {
      droppedBytes += this.pendingSizes[dropCount] ?? 0;
      dropCount++;
    }
    if (dropCount === 0) {
      return;
    }
    const dropped = this.pending.splice(0, dropCount);
    this.pendingSizes.splice(0, dropCount);
    this.pendingByteCount -= droppedBytes;
    this.counters.messagesDropped += dropped.length;
    this.reportLater({
      kind: "overflow",
      detail: `pending batch over its bounds: dropped the ${dropped.length} oldest message(s)`,
      messages: dropped,
      attempts: 0,
      callsMade: 0,
    });
  }

  /**
   * Starts calls while slots are free and messages wait; discards them while the breaker refuses, except while its
   * probe is in flight: then they wait for its result (each delivery's end pumps again).
   */
  private pump(): void {
    while (!this.closed && this.inFlightCount < this.config.maxInFlight && this.pending.length > 0) {
      const permit = this.breaker.tryAcquire();
      if (permit === null && this.breaker.probeInFlight) {
        return;
      }
      if (permit === null) {
        const discarded = this.takePending(this.pending.length, Number.POSITIVE_INFINITY);
        this.counters.messagesDropped += discarded.length;
        this.reportLater({
          kind: "circuitOpen",
          detail: `circuit breaker is ${this.breaker.state}`,
          messages: discarded,
          attempts: 0,
          callsMade: 0,
        });
        return;
      }
      const messages = this.takePending(this.config.maxMessagesPerEnvelope, this.config.maxEnvelopeBytes);
      const round = this.options.isRound?.(messages) ?? true;
      this.inFlightCount++;
      this.roundsInFlightCount += round ? 1 : 0;
      const done = (): void => {
        this.inFlightCount--;
        this.roundsInFlightCount -= round ? 1 : 0;
        this.pump();
      };
      // deliver() does not reject; should a bug make it, the slot is still freed and the error surfaced.
      this.track(
        this.deliver({ messages }, permit, {
          timeoutMs: this.config.callTimeoutMs,
          deadlineMs: this.config.deadlineMs,
        }).then(done, (error: unknown) => {
          this.emit({ kind: "internalError", peer: this.peer, error });
          done();
        }),
      );
    }
  }

  /** Takes the oldest messages up to the bounds, always at least one. */
  private takePending(maxCount: number, maxBytes: number): Message[] {
    let count = 0;
    let bytes = 0;
    while (count < this.pending.length && count < maxCount) {
      const next = this.pendingSizes[count] ?? 0;
      if (count > 0 && bytes + next > maxBytes) {
        break;
      }
      bytes += next;
      count++;
    }
    const taken = this.pending.splice(0, count);
    this.pendingSizes.splice(0, count);
    this.pendingByteCount -= bytes;
    return taken;
  }

  /** One envelope (deliverOnce); then direct deliveries waiting for the probe's answer look at the breaker again. */
  private async deliver(
    batch: Batch,
    permit: BreakerPermit,
    timing: { timeoutMs: number; deadlineMs: number },
  ): Promise<DeliveryOutcome> {
    try {
      return await this.deliverOnce(batch, permit, timing);
    } finally {
      this.wakeProbeWaiters();
    }
  }

  private wakeProbeWaiters(): void {
    for (const wake of [...this.probeWaiters]) {
      wake();
    }
  }

  /** One envelope, with retries; records the result on the breaker and reports it. Never rejects. */
  private async deliverOnce(
    batch: Batch,
    permit: BreakerPermit,
    timing: { timeoutMs: number; deadlineMs: number },
  ): Promise<DeliveryOutcome> {
    const envelope = createEnvelope({
      cluster: this.options.cluster,
      from: this.options.self,
      to: this.peer,
      ...batch,
    });
    let attempts = 0;
    const calls = { made: 0 };
    let answer: ReceiveResult;
    try {
      answer = await withRetry(
        async () => {
          attempts++;
          return parseReceiveResult(await this.attempt(envelope, calls));
        },
        {
          maxAttempts: this.config.maxAttempts,
          baseDelayMs: this.config.backoff.baseDelayMs,
          maxDelayMs: this.config.backoff.maxDelayMs,
          timeoutMs: timing.timeoutMs,
          deadlineMs: timing.deadlineMs,
          random: this.random,
          clock: this.clock,
          onAttemptFailed: ({ classification }) => this.dropStub(classification),
          what: `envelope to ${this.peer}`,
        },
      );
    } catch (err) {
      this.breaker.recordFailure(permit);
      const kind = classifyError(err);
      const detail = err instanceof DeliveryError ? err.message : describeError(err);
      return this.finishFailed({ kind, detail, ...batch, attempts, callsMade: calls.made });
    }
    if (!answer.ok) {
      this.breaker.recordFailure(permit);
      return this.finishFailed({
        kind: "refused",
        detail: `${answer.error.code}: ${answer.error.message}`,
        refusal: answer.error.code,
        ...batch,
        attempts,
        callsMade: calls.made,
      });
    }
    this.breaker.recordSuccess(permit);
    this.counters.envelopesDelivered++;
    const delivery: Delivery = { ...batch, attempts };
    this.invokeCallback("onDelivered", () => this.options.onDelivered?.(this.peer, delivery));
    return { ok: true, delivery };
  }

  /** One call: consult the fault rules (tests only), then the stub (counted in `calls` once handed to it). */
  private async attempt(envelope: RaftEnvelope, calls: { made: number }): Promise<unknown> {
    const rules = this.options.faultRules?.() ?? null;
    if (rules !== null) {
      const decision = applyFaults(rules, this.options.self, this.peer, this.random);
      if (decision === "drop") {
        throw new FaultInjectedError(`fault injection dropped an envelope ${this.options.self} -> ${this.peer}`);
      }
      if (decision !== "deliver") {
        await sleep(decision.delayMs, this.clock);
      }
    }
    const stub = this.currentStub();
    calls.made++;
    return this.options.call(stub, envelope);
  }

  private currentStub(): Stub {
    if (this.stub === null) {
      this.stub = this.options.getStub();
      this.counters.stubsMade++;
    }
    return this.stub;
  }

  private dropStub(after: FailureClass): void {
    if (this.stub === null) {
      return;
    }
    this.stub = null;
    this.emit({ kind: "stubReplaced", peer: this.peer, after });
  }

  private finishFailed(failure: DeliveryFailure): DeliveryOutcome {
    this.counters.envelopesFailed++;
    this.invokeCallback("onFailure", () => this.options.onFailure(this.peer, failure));
    return { ok: false, failure };
  }

  /** A failure known before any call (busy, breaker open, oversize): reported after the caller returns. */
  private failNow(failure: DeliveryFailure): DeliveryOutcome {
    this.reportLater(failure);
    return { ok: false, failure };
  }

  private reportLater(failure: DeliveryFailure): void {
    this.track(
      Promise.resolve().then(() => {
        this.invokeCallback("onFailure", () => this.options.onFailure(this.peer, failure));
      }),
    );
  }

  private invokeCallback(callback: "onDelivered" | "onFailure", run: () => void): void {
    if (this.closed) {
      return;
    }
    try {
      run();
    } catch (error) {
      this.emit({ kind: "callbackFailed", peer: this.peer, callback, error });
    }
  }

  /** Events are for logging; a throwing logger must not break delivery, so its error is only printed. */
  private emit(event: PeerTransportEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch (error) {
      console.error(`transport to ${this.peer}: onEvent threw on a ${event.kind} event:`, error);
    }
  }

  private track(task: Promise<void>): void {
    this.tasks.add(task);
    void task.finally(() => this.tasks.delete(task));
  }
}
