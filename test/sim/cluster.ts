// The simulated nodes: each one a real Raft core (src/replication), a durable store that keeps exactly what the
// core's Ready says to persist, and a shell that handles every Ready strictly in the documented order. The state
// machine (a key-value map) is durable too, like the SQLite database of a Durable Object: a crash loses the core's
// volatile state, never what was persisted or applied.

import { createRaftNode, emptyPersistedState } from "../../src/replication/index.js";
import type {
  HardState,
  LogEntry,
  Membership,
  Message,
  NodeId,
  NodeStatus,
  PersistedState,
  RaftConfig,
  RaftNodeApi,
  Ready,
  SnapshotMeta,
} from "../../src/replication/types.js";
import { Prng } from "./prng.js";
import { applyEntry, type ApplyResult } from "./workload.js";

/** Faults the simulator plants in its own harness, to prove that the checkers catch real bugs. */
export interface SimBugs {
  /** (1) The store forgets the vote when a node restarts: a vote not persisted across a crash. */
  readonly forgetVoteOnRestart?: boolean;
  /** (2) The core commits a previous-term entry by counting replicas (config.unsafeTestingFaults). */
  readonly commitPreviousTermByCounting?: boolean;
  /** (3) Linearizable reads are answered locally by any node that believes it leads, skipping ReadIndex. */
  readonly localReadsOnBelievedLeader?: boolean;
  /** (4) The store ignores `truncateFrom` (overwriting in place and keeping the stale tail); the node then restarts. */
  readonly keepConflictingSuffix?: boolean;
}

export interface StoredSnapshot {
  readonly meta: SnapshotMeta;
  readonly image: ReadonlyMap<string, string>;
}

/** One node's durable state. Only the shell writes it, and only as a Ready says. */
export interface NodeStore {
  hardState: HardState;
  snapshot: StoredSnapshot | null;
  /** The log after the snapshot, contiguous. */
  entries: LogEntry[];
  applied: number;
  /** The state machine, as of `applied`. */
  kv: Map<string, string>;
}

/** Where to stop in the middle of a Ready when the nemesis crashes a node while it is handling one. */
export type TornCrashPoint = "afterPersist" | "afterSend" | "midApply";

export interface ReadServed {
  readonly context: string;
  readonly index: number;
}

/** What the shell reports to the rest of the simulator (checkers, workload, network, trace). */
export interface ShellHooks {
  send(node: SimNode, message: Message, image: ReadonlyMap<string, string> | null): void;
  onReady(node: SimNode, ready: Ready): void;
  onSnapshotInstalled(node: SimNode, meta: SnapshotMeta): void;
  onPersisted(node: SimNode, ready: Ready, touchedFromIndex: number | null, previousCommit: number): void;
  onApplied(node: SimNode, entry: LogEntry, result: ApplyResult): void;
  onCompacted(node: SimNode, meta: SnapshotMeta): void;
  onReadServed(node: SimNode, context: string, value: string | null, index: number): void;
  onReadFailed(node: SimNode, context: string, reason: string): void;
  onCrashed(node: SimNode, why: string): void;
  onIgnoredTruncation(node: SimNode, fromIndex: number): void;
  violation(kind: string, detail: string): void;
}

const MAX_HELD_SNAPSHOT_IMAGES = 4;
const MAX_WAITING_READS = 1024;

export class SimNode {
  core: RaftNodeApi | null = null;
  incarnation = 0;
  readonly store: NodeStore = freshStore();
  /** Simulated milliseconds between two ticks of this node's clock (tick skew). */
  tickPeriodMs: number;
  /** While slow, the shell handles Readys this many ms after they appear. */
  readyDelayMs = 0;
  readyHandlingScheduled = false;
  /** Images that arrived with InstallSnapshot messages, by "index:term", until the core asks to install one. */
  readonly heldImages = new Map<string, ReadonlyMap<string, string>>();
  /** Reads whose ReadState arrived before the state machine applied their index. */
  waitingReads: ReadServed[] = [];
  tornCrash: { point: TornCrashPoint; applyCount: number } | null = null;
  lastStatus: NodeStatus | null = null;
  /** A joiner whose addLearner a leader accepted: never offered to the cluster again. */
  joinProposed = false;

