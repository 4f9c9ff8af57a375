// Counters and latency histograms one ClusterNode keeps in memory for GET /metrics: the billed work (RPCs received,
// alarm wake-ups), RPCs to peers by peer and message kind, leader changes seen, proposals pending and failed,
// write and read latency, snapshots sent and installed. They live as long as the object's instance: an evicted or
// restarted object starts from zero again, which Prometheus treats as a counter reset (rate() and increase()
// handle it); `startedAtMs` tells a reset apart from a quiet period.
//
// The peer stubs it instruments also carry the trace of the call that made the messages (trace.ts).
// The shell calls these from one-line hooks; everything is plain data once snapshotted, so it crosses RPC as is.
// Every map here is bounded: peers by membership (and MAX_SERIES), kinds and levels by fixed lists.
import type { Message } from "../replication/types";
import type { NodeAddress, NodeStatusReport } from "./cluster-types";
import { RaftKeys, StateKeys } from "./storage-keys";
import { outgoingTraceparent } from "./trace";
import type { RaftEnvelope } from "./transport/index";

/** Upper bounds, in seconds, of the latency buckets (RPCs, writes, reads): 1 ms to 10 s. */
export const LATENCY_BUCKETS_SECONDS: readonly number[] = [
  0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
];

/** The kind of an envelope to a peer, by what it carries (the most significant message wins). */
export const RPC_KINDS = [
  "snapshot",
  "append",
  "vote",
  "transfer",
  "read_index",
  "heartbeat",
  "response",
  "start",
] as const;
export type RpcKind = (typeof RPC_KINDS)[number];

/** RPCs a ClusterNode receives: Raft envelopes from peers, and calls from the worker (requests, status, scrapes). */
export const RECEIVED_KINDS = ["peer", "worker"] as const;
export type ReceivedKind = (typeof RECEIVED_KINDS)[number];

export const READ_LEVELS = ["none", "weak", "linearizable", "strong"] as const;
export type ReadLevelLabel = (typeof READ_LEVELS)[number];

/** At most this many (peer, kind) series: a bound even if membership churns through many names. */
const MAX_RPC_SERIES = 256;
const MAX_FAILURE_CODES = 32;
/** The log-size cache keeps at most this many entry sizes (the log is compacted long before that). */
const MAX_LOG_SIZE_CACHE_ENTRIES = 100_000;

export interface HistogramSnapshot {
  /** Cumulative counts, one per bound of LATENCY_BUCKETS_SECONDS (the +Inf bucket is `count`). */
  readonly cumulativeCounts: readonly number[];
  readonly sumSeconds: number;
  readonly count: number;
}

export interface PeerRpcSnapshot {
  readonly peer: string;
  readonly kind: RpcKind;
  /** Every attempt, retries included. */
  readonly calls: number;
  /** Attempts that threw or were refused by the peer. */
  readonly failures: number;
  /** Attempts that repeated an envelope already attempted. */
  readonly retries: number;
  readonly duration: HistogramSnapshot;
}

export interface NodeCountersSnapshot {
  /** When this instance's counters started (epoch ms): a later value means the counters were reset. */
  readonly startedAtMs: number;
  readonly leaderChangesSeen: number;
  /** Writes proposed on this node (as leader) and not yet answered. */
  readonly proposalsPending: number;
  /** Writes that failed after reaching this node as leader, by error code. */
  readonly proposalsFailed: readonly { readonly code: string; readonly count: number }[];
  readonly alarmWakeups: number;
  readonly received: readonly { readonly kind: ReceivedKind; readonly count: number }[];
  readonly rpc: readonly PeerRpcSnapshot[];
  readonly writeDuration: HistogramSnapshot;
  readonly readDuration: readonly { readonly level: ReadLevelLabel; readonly duration: HistogramSnapshot }[];
  readonly snapshotsSent: number;
  readonly snapshotSendFailures: number;
  readonly snapshotSentBytes: number;
  readonly snapshotsInstalled: number;
  readonly snapshotInstalledBytes: number;
}

