// The invariants, checked from outside the code under test: only what the shell persisted, applied and observed
// through the public API counts. Raft's Figure 3 properties, plus what a client is promised, plus the replica
// status machine checked against a transition table written here, independently of the core.

import type { LogEntry, NodeId, NodeStatus, RaftEvent, ReplicaStatus, SnapshotMeta } from "../../src/replication/types.js";
import type { SimNode } from "./cluster.js";

export interface Violation {
  readonly kind: string;
  readonly detail: string;
  readonly atMs: number;
}

/** Which replica-status changes make sense (null: the leader starts tracking the replica). */
export const REPLICA_STATUS_TRANSITIONS: ReadonlyMap<ReplicaStatus | null, ReadonlySet<ReplicaStatus>> = new Map<ReplicaStatus | null, ReadonlySet<ReplicaStatus>>([
  // A new leader has seen no replica catch up yet.
  [null, new Set<ReplicaStatus>(["JOINING"])],
  // Not caught up yet: it catches up, or contact fails (reported failures first, or silence).
  ["JOINING", new Set<ReplicaStatus>(["ONLINE", "RECONNECTING", "OFFLINE"])],
  // Caught up: it falls behind, or contact fails. It never goes back to JOINING (checked separately too).
  ["ONLINE", new Set<ReplicaStatus>(["LAGGING", "RECONNECTING", "OFFLINE"])],
  ["LAGGING", new Set<ReplicaStatus>(["ONLINE", "RECONNECTING", "OFFLINE"])],
  // Contact is back: where it stands depends on whether it ever caught up and on its lag; or silence follows.
  ["RECONNECTING", new Set<ReplicaStatus>(["JOINING", "ONLINE", "LAGGING", "OFFLINE"])],
  ["OFFLINE", new Set<ReplicaStatus>(["JOINING", "ONLINE", "LAGGING", "RECONNECTING"])],
]);

interface RegisteredEntry {
  readonly content: string;
  readonly previousTerm: number;
  readonly node: NodeId;
}

interface CommittedEntry {
  readonly term: number;
  readonly content: string;
  /**
   * An upper bound on the term in which the entry became committed: the term of the first node seen treating it
   * as committed (it learned that from a leader of that term or an earlier one). Leader Completeness binds the
   * leaders of later terms only: a leader of an earlier term, still in office, may rightly lack it.
   */
  knownCommittedByTerm: number;
}

function entryContent(entry: LogEntry): string {
  return `${entry.kind}|${entry.data}`;
}

/** A digest of the key-value state machine: the sorted pairs, hashed. */
export function stateDigest(kv: ReadonlyMap<string, string>): string {
  const keys = [...kv.keys()].sort();
  let hash = 0x811c9dc5;
  for (const key of keys) {
    const text = `${key}=${kv.get(key) ?? ""};`;
    for (let i = 0; i < text.length; i += 1) hash = Math.imul(hash ^ text.charCodeAt(i), 0x01000193);
  }
  return `${keys.length}:${(hash >>> 0).toString(16)}`;
}

export class Checkers {
  readonly violations: Violation[] = [];
  /** Every (index, term) any node ever persisted: its content and the term before it (Log Matching, inductively). */
  private readonly registry = new Map<string, RegisteredEntry>();
  private readonly leaderOfTerm = new Map<number, NodeId>();
  private readonly committed = new Map<number, CommittedEntry>();
  private readonly stateAtIndex = new Map<number, string>();
  /** Per node: the highest index already folded into `committed` from its hard state. */
  private readonly commitMarked = new Map<NodeId, number>();
  /** Per node: the (role, term) seen last in this incarnation. */
  private readonly lastSeen = new Map<NodeId, { role: NodeStatus["role"]; term: number; incarnation: number }>();
  /** Per leader node: the last replica status reported for each peer during the current leadership. */
  private readonly replicaStatus = new Map<NodeId, Map<NodeId, ReplicaStatus>>();
  private readonly currentLeaders = new Map<NodeId, number>();
  /** Per leader node: the replicas that reached ONLINE or LAGGING during the current leadership. */
  private readonly caughtUp = new Map<NodeId, Set<NodeId>>();
  checksRun = 0;

