// Dropping a database, as each of its nodes sees it. Two phases, both idempotent, driven by the worker across all
// nodes of the database so that in-flight writes can still commit on a quorum while new calls are refused:
//   close: persist "dropping", refuse new worker calls (DROPPED), wait (bounded) for the calls in flight and the
//          snapshot streams to finish, break what is left with a logged reason;
//   wipe:  stop the runtime (waiting requests fail), delete the alarm, deleteAll() the storage (SQL and KV), then
//          write a tombstone, so that a late call or alarm can never start this object again.
// A re-created database has a new generation in its cluster name (names.ts), hence other objects.
import type { NodeAddress, NodeError } from "../cluster-types";
import type { LogLevel } from "../log";
import { LifecycleGate, type GateClock, type Lease, type LeaseInfo } from "./gate";
import { parseDatabaseClusterName } from "./names";
import { LifecycleKeys } from "../storage-keys";

export interface Tombstone {
  readonly cluster: string;
  readonly node: string;
  readonly droppedAtMs: number;
  readonly reason: string;
  /**
   * The members this node knew of when it was wiped, answered to a repeated drop: one whose first attempt could not
   * wipe a member added at run time learns of it again here. Absent in tombstones of earlier versions.
   */
  readonly members?: readonly string[];
}

interface DroppingMark {
  readonly cluster: string;
  readonly sinceMs: number;
  readonly reason: string;
}

export interface DropRequest extends NodeAddress {
  readonly phase: "close" | "wipe";
  /** close: how long in-flight calls and long operations may still run before their leases are broken. */
  readonly timeoutMs: number;
  /** Logged, and quoted to callers refused from now on. */
  readonly reason: string;
}

export interface DropValue {
  readonly phase: "close" | "wipe";
  /** The node was already tombstoned (an earlier wipe finished). */
  readonly alreadyDropped: boolean;
  /** Voters and learners this node knew of (members added at run time included), so the caller drops them all. */
  readonly members: readonly string[];
  readonly waitedMs: number;
  readonly brokenLeases: readonly LeaseInfo[];
}

/** What the lifecycle needs from the object hosting the node. */
export interface LifecycleHost {
  /** The platform's synchronous KV (structural, so that Node-side type checks need no Workers types). */
  readonly kv: { get<T>(key: string): T | undefined; put(key: string, value: unknown): void };
  deleteAll(): Promise<void>;
  deleteAlarm(): Promise<void>;
  /** Voters and learners of the running node; empty when it never started. */
  members(): readonly string[];
  /** Long operations the node runs outside worker calls (snapshot streams), by description. */
  busy(): readonly string[];
  /** Stops the running node for good in this instance (waiting requests fail); harmless when none runs. */
  stopRuntime(reason: string): Promise<void>;
  log(level: LogLevel, event: string, fields: Record<string, unknown>): void;
}

export type Admission =
  { readonly ok: true; readonly lease: Lease } | { readonly ok: false; readonly error: NodeError };

export class NodeLifecycle {
  readonly gate: LifecycleGate;
  private tombstone: Tombstone | null;

  constructor(
    private readonly host: LifecycleHost,
    private readonly clock: GateClock,
  ) {
    this.gate = new LifecycleGate(clock);
    this.tombstone = host.kv.get<Tombstone>(LifecycleKeys.tombstone) ?? null;
    const dropping = host.kv.get<DroppingMark>(LifecycleKeys.dropping);
    if (dropping !== undefined) {
      this.gate.close(dropping.reason);
    }
  }

  /** Set once the storage was wiped: nothing may start this object again. */
  get tombstoned(): Tombstone | null {
    return this.tombstone;
  }

  /** Why a worker call is refused (dropped or being dropped), or null. */
  refusal(cluster: string): NodeError | null {
    const reason = this.tombstone?.reason ?? this.gate.closed;
    if (reason === null) {
      return null;
    }
    return { code: "DROPPED", message: `${describe(cluster)} was dropped (${reason})`, retryable: false };
  }

  /** Admits one worker call (its lease must be released when it ends), or says why not. */
  admit(cluster: string, operation: string): Admission {
    const refused = this.refusal(cluster);
    if (refused !== null) {
      return { ok: false, error: refused };
    }
    const lease = this.gate.acquire(operation);
    if (lease === null) {
      return this.refusal(cluster) !== null
        ? { ok: false, error: this.refusal(cluster) as NodeError }
        : {
            ok: false,
            error: { code: "QUEUE_FULL", message: "too many calls in flight on this node", retryable: true },
          };
    }
    return { ok: true, lease };
  }

  /** One phase of a drop; see the file comment. */
  async drop(request: DropRequest): Promise<DropValue> {
    const membersBefore = this.host.members();
    if (this.tombstone !== null) {
      const known = this.tombstone.members ?? [];
      return { phase: request.phase, alreadyDropped: true, members: known, waitedMs: 0, brokenLeases: [] };
    }
    const reason = request.reason;
    if (this.host.kv.get<DroppingMark>(LifecycleKeys.dropping) === undefined) {
      this.host.kv.put(LifecycleKeys.dropping, { cluster: request.cluster.name, sinceMs: this.clock.now(), reason });
      this.host.log("warn", "databaseDropping", { phase: request.phase, reason });
    }
    this.gate.close(reason);
    const drained = await this.gate.drain({
      timeoutMs: request.phase === "close" ? request.timeoutMs : 0,
      busy: () => this.host.busy(),
    });
    for (const lease of drained.broken) {
      this.host.log("warn", "leaseBroken", {
        operation: lease.operation,
        heldMs: lease.heldMs,
        reason: `the database is being dropped and the operation did not finish within ${request.timeoutMs} ms`,
      });
    }
    for (const operation of drained.busyAtDeadline) {
      this.host.log("warn", "leaseBroken", { operation, reason: "the database is being dropped" });
    }
    // A member added by a call admitted before the gate closed joins while it drains: report it too.
    const members = [...new Set([...membersBefore, ...this.host.members()])];
    if (request.phase === "wipe") {
      await this.wipe(request, { reason, members });
    }
    return {
      phase: request.phase,
      alreadyDropped: false,
      members,
      waitedMs: drained.waitedMs,
      brokenLeases: drained.broken,
    };
  }

  private async wipe(
    request: DropRequest,
    { reason, members }: { readonly reason: string; readonly members: readonly string[] },
  ): Promise<void> {
    await this.host.stopRuntime(`the database was dropped: ${reason}`);
    await this.host.deleteAlarm();
    await this.host.deleteAll();
    const tombstone: Tombstone = {
      cluster: request.cluster.name,
      node: request.node,
      droppedAtMs: this.clock.now(),
      reason,
      members,
    };
    // deleteAll() removed the dropping mark with everything else: the tombstone is the one key left.
    this.host.kv.put(LifecycleKeys.tombstone, tombstone);
    this.tombstone = tombstone;
    this.host.log("warn", "databaseWiped", { reason });
  }
}

function describe(cluster: string): string {
  const parsed = parseDatabaseClusterName(cluster);
  return parsed === null ? `cluster ${cluster}` : `database ${parsed.database}`;
}