export interface NodeStorageSnapshot {
  /** ctx.storage.sql.databaseSize: everything the object stores (user tables, log, Raft and SQL state). */
  readonly databaseBytes: number;
  /** The retained log, as the length of each entry's stored JSON (an estimate of its share of databaseBytes). */
  readonly logBytes: number;
  /** Request ids remembered for deduplication. */
  readonly dedupEntries: number;
}

/** The part of the platform's storage API the metrics read (structural, so Node-side type checks need no Workers types). */
export interface MetricsKv {
  get<T>(key: string): T | undefined;
  list<T>(options: { start?: string; prefix?: string; limit?: number }): Iterable<[string, T]>;
}

export interface MetricsStorage {
  readonly kv: MetricsKv;
  readonly sql: { readonly databaseSize: number };
}

/** What a node answers to metrics(): its status report, its counters and what it stores. */
export interface NodeMetricsReport {
  readonly status: NodeStatusReport;
  readonly counters: NodeCountersSnapshot;
  readonly storage: NodeStorageSnapshot;
}

/** Builds a node's metrics answer from its status report, its counters and its storage. */
export function nodeMetricsReport(options: {
  readonly counters: NodeCounters;
  readonly status: NodeStatusReport;
  readonly storage: MetricsStorage;
}): NodeMetricsReport {
  const storage = options.counters.storage({
    kv: options.storage.kv,
    databaseBytes: options.storage.sql.databaseSize,
    firstLogIndex: options.status.firstLogIndex,
    lastLogIndex: options.status.lastLogIndex,
  });
  return { status: options.status, counters: options.counters.snapshot(), storage };
}

class Histogram {
  private readonly counts = new Array<number>(LATENCY_BUCKETS_SECONDS.length).fill(0);
  private sum = 0;
  private total = 0;

  observe(seconds: number): void {
    const value = Number.isFinite(seconds) && seconds > 0 ? seconds : 0;
    const bucket = LATENCY_BUCKETS_SECONDS.findIndex((bound) => value <= bound);
    if (bucket >= 0) {
      this.counts[bucket] = (this.counts[bucket] ?? 0) + 1;
    }
    this.sum += value;
    this.total++;
  }

  snapshot(): HistogramSnapshot {
    let running = 0;
    const cumulativeCounts = this.counts.map((count) => (running += count));
    return { cumulativeCounts, sumSeconds: this.sum, count: this.total };
  }
}

interface RpcSeries {
  calls: number;
  failures: number;
  retries: number;
  readonly duration: Histogram;
}

/** Anything the transport calls on a peer: receive(envelope) and start(address). */
export interface CountablePeerStub {
  /** `traceparent`: the trace of the call that made these messages, if it was traced (see trace.ts). */
  receive(envelope: RaftEnvelope, traceparent?: string): Promise<unknown>;
  start(address: NodeAddress): Promise<unknown>;
}

export class NodeCounters {
  private readonly startedAtMs: number;
  private leaderChanges = 0;
  private lastLeader: string | null = null;
  private pending = 0;
  private readonly failed = new Map<string, number>();
  private alarms = 0;
  private readonly receivedCounts = new Map<ReceivedKind, number>();
  private readonly rpcSeries = new Map<string, RpcSeries>();
  /** Envelopes already attempted once: a second attempt with the same object is a retry. */
  private readonly attempted = new WeakSet<object>();
  private readonly writes = new Histogram();
  private readonly reads = new Map<ReadLevelLabel, Histogram>();
  private snapshotsSentCount = 0;
  private snapshotSendFailureCount = 0;
  private snapshotSentByteCount = 0;
  private snapshotsInstalledCount = 0;
  private snapshotInstalledByteCount = 0;
  /** Bytes of snapshot chunks received per snapshot index, until that snapshot is installed (bounded to a few). */
  private readonly stagedSnapshotBytes = new Map<number, number>();
  /** index -> stored JSON length of log entries already measured. */
  private readonly logEntryBytes = new Map<number, number>();