  constructor(private readonly nowMs: () => number) {}

  fail(kind: string, detail: string): void {
    this.violations.push({ kind, detail, atMs: this.nowMs() });
  }

  get committedCount(): number {
    return this.committed.size;
  }

  committedTermAt(index: number): number | null {
    return this.committed.get(index)?.term ?? null;
  }

  // -------------------------------------------------------------------------------------------------------------
  // Persisted logs.

  /** After a node persisted: Log Matching over everything ever persisted, terms never decrease along a log. */
  checkPersistedLog(node: SimNode, touchedFromIndex: number | null): void {
    this.checksRun += 1;
    const entries = node.store.entries;
    const first = entries[0];
    if (first === undefined || touchedFromIndex === null) return;
    const snapshot = node.store.snapshot?.meta ?? null;
    const expectedFirst = (snapshot?.index ?? 0) + 1;
    if (first.index !== expectedFirst) {
      this.fail("log continuity", `${node.id}'s log starts at ${first.index}, right after its snapshot it should start at ${expectedFirst}`);
      return;
    }
    const start = Math.max(0, touchedFromIndex - first.index - 1);
    for (let position = start; position < entries.length; position += 1) {
      const entry = entries[position] as LogEntry;
      const previous = position === 0 ? null : (entries[position - 1] as LogEntry);
      const previousTerm = previous?.term ?? snapshot?.term ?? 0;
      if (previous !== null && entry.index !== previous.index + 1) {
        this.fail("log continuity", `${node.id}'s log jumps from ${previous.index} to ${entry.index}`);
        return;
      }
      if (entry.term < previousTerm) {
        this.fail("log matching", `${node.id}'s log has term ${entry.term} at ${entry.index} after term ${previousTerm}: a conflicting suffix survived`);
        return;
      }
      this.registerEntry(node, entry, previousTerm);
    }
  }

  private registerEntry(node: SimNode, entry: LogEntry, previousTerm: number): void {
    const key = `${entry.index}:${entry.term}`;
    const content = entryContent(entry);
    const known = this.registry.get(key);
    if (known === undefined) {
      this.registry.set(key, { content, previousTerm, node: node.id });
      return;
    }
    if (known.content !== content) {
      this.fail("log matching", `entry ${key} differs between ${known.node} (${known.content}) and ${node.id} (${content})`);
    } else if (known.previousTerm !== previousTerm) {
      this.fail("log matching", `entry ${key} follows term ${known.previousTerm} on ${known.node} but term ${previousTerm} on ${node.id}: the logs differ before a matching entry`);
    }
  }

  /** Leader Append-Only: a leader never truncates or overwrites its own log. */
  checkLeaderAppendOnly(node: SimNode, leaderTermBefore: number | null, ready: { truncateFrom: number | null; firstNewIndex: number | null; installsSnapshot: boolean }, lastIndexBefore: number): void {
    if (leaderTermBefore === null) return;
    const { truncateFrom, firstNewIndex } = ready;
    if (ready.installsSnapshot) this.fail("leader append-only", `${node.id}, leader of term ${leaderTermBefore}, installs a snapshot over its log`);
    if (truncateFrom !== null && truncateFrom <= lastIndexBefore) {
      this.fail("leader append-only", `${node.id}, leader of term ${leaderTermBefore}, truncates its log from ${truncateFrom} (last index ${lastIndexBefore})`);
    }
    if (firstNewIndex !== null && firstNewIndex <= lastIndexBefore) {
      this.fail("leader append-only", `${node.id}, leader of term ${leaderTermBefore}, overwrites index ${firstNewIndex} (last index ${lastIndexBefore})`);
    }
  }

  /** Folds a node's persisted commit index into the committed set. */
  noteCommitIndex(node: SimNode): void {
    const commit = node.store.hardState.commit;
    const from = (this.commitMarked.get(node.id) ?? 0) + 1;
    const upTo = Math.min(commit, node.lastIndex());
    for (let index = Math.max(from, (node.store.snapshot?.meta.index ?? 0) + 1); index <= upTo; index += 1) {
      const entry = node.entryAt(index);
      if (entry === null) {
        this.fail("commit", `${node.id} persisted commit ${commit} but has no entry at ${index}`);
        return;
      }
      this.markCommitted(node, entry.index, entry.term, entryContent(entry));
    }
    if (upTo >= from) this.commitMarked.set(node.id, upTo);
  }

