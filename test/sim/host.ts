// One simulated Durable Object: what ClusterNode is on the platform, for one node of the simulated cluster. Each
// in-memory instance of the object is a NodeHost (src/objects/node-host.ts, the very code ClusterNode runs: lazy
// start, the one alarm, receive, client calls, discarding a failed runtime and reloading it from storage) over the
// simulation's seams. This file owns the node's "disk" (a node:sqlite database behind the platform's storage API)
// and supplies the seams: the KV store, the SQL state machine, a clock, the alarm, a random source and peer stubs.
//
// Each instance (one "incarnation" of the object in memory) sees storage through its own facade, so the
// simulation can crash it between any two storage operations (the platform then loses the event's uncommitted
// writes), fail one operation (a storage error), or fence it (a stale instance after a newer one started: every
// storage access throws, as the platform does).
import { createStateMachine } from "../../src/objects/sql/port";
import type { StateMachinePort } from "../../src/objects/state-machine-port";
import type { NodeIdentity, NodeRuntime, PeerStub } from "../../src/objects/node-runtime";
import { NodeHost, writeIdentity } from "../../src/objects/node-host";
import { PROTOCOL_VERSION, type NodeAddress, type NodeResult } from "../../src/objects/api";
import type { ShellBugs } from "../../src/objects/shell-bugs";
import { RaftKeys } from "../../src/objects/storage-keys";
import type { TransportClock } from "../../src/objects/transport/index";
import type { HardState, LogEntry, NodeId, NodeStatus, SnapshotMeta } from "../../src/replication/types";
import { SqliteStorage } from "./platform/sqlite-storage";

/** Thrown into the runtime at the moment the simulation crashes its instance: nothing after it may take effect. */
export class SimCrash extends Error {
  constructor(node: string) {
    super(`${node} crashed (simulated)`);
    this.name = "SimCrash";
  }
}

/** What the simulation gives a host. */
export interface HostEnvironment {
  nowMs(): number;
  /** The object's one alarm: replaces any alarm set before; null deletes it. */
  setAlarm(host: SimHost, atMs: number | null): void;
  /** Schedules `fn` for this instance (dropped if the instance is dead by then). */
  scheduleTimer(host: SimHost, instance: Instance, fn: () => void, delayMs: number): () => void;
  /** A stub through which `instance` of `host` calls the peer `to`. */
  peerStub(host: SimHost, instance: Instance, to: string): PeerStub;
  /** True while `host` runs an event in which it crashed. */
  inCrashedEvent(host: SimHost): boolean;
  /**
   * Called before every storage write or SQL statement of an instance (crash and storage-error injection); `kind`
   * says which (a storage error is injected only where the scenario allows it).
   */
  beforeStorageOperation(host: SimHost, instance: Instance, what: string, kind: "put" | "delete" | "sql"): void;
  /** Called before the state machine applies an entry (state-machine exception injection). */
  beforeApply(host: SimHost, instance: Instance, entry: LogEntry): void;
  /** `applied` is false when the state machine skipped the entry (it was ahead of its log). */
  observeApplied(host: SimHost, entry: LogEntry, applied: boolean): void;
  observeSnapshotInstalled(
    host: SimHost,
    snapshot: { readonly index: number; readonly term: number; readonly appliedIndex: number },
  ): void;
  /** The state machine's own check of its in-memory state against storage failed. */
  observeStateMachineDefect(host: SimHost, problem: string): void;
  /** A leader deletes a log entry: only compaction may (Leader Append-Only). */
  observeLogDelete(host: SimHost, index: number): void;
  note(text: string): void;
  seedFor(host: SimHost, incarnation: number): number;
  readonly bugs: ShellBugs;
  readonly harnessBugs: HarnessBugs;
  /** SimOptions.maxDedupEntries: the state machine's default when undefined. */
  readonly maxDedupEntries: number | undefined;
}

/** Bugs planted in the simulated storage itself, to show the checkers catch what a broken shell would do. */
export interface HarnessBugs {
  /** The vote is lost when a node restarts (as if the hard state's vote were never persisted). */
  readonly forgetVoteOnRestart?: boolean;
  /** Deleting a log entry above the snapshot does nothing: a truncated, conflicting suffix comes back on restart. */
  readonly keepTruncatedSuffix?: boolean;
}

/** One in-memory incarnation of the object. */
export class Instance {
  /** False once crashed: its timers, sends and answers no longer happen. */
  alive = true;
  /** A stale instance: still running, but every storage access throws. */
  fenced = false;
  node!: NodeHost;

  constructor(readonly number: number) {}

  get runtime(): NodeRuntime | null {
    return this.node.current;
  }
}