  constructor(private readonly nowMs: () => number) {
    this.startedAtMs = nowMs();
  }

  // ----------------------------------------------------------------------------------------------------------
  // Hooks

  /** Call after every event with the leader this node now knows: a different (non-null) leader is a change. */
  observeLeader(leader: string | null): void {
    if (leader === null || leader === this.lastLeader) {
      return;
    }
    this.lastLeader = leader;
    this.leaderChanges++;
  }

  alarmWakeup(): void {
    this.alarms++;
  }

  received(kind: ReceivedKind): void {
    this.receivedCounts.set(kind, (this.receivedCounts.get(kind) ?? 0) + 1);
  }

  /** Times a write; counts it pending while it runs and, when it fails on a leader, failed by error code. */
  async trackWrite<T extends { ok: boolean; error?: { code: string } }>(
    options: { asLeader: boolean },
    run: () => Promise<T>,
  ): Promise<T> {
    const started = this.nowMs();
    this.pending++;
    let codeOnFailure: string | null = "THROWN";
    try {
      const result = await run();
      codeOnFailure = result.ok ? null : (result.error?.code ?? "UNKNOWN");
      return result;
    } finally {
      this.pending--;
      this.writes.observe((this.nowMs() - started) / 1000);
      // Refused input never became a proposal; anything else that failed on a leader is a failed proposal.
      if (options.asLeader && codeOnFailure !== null && codeOnFailure !== "INVALID_REQUEST") {
        this.countFailure(codeOnFailure);
      }
    }
  }

  /** Times a read served (or refused) by this node, by consistency level. */
  async trackRead<T>(level: string, run: () => Promise<T>): Promise<T> {
    const started = this.nowMs();
    try {
      return await run();
    } finally {
      const label = (READ_LEVELS as readonly string[]).includes(level) ? (level as ReadLevelLabel) : "none";
      let histogram = this.reads.get(label);
      if (histogram === undefined) {
        histogram = new Histogram();
        this.reads.set(label, histogram);
      }
      histogram.observe((this.nowMs() - started) / 1000);
    }
  }

  /** Wraps a peer stub so that every call through it is counted and timed by peer and kind. */
  instrumentPeer(peer: string, stub: CountablePeerStub): CountablePeerStub {
    return {
      receive: (envelope) => {
        // Only appends that carry entries take the trace along: heartbeats and responses would otherwise pass a
        // request's trace on from one background send to the next, long after the request.
        const carriesEntries = envelope.messages.some(
          (message) => message.type === "append" && message.entries.length > 0,
        );
        const traceparent = carriesEntries ? outgoingTraceparent() : undefined;
        return this.timeCall(peer, envelopeKind(envelope), envelope, () =>
          traceparent === undefined ? stub.receive(envelope) : stub.receive(envelope, traceparent),
        );
      },
      start: (address) => this.timeCall(peer, "start", null, () => stub.start(address)),
    };
  }

  /**
   * On the receiving side, before an envelope is stepped; call what it returns afterwards. Counts snapshot chunk
   * bytes, and an installation when a snapshot message moved the applied index to it (read only for those).
   */
  watchEnvelope(envelope: RaftEnvelope, appliedIndex: () => number): () => void {
    const carriesSnapshot = envelope.messages.some((message) => message.type === "snapshot");
    const before = carriesSnapshot ? appliedIndex() : 0;
    return () => this.envelopeReceived(envelope, { before, after: carriesSnapshot ? appliedIndex() : 0 });
  }