  constructor(
    readonly id: NodeId,
    readonly bootstrap: Membership | null,
    tickPeriodMs: number,
  ) {
    this.tickPeriodMs = tickPeriodMs;
  }

  get up(): boolean {
    return this.core !== null;
  }

  lastIndex(): number {
    const last = this.store.entries[this.store.entries.length - 1];
    return last?.index ?? this.store.snapshot?.meta.index ?? 0;
  }

  /** The entry at `index` in the persisted log, or null (compacted or absent). */
  entryAt(index: number): LogEntry | null {
    const first = this.store.entries[0];
    if (first === undefined) return null;
    return this.store.entries[index - first.index] ?? null;
  }

  /** The term of `index` in the persisted log or snapshot, or null when unknown. */
  termAt(index: number): number | null {
    if (this.store.snapshot !== null && this.store.snapshot.meta.index === index) return this.store.snapshot.meta.term;
    return this.entryAt(index)?.term ?? null;
  }
}

function freshStore(): NodeStore {
  return { hardState: { term: 0, vote: null, commit: 0 }, snapshot: null, entries: [], applied: 0, kv: new Map() };
}

function isPristine(store: NodeStore): boolean {
  return store.snapshot === null && store.entries.length === 0 && store.hardState.term === 0 && store.applied === 0;
}

export interface ClusterOptions {
  /** Everything in RaftConfig except the per-node fields. */
  readonly config: Omit<RaftConfig, "id" | "random">;
  readonly bugs: SimBugs;
}

export class Cluster {
  readonly nodes = new Map<NodeId, SimNode>();

  constructor(
    private readonly options: ClusterOptions,
    private readonly random: Prng,
    private readonly hooks: ShellHooks,
  ) {}

  addNode(id: NodeId, bootstrap: Membership | null, tickPeriodMs: number): SimNode {
    if (this.nodes.has(id)) throw new Error(`node ${id} already exists`);
    const node = new SimNode(id, bootstrap, tickPeriodMs);
    this.nodes.set(id, node);
    return node;
  }

  node(id: NodeId): SimNode {
    const node = this.nodes.get(id);
    if (node === undefined) throw new Error(`unknown node ${id}`);
    return node;
  }

  /** Starts (or restarts) a node from its persisted store: its volatile state starts empty. */
  start(node: SimNode): void {
    if (node.up) throw new Error(`node ${node.id} is already up`);
    node.incarnation += 1;
    const config: RaftConfig = {
      ...this.options.config,
      id: node.id,
      random: new Prng(this.random.nextUint32() * 1024 + node.incarnation),
      ...(this.options.bugs.commitPreviousTermByCounting === true ? { unsafeTestingFaults: { commitPreviousTermByCounting: true } } : {}),
    };
    const pristine = isPristine(node.store);
    const persisted = pristine ? emptyPersistedState() : this.loadPersisted(node);
    // Only an initial member that never persisted anything bootstraps; a joiner waits for the leader.
    const bootstrap = pristine && node.bootstrap !== null ? node.bootstrap : null;
    node.core = this.guard(node, "createRaftNode", () => createRaftNode({ config, persisted, ...(bootstrap === null ? {} : { bootstrap }) }));
  }

  crash(node: SimNode, why: string): void {
    if (!node.up) return;
    node.core = null;
    node.readyHandlingScheduled = false;
    node.heldImages.clear();
    node.waitingReads = [];
    node.tornCrash = null;
    node.lastStatus = null;
    this.hooks.onCrashed(node, why);
  }

  /** Runs `action` against a node's core; a core that throws is a bug, reported, and the node is crashed. */
  guard<T>(node: SimNode, what: string, action: () => T): T | null {
    try {
      return action();
    } catch (error) {
      const detail = error instanceof Error ? `${error.message}\n${error.stack ?? ""}` : String(error);
      this.hooks.violation("core threw", `${node.id} ${what}: ${detail}`);
      node.core = null;
      return null;
    }
  }

  /** Keeps an image that arrived with an InstallSnapshot until the core asks for it. */
  holdImage(node: SimNode, meta: SnapshotMeta, image: ReadonlyMap<string, string>): void {
    const key = `${meta.index}:${meta.term}`;
    node.heldImages.delete(key);
    node.heldImages.set(key, image);
    while (node.heldImages.size > MAX_HELD_SNAPSHOT_IMAGES) {
      const oldest = node.heldImages.keys().next().value as string;
      node.heldImages.delete(oldest);
    }
  }