/**
 * The node's persisted Raft log, as the checkers see it: kept in step with every write the runtime makes to its
 * KV store, and rebuilt from storage whenever storage rolled back (a crash).
 */
export class PersistedLog {
  hardState: HardState = { term: 0, vote: null, commit: 0 };
  snapshot: { meta: SnapshotMeta } | null = null;
  private readonly byIndex = new Map<number, LogEntry>();
  /** Lowest index written since the last check (for the incremental Log Matching check). */
  touchedFromIndex: number | null = null;

  reload(kv: SqliteStorage["kv"]): void {
    this.hardState = kv.get<HardState>(RaftKeys.hardState) ?? { term: 0, vote: null, commit: 0 };
    const meta = kv.get<SnapshotMeta>(RaftKeys.snapshot);
    this.snapshot = meta === undefined ? null : { meta };
    this.byIndex.clear();
    for (const [, entry] of kv.list<LogEntry>({ prefix: RaftKeys.logPrefix })) {
      this.byIndex.set(entry.index, entry);
    }
    // After a (re)load the whole log is checked again: a restart must find what was persisted, nothing else.
    this.touchedFromIndex = this.byIndex.size === 0 ? null : Math.min(...this.byIndex.keys());
  }

  noteWrite(key: string, value: unknown): void {
    if (key === RaftKeys.hardState) {
      this.hardState = value as HardState;
    } else if (key === RaftKeys.snapshot) {
      this.snapshot = { meta: value as SnapshotMeta };
    } else if (key.startsWith(RaftKeys.logPrefix)) {
      const entry = value as LogEntry;
      this.byIndex.set(entry.index, entry);
      this.touchedFromIndex = Math.min(this.touchedFromIndex ?? entry.index, entry.index);
    }
  }

  noteDelete(key: string): number | null {
    if (!key.startsWith(RaftKeys.logPrefix)) {
      return null;
    }
    const index = Number(key.slice(RaftKeys.logPrefix.length));
    this.byIndex.delete(index);
    return index;
  }

  /** The log after the snapshot, in index order. */
  get entries(): LogEntry[] {
    return [...this.byIndex.values()].sort((a, b) => a.index - b.index);
  }

  entryAt(index: number): LogEntry | null {
    return this.byIndex.get(index) ?? null;
  }

  lastIndex(): number {
    let last = this.snapshot?.meta.index ?? 0;
    for (const index of this.byIndex.keys()) {
      if (index > last) {
        last = index;
      }
    }
    return last;
  }
}

export class SimHost {
  /** The object's storage: survives crashes; replaced only by a wipe (as if the object's data were lost). */
  storage = new SqliteStorage();
  readonly log = new PersistedLog();
  instance: Instance | null = null;
  /** Instances replaced while still running (stale): fenced, dropped once their runtime stops. */
  readonly staleInstances: Instance[] = [];
  private instanceCount = 0;
  /** Down: crashed and not restarted yet (nothing answers). */
  down = false;
  /** Simulated ms between ticks of this node's clock (tick skew) is applied by the simulation's timers. */
  lastStatus: NodeStatus | null = null;
  discards = 0;
  /** On voting probation (lost its storage, or new): its census has not concluded or no leader caught it up yet. */
  wiped = false;
  private readonly address: NodeAddress;

  constructor(
    readonly id: NodeId,
    readonly identity: NodeIdentity,
    private readonly env: HostEnvironment,
  ) {
    this.address = { protocolVersion: PROTOCOL_VERSION, cluster: identity.cluster, node: identity.node };
    // The worker started every node when it created the cluster.
    writeIdentity(this.storage.kv, identity);
  }

  get incarnation(): number {
    return this.instance?.number ?? 0;
  }

  /** A new in-memory instance of the object: a NodeHost over this instance's view of the storage. */
  private newInstance(): Instance {
    this.instanceCount += 1;
    const instance = new Instance(this.instanceCount);
    this.instance = instance;
    this.log.reload(this.storage.kv);
    const clock: TransportClock = {
      now: () => this.env.nowMs(),
      schedule: (fn, delayMs) => this.env.scheduleTimer(this, instance, fn, delayMs),
    };
    instance.node = new NodeHost({
      kv: this.kvFacade(instance),
      transaction: (fn) => this.transaction(fn),
      stateMachine: () => this.stateMachineFor(instance),
      clock,
      alarm: {
        set: (atMs) => this.alarmAccess(instance, atMs),
        delete: () => this.alarmAccess(instance, null),
      },
      randomSeed: () => this.env.seedFor(this, instance.number),
      newIncarnation: () => `${this.id}-inc-${this.env.seedFor(this, 0).toString(36)}`,
      peerStub: (_cluster, member) => this.env.peerStub(this, instance, member.name),
      faultsEnabled: false,
      bugs: () => this.env.bugs,
      exclusive: (fn) => fn(),
      isInstanceAbort: (err) => err instanceof SimCrash,
      onDiscard: (err) => {
        this.discards += 1;
        this.env.note(
          `${this.id} discards its runtime (instance ${instance.number}): ${err instanceof Error ? `${err.name}: ${err.message.split("\n")[0]}` : String(err)}`,
        );
      },
    });
    return instance;
  }

