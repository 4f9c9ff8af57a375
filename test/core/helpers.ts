// A tiny in-test cluster for the core's unit tests: every node is a real core plus an in-memory store that keeps
// exactly what its Readys say; messages travel through one FIFO queue that tests can inspect, filter, cut and drop.
// Readys are handled by the runtime's own loop (handleReadies): only the ports here (store, queue) are the test's.
import {
  createRaftNode,
  emptyPersistedState,
  handleReadies,
  MAX_READIES_PER_LOOP,
  SeededRandom,
  type ReadyPorts,
} from "../../src/replication/index.js";
import type {
  HardState,
  InstallSnapshot,
  LogEntry,
  Membership,
  Message,
  NodeId,
  NodeStatus,
  FailedRead,
  PersistedState,
  RaftConfig,
  RaftEvent,
  RaftNodeApi,
  ReadState,
  Ready,
  SnapshotMeta,
} from "../../src/replication/types.js";

export interface Store {
  hardState: HardState;
  snapshot: SnapshotMeta | null;
  entries: LogEntry[];
  applied: number;
  /** Every entry the state machine applied, in order (a snapshot install resets it to "from the snapshot on"). */
  appliedEntries: LogEntry[];
}

export interface TestNode {
  readonly id: NodeId;
  core: RaftNodeApi;
  store: Store;
  config: RaftConfig;
  readonly readStates: ReadState[];
  readonly failedReads: FailedRead[];
  readonly events: RaftEvent[];
  readonly readies: Ready[];
}

export type ConfigOverrides = Partial<Omit<RaftConfig, "id" | "random">>;

export const BASE_CONFIG: Omit<RaftConfig, "id" | "random"> = {
  electionTimeoutTicks: 10,
  heartbeatIntervalTicks: 2,
  checkQuorum: true,
  leaseRead: false,
  maxInflightMessages: 4,
  maxMessageBytes: 1024,
  maxPendingProposals: 64,
  snapshotThresholdEntries: 1000,
  laggingThresholdEntries: 10,
  offlineAfterTicks: 30,
};

export function makeConfig(id: NodeId, seed: number, overrides: ConfigOverrides = {}): RaftConfig {
  return { ...BASE_CONFIG, ...overrides, id, random: new SeededRandom(seed) };
}

const MAX_DELIVERIES = 100_000;

export class TestCluster {
  readonly nodes = new Map<NodeId, TestNode>();
  /** Messages in flight, in send order. */
  queue: Message[] = [];
  /** Directed links that drop everything: "a->b". */
  private readonly cutLinks = new Set<string>();
  /** Messages matching this are dropped when their turn comes (a selective, lossy network). */
  dropIf: (message: Message) => boolean = () => false;
  /**
   * Each snapshot message a node sends goes through this, as the shell does it (src/objects/runtime/peers.ts,
   * snapshotMetaFor): the shell sends it at its image's index, which is the state machine's applied index or a little
   * less. `at(sender, message)` picks that index; the message is sent at the compaction's when it returns null or the
   * core does not know that index.
   */
  snapshotSentAt: ((sender: TestNode, message: InstallSnapshot) => number | null) | null = null;
  private seed: number;

  constructor(
    ids: readonly NodeId[],
    private readonly options: {
      readonly overrides?: ConfigOverrides;
      readonly seed?: number;
      readonly learners?: readonly NodeId[];
    } = {},
  ) {
    this.seed = options.seed ?? 1;
    const membership: Membership = { voters: [...ids], learners: [...(options.learners ?? [])] };
    for (const id of [...ids, ...(options.learners ?? [])]) {
      this.addNode(id, { bootstrap: membership });
    }
  }

  /**
   * Adds a node over `persisted` (default: empty storage; crafted logs for transcript tests), with a store holding
   * exactly that, and handles its first Readys. `bootstrap` (a fresh node only) is its initial membership; without
   * it the node is a joiner that waits for a leader.
   */
  addNode(
    id: NodeId,
    options: { bootstrap?: Membership; persisted?: PersistedState; overrides?: ConfigOverrides } = {},
  ): TestNode {
    const persisted = options.persisted ?? emptyPersistedState();
    const node: TestNode = {
      id,
      ...this.bootCore(id, { persisted, bootstrap: options.bootstrap ?? null, overrides: options.overrides ?? {} }),
      store: {
        hardState: persisted.hardState,
        snapshot: persisted.snapshot,
        entries: [...persisted.entries],
        applied: persisted.applied,
        appliedEntries: [],
      },
      readStates: [],
      failedReads: [],
      events: [],
      readies: [],
    };
    this.nodes.set(id, node);
    this.processReadies(id);
    return node;
  }

  /** A core (and its configuration) over `persisted`, as at start-up: new nodes and restarts alike. */
  private bootCore(
    id: NodeId,
    options: { persisted: PersistedState; bootstrap: Membership | null; overrides: ConfigOverrides },
  ): { core: RaftNodeApi; config: RaftConfig } {
    const config = makeConfig(id, this.seed++, { ...this.options.overrides, ...options.overrides });
    return { core: createRaftNode({ config, persisted: options.persisted, bootstrap: options.bootstrap }), config };
  }