  /** Handles every pending Ready of `node`, each strictly in the documented order. */
  handleReadies(node: SimNode, maxBatches: number): void {
    for (let batch = 0; batch < maxBatches; batch += 1) {
      const core = node.core;
      if (core === null) return;
      const has = this.guard(node, "hasReady", () => core.hasReady());
      if (has !== true) return;
      const ready = this.guard(node, "ready", () => core.ready());
      if (ready === null) return;
      const finished = this.handleReady(node, core, ready);
      if (!finished) return;
      this.guard(node, "advance", () => core.advance(ready));
    }
    this.hooks.violation("liveness", `${node.id} still had a Ready after ${maxBatches} batches in one go`);
  }

  /** Returns false when the node crashed part-way (a torn crash, or a contract breach). */
  private handleReady(node: SimNode, core: RaftNodeApi, ready: Ready): boolean {
    this.hooks.onReady(node, ready);
    // 1. Install the snapshot that arrived with an InstallSnapshot message.
    if (ready.snapshot !== null && !this.installSnapshot(node, ready.snapshot)) return false;
    // 2. Persist.
    this.persist(node, ready);
    if (this.tornCrashAt(node, "afterPersist")) return false;
    // 3. Send.
    for (const message of ready.messages) this.send(node, message);
    if (this.tornCrashAt(node, "afterSend")) return false;
    // 4. Apply, advancing the applied index with each entry.
    for (const entry of ready.committedEntries) {
      if (!this.apply(node, entry)) return false;
      if (node.tornCrash?.point === "midApply") {
        node.tornCrash.applyCount -= 1;
        if (node.tornCrash.applyCount <= 0) {
          this.crash(node, "torn crash in the middle of applying");
          return false;
        }
      }
    }
    this.serveWaitingReads(node);
    // 5. Compact.
    if (ready.compact !== null && !this.compact(node, ready.compact)) return false;
    // 6. Reads.
    for (const readState of ready.readStates) {
      if (node.waitingReads.length >= MAX_WAITING_READS) {
        this.hooks.onReadFailed(node, readState.context, "too many reads waiting for the state machine");
        continue;
      }
      node.waitingReads.push({ context: readState.context, index: readState.index });
    }
    this.serveWaitingReads(node);
    for (const failed of ready.failedReads) this.hooks.onReadFailed(node, failed.context, failed.error.code);
    return node.core !== null;
  }

  private tornCrashAt(node: SimNode, point: TornCrashPoint): boolean {
    if (node.tornCrash?.point !== point) return false;
    this.crash(node, `torn crash ${point}`);
    return true;
  }

  private installSnapshot(node: SimNode, meta: SnapshotMeta): boolean {
    const image = node.heldImages.get(`${meta.index}:${meta.term}`);
    if (image === undefined) {
      this.hooks.violation("shell contract", `${node.id} was asked to install snapshot ${meta.index}:${meta.term} that never arrived with an InstallSnapshot message`);
      this.crash(node, "contract breach");
      return false;
    }
    const store = node.store;
    if (node.termAt(meta.index) === meta.term) {
      this.hooks.violation("shell contract", `${node.id} installs snapshot ${meta.index}:${meta.term} although its log already holds that entry`);
    }
    // The documented contract: the image replaces the state machine and the whole log.
    store.kv = new Map(image);
    store.applied = meta.index;
    store.snapshot = { meta, image };
    store.entries = [];
    this.hooks.onSnapshotInstalled(node, meta);
    this.serveWaitingReads(node);
    return true;
  }

  private persist(node: SimNode, ready: Ready): void {
    const store = node.store;
    const previousCommit = store.hardState.commit;
    let touchedFromIndex: number | null = null;
    const truncateFrom = ready.truncateFrom;
    if (truncateFrom !== null) {
      touchedFromIndex = truncateFrom;
      if (this.options.bugs.keepConflictingSuffix === true && truncateFrom <= node.lastIndex()) {
        this.hooks.onIgnoredTruncation(node, truncateFrom);
      } else {
        store.entries = store.entries.filter((entry) => entry.index < truncateFrom);
      }
    }
    if (ready.entries.length > 0) {
      const firstNew = (ready.entries[0] as LogEntry).index;
      touchedFromIndex = Math.min(touchedFromIndex ?? firstNew, firstNew);
      this.writeEntries(node, ready.entries);
    }
    if (ready.hardState !== null) store.hardState = ready.hardState;
    this.hooks.onPersisted(node, ready, touchedFromIndex, previousCommit);
  }

