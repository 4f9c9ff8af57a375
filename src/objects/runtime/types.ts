// What NodeRuntime is built from and what the modules under this folder share with it.
import type { RaftNodeApi, SeededRandom } from "../../replication/index";
import type { ClusterConfig, MemberConfig, NodeAddress } from "../cluster-types";
import type { LogLevel } from "../log";
import type { ShellBugs } from "../shell-bugs";
import type { StateMachinePort } from "../state-machine-port";
import type { SyncKv, SyncTransaction } from "../raft-storage";
import type { RaftEnvelope, TransportClock } from "../transport/index";

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
  /** The synchronous key-value store Raft state and runtime hints live in (ctx.storage.kv on the platform). */
  readonly kv: SyncKv;
  /** Makes a group of KV writes atomic (ctx.storage.transactionSync on the platform); see RaftStorage.persist. */
  readonly transaction: SyncTransaction;
  readonly stateMachine: StateMachinePort;
  readonly peerStub: (member: MemberConfig) => PeerStub;
  /** Fault rules are consulted only when test configuration switched fault injection on. */
  readonly faultsEnabled: boolean;
  /** Time and timers: every deadline the runtime keeps runs on this clock (the simulator drives its own). */
  readonly clock: TransportClock;
  readonly seed: number;
  /** This node's storage incarnation (see PeerReport). */
  readonly incarnation: string;
  readonly onLeaderWork?: () => void;
  /** Test only: bugs to put back (see shell-bugs.ts). Production never sets it. */
  readonly bugs?: ShellBugs;
}

/** Bounds on everything a node keeps waiting. */
export const LIMITS = {
  maxWritesWaiting: 4096,
  maxReadsWaiting: 1024,
  maxAppliedWaiters: 1024,
  maxLeaderWaiters: 1024,
  /** After a long eviction, catch up at most this many ticks at once (the core only needs "a timeout passed"). */
  maxCatchUpTicks: 64,
  /**
   * A quiet follower sleeps at most this many ticks (it wakes at its election deadline, or sooner): half of
   * maxCatchUpTicks, so the ticks it skipped are always caught up in one go.
   */
  maxQuietTicks: 32,
  snapshotChunkTimeoutMs: 5_000,
  statusSummaryEveryTicks: 50,
} as const;

/**
 * The part of NodeRuntime the modules under this folder work with: the core, the state machine, the seams, and
 * the Ready loop to run after they step the core.
 */
export interface RuntimeCore {
  readonly identity: NodeIdentity;
  readonly raft: RaftNodeApi;
  readonly sm: StateMachinePort;
  readonly deps: RuntimeDeps;
  readonly tickIntervalMs: number;
  readonly random: SeededRandom;
  /** The bug switches in force (none in production). */
  readonly bugs: ShellBugs;
  isStopped(): boolean;
  /** Ticks this runtime has handed the core so far. */
  ticks(): number;
  /** When this node last heard a leader (append, heartbeat or snapshot); null when never. */
  lastLeaderContactAtMs(): number | null;
  /** When this node last received any message from a peer; null when never. */
  lastPeerMessageAtMs(): number | null;
  /** When this runtime started (a node just started has heard nobody yet, and that is no sign of a cut). */
  readonly startedAtMs: number;
  /**
   * When this node last caught up several ticks at once (it was evicted, or its event loop stalled): silence just
   * before that says nothing about its peers, whose answers may not have been handled yet. Null when never.
   */
  lastStallAtMs(): number | null;
  /** Advances the core's clock to real time and handles what that produced. */
  advanceClock(): void;
  processReady(): void;
  /** Runs the Ready loop now, or lets the round in flight carry the request (group commit); see NodeRuntime.requestReady. */
  requestReady(): void;
  /** A call to a peer ended: runs the Ready loop a request left to that round, if none ran since. */
  runDeferredReady(): void;
  /** Steps messages a peer handed back in the answer to a call (PeerAnswer.replies), as if it had sent them. */
  receiveReplies(envelope: RaftEnvelope): void;
  /** Runs a callback no request awaits; if it throws, the runtime is marked broken (the object then reloads it). */
  inBackground(what: string, fn: () => void): void;
  log(level: LogLevel, event: string, fields: Record<string, unknown>): void;
  /** Why this node must serve no reads now (the consistency monitor found it DIVERGED), or null. */
  readRefusal(): string | null;
}
