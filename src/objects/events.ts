// The recent cluster events of one node, for GET /api/v1/cluster/events: elections, leader changes, breaker
// transitions, replica status changes, membership changes and snapshots. They are taken from the structured log
// (log.ts), so every event the node logs is also in its feed, whatever the log level; only events in FEED_EVENTS
// are kept (and, apart, the appends a follower received under a sampled trace), only the newest of them, in memory
// (a restarted object starts an empty feed, its first entry being nodeStarted).
import type { NodeAddress } from "./cluster-types";
import { addLogObserver, type LogContext, type LogLevel } from "./log";

/** The log events that make up the feed. */
export const FEED_EVENTS: ReadonlySet<string> = new Set([
  "nodeStarted",
  "becamePreCandidate",
  "becameCandidate",
  "becameLeader",
  "becameFollower",
  "steppedDown",
  "leadershipTransfer",
  "replicaStatus",
  "circuitBreaker",
  "membershipApplied",
  "learnerPromoting",
  // A membership change answered before its follow-up (start the new member, tell the removed one) finished.
  "memberFollowUpPending",
  "memberFollowUpDone",
  "memberFollowUpFailed",
  "peerLostLog",
  "snapshotSending",
  "snapshotSent",
  "snapshotFailed",
  "snapshotInstalled",
  "decommissioned",
  "removedFromCluster",
  "readmitted",
  "readmissionApplied",
  "readmissionRestored",
  // A leave notice of a removal that a re-add undid since (retried or in flight from before it).
  "staleLeaveIgnored",
  "runtimeDiscarded",
  // The consistency monitor (src/objects/monitor).
  "consistencyAlert",
  "replicaDiverged",
  "replicaDivergenceCleared",
  "nodeDiverged",
  "divergedLeaderSteppingDown",
  "repairStarted",
  "replicaRepaired",
  "repairFailed",
  "repairInstalled",
  "imageCheckpointProposed",
  "snapshotImageVerified",
  "snapshotImageRefused",
  "snapshotImageUnchecked",
  "repairUnverified",
]);

export const MAX_EVENTS_PER_NODE = 256;
/** Appends a follower received under a sampled trace (logTracedAppends, info level) are kept apart, fewer of them. */
export const MAX_TRACED_APPENDS_PER_NODE = 32;
/** Nodes whose feeds one isolate keeps (several objects can share an isolate; tests run many clusters in one). */
const MAX_REGISTERED_NODES = 64;
/** Longest JSON of one event's fields that is kept as is; longer ones are cut to their field names. */
const MAX_FIELDS_CHARS = 2_048;

export interface ClusterEvent {
  /** Per node, increasing: orders events of one node that share a millisecond. */
  readonly seq: number;
  readonly timeMs: number;
  readonly event: string;
  readonly level: LogLevel;
  readonly term: number;
  /** The node's commit index when the event happened; null before the node's runtime exists. */
  readonly commitIndex: number | null;
  readonly fields: Readonly<Record<string, unknown>>;
}

export interface EventsRequest extends NodeAddress {
  /** At most this many of the newest events (clamped to 1..MAX_EVENTS_PER_NODE). */
  readonly limit: number;
  /** Only events at or after this time (epoch milliseconds). */
  readonly sinceMs?: number;
}

export interface EventsValue {
  readonly events: readonly ClusterEvent[];
  /** The node's clock when it answered: lets the caller judge clock skew between nodes. */
  readonly nowMs: number;
}

/** One node's bounded feed. */
export class NodeEventLog {
  private readonly events: ClusterEvent[] = [];
  private readonly tracedAppends: ClusterEvent[] = [];
  private seq = 0;

  constructor(
    private readonly nowMs: () => number,
    /** The node's commit index now, if it has a runtime. */
    private readonly commitIndex: () => number | null,
  ) {}

  record(level: LogLevel, context: LogContext, event: string, fields: Record<string, unknown>): void {
    const tracedAppend = event === "appendReceived" && level === "info";
    if (!FEED_EVENTS.has(event) && !tracedAppend) {
      return;
    }
    let commitIndex: number | null = null;
    try {
      commitIndex = this.commitIndex();
    } catch {
      // A runtime that is being discarded may refuse to answer: the event is still worth keeping.
    }
    const ring = tracedAppend ? this.tracedAppends : this.events;
    const repeats = tracedAppend ? 0 : this.foldRepeatedProbe(event, fields);
    ring.push({
      seq: ++this.seq,
      timeMs: this.nowMs(),
      event,
      level,
      term: context.term,
      commitIndex,
      fields: boundedFields(repeats === 0 ? fields : { ...fields, repeats }),
    });
    const bound = tracedAppend ? MAX_TRACED_APPENDS_PER_NODE : MAX_EVENTS_PER_NODE;
    if (ring.length > bound) {
      ring.splice(0, ring.length - bound);
    }
  }