  node(id: NodeId): TestNode {
    const node = this.nodes.get(id);
    if (node === undefined) {
      throw new Error(`no node ${id}`);
    }
    return node;
  }

  core(id: NodeId): RaftNodeApi {
    return this.node(id).core;
  }

  status(id: NodeId): NodeStatus {
    return this.core(id).status();
  }

  /** Handles every pending Ready of `id` through the one Ready loop; returns how many there were. */
  processReadies(id: NodeId): number {
    const node = this.node(id);
    const count = handleReadies(node.core, this.portsOf(node));
    if (node.core.hasReady()) {
      throw new Error(`${id} keeps producing Readys (more than ${MAX_READIES_PER_LOOP} in one loop)`);
    }
    return count;
  }

  processAllReadies(): void {
    for (const id of this.nodes.keys()) {
      this.processReadies(id);
    }
  }

  /** Delivers queued messages (handling Readys in between) until the queue is empty. */
  deliverAll(filter: (message: Message) => boolean = () => true): number {
    let delivered = 0;
    this.processAllReadies();
    while (this.queue.length > 0) {
      if (++delivered > MAX_DELIVERIES) {
        throw new Error("deliverAll: no quiescence");
      }
      const message = this.queue.shift() as Message;
      if (!filter(message) || this.isDropped(message)) {
        continue;
      }
      const target = this.nodes.get(message.to);
      if (target === undefined) {
        continue;
      }
      target.core.step(message);
      this.processReadies(message.to);
    }
    return delivered;
  }

  /** Delivers queued messages matching `predicate`, oldest first, until none is left; the others stay queued. */
  deliverMatching(predicate: (message: Message) => boolean): number {
    let delivered = 0;
    for (let index = this.queue.findIndex(predicate); index >= 0; index = this.queue.findIndex(predicate)) {
      if (++delivered > MAX_DELIVERIES) {
        throw new Error("deliverMatching: no quiescence");
      }
      const [message] = this.queue.splice(index, 1) as [Message];
      if (this.isDropped(message)) {
        continue;
      }
      this.node(message.to).core.step(message);
      this.processReadies(message.to);
    }
    return delivered;
  }

  isDropped(message: Message): boolean {
    return this.cutLinks.has(`${message.from}->${message.to}`) || this.dropIf(message);
  }

  private asTheShellSends(sender: TestNode, message: Message): Message {
    if (message.type !== "snapshot" || this.snapshotSentAt === null) {
      return message;
    }
    const index = this.snapshotSentAt(sender, message);
    const meta = index === null || index <= message.snapshot.index ? null : sender.core.snapshotMetaAt(index);
    return meta === null ? message : { ...message, snapshot: meta };
  }

  /** Ticks one node's core without delivering anything (its Readys are handled; messages stay queued). */
  tickQuietly(id: NodeId): void {
    this.core(id).tick();
    this.processReadies(id);
  }

  /** Delivers exactly one queued message (the first one matching), handling the receiver's Readys. */
  deliverOne(predicate: (message: Message) => boolean): Message {
    const index = this.queue.findIndex(predicate);
    if (index < 0) {
      throw new Error("deliverOne: no matching message");
    }
    const [message] = this.queue.splice(index, 1) as [Message];
    this.node(message.to).core.step(message);
    this.processReadies(message.to);
    return message;
  }

  /** Removes and returns the queued messages matching `predicate`. */
  take(predicate: (message: Message) => boolean): Message[] {
    const taken = this.queue.filter(predicate);
    this.queue = this.queue.filter((message) => !predicate(message));
    return taken;
  }

  /** Ticks the given nodes (default: all) once, then delivers everything. */
  tick(ids: readonly NodeId[] = [...this.nodes.keys()]): void {
    for (const id of ids) {
      this.node(id).core.tick();
      this.processReadies(id);
    }
    this.deliverAll();
  }

  tickMany(count: number, ids?: readonly NodeId[]): void {
    for (let i = 0; i < count; i++) {
      this.tick(ids);
    }
  }

  /** Ticks until `condition` holds; fails after `maxTicks`. */
  tickUntil(condition: () => boolean, maxTicks = 500, ids?: readonly NodeId[]): number {
    for (let ticks = 0; ticks < maxTicks; ticks++) {
      if (condition()) {
        return ticks;
      }
      this.tick(ids);
    }
    if (condition()) {
      return maxTicks;
    }
    throw new Error(`condition not reached within ${maxTicks} ticks`);
  }

  /** Ticks until exactly one up-to-date leader is known to every connected node; returns its id. */
  elect(maxTicks = 500): NodeId {
    this.tickUntil(() => this.leader() !== null, maxTicks);
    return this.leader() as NodeId;
  }

  /** The leader of the highest term, or null. */
  leader(): NodeId | null {
    let best: NodeStatus | null = null;
    for (const node of this.nodes.values()) {
      const status = node.core.status();
      if (status.role === "leader" && (best === null || status.term > best.term)) {
        best = status;
      }
    }
    return best?.id ?? null;
  }

  cut(from: NodeId, to: NodeId): void {
    this.cutLinks.add(`${from}->${to}`);
  }