  /**
   * The runtime's transactionSync: when it rolls back, the writes the checkers' copy of the log already noted are
   * undone in storage, so that copy is read again.
   */
  private transaction<T>(fn: () => T): T {
    try {
      return this.storage.transactionSync(fn);
    } catch (error) {
      this.log.reload(this.storage.kv);
      throw error;
    }
  }

  /** Setting or deleting the alarm is a storage operation: refused to a stale instance, lost with a dead one. */
  private alarmAccess(instance: Instance, atMs: number | null): Promise<void> {
    this.checkRead(instance, atMs === null ? "deleteAlarm" : "setAlarm");
    this.env.setAlarm(this, atMs);
    return Promise.resolve();
  }

  /** The crash: the in-memory instance is gone (its pending timers, sends and answers with it). */
  crash(options: { keepStale: boolean }): void {
    const instance = this.instance;
    this.instance = null;
    this.down = true;
    this.lastStatus = null;
    if (instance === null) {
      return;
    }
    if (options.keepStale && instance.runtime !== null && !instance.runtime.isStopped) {
      instance.fenced = true;
      this.staleInstances.push(instance);
      return;
    }
    instance.alive = false;
  }

  /** The object's storage is lost: the node comes back empty, with a new incarnation. */
  wipeStorage(): void {
    this.wiped = true;
    this.storage = new SqliteStorage();
    writeIdentity(this.storage.kv, this.identity);
    this.log.reload(this.storage.kv);
  }

  /**
   * The object comes back (as ClusterNode's constructor: load from storage). A load that fails is retried by the
   * alarm a tick later, as the platform retries a failed alarm.
   */
  async restart(): Promise<void> {
    this.down = false;
    const instance = this.newInstance();
    try {
      await instance.node.loadRuntime();
    } catch (error) {
      if (error instanceof SimCrash) {
        throw error;
      }
      this.env.note(
        `${this.id} fails to start: ${error instanceof Error ? error.message.split("\n")[0] : String(error)}`,
      );
      this.env.setAlarm(this, this.env.nowMs() + this.identity.cluster.heartbeatIntervalMs);
    }
  }

  /** Drops stale instances whose runtime stopped (a storage access failed and broke it). */
  reapStale(): void {
    for (let i = this.staleInstances.length - 1; i >= 0; i -= 1) {
      const stale = this.staleInstances[i] as Instance;
      if (stale.runtime === null || stale.runtime.isStopped || !stale.alive) {
        stale.alive = false;
        this.staleInstances.splice(i, 1);
      }
    }
  }

  // ---------------------------------------------------------------------------------------------------------
  // The object's entry points (alarm, receive, transfer) through the instance's NodeHost; the worker's calls reach
  // instance.node directly (test/sim/worker.ts)

  async alarm(): Promise<void> {
    await this.instance?.node.alarm();
  }

  /** A peer's envelope: a refusal is an answer ({ ok: false }), never an exception. */
  async receive(envelope: unknown): Promise<unknown> {
    const instance = this.instance;
    if (instance === null) {
      return { ok: false, error: { code: "UNAVAILABLE", message: `${this.id} is down` } };
    }
    return instance.node.receive(envelope);
  }

  /** The admin step-down (POST leader transfer): the leader hands leadership over and waits for a new one. */
  async transferLeadership(timeoutMs: number): Promise<NodeResult<{ leader: string; term: number }>> {
    const instance = this.instance;
    if (instance === null) {
      return { ok: false, node: this.id, error: { code: "NO_LEADER", message: `${this.id} is down`, retryable: true } };
    }
    return instance.node.transferLeadership({ ...this.address, timeoutMs });
  }

  // ---------------------------------------------------------------------------------------------------------
  // Storage as one instance sees it

  private checkAccess(instance: Instance, what: string, kind: "put" | "delete" | "sql"): void {
    this.checkRead(instance, what);
    this.env.beforeStorageOperation(this, instance, what, kind);
  }

  /**
   * A fenced (stale) instance fails every access, as on the platform. A crashed one may finish the event it crashed
   * in (nothing it does survives: the event's writes roll back, its messages are dropped); after that it never runs.
   */
  private checkRead(instance: Instance, what: string): void {
    if (instance.fenced) {
      throw new Error(
        `${this.id} instance ${instance.number}: storage access refused, a newer instance owns the object (${what})`,
      );
    }
    if (!instance.alive && !this.env.inCrashedEvent(this)) {
      throw new SimCrash(this.id);
    }
  }