  /** On the receiving side, after an envelope was stepped: counts snapshot bytes and installations. */
  envelopeReceived(envelope: RaftEnvelope, appliedIndex: { readonly before: number; readonly after: number }): void {
    const chunk = envelope.snapshotChunk;
    if (chunk !== undefined && chunk.seq >= 0) {
      if (!this.stagedSnapshotBytes.has(chunk.snapshotIndex) && this.stagedSnapshotBytes.size >= 4) {
        this.stagedSnapshotBytes.clear();
      }
      this.stagedSnapshotBytes.set(
        chunk.snapshotIndex,
        (this.stagedSnapshotBytes.get(chunk.snapshotIndex) ?? 0) + chunk.data.length,
      );
    }
    for (const message of envelope.messages) {
      if (message.type !== "snapshot") {
        continue;
      }
      const index = message.snapshot.index;
      if (appliedIndex.before < index && appliedIndex.after >= index) {
        this.snapshotsInstalledCount++;
        this.snapshotInstalledByteCount += this.stagedSnapshotBytes.get(index) ?? 0;
        this.stagedSnapshotBytes.delete(index);
      }
    }
  }

  // ----------------------------------------------------------------------------------------------------------
  // Reading

  snapshot(): NodeCountersSnapshot {
    const rpc: PeerRpcSnapshot[] = [];
    for (const [key, series] of this.rpcSeries) {
      const [peer = "", kind = "response"] = splitSeriesKey(key);
      rpc.push({
        peer,
        kind: kind as RpcKind,
        calls: series.calls,
        failures: series.failures,
        retries: series.retries,
        duration: series.duration.snapshot(),
      });
    }
    return {
      startedAtMs: this.startedAtMs,
      leaderChangesSeen: this.leaderChanges,
      proposalsPending: this.pending,
      proposalsFailed: [...this.failed].map(([code, count]) => ({ code, count })),
      alarmWakeups: this.alarms,
      received: [...this.receivedCounts].map(([kind, count]) => ({ kind, count })),
      rpc,
      writeDuration: this.writes.snapshot(),
      readDuration: [...this.reads].map(([level, histogram]) => ({ level, duration: histogram.snapshot() })),
      snapshotsSent: this.snapshotsSentCount,
      snapshotSendFailures: this.snapshotSendFailureCount,
      snapshotSentBytes: this.snapshotSentByteCount,
      snapshotsInstalled: this.snapshotsInstalledCount,
      snapshotInstalledBytes: this.snapshotInstalledByteCount,
    };
  }

  /**
   * What the node stores. The log's size is measured entry by entry and cached by index, so a scrape reads only
   * entries it has not measured yet; entries outside [firstIndex, lastIndex] (compacted or truncated) are forgotten.
   */
  storage(options: {
    readonly kv: MetricsKv;
    readonly databaseBytes: number;
    readonly firstLogIndex: number;
    readonly lastLogIndex: number;
  }): NodeStorageSnapshot {
    const logPrefix = RaftKeys.logPrefix;
    for (const index of this.logEntryBytes.keys()) {
      if (index < options.firstLogIndex || index > options.lastLogIndex) {
        this.logEntryBytes.delete(index);
      }
    }
    let measuredUpTo = options.firstLogIndex - 1;
    for (const index of this.logEntryBytes.keys()) {
      measuredUpTo = Math.max(measuredUpTo, index);
    }
    if (measuredUpTo < options.lastLogIndex && this.logEntryBytes.size < MAX_LOG_SIZE_CACHE_ENTRIES) {
      const start = RaftKeys.log(measuredUpTo + 1);
      const limit = Math.min(options.lastLogIndex - measuredUpTo, MAX_LOG_SIZE_CACHE_ENTRIES - this.logEntryBytes.size);
      for (const [key, value] of options.kv.list<unknown>({ start, prefix: logPrefix, limit })) {
        this.logEntryBytes.set(Number(key.slice(logPrefix.length)), JSON.stringify(value).length);
      }
    }
    let logBytes = 0;
    for (const bytes of this.logEntryBytes.values()) {
      logBytes += bytes;
    }
    return {
      databaseBytes: options.databaseBytes,
      logBytes,
      dedupEntries: options.kv.get<number>(StateKeys.dedupCount) ?? 0,
    };
  }