  private markCommitted(node: SimNode, index: number, term: number, content: string | null): void {
    const knownBy = node.store.hardState.term;
    const known = this.committed.get(index);
    if (known !== undefined) {
      if (known.term !== term || (content !== null && known.content !== "" && known.content !== content)) {
        this.fail("state machine safety", `index ${index} committed with term ${known.term} (${known.content}), but ${node.id} has it committed with term ${term} (${content ?? "snapshot"})`);
        return;
      }
      if (knownBy >= known.knownCommittedByTerm) return;
      known.knownCommittedByTerm = knownBy;
    } else {
      this.committed.set(index, { term, content: content ?? "", knownCommittedByTerm: knownBy });
    }
    // Leader Completeness, for leaders already in office when this commitment became known.
    for (const [leader, leaderTerm] of this.currentLeaders) {
      if (leaderTerm > knownBy) this.expectInLeaderLog(leader, leaderTerm, index, term);
    }
  }

  private leaderNodes = new Map<NodeId, SimNode>();

  private expectInLeaderLog(leaderId: NodeId, leaderTerm: number, index: number, term: number): void {
    const leader = this.leaderNodes.get(leaderId);
    if (leader === undefined) return;
    const snapshotIndex = leader.store.snapshot?.meta.index ?? 0;
    if (index < snapshotIndex) return;
    const have = leader.termAt(index);
    if (have !== term) {
      this.fail("leader completeness", `${leaderId}, leader of term ${leaderTerm}, has ${have === null ? "no entry" : `term ${have}`} at ${index}, committed with term ${term}`);
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // Roles.

  /** After every step that touched a node: Election Safety, term monotonicity, Leader Completeness at election. */
  observeStatus(node: SimNode, status: NodeStatus): void {
    this.checksRun += 1;
    if (status.id !== node.id) this.fail("status", `${node.id} reports id ${status.id}`);
    const seen = this.lastSeen.get(node.id);
    if (seen !== undefined && seen.incarnation === node.incarnation && status.term < seen.term) {
      this.fail("term monotonicity", `${node.id}'s term went from ${seen.term} back to ${status.term}`);
    }
    const becameLeader = status.role === "leader" && !(seen?.role === "leader" && seen.term === status.term && seen.incarnation === node.incarnation);
    this.lastSeen.set(node.id, { role: status.role, term: status.term, incarnation: node.incarnation });
    if (status.role !== "leader") {
      this.currentLeaders.delete(node.id);
      this.leaderNodes.delete(node.id);
      return;
    }
    const holder = this.leaderOfTerm.get(status.term);
    if (holder !== undefined && holder !== node.id) {
      this.fail("election safety", `${node.id} and ${holder} both lead term ${status.term}`);
    }
    if (!becameLeader) return;
    this.leaderOfTerm.set(status.term, node.id);
    this.currentLeaders.set(node.id, status.term);
    this.leaderNodes.set(node.id, node);
    for (const [index, entry] of this.committed) {
      if (entry.knownCommittedByTerm < status.term) this.expectInLeaderLog(node.id, status.term, index, entry.term);
    }
  }

  forgetNode(node: SimNode): void {
    this.currentLeaders.delete(node.id);
    this.leaderNodes.delete(node.id);
    this.replicaStatus.delete(node.id);
    this.caughtUp.delete(node.id);
  }

  /**
   * Replica-status events: against the transition table, against the previous event for the same replica, against
   * "a replica that caught up in this leadership is never JOINING again", and the last one per replica against the
   * leader's own view in status() (taken when the Ready was produced).
   */
  observeEvents(node: SimNode, events: readonly RaftEvent[], status: NodeStatus | null): void {
    const reported = new Map<NodeId, ReplicaStatus>();
    for (const event of events) {
      // A leadership ends with any of these; its replica statuses end with it. (The core reports a new leader's
      // first replica statuses before its becameLeader event, so that one resets nothing.)
      if (event.kind === "becameFollower" || event.kind === "becameCandidate" || event.kind === "becamePreCandidate") {
        this.replicaStatus.delete(node.id);
        this.caughtUp.delete(node.id);
        reported.clear();
        continue;
      }
      if (event.kind !== "replicaStatus") continue;
      reported.set(event.peer, event.to);
      let perPeer = this.replicaStatus.get(node.id);
      if (perPeer === undefined) {
        perPeer = new Map();
        this.replicaStatus.set(node.id, perPeer);
      }
      let caughtUp = this.caughtUp.get(node.id);
      if (caughtUp === undefined) {
        caughtUp = new Set();
        this.caughtUp.set(node.id, caughtUp);
      }
      if (event.to === "ONLINE" || event.to === "LAGGING") caughtUp.add(event.peer);
      else if (event.to === "JOINING" && caughtUp.has(event.peer)) {
        this.fail("replica status", `${node.id} reports ${event.peer} JOINING again although it caught up earlier in this leadership`);
      }
      const previous = perPeer.get(event.peer) ?? null;
      if (event.from !== previous) {
        this.fail("replica status", `${node.id} reports ${event.peer} ${event.from ?? "null"} -> ${event.to}, but its last report was ${previous ?? "none"}`);
      }
      const allowed = REPLICA_STATUS_TRANSITIONS.get(event.from);
      if (allowed === undefined || !allowed.has(event.to)) {
        this.fail("replica status", `${node.id} reports ${event.peer} ${event.from ?? "null"} -> ${event.to}, not a valid transition`);
      }
      if (event.peer === node.id) this.fail("replica status", `${node.id} reports a status for itself`);
      perPeer.set(event.peer, event.to);
    }
    if (status === null || status.role !== "leader") return;
    for (const [peer, to] of reported) {
      const view = status.replicas.find((replica) => replica.id === peer);
      if (view !== undefined && view.status !== to) {
        this.fail("replica status", `${node.id}'s last event says ${peer} is ${to}, its status() says ${view.status}`);
      }
    }
  }

  // -------------------------------------------------------------------------------------------------------------
  // State machines.

  /** State Machine Safety: every node applies the same entry at each index, and reaches the same state. */
  observeApplied(node: SimNode, entry: LogEntry): void {
    this.checksRun += 1;
    const persisted = node.entryAt(entry.index);
    if (persisted === null || persisted.term !== entry.term || entryContent(persisted) !== entryContent(entry)) {
      this.fail("apply", `${node.id} applies ${entry.index}:${entry.term} which is not the entry in its persisted log (${persisted === null ? "none" : `${persisted.index}:${persisted.term}`})`);
    }
    this.markCommitted(node, entry.index, entry.term, entryContent(entry));
    this.expectState(node, entry.index, stateDigest(node.store.kv), "after applying");
  }

  observeSnapshotInstalled(node: SimNode, meta: SnapshotMeta): void {
    this.markCommitted(node, meta.index, meta.term, null);
    this.expectState(node, meta.index, stateDigest(node.store.kv), "after installing a snapshot");
    const marked = this.commitMarked.get(node.id) ?? 0;
    if (meta.index > marked) this.commitMarked.set(node.id, meta.index);
  }

  observeCompacted(node: SimNode, meta: SnapshotMeta): void {
    this.expectState(node, meta.index, stateDigest(node.store.kv), "when compacting");
  }

  private expectState(node: SimNode, index: number, digest: string, when: string): void {
    const known = this.stateAtIndex.get(index);
    if (known === undefined) this.stateAtIndex.set(index, digest);
    else if (known !== digest) this.fail("state machine safety", `${node.id}'s state at ${index} ${when} is ${digest}, another node had ${known}`);
  }

  /** The end of a run: every acknowledged write is still committed at its index with its term. */
  checkAcknowledged(acknowledged: readonly { index: number; term: number; what: string }[]): void {
    for (const ack of acknowledged) {
      const committedTerm = this.committedTermAt(ack.index);
      if (committedTerm !== ack.term) {
        this.fail("acknowledged write lost", `${ack.what} was acknowledged at ${ack.index}:${ack.term}, committed there: ${committedTerm ?? "nothing"}`);
      }
    }
  }
}