  private kvFacade(instance: Instance): SqliteStorage["kv"] {
    const kv = this.storage.kv;
    return {
      get: <T>(key: string) => {
        this.checkRead(instance, `get ${key}`);
        const value = kv.get<T>(key);
        if (key === RaftKeys.hardState && value !== undefined && this.env.harnessBugs.forgetVoteOnRestart === true) {
          return { ...(value as HardState), vote: null } as T;
        }
        return value;
      },
      put: <T>(key: string, value: T) => {
        this.checkAccess(instance, `put ${key}`, "put");
        kv.put(key, value);
        this.log.noteWrite(key, value);
      },
      delete: (key: string) => {
        this.checkAccess(instance, `delete ${key}`, "delete");
        if (
          this.env.harnessBugs.keepTruncatedSuffix === true &&
          key.startsWith(RaftKeys.logPrefix) &&
          Number(key.slice(RaftKeys.logPrefix.length)) > (this.log.snapshot?.meta.index ?? 0)
        ) {
          return true;
        }
        const deleted = kv.delete(key);
        const index = this.log.noteDelete(key);
        if (index !== null) {
          this.env.observeLogDelete(this, index);
        }
        return deleted;
      },
      list: <T>(options?: Parameters<SqliteStorage["kv"]["list"]>[0]) => {
        this.checkRead(instance, "list");
        return kv.list<T>(options);
      },
    };
  }

  private stateMachineFor(instance: Instance): StateMachinePort {
    const storage = this.storage;
    const facade = {
      kv: this.kvFacade(instance),
      sql: {
        exec: (query: string, ...bindings: unknown[]) => {
          this.checkAccess(instance, "sql", "sql");
          return storage.sql.exec(query, ...bindings);
        },
        get databaseSize(): number {
          return storage.sql.databaseSize;
        },
      },
      // The runtime's, so that a rollback also undoes what the checkers' copy of the log noted: a snapshot install
      // writes the Raft log's record of it inside the state machine's transaction (NodeRuntime.installSnapshot).
      transactionSync: <T>(fn: () => T): T => this.transaction(fn),
    };
    // The state machine reads only sql, kv and transactionSync: the facade has the platform's shape for those.
    // Every seed also checks the dedup window's in-memory index against storage (the runtime takes the exception
    // for a failed apply and restarts the node, which would hide it: the report fails the seed).
    const machine = createStateMachine(facade as unknown as DurableObjectStorage, {
      stateMachine: {
        checkDedupIndex: (problem) => this.env.observeStateMachineDefect(this, problem),
        ...(this.env.maxDedupEntries === undefined ? {} : { maxDedupEntries: this.env.maxDedupEntries }),
      },
    });
    const env = this.env;
    return {
      ...bindAll(machine),
      applyEntry: (entry) => {
        env.beforeApply(this, instance, entry as LogEntry);
        const results = machine.applyEntry(entry);
        if (instance.alive && !instance.fenced) {
          env.observeApplied(this, entry as LogEntry, results !== null);
        }
        return results;
      },
      installStagedSnapshot: (snapshot, options) => {
        const appliedIndex = machine.installStagedSnapshot(snapshot, options);
        if (instance.alive && !instance.fenced) {
          env.observeSnapshotInstalled(this, {
            index: snapshot.snapshotIndex,
            term: snapshot.snapshotTerm,
            appliedIndex,
          });
        }
        return appliedIndex;
      },
    };
  }

  /** The user table the workload writes, as a map (for state digests). */
  readKvTable(): Map<string, string> {
    const map = new Map<string, string>();
    let rows: unknown[][];
    try {
      rows = [...this.storage.sql.exec("SELECT k, v FROM kv ORDER BY k").raw()];
    } catch {
      return map;
    }
    for (const [k, v] of rows) {
      map.set(String(k), String(v));
    }
    return map;
  }
}

/** Every method of a port, bound to it (so that a spread copy keeps working, whatever methods the port has). */
function bindAll(port: StateMachinePort): StateMachinePort {
  const bound: Record<string, unknown> = {};
  for (
    let proto: object | null = Object.getPrototypeOf(port) as object | null;
    proto !== null && proto !== Object.prototype;
    proto = Object.getPrototypeOf(proto) as object | null
  ) {
    for (const name of Object.getOwnPropertyNames(proto)) {
      const method = (port as unknown as Record<string, unknown>)[name];
      if (name !== "constructor" && !(name in bound) && typeof method === "function") {
        bound[name] = (method as (...args: unknown[]) => unknown).bind(port);
      }
    }
  }
  return bound as unknown as StateMachinePort;
}
