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
    const timeMs = this.nowMs();
    const folded = tracedAppend ? null : this.foldRepeat(event, fields, timeMs);
    ring.push({
      seq: ++this.seq,
      timeMs,
      event,
      level,
      term: context.term,
      commitIndex,
      fields: boundedFields(folded === null ? fields : { ...fields, ...folded }),
    });
    const bound = tracedAppend ? MAX_TRACED_APPENDS_PER_NODE : MAX_EVENTS_PER_NODE;
    if (ring.length > bound) {
      ring.splice(0, ring.length - bound);
    }
  }

  /**
   * A transition that repeats (FOLD_RULES) replaces the same transition of the same peer, if no other kind of
   * transition of that peer came between them, and says how many it stands for and since when: the fields it returns.
   */
  private foldRepeat(event: string, fields: Record<string, unknown>, nowMs: number): FoldedRepeat | null {
    const rule = FOLD_RULES.get(event);
    if (rule === undefined || !rule.repeats(fields)) {
      return null;
    }
    for (let i = this.events.length - 1; i >= 0; i--) {
      const earlier = this.events[i]!;
      if (earlier.event !== event || earlier.fields["peer"] !== fields["peer"]) {
        continue;
      }
      if (!rule.repeats(earlier.fields)) {
        return null;
      }
      if (earlier.fields["from"] === fields["from"] && earlier.fields["to"] === fields["to"]) {
        if (nowMs - earlier.timeMs > rule.withinMs) {
          return null;
        }
        this.events.splice(i, 1);
        const repeats = earlier.fields["repeats"];
        const firstTimeMs = earlier.fields["firstTimeMs"];
        return {
          repeats: (typeof repeats === "number" ? repeats : 1) + 1,
          firstTimeMs: typeof firstTimeMs === "number" ? firstTimeMs : earlier.timeMs,
        };
      }
    }
    return null;
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

/** What a folded event adds to its fields: how many transitions it stands for, and when the first of them was. */
interface FoldedRepeat {
  readonly repeats: number;
  readonly firstTimeMs: number;
}

interface FoldRule {
  /** Whether the transition is one that repeats; any other transition of the peer ends the run of repeats. */
  readonly repeats: (fields: Readonly<Record<string, unknown>>) => boolean;
  /** A repeat folds into the same transition only if that one is at most this old (a new run starts afresh). */
  readonly withinMs: number;
}

/** A transition folds into the same one of the same peer at most this old: a quiet minute starts a new run. */
export const FLAP_WINDOW_MS = 60_000;

/**
 * Transitions that repeat while a peer's link is down or flaky, which would soon leave nothing else in the feed
 * (elections and membership changes among the first to go): only the newest of each is kept, counted.
 *  - circuitBreaker: while a peer stays down, its breaker goes OPEN -> HALF_OPEN -> OPEN at every probe, once per
 *    heartbeat interval; over a lossy link it opens and closes again every second or two.
 *  - replicaStatus: a replica goes RECONNECTING after one failed delivery and back with its next answer, under light
 *    message loss many times a second (or flips between ONLINE and LAGGING); going OFFLINE, or starting over under
 *    a new leader, ends the run.
 */
const FOLD_RULES: ReadonlyMap<string, FoldRule> = new Map([
  ["circuitBreaker", { repeats: () => true, withinMs: FLAP_WINDOW_MS }],
  ["replicaStatus", { repeats: isFlapTransition, withinMs: FLAP_WINDOW_MS }],
]);

/** Between JOINING, ONLINE, LAGGING and RECONNECTING: not a replica's first status, nor one to or from OFFLINE. */
function isFlapTransition(fields: Readonly<Record<string, unknown>>): boolean {
  return FLAPPING_STATUSES.has(fields["from"]) && FLAPPING_STATUSES.has(fields["to"]);
}

const FLAPPING_STATUSES: ReadonlySet<unknown> = new Set(["JOINING", "ONLINE", "LAGGING", "RECONNECTING"]);

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