  private writeEntries(node: SimNode, entries: readonly LogEntry[]): void {
    const store = node.store;
    for (const entry of entries) {
      const last = node.lastIndex();
      if (entry.index === last + 1) {
        store.entries.push(entry);
        continue;
      }
      const position = store.entries.length === 0 ? -1 : entry.index - (store.entries[0] as LogEntry).index;
      if (this.options.bugs.keepConflictingSuffix === true && position >= 0 && position < store.entries.length) {
        store.entries[position] = entry; // bug 4: overwrite in place, keep whatever follows
        continue;
      }
      this.hooks.violation("shell contract", `${node.id} was told to append entry ${entry.index} but its log ends at ${last} (after truncation)`);
      return;
    }
  }

  private send(node: SimNode, message: Message): void {
    if (message.from !== node.id) this.hooks.violation("shell contract", `${node.id} emitted a message from ${message.from}`);
    let image: ReadonlyMap<string, string> | null = null;
    if (message.type === "snapshot") {
      const stored = node.store.snapshot;
      if (stored === null || stored.meta.index !== message.snapshot.index || stored.meta.term !== message.snapshot.term) {
        const have = stored === null ? "none" : `${stored.meta.index}:${stored.meta.term}`;
        this.hooks.violation("shell contract", `${node.id} sends snapshot ${message.snapshot.index}:${message.snapshot.term} but its stored snapshot is ${have}`);
        return;
      }
      image = stored.image;
    }
    this.hooks.send(node, message, image);
  }

  private apply(node: SimNode, entry: LogEntry): boolean {
    const store = node.store;
    if (entry.index !== store.applied + 1) {
      this.hooks.violation("shell contract", `${node.id} was told to apply entry ${entry.index} with applied index ${store.applied}`);
      this.crash(node, "contract breach");
      return false;
    }
    const result = applyEntry(store.kv, entry);
    store.applied = entry.index;
    this.hooks.onApplied(node, entry, result);
    return true;
  }

  private compact(node: SimNode, meta: SnapshotMeta): boolean {
    const store = node.store;
    if (meta.index !== store.applied) {
      this.hooks.violation("shell contract", `${node.id} was told to compact at ${meta.index} with applied index ${store.applied}`);
      this.crash(node, "contract breach");
      return false;
    }
    const termHere = node.termAt(meta.index);
    if (meta.index > 0 && termHere !== null && termHere !== meta.term) {
      this.hooks.violation("shell contract", `${node.id} compacts at ${meta.index} with term ${meta.term}, its log has term ${termHere} there`);
    }
    store.snapshot = { meta, image: new Map(store.kv) };
    store.entries = store.entries.filter((entry) => entry.index > meta.index);
    this.hooks.onCompacted(node, meta);
    return true;
  }

  private serveWaitingReads(node: SimNode): void {
    if (node.waitingReads.length === 0) return;
    node.waitingReads = node.waitingReads.filter((read) => !this.serveRead(node, read));
  }

  /** Serves `read` if the state machine caught up with its index; true when served. */
  private serveRead(node: SimNode, read: ReadServed): boolean {
    if (node.store.applied < read.index) return false;
    // The context encodes the key the client asked for: "<opId>:<key>".
    const key = read.context.slice(read.context.indexOf(":") + 1);
    this.hooks.onReadServed(node, read.context, node.store.kv.get(key) ?? null, read.index);
    return true;
  }

  private loadPersisted(node: SimNode): PersistedState {
    const store = node.store;
    const vote = this.options.bugs.forgetVoteOnRestart === true ? null : store.hardState.vote;
    return {
      hardState: { ...store.hardState, vote },
      snapshot: store.snapshot?.meta ?? null,
      entries: store.entries.slice(),
      applied: store.applied,
    };
  }
}