  /**
   * While a peer stays down, its breaker goes OPEN -> HALF_OPEN -> OPEN at every probe, once per heartbeat
   * interval, which would soon leave nothing else in the feed. Such a transition replaces the same transition of the
   * same outage (none since the breaker opened from CLOSED) and says how many it stands for: the count it returns.
   */
  private foldRepeatedProbe(event: string, fields: Record<string, unknown>): number {
    if (event !== "circuitBreaker" || !isProbeTransition(fields)) {
      return 0;
    }
    for (let i = this.events.length - 1; i >= 0; i--) {
      const earlier = this.events[i]!;
      if (earlier.event !== "circuitBreaker" || earlier.fields["peer"] !== fields["peer"]) {
        continue;
      }
      if (!isProbeTransition(earlier.fields)) {
        return 0;
      }
      if (earlier.fields["from"] === fields["from"]) {
        this.events.splice(i, 1);
        const folded = earlier.fields["repeats"];
        return (typeof folded === "number" ? folded : 1) + 1;
      }
    }
    return 0;
  }

  /** The answer to a recentEvents() call, with the limit clamped. */
  answer(request: { readonly limit: number; readonly sinceMs?: number }): EventsValue {
    const limit = Number.isFinite(request.limit)
      ? Math.min(MAX_EVENTS_PER_NODE, Math.max(1, Math.floor(request.limit)))
      : MAX_EVENTS_PER_NODE;
    const sinceMs =
      typeof request.sinceMs === "number" && Number.isFinite(request.sinceMs) ? request.sinceMs : undefined;
    return { events: this.recent({ limit, ...(sinceMs === undefined ? {} : { sinceMs }) }), nowMs: this.nowMs() };
  }

  /** The newest `limit` events at or after `sinceMs`, oldest first. */
  recent(options: { readonly limit: number; readonly sinceMs?: number }): ClusterEvent[] {
    const since = options.sinceMs ?? Number.NEGATIVE_INFINITY;
    const matching = [...this.events, ...this.tracedAppends]
      .filter((event) => event.timeMs >= since)
      .sort((a, b) => a.seq - b.seq);
    return matching.slice(Math.max(0, matching.length - options.limit));
  }
}

const registry = new Map<string, NodeEventLog>();

/** Routes every logged event to the feed of the node that logged it (once, for the whole isolate). */
addLogObserver((level, context, event, fields, trace) => {
  registry
    .get(registryKey(context.cluster, context.node))
    ?.record(level, context, event, { ...(trace === undefined ? {} : { traceId: trace.traceId }), ...fields });
});

/** Makes `log` the feed of that node in this isolate (a newer instance of the same object replaces the older). */
export function registerEventLog(node: { readonly cluster: string; readonly node: string }, log: NodeEventLog): void {
  const key = registryKey(node.cluster, node.node);
  registry.delete(key);
  registry.set(key, log);
  while (registry.size > MAX_REGISTERED_NODES) {
    const oldest = registry.keys().next().value;
    if (oldest === undefined) {
      break;
    }
    registry.delete(oldest);
  }
}

function registryKey(cluster: string, node: string): string {
  return `${cluster}\u0000${node}`;
}

/** OPEN -> HALF_OPEN (a probe goes out) or HALF_OPEN -> OPEN (it failed): the steps that repeat during an outage. */
function isProbeTransition(fields: Readonly<Record<string, unknown>>): boolean {
  return (
    (fields["from"] === "OPEN" && fields["to"] === "HALF_OPEN") ||
    (fields["from"] === "HALF_OPEN" && fields["to"] === "OPEN")
  );
}

function boundedFields(fields: Record<string, unknown>): Record<string, unknown> {
  let text: string;
  try {
    text = JSON.stringify(fields);
  } catch {
    return { fields: Object.keys(fields) };
  }
  if (text.length <= MAX_FIELDS_CHARS) {
    return JSON.parse(text) as Record<string, unknown>;
  }
  return { truncated: true, fields: Object.keys(fields) };
}