  // ----------------------------------------------------------------------------------------------------------

  private async timeCall<T>(
    peer: string,
    kind: RpcKind,
    envelope: RaftEnvelope | null,
    call: () => Promise<T>,
  ): Promise<T> {
    const series = this.seriesFor(peer, kind);
    series.calls++;
    if (envelope !== null) {
      if (this.attempted.has(envelope)) {
        series.retries++;
      } else {
        this.attempted.add(envelope);
      }
    }
    const started = this.nowMs();
    let ok = false;
    try {
      const answer = await call();
      ok = !isRefusal(answer);
      return answer;
    } finally {
      series.duration.observe((this.nowMs() - started) / 1000);
      if (!ok) {
        series.failures++;
      }
      if (envelope !== null) {
        this.countSnapshotSend(envelope, ok);
      }
    }
  }

  private countSnapshotSend(envelope: RaftEnvelope, ok: boolean): void {
    if (ok && envelope.snapshotChunk !== undefined && envelope.snapshotChunk.seq >= 0) {
      this.snapshotSentByteCount += envelope.snapshotChunk.data.length;
    }
    if (!envelope.messages.some((message) => message.type === "snapshot")) {
      return;
    }
    if (ok) {
      this.snapshotsSentCount++;
    } else {
      this.snapshotSendFailureCount++;
    }
  }

  private seriesFor(peer: string, kind: RpcKind): RpcSeries {
    const key = seriesKey(peer, kind);
    let series = this.rpcSeries.get(key);
    if (series === undefined) {
      // Beyond the bound (membership churned through many names) the oldest series is dropped: a reset for it.
      if (this.rpcSeries.size >= MAX_RPC_SERIES) {
        const oldest = this.rpcSeries.keys().next().value;
        if (oldest !== undefined) {
          this.rpcSeries.delete(oldest);
        }
      }
      series = { calls: 0, failures: 0, retries: 0, duration: new Histogram() };
      this.rpcSeries.set(key, series);
    }
    return series;
  }

  private countFailure(code: string): void {
    if (!this.failed.has(code) && this.failed.size >= MAX_FAILURE_CODES) {
      code = "OTHER";
    }
    this.failed.set(code, (this.failed.get(code) ?? 0) + 1);
  }
}

const KIND_PRIORITY: Record<Message["type"], RpcKind> = {
  snapshot: "snapshot",
  append: "append",
  vote: "vote",
  preVote: "vote",
  timeoutNow: "transfer",
  readIndex: "read_index",
  readIndexResponse: "read_index",
  heartbeat: "heartbeat",
  appendResponse: "response",
  voteResponse: "response",
  preVoteResponse: "response",
  heartbeatResponse: "response",
};

/** The most significant kind an envelope carries (RPC_KINDS order); a snapshot chunk counts as "snapshot". */
export function envelopeKind(envelope: RaftEnvelope): RpcKind {
  if (envelope.snapshotChunk !== undefined && envelope.snapshotChunk.seq >= 0) {
    return "snapshot";
  }
  let best: RpcKind = "response";
  for (const message of envelope.messages) {
    const kind = KIND_PRIORITY[message.type] ?? "response";
    if (RPC_KINDS.indexOf(kind) < RPC_KINDS.indexOf(best)) {
      best = kind;
    }
  }
  return best;
}

/** A peer's answer { ok: false } is a refusal: the call reached it but did not deliver. */
function isRefusal(answer: unknown): boolean {
  return typeof answer === "object" && answer !== null && (answer as { ok?: unknown }).ok === false;
}

function seriesKey(peer: string, kind: RpcKind): string {
  return `${kind}\u0000${peer}`;
}

function splitSeriesKey(key: string): [string, string] {
  const separator = key.indexOf("\u0000");
  return [key.slice(separator + 1), key.slice(0, separator)];
}