  /** Cuts every link between `id` and the others, both ways. */
  isolate(id: NodeId): void {
    for (const other of this.nodes.keys()) {
      if (other === id) {
        continue;
      }
      this.cut(id, other);
      this.cut(other, id);
    }
  }

  heal(): void {
    this.cutLinks.clear();
  }

  /** Replaces the node's core with a fresh one built from its store, as after a crash. */
  restart(id: NodeId, overrides: ConfigOverrides = {}): void {
    const node = this.node(id);
    Object.assign(node, this.bootCore(id, { persisted: this.persisted(id), bootstrap: null, overrides }));
    this.queue = this.queue.filter((message) => message.to !== id && message.from !== id);
    this.processReadies(id);
  }

  persisted(id: NodeId): PersistedState {
    const store = this.node(id).store;
    return {
      hardState: store.hardState,
      snapshot: store.snapshot,
      entries: [...store.entries],
      applied: store.applied,
    };
  }

  /** Proposes on `id` and fails the test when refused. */
  propose(id: NodeId, data: string): { index: number; term: number } {
    const result = this.core(id).propose(data);
    if (!result.ok) {
      throw new Error(`proposal refused: ${result.error.code} ${result.error.message}`);
    }
    this.processReadies(id);
    return { index: result.index, term: result.term };
  }

  appliedData(id: NodeId): string[] {
    return this.node(id)
      .store.appliedEntries.filter((entry) => entry.kind === "normal")
      .map((entry) => entry.data);
  }

  /** What each step of a Ready means in this test: an in-memory store that checks the order, and the queue. */
  private portsOf(node: TestNode): ReadyPorts {
    const store = node.store;
    return {
      received: (ready) => {
        node.readies.push(ready);
      },
      installSnapshot: (snapshot) => {
        store.snapshot = snapshot;
        store.entries = [];
        store.applied = snapshot.index;
        store.appliedEntries = [];
      },
      persist: (ready) => {
        if (ready.truncateFrom !== null) {
          const from = ready.truncateFrom;
          store.entries = store.entries.filter((entry) => entry.index < from);
        }
        for (const entry of ready.entries) {
          const last = store.entries[store.entries.length - 1]?.index ?? store.snapshot?.index ?? 0;
          if (entry.index !== last + 1) {
            throw new Error(`${node.id}: store append ${entry.index} after ${last}`);
          }
          store.entries.push(entry);
        }
        if (ready.hardState !== null) {
          store.hardState = ready.hardState;
        }
      },
      send: (messages) => {
        this.queue.push(...messages.map((message) => this.asTheShellSends(node, message)));
      },
      apply: (entries) => {
        for (const entry of entries) {
          if (entry.index !== store.applied + 1) {
            throw new Error(`${node.id}: apply ${entry.index} after ${store.applied}`);
          }
          store.applied = entry.index;
          store.appliedEntries.push(entry);
        }
      },
      compact: (meta) => {
        if (meta.index > store.applied) {
          throw new Error(`${node.id}: compact at ${meta.index} with applied ${store.applied}`);
        }
        store.snapshot = meta;
        store.entries = store.entries.filter((entry) => entry.index > meta.index);
      },
      settleReads: (ready) => {
        node.readStates.push(...ready.readStates);
        node.failedReads.push(...ready.failedReads);
      },
      observeEvents: (events) => {
        node.events.push(...events);
      },
    };
  }
}

/**
 * Handles every pending Ready of a core that stands alone (no TestCluster, no store: the test looks only at what the
 * core says) through the one Ready loop; returns the messages it sent and the events it reported, in order.
 */
export function drainLoneCore(core: RaftNodeApi): { messages: Message[]; events: RaftEvent[] } {
  const messages: Message[] = [];
  const events: RaftEvent[] = [];
  const ignore = (): void => {};
  handleReadies(core, {
    installSnapshot: ignore,
    persist: ignore,
    send: (sent) => messages.push(...sent),
    apply: ignore,
    compact: ignore,
    settleReads: ignore,
    observeEvents: (reported) => events.push(...reported),
  });
  if (core.hasReady()) {
    throw new Error(`the core keeps producing Readys (more than ${MAX_READIES_PER_LOOP} in one loop)`);
  }
  return { messages, events };
}

/** A short description of a message, for transcript-style assertions. */
export function describeMessage(message: Message): string {
  switch (message.type) {
    case "append":
      return `${message.from}->${message.to} append t${message.term} prev=${message.prevLogIndex}/${message.prevLogTerm} n=${message.entries.length} commit=${message.commit}`;
    case "appendResponse":
      return `${message.from}->${message.to} appendResponse t${message.term} ${message.success ? "ok" : "reject"} index=${message.index}`;
    case "preVote":
    case "vote":
      return `${message.from}->${message.to} ${message.type} t${message.term}`;
    case "preVoteResponse":
    case "voteResponse":
      return `${message.from}->${message.to} ${message.type} t${message.term} ${message.granted ? "granted" : "rejected"}`;
    default:
      return `${message.from}->${message.to} ${message.type} t${message.term}`;
  }
}
