// The lifecycle gate of one node: every worker-facing call holds a lease while it runs, and a drop closes the gate
// (new calls are refused) and waits, bounded, for the leases to be released. A lease still held at the deadline is
// broken with a logged reason: its holder's answer becomes a refusal, and no operation is left holding a dropped
// database. Long operations (a backup, a load, a snapshot being streamed to a peer) are leases like any call.

export interface LeaseInfo {
  readonly id: number;
  /** What holds it: "execute", "backup", "snapshot to n2"... */
  readonly operation: string;
  readonly heldMs: number;
}

export interface Lease {
  /** True once a drop broke it: the holder must not report success. */
  readonly broken: boolean;
  release(): void;
}

export interface DrainResult {
  readonly waitedMs: number;
  /** Leases still held at the deadline, now broken. */
  readonly broken: readonly LeaseInfo[];
  /** Operations outside the lease table (e.g. snapshot streams) still running at the deadline. */
  readonly busyAtDeadline: readonly string[];
}

export interface GateClock {
  readonly now: () => number;
  /** Resolves after about `ms` milliseconds. */
  readonly sleep: (ms: number) => Promise<void>;
}

/** How often a drain re-checks operations it cannot be notified about (busy()). */
const DRAIN_POLL_MS = 20;
/** A drain waits at most this long, whatever the caller asks. */
export const MAX_DRAIN_MS = 60_000;
/** Leases held at once; beyond it calls are refused (a node serves far fewer concurrent calls). */
const MAX_LEASES = 10_000;

interface HeldLease {
  readonly operation: string;
  readonly sinceMs: number;
  broken: boolean;
}

export class LifecycleGate {
  private closedReason: string | null = null;
  private nextId = 1;
  private readonly held = new Map<number, HeldLease>();
  private released: (() => void) | null = null;

  constructor(private readonly clock: GateClock) {}

  get closed(): string | null {
    return this.closedReason;
  }

  get leaseCount(): number {
    return this.held.size;
  }

  /** Refuses every later acquire with `reason`; idempotent (the first reason stays). */
  close(reason: string): void {
    this.closedReason ??= reason;
  }

  /** A lease for one operation, or null when the gate is closed (or, bounded, too many are held). */
  acquire(operation: string): Lease | null {
    if (this.closedReason !== null || this.held.size >= MAX_LEASES) {
      return null;
    }
    const id = this.nextId++;
    const entry: HeldLease = { operation, sinceMs: this.clock.now(), broken: false };
    this.held.set(id, entry);
    return {
      get broken() {
        return entry.broken;
      },
      release: () => {
        if (this.held.delete(id) && this.held.size === 0) {
          this.released?.();
        }
      },
    };
  }

  /**
   * Waits until no lease is held and `busy()` names nothing, or until `timeoutMs` (at most MAX_DRAIN_MS); then
   * breaks what is left. Call close() first, or new leases keep coming.
   */
  async drain(options: { timeoutMs: number; busy?: () => readonly string[] }): Promise<DrainResult> {
    const startedMs = this.clock.now();
    const deadlineMs = startedMs + Math.min(Math.max(0, options.timeoutMs), MAX_DRAIN_MS);
    const busy = options.busy ?? (() => []);
    while ((this.held.size > 0 || busy().length > 0) && this.clock.now() < deadlineMs) {
      const remainingMs = deadlineMs - this.clock.now();
      const releasedAll = new Promise<void>((resolve) => {
        this.released = resolve;
      });
      await Promise.race([releasedAll, this.clock.sleep(Math.min(DRAIN_POLL_MS, remainingMs))]);
      this.released = null;
    }
    const nowMs = this.clock.now();
    const broken: LeaseInfo[] = [];
    for (const [id, lease] of this.held) {
      lease.broken = true;
      broken.push({ id, operation: lease.operation, heldMs: nowMs - lease.sinceMs });
    }
    this.held.clear();
    return { waitedMs: nowMs - startedMs, broken, busyAtDeadline: busy() };
  }
}
